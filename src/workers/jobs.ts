import { z } from 'zod';
import { LlmkitError } from '../shared/errors.js';
import type { WorkerEvent } from './protocol.js';

/**
 * The contract with the Python jobs: for each job, the schema of the config llmkit sends it and of
 * the result it answers with. llmkit_worker/jobs.py holds the same table as TypedDicts, and
 * test/workers/job-contract.test.ts keeps the two equal (job names, fields, their kinds, which are
 * optional). runWorker checks every result against its schema, so a job that answers something
 * else fails in one line instead of deep inside a report.
 */

const DataFiles = z.array(z.object({ path: z.string(), format: z.string() }));

const ExactMatch = z.object({
  value: z.number(),
  correct: z.number().int(),
  total: z.number().int(),
  samples: z.array(z.object({ question: z.string(), expected: z.string(), got: z.string(), correct: z.boolean() })),
});
export type ExactMatch = z.infer<typeof ExactMatch>;

const FinetuneConfig = z.object({
  model: z.string(),
  data: DataFiles,
  eval_data: DataFiles.nullable(),
  eval_split: z.number().nullable(),
  out: z.string(),
  lora: z.boolean(),
  lora_r: z.number().int(),
  lora_alpha: z.number(),
  lora_dropout: z.number(),
  lora_targets: z.array(z.string()).nullable(),
  epochs: z.number().int().nullable(),
  max_steps: z.number().int().nullable(),
  batch_size: z.number().int(),
  grad_accum: z.number().int(),
  lr: z.number(),
  schedule: z.enum(['linear', 'cosine']),
  warmup_ratio: z.number(),
  weight_decay: z.number(),
  max_grad_norm: z.number(),
  seed: z.number().int(),
  max_seq_len: z.number().int(),
  packing: z.boolean(),
  train_on_prompt: z.boolean(),
  gradient_checkpointing: z.boolean(),
  eval_every: z.number().int().nullable(),
  save_every: z.number().int(),
  save_minutes: z.number(),
  keep_checkpoints: z.number().int(),
  resume: z.boolean(),
  merge: z.boolean(),
  precision: z.string(),
  compile: z.boolean(),
  exact_match: z.number().int(),
  device: z.string(),
  fsdp: z.boolean(),
  report_to: z.enum(['none', 'tensorboard']),
});

const FinetuneResult = z.object({
  out: z.string(),
  method: z.enum(['lora', 'full']),
  steps: z.number().int(),
  /** Passes over the data, fractional when --max-steps stops inside one. */
  epochs: z.number(),
  first_loss: z.number().nullable(),
  last_loss: z.number().nullable(),
  eval_loss: z.number().nullable(),
  tokens_per_s: z.number().nullable(),
  train_tokens: z.number().int(),
  train_seconds: z.number(),
  peak_memory_bytes: z.number().int().nullable(),
  peak_memory_per_rank: z.array(z.number().int().nullable()),
  processes: z.number().int(),
  memory_kind: z.enum(['cuda', 'cpu_rss']).nullable(),
  examples: z.number().int(),
  eval_examples: z.number().int(),
  truncated: z.number().int(),
  dropped: z.number().int(),
  trainable_parameters: z.number().int(),
  total_parameters: z.number().int(),
  device: z.string(),
  precision: z.string(),
  compiled: z.boolean(),
  exact_match: z.object({ before: ExactMatch.nullable(), after: ExactMatch.nullable() }).nullable(),
  adapter: z.string().nullable(),
  merged: z.string().nullable(),
  model: z.string().nullable(),
  resumed_from: z.string().nullable(),
});

