import { IMPORTABLE_MODELS } from './flag-values.js';
import { defineCommand } from './define.js';
import { booleanField, enumField, intField, numberField, textField } from './fields.js';

export const INSPECT_PURPOSES = ['finetune', 'lora', 'distill', 'serve'] as const;

export const INSPECT = defineCommand({
  name: 'inspect',
  description: 'show what a model folder is (architecture, size, context, tokenizer, chat template) and which commands take it; --for estimates peak memory',
  options: {
    model: { field: textField(), positional: true, required: true, help: `Hugging Face model folder, a folder made by \`llmkit export\`, or ${IMPORTABLE_MODELS}` },
    for: {
      field: enumField(INSPECT_PURPOSES),
      value: '<purpose>',
      help: 'estimate peak memory for finetune, lora, distill (this model as teacher and student) or serve, and say whether it fits',
    },
    batchSize: { field: intField(1), value: '<n>', help: 'with --for: rows per micro-batch (serve: --max-batch)', defaultHelp: '8 for training, 16 for serve' },
    maxSeqLen: { field: intField(1), value: '<n>', help: 'with --for: tokens per row (serve: the context each request may fill)', defaultHelp: "the model's context, at most 2048 for training" },
    device: { field: enumField(['auto', 'cpu', 'cuda'] as const), value: '<device>', default: 'auto', help: 'with --for: whose memory to compare with (auto: the GPU when nvidia-smi finds one)' },
    gradientCheckpointing: { field: booleanField(), default: false, help: 'with --for: estimate with gradient checkpointing' },
    loraR: { field: intField(1), value: '<n>', default: 16, help: 'with --for lora: the LoRA rank' },
    loraDropout: { field: numberField({ min: 0, below: 1 }), value: '<p>', default: 0.05, help: "with --for lora: LoRA's input dropout (at 0 its copies are not kept)" },
  },
  rules: { requires: { batchSize: ['for'], maxSeqLen: ['for'], gradientCheckpointing: ['for'] } },
});
