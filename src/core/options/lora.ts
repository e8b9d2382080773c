import { IMPORTABLE_MODELS } from './flag-values.js';
import { defineCommand } from './define.js';
import { textField } from './fields.js';

export const LORA_DESCRIPTION = 'inspect LoRA adapters (PEFT format) and merge them into their base model';

const ADAPTER = { field: textField(), positional: true, required: true, help: 'adapter folder (adapter_config.json + adapter_model.safetensors)' } as const;

export const LORA_INFO = defineCommand({
  name: 'info',
  description: 'show an adapter: rank, alpha, targets, trainable parameters, base model',
  options: { adapter: ADAPTER },
});

export const LORA_MERGE = defineCommand({
  name: 'merge',
  description: 'fold an adapter into its base model and write a whole Hugging Face model folder with the tokenizer',
  options: {
    base: { field: textField(), positional: true, required: true, help: `the base model folder the adapter was trained on (or builtin:tiny, ${IMPORTABLE_MODELS})` },
    adapter: ADAPTER,
    out: { field: textField(), value: '<dir>', required: true, help: 'folder to write the merged model to (must not exist)' },
  },
});
