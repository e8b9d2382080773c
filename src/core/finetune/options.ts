import { IMPORTABLE_MODELS } from '../options/flag-values.js';
import type { z } from 'zod';
import { defineCommand, resolveOptions } from '../options/define.js';
import { booleanField, enumField, intField, listField, numberField, pathsField, textField } from '../options/fields.js';
import type { FlagValues, Recipe } from '../options/recipe.js';

/** Defaults that do not depend on the model; `lr` and `maxSeqLen` do, and are settled in run.ts. */
export const FINETUNE_DEFAULTS = {
  loraR: 16,
  loraAlpha: 32,
  loraDropout: 0.05,
  epochs: 1,
  batchSize: 8,
  gradAccum: 1,
  schedule: 'cosine',
  warmupRatio: 0.03,
  weightDecay: 0,
  maxGradNorm: 1,
  seed: 0,
  device: 'auto',
  precision: 'auto',
  exactMatch: 0,
  /** Learning rate without --lr: LoRA trains a few new weights and takes a larger step than full fine-tuning. */
  lrLora: 2e-4,
  lrFull: 2e-5,
  /** --max-seq-len without the flag: the model's context, at most this. */
  maxSeqLenCap: 2048,
} as const;

const D = FINETUNE_DEFAULTS;

/** Where training runs (a subset of the engine's --device choices: no WebGPU for PyTorch). */
const TRAINING_DEVICES = ['auto', 'cpu', 'cuda'] as const;