export const JOBS = {
  probe: {
    config: z.object({}),
    result: z.object({
      python: z.object({ executable: z.string(), version: z.string() }),
      packages: z.record(z.string(), z.object({ version: z.string().nullable(), error: z.string().optional() })),
      cuda: z.object({
        available: z.boolean(),
        gpus: z.array(z.object({ index: z.number().int(), name: z.string(), memory_bytes: z.number().int() })),
        nccl: z.boolean(),
        bf16: z.boolean(),
        torch_cuda: z.string().nullable().optional(),
        gloo: z.boolean().optional(),
      }),
    }),
  },
  selftest: {
    config: z.object({
      steps: z.number().int().optional(),
      out: z.string().optional(),
      stderr_lines: z.number().int().optional(),
      step_seconds: z.number().optional(),
      fail: z.string().optional(),
      fail_rank: z.number().int().optional(),
    }),
    result: z.object({ steps: z.number().int() }),
  },
  make_model: {
    config: z.object({
      out: z.string(),
      preset: z.string(),
      seed: z.number().int(),
      corpus: z.array(z.string()).optional(),
      architecture: z.string().optional(),
      dtype: z.string().optional(),
      model_vocab_size: z.number().int().optional(),
      tie_word_embeddings: z.boolean().optional(),
    }),
    result: z.object({ path: z.string(), parameters: z.number().int(), preset: z.string(), vocab_size: z.number().int(), config: z.record(z.string(), z.unknown()) }),
  },
  finetune: { config: FinetuneConfig, result: FinetuneResult },
  distill: {
    config: FinetuneConfig.extend({
      teacher: z.string(),
      /** {config.json key: value} over the teacher's, for a student built from it; null for a given student folder. */
      student_config: z.record(z.string(), z.unknown()).nullable(),
      student_layers: z.array(z.number().int()).nullable(),
      mode: z.enum(['logits', 'sequence']),
      /** Logits mode's; null in sequence mode. */
      temperature: z.number().nullable(),
      alpha: z.number().nullable(),
      /** 0: every logit. */
      top_k: z.number().int(),
      /** Sequence mode's; null in logits mode. */
      max_new_tokens: z.number().int().nullable(),
      /** The draft's output layer: the N tokens most frequent in the answers it learns, written to draft-vocab.json; 0: every token. */
      draft_vocab: z.number().int(),
    }).refine((c) => (c.mode === 'logits' ? c.temperature !== null && c.alpha !== null : c.max_new_tokens !== null), {
      error: 'logits mode needs temperature and alpha, sequence mode max_new_tokens',
    }),
    result: FinetuneResult,
  },
  lora_tools: {
    config: z.object({ base: z.string(), adapter: z.string(), out: z.string() }),
    result: z.object({ out: z.string() }),
  },
  export_onnx: {
    config: z.object({
      model: z.string(),
      out: z.string(),
      dtype: z.enum(['fp32', 'fp16']),
      tolerance: z.number().optional(),
      fused: z.boolean(),
      gqa: z.boolean().optional(),
      opset: z.number().int().optional(),
    }),
    result: z.object({ path: z.string(), parity: z.record(z.string(), z.number()), onnx_bytes: z.number().int(), manifest: z.record(z.string(), z.unknown()) }),
  },
  quantize: {
    config: z.object({
      model: z.string(),
      out: z.string(),
      bits: z.number().int(),
      block_size: z.number().int(),
      symmetric: z.boolean(),
      exclude: z.array(z.string()),
      accuracy_level: z.number().int(),
      head_bits: z.number().int().optional(),
      scales: z.enum(['fp32', 'fp16']).optional(),
      calibration_data: z.string().optional(),
      calibration_tokens: z.number().int().optional(),
    }),
    result: z.object({ path: z.string(), quantization: z.record(z.string(), z.unknown()) }),
  },
  export_gguf: {
    config: z.object({ model: z.string(), out: z.string(), type: z.enum(['f16', 'q8_0', 'q4_0']) }),
    result: z.object({
      path: z.string(),
      type: z.enum(['f16', 'q8_0', 'q4_0']),
      architecture: z.string(),
      bytes: z.number().int(),
      parameters: z.number().int(),
      tensor_types: z.record(z.string(), z.number().int()),
    }),
  },
  import_gguf: {
    config: z.object({ gguf: z.string(), out: z.string(), dtype: z.enum(['float32', 'bfloat16', 'float16']) }),
    result: z.object({
      path: z.string(),
      architecture: z.string(),
      model_type: z.string(),
      parameters: z.number().int(),
      dtype: z.enum(['float32', 'bfloat16', 'float16']),
      tensor_types: z.record(z.string(), z.number().int()),
      special_tokens: z.record(z.string(), z.string()),
      chat_template: z.boolean(),
    }),
  },
  hf_download: { config: z.object({ repo: z.string(), revision: z.string() }), result: z.object({ path: z.string() }) },
  export_triton: {
    config: z.object({ model: z.string(), out: z.string(), name: z.string(), device: z.enum(['cpu', 'gpu']).optional() }),
    result: z.object({ path: z.string(), decoder: z.string(), generate: z.string(), device: z.enum(['cpu', 'gpu']) }),
  },
  cuda_provider: {
    config: z.object({ version: z.string(), dest: z.string(), cache: z.string(), source: z.string().nullable(), offline: z.boolean() }),
    result: z.object({ version: z.string(), source: z.string(), provider_files: z.array(z.string()), library_dirs: z.array(z.string()) }),
  },
} as const;

/** The metrics jobs report as `metric` events, by name (llmkit_worker: trainer/loop.py, trainer/exact_match.py, distill.py, selftest.py). */
export const METRICS = {
  eval_loss: z.object({ value: z.number(), step: z.number().int() }),
  exact_match: ExactMatch.extend({ when: z.string(), step: z.number().int() }),
  teacher: z.object({ parameters: z.number().int(), exact_match: ExactMatch.nullable() }),
  student_init: z.object({
    layers: z.array(z.number().int()),
    copied_tensors: z.number().int(),
    fresh_tensors: z.number().int(),
    copied_parameters: z.number().int(),
    parameters: z.number().int(),
  }),
  selftest_score: z.object({ value: z.number() }),
} as const;

export type MetricName = keyof typeof METRICS;
export type Metric<N extends MetricName> = z.infer<(typeof METRICS)[N]>;

/**
 * The event as metric `name`'s schema reads it; undefined when it is another event (or, with `when`, another
 * moment). A known metric in another shape is a broken contract: it fails in one line.
 */
export function asMetric<N extends MetricName>(event: WorkerEvent, name: N, when?: string): Metric<N> | undefined {
  if (event.event !== 'metric' || event.name !== name || (when !== undefined && event.when !== when)) return undefined;
  const parsed = METRICS[name].safeParse(event);
  if (parsed.success) return parsed.data as Metric<N>;
  const issue = parsed.error.issues[0];
  throw new LlmkitError(`the worker's ${name} metric does not match its schema at ${issue.path.join('.') || 'the top'}: ${issue.message}`, 'this is a bug in llmkit: please report it');
}

/** The first metric `name` (at `when`) among a run's events. */
export function findMetric<N extends MetricName>(events: readonly WorkerEvent[], name: N, when?: string): Metric<N> | undefined {
  for (const e of events) {
    const metric = asMetric(e, name, when);
    if (metric) return metric;
  }
  return undefined;
}

export type JobName = keyof typeof JOBS;
export type JobConfig<J extends JobName> = z.input<(typeof JOBS)[J]['config']>;
export type JobResult<J extends JobName> = z.infer<(typeof JOBS)[J]['result']>;
