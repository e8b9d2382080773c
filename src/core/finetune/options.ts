import { z } from 'zod';
import { booleanField, enumField, intField, listField, numberField, pathsField, resolveConfig, type FlagRules, type FlagValues, type Recipe } from '../recipe.js';

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

/** Every option of `llmkit finetune`; recipe keys are these names (camelCase or kebab-case). */
export const FinetuneSchema = z.object({
  /** Hugging Face model folder, or builtin:tiny|small|100m (made by `llmkit make-model`). */
  model: z.string().min(1),
  /** Training data: JSONL files in messages, alpaca, prompt/completion or text shape (detected per file). */
  data: pathsField(),
  /** Held-out data for eval loss (and exact match); contradicts evalSplit. */
  evalData: pathsField().optional(),
  /** Fraction of the training data held out for evaluation instead of evalData. */
  evalSplit: numberField({ above: 0, max: 0.5 }).optional(),
  /** Output folder: checkpoints, metrics.jsonl, the resolved config, the adapter or model. */
  out: z.string().min(1),
  /** Train a LoRA adapter (base frozen) instead of all weights. */
  lora: booleanField().default(false),
  loraR: intField(1).default(D.loraR),
  loraAlpha: numberField({ above: 0 }).default(D.loraAlpha),
  loraDropout: numberField({ min: 0, below: 1 }).default(D.loraDropout),
  /** Module names to adapt; default: every linear layer of the attention and MLP blocks. */
  loraTargets: listField().optional(),
  /** Passes over the data (default 1 unless maxSteps is set); contradicts maxSteps. */
  epochs: intField(1).optional(),
  /** Optimizer steps to train, cycling the data as needed; contradicts epochs. */
  maxSteps: intField(1).optional(),
  /** Rows (examples, or packed sequences) per micro-batch. */
  batchSize: intField(1).default(D.batchSize),
  /** Micro-batches per optimizer step. */
  gradAccum: intField(1).default(D.gradAccum),
  /** Peak learning rate (default: 2e-4 with LoRA, 2e-5 without). */
  lr: numberField({ above: 0, max: 1 }).optional(),
  schedule: enumField(['linear', 'cosine']).default(D.schedule),
  /** Fraction of the steps spent warming the learning rate up from 0. */
  warmupRatio: numberField({ min: 0, below: 1 }).default(D.warmupRatio),
  weightDecay: numberField({ min: 0 }).default(D.weightDecay),
  /** Gradient clipping by global norm; 0 turns it off. */
  maxGradNorm: numberField({ min: 0 }).default(D.maxGradNorm),
  seed: intField(0).default(D.seed),
  /** Longest example in tokens; longer ones are truncated and counted (default: the model's context, at most 2048). */
  maxSeqLen: intField(8).optional(),
  /** Put several short examples in one row of maxSeqLen tokens (they do not attend to each other). */
  packing: booleanField().default(false),
  /** Put the loss on prompt tokens too, not only on answers. */
  trainOnPrompt: booleanField().default(false),
  /** Recompute activations in the backward pass: less memory, about a third more compute. */
  gradientCheckpointing: booleanField().default(false),
  /** Eval loss every N steps (it is always computed at the end when there is eval data). */
  evalEvery: intField(1).optional(),
  /** Checkpoint every N steps (one is also written on Ctrl-C and at the end). */
  saveEvery: intField(1).optional(),
  /** Continue from the newest checkpoint in `out`. */
  resume: booleanField().default(false),
  /** With LoRA: also write the base model with the adapter merged in (out/merged). */
  merge: booleanField().default(false),
  device: enumField(['auto', 'cpu', 'cuda']).default(D.device),
  /** auto: bf16 autocast on a CUDA GPU that supports it, fp32 otherwise. */
  precision: enumField(['auto', 'bf16', 'fp32']).default(D.precision),
  /** torch.compile each decoder layer, replayed as CUDA graphs unless checkpointing (CUDA only; falls back to eager). */
  compile: booleanField().default(false),
  /** Greedy-generate the answers of the first N eval (else training) examples before and after training. */
  exactMatch: intField(0).default(D.exactMatch),
  // Several processes through torchrun (docs/deploy.md). batchSize and gradAccum stay global: each process takes
  // its share of every micro-batch, so the loss curve and learning-rate schedule do not depend on the count.
  /** One process per CUDA GPU on this machine (implies device cuda); contradicts nproc. */
  gpus: intField(1).optional(),
  /** Processes on this machine, on the device --device picks (several CPU processes use gloo); contradicts gpus. */
  nproc: intField(1).optional(),
  /** Machines in the job (default 1); more than one needs masterAddr, and nodeRank on each. */
  nnodes: intField(1).optional(),
  /** This machine's number, 0 to nnodes-1 (node 0 hosts the rendezvous). */
  nodeRank: intField(0).optional(),
  /** Address of node 0, which every node connects to. */
  masterAddr: z.string().min(1).optional(),
  /** Rendezvous port on node 0 (default: a free one on one machine, 29500 across machines). */
  masterPort: intField(1).optional(),
  /** Shard weights, gradients and optimizer state across the processes (FSDP full-shard) instead of replicating them (DDP). */
  fsdp: booleanField().default(false),
});

export type FinetuneOptions = z.output<typeof FinetuneSchema>;

export const FINETUNE_KEYS = Object.keys(FinetuneSchema.shape);

export const FINETUNE_RULES: FlagRules = {
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
  positional: { model: '<model>' },
  hints: {
    model: 'pass a Hugging Face model folder (or builtin:tiny) as the first argument, or `model:` in the recipe',
    data: 'pass a JSONL file with --data (messages, instruction/output, prompt/completion or text per line)',
    out: 'pass the folder for checkpoints and outputs with --out',
  },
};

/** Recipe keys whose relative paths are taken from the recipe's folder. */
export const FINETUNE_PATH_KEYS = ['model', 'data', 'evalData', 'out'] as const;

export function resolveFinetuneOptions(flags: FlagValues, recipe?: Recipe): FinetuneOptions {
  return resolveConfig(FinetuneSchema, flags, recipe, FINETUNE_RULES);
}