/** Every option of `llmkit finetune`; recipe keys are these names (camelCase or kebab-case). */
export const FINETUNE = defineCommand({
  name: 'finetune',
  description: 'fine-tune a causal LM on JSONL data, fully or with LoRA (Python worker, CPU or CUDA)',
  recipes: true,
  options: {
    model: {
      field: textField(),
      positional: true,
      required: true,
      path: true,
      help: `Hugging Face model folder, builtin:tiny|small|100m (made by \`llmkit make-model\`), or ${IMPORTABLE_MODELS}`,
      defaultHelp: "the recipe's model",
    },
    data: {
      field: pathsField(),
      value: '<file>',
      repeat: true,
      required: true,
      path: true,
      help: 'training data, JSONL: messages, instruction/output, prompt/completion or text, detected per file (repeat for more files)',
    },
    evalData: { field: pathsField(), value: '<file>', repeat: true, path: true, help: 'evaluation data, JSONL, for eval loss and exact match (repeat for more files)' },
    evalSplit: { field: numberField({ above: 0, max: 0.5 }), value: '<fraction>', help: 'hold out this fraction of --data for evaluation, e.g. 0.1' },
    out: { field: textField(), value: '<dir>', required: true, path: true, help: 'output folder: checkpoints, metrics.jsonl, llmkit-config.json, adapter/ or model/' },
    lora: {
      field: booleanField(),
      default: false,
      help: 'train a LoRA adapter on the frozen base (default: full fine-tuning)',
      negate: 'full fine-tuning even where the recipe says lora',
    },
    loraR: { field: intField(1), value: '<n>', default: D.loraR, help: 'LoRA rank' },
    loraAlpha: { field: numberField({ above: 0 }), value: '<n>', default: D.loraAlpha, help: 'LoRA alpha; updates are scaled by alpha/r' },
    loraDropout: { field: numberField({ min: 0, below: 1 }), value: '<p>', default: D.loraDropout, help: 'dropout on the LoRA input' },
    loraTargets: { field: listField(), value: '<names>', help: 'comma-separated module names to adapt', defaultHelp: 'every linear layer of attention and MLP' },
    epochs: { field: intField(1), value: '<n>', help: 'passes over the data', defaultHelp: `${D.epochs} unless --max-steps` },
    maxSteps: { field: intField(1), value: '<n>', help: 'optimizer steps to train, cycling the data as needed, instead of --epochs' },
    batchSize: { field: intField(1), value: '<n>', default: D.batchSize, help: 'rows (examples, or packed sequences) per micro-batch' },
    gradAccum: { field: intField(1), value: '<n>', default: D.gradAccum, help: 'micro-batches per optimizer step' },
    lr: { field: numberField({ above: 0, max: 1 }), value: '<rate>', help: 'peak learning rate', defaultHelp: `${D.lrLora} with --lora, ${D.lrFull} without` },
    schedule: { field: enumField(['linear', 'cosine']), value: '<name>', default: D.schedule, help: 'learning-rate decay after warm-up: linear or cosine' },
    warmupRatio: { field: numberField({ min: 0, below: 1 }), value: '<fraction>', default: D.warmupRatio, help: 'fraction of the steps that warm the learning rate up from 0' },
    weightDecay: { field: numberField({ min: 0 }), value: '<w>', default: D.weightDecay, help: 'AdamW weight decay' },
    maxGradNorm: { field: numberField({ min: 0 }), value: '<n>', default: D.maxGradNorm, help: 'clip gradients to this global norm; 0 = off' },
    seed: { field: intField(0), value: '<n>', default: D.seed, help: 'seed for initial weights, data order and dropout' },
    maxSeqLen: {
      field: intField(8),
      value: '<n>',
      help: 'truncate examples to this many tokens, counted and reported',
      defaultHelp: `the model's context, at most ${D.maxSeqLenCap}`,
    },
    packing: {
      field: booleanField(),
      default: false,
      help: 'pack several short examples into each row of --max-seq-len tokens; they do not attend to each other',
      negate: 'one example per row even where the recipe packs',
    },
    trainOnPrompt: {
      field: booleanField(),
      default: false,
      help: 'put the loss on prompts too, not only on answers',
      negate: 'loss on answers only even where the recipe says otherwise',
    },
    force: { field: booleanField(), default: false, help: 'start even when the memory estimate says the run cannot fit (llmkit inspect MODEL --for finetune)' },
    gradientCheckpointing: {
      field: booleanField(),
      default: false,
      help: 'recompute activations in the backward pass: less memory, about a third more compute',
      negate: 'keep activations even where the recipe checkpoints them',
    },
    evalEvery: { field: intField(1), value: '<n>', help: 'eval loss every N steps (it is always computed at the end when there is eval data)' },
    saveEvery: {
      field: intField(1),
      value: '<n>',
      default: 500,
      help: 'checkpoint every N steps or every --save-minutes, whichever comes first (one is also saved on Ctrl-C and at the end)',
    },
    saveMinutes: { field: numberField({ above: 0 }), value: '<minutes>', default: 10, help: 'checkpoint at least this often, counted in minutes of training' },
    keepCheckpoints: { field: intField(1), value: '<k>', default: 2, help: 'keep the newest K checkpoints in <out>/checkpoints' },
    resume: { field: booleanField(), default: false, help: 'continue from the newest checkpoint in --out (pass the same flags)' },
    merge: {
      field: booleanField(),
      default: false,
      help: 'with --lora: also write the base with the adapter merged in, to <out>/merged',
      negate: 'do not merge even where the recipe says so',
    },
    device: { field: enumField(TRAINING_DEVICES), value: '<name>', default: D.device, help: 'where training runs: auto, cpu or cuda' },
    precision: {
      field: enumField(['auto', 'bf16', 'fp32']),
      value: '<name>',
      default: D.precision,
      help: 'auto (bf16 autocast on a CUDA GPU that has it, else fp32), bf16 or fp32',
    },
    compile: {
      field: booleanField(),
      default: false,
      help: 'torch.compile each decoder layer and replay it as CUDA graphs unless checkpointing (CUDA only; falls back to eager)',
      negate: 'run eagerly even where the recipe compiles',
    },
    exactMatch: {
      field: intField(0),
      value: '<n>',
      default: D.exactMatch,
      help: 'greedy-answer the first N eval (else training) examples before and after training and count exact matches; 0 = off',
    },
    reportTo: {
      field: enumField(['none', 'tensorboard']),
      value: '<where>',
      default: 'none',
      help: 'also log the metrics as TensorBoard event files in --out/tensorboard/, live (`tensorboard --logdir OUT/tensorboard`)',
    },
    // Several processes through torchrun (docs/deploy.md). batchSize and gradAccum stay global: each process takes
    // its share of every micro-batch, so the loss curve and learning-rate schedule do not depend on the count.
    gpus: { field: intField(1), value: '<n>', help: 'train on N CUDA GPUs of this machine, one process each, through torchrun (DDP, or --fsdp)' },
    nproc: { field: intField(1), value: '<n>', help: 'train in N processes on this machine through torchrun, on the --device (CPU processes use gloo)' },
    nnodes: { field: intField(1), value: '<n>', help: 'machines in the job; run the same command on each with its --node-rank (more than one needs --master-addr)', defaultHelp: '1' },
    nodeRank: { field: intField(0), value: '<n>', help: "this machine's number, 0 to nnodes-1 (node 0 hosts the rendezvous)" },
    masterAddr: { field: textField(), value: '<host>', help: 'address of node 0, which every node connects to (needed with --nnodes > 1)' },
    masterPort: { field: intField(1), value: '<port>', help: 'rendezvous port on node 0', defaultHelp: 'a free one on one machine, 29500 across machines' },
    fsdp: {
      field: booleanField(),
      default: false,
      help: 'shard weights, gradients and optimizer state across the processes (FSDP full-shard) instead of replicating them (DDP)',
      negate: 'DDP even where the recipe shards',
    },
  },
  rules: {
    exclusive: [
      ['epochs', 'maxSteps'],
      ['evalData', 'evalSplit'],
      ['gpus', 'nproc'],
    ],
    requires: {
      loraR: ['lora'],
      loraAlpha: ['lora'],
      loraDropout: ['lora'],
      loraTargets: ['lora'],
      merge: ['lora'],
      evalEvery: ['evalData', 'evalSplit'],
      nnodes: ['gpus', 'nproc'],
      nodeRank: ['nnodes'],
      masterAddr: ['nnodes'],
      masterPort: ['gpus', 'nproc'],
      fsdp: ['gpus', 'nproc'],
    },
    hints: {
      model: 'pass a Hugging Face model folder (or builtin:tiny) as the first argument, or `model:` in the recipe',
      data: 'pass a JSONL file with --data (messages, instruction/output, prompt/completion or text per line)',
      out: 'pass the folder for checkpoints and outputs with --out',
    },
  },
});

export type FinetuneOptions = z.output<typeof FINETUNE.schema>;
export function resolveFinetuneOptions(flags: FlagValues, recipe?: Recipe): FinetuneOptions {
  return resolveOptions(FINETUNE, flags, recipe);
}
