import { describe, expect, it } from 'vitest';
import { distillExtra, distillSettings } from '../../src/core/distill/run.js';
import { DISTILL, DISTILL_DEFAULTS } from '../../src/core/distill/options.js';
import type { DataFile } from '../../src/core/finetune/data.js';
import { FINETUNE } from '../../src/core/finetune/options.js';
import { workerConfig, type TrainingInputs } from '../../src/core/finetune/run.js';
import { camelKey, snakeKey, toCamelCase, toSnakeCase } from '../../src/shared/case.js';
import { JOBS, asMetric } from '../../src/workers/jobs.js';
import { parseJobConfig } from '../../src/workers/worker-run.js';

/**
 * Every config `finetune` and `distill` can send, built by the functions the commands use and parsed by the
 * job's schema (runWorker parses every config the same way before a worker starts). The other jobs' configs
 * are object literals typed by jobs.ts at their call sites; the training ones are assembled from options.
 */

const DATA: DataFile[] = [{ path: '/d/train.jsonl', format: 'messages', examples: 10 } as DataFile];
const EVAL: DataFile[] = [{ path: '/d/eval.jsonl', format: 'prompt_completion', examples: 4 } as DataFile];

function trainingOptions(flags: Record<string, unknown>): TrainingInputs['options'] {
  return { ...FINETUNE.schema.parse({ model: '/m', data: ['/d/train.jsonl'], out: '/o', ...flags }), lr: 2e-4, maxSeqLen: 256, epochs: flags.maxSteps ? undefined : 3 };
}

const FINETUNE_CASES: [string, TrainingInputs['options'], DataFile[]][] = [
  ['LoRA with the defaults', trainingOptions({ lora: true }), []],
  [
    'full, eval data, max steps, targets, every flag set',
    trainingOptions({ lora: false, maxSteps: 20, loraTargets: ['q_proj'], evalEvery: 5, saveEvery: 10, packing: true, merge: true, exactMatch: 4 }),
    EVAL,
  ],
  ['an eval split and --gpus (CUDA per rank, FSDP)', trainingOptions({ lora: true, evalSplit: 0.2, gpus: 2, fsdp: true }), []],
];

describe('finetune configs', () => {
  it.each(FINETUNE_CASES)('%s parses as the finetune job reads it', (_, options, evalData) => {
    const config = workerConfig(options, DATA, evalData);
    expect(parseJobConfig('finetune', config)).toEqual(config);
    expect(Object.keys(config).sort()).toEqual(Object.keys(JOBS.finetune.config.shape).sort());
  });

  it('says null for what is not set and names the CUDA device for --gpus', () => {
    const lora = workerConfig(FINETUNE_CASES[0][1], DATA, []);
    expect([lora.eval_data, lora.eval_split, lora.max_steps, lora.epochs, lora.lora_targets, lora.device]).toEqual([null, null, null, 3, null, 'auto']);
    expect(workerConfig(FINETUNE_CASES[2][1], DATA, []).device).toBe('cuda');
  });
});

describe('distill configs', () => {
  const distill = (flags: Record<string, unknown>) => DISTILL.schema.parse({ teacher: '/t', data: ['/d/train.jsonl'], out: '/o', ...flags });
  const cases = [
    ['logits mode, a student built from the teacher', distill({ mode: 'logits' }), null, { config: { num_hidden_layers: 2 }, layers: [0, 3] }],
    ['logits mode, a given student, top-k', distill({ mode: 'logits', student: '/s', topK: 8, temperature: 4, alpha: 0.7 }), '/s', null],
    ['sequence mode, a given student', distill({ mode: 'sequence', student: '/s' }), '/s', null],
    ['sequence mode, a built student', distill({ mode: 'sequence', maxNewTokens: 32 }), null, { config: {}, layers: [0, 1, 2, 3] }],
  ] as const;

  it.each(cases)('%s parses as the distill job reads it', (_, opts, student, plan) => {
    const config = { ...workerConfig(trainingOptions({ lora: false }), DATA, []), ...distillExtra(distillSettings(opts, '/t', student, plan)) };
    expect(parseJobConfig('distill', config)).toEqual(config);
    expect(Object.keys(config).sort()).toEqual(Object.keys(JOBS.distill.config.shape).sort());
  });

  it('sends the other mode’s settings as null, and refuses a config without its own mode’s', () => {
    const sequence = distillExtra(distillSettings(cases[2][1], '/t', '/s', null));
    expect([sequence.temperature, sequence.alpha, sequence.top_k, sequence.max_new_tokens, sequence.student_config]).toEqual([null, null, 0, DISTILL_DEFAULTS.maxNewTokens, null]);
    const logits = distillExtra(distillSettings(cases[1][1], '/t', '/s', null));
    expect([logits.temperature, logits.alpha, logits.top_k, logits.max_new_tokens]).toEqual([4, 0.7, 8, null]);
    const base = workerConfig(trainingOptions({ lora: false }), DATA, []);
    expect(() => parseJobConfig('distill', { ...base, ...sequence, max_new_tokens: null })).toThrow(
      'llmkit built a distill config its worker does not accept: logits mode needs temperature and alpha, sequence mode max_new_tokens',
    );
    expect(() => parseJobConfig('distill', { ...base, ...logits, alpha: 'high' as unknown as number })).toThrow(/^llmkit built a distill config its worker does not accept at alpha: /);
  });
});

describe('the case converter and metric schemas', () => {
  it('converts top-level keys both ways and leaves nested ones alone', () => {
    expect(['loraR', 'maxSeqLen', 'gradientCheckpointing', 'lr'].map(snakeKey)).toEqual(['lora_r', 'max_seq_len', 'gradient_checkpointing', 'lr']);
    expect(['peak_memory_per_rank', 'tokens_per_s', 'lora_r'].map(camelKey)).toEqual(['peakMemoryPerRank', 'tokensPerS', 'loraR']);
    const nested = { evalData: [{ sampleCount: 1 }] };
    expect(toSnakeCase(nested)).toEqual({ eval_data: [{ sampleCount: 1 }] });
    expect(toCamelCase(toSnakeCase({ maxSteps: 3, warmupRatio: 0.1 }))).toEqual({ maxSteps: 3, warmupRatio: 0.1 });
  });

  it('reads a known metric by its schema, ignores other events, and refuses a known metric in another shape', () => {
    const loss = { event: 'metric', name: 'eval_loss', value: 1.25, step: 10 } as const;
    expect(asMetric(loss, 'eval_loss')).toEqual({ value: 1.25, step: 10 });
    expect(asMetric(loss, 'exact_match')).toBeUndefined();
    expect(asMetric({ event: 'log', level: 'info', message: 'x' }, 'eval_loss')).toBeUndefined();
    expect(() => asMetric({ event: 'metric', name: 'eval_loss', value: 'low' }, 'eval_loss')).toThrow(/^the worker's eval_loss metric does not match its schema at value: /);
  });
});
