import { IMPORTABLE_MODELS } from '../options/flag-values.js';
import { z } from 'zod';
import { UsageError } from '../../shared/errors.js';
import { FINETUNE, FINETUNE_DEFAULTS } from '../finetune/options.js';
import { defineCommand, resolveOptions } from '../options/define.js';
import { booleanField, enumField, intField, numberField, textField } from '../options/fields.js';
import { flagName, type FlagValues, type Recipe } from '../options/recipe.js';

/** Defaults of the distillation settings; training ones are finetune's (FINETUNE_DEFAULTS). */
export const DISTILL_DEFAULTS = {
  mode: 'logits',
  temperature: 2,
  alpha: 0.5,
  maxNewTokens: 256,
  /** Greedy answers scored for the report when the data has answers (the first N eval, else training, examples). */
  exactMatch: 32,
} as const;

/** `--for-draft` builds a student of one in this many of the teacher's layers. */
export const DRAFT_LAYER_SHARE = 8;

/** The teacher's config.json dimensions a built student may shrink. */
export const STUDENT_CONFIG_KEYS = ['num_hidden_layers', 'hidden_size', 'intermediate_size', 'num_attention_heads', 'num_key_value_heads', 'head_dim'] as const;

/** `num_hidden_layers=12,intermediate_size=2048` from the command line, or a mapping in a recipe. */
function studentConfigField() {
  const message = `must be key=value pairs (comma-separated) of ${STUDENT_CONFIG_KEYS.join(', ')} with integer values ≥ 1`;
  const pairs = (v: string) =>
    Object.fromEntries(
      v
        .split(',')
        .filter((p) => p.trim())
        .map((p) => [p.split('=')[0].trim(), p.includes('=') ? Number(p.split('=')[1]) : NaN]),
    );
  return z.preprocess(
    (v) => (typeof v === 'string' ? pairs(v) : v),
    z
      .record(z.string(), z.number({ error: message }).int({ error: message }).min(1, { error: message }), { error: message })
      .refine((o) => Object.keys(o).every((k) => (STUDENT_CONFIG_KEYS as readonly string[]).includes(k)), { error: message }),
  );
}

/** `0,3,5` or a YAML list: teacher layer indices. */
function layersField() {
  const message = 'must be a comma-separated list of teacher layer indices (integers ≥ 0)';
  return z.preprocess(
    (v) => (typeof v === 'string' ? v.split(',').map((s) => (s.trim() ? Number(s) : NaN)) : v),
    z.array(z.number({ error: message }).int({ error: message }).min(0, { error: message }), { error: message }).min(1, { error: message }),
  );
}

// The student is trained fully, in one process: LoRA, merging, --compile and torchrun's flags do not apply (the job
// writes the student and the teacher's files before training, which several processes would race on).
const { model, lora, loraR, loraAlpha, loraDropout, loraTargets, merge, compile, exactMatch, gpus, nproc, nnodes, nodeRank, masterAddr, masterPort, fsdp, ...TRAINING } = FINETUNE.options;

/** Settings that only one mode uses: naming one in the other mode is a mistake worth a message. */
const MODE_ONLY: Record<string, 'logits' | 'sequence'> = { temperature: 'logits', alpha: 'logits', topK: 'logits', maxNewTokens: 'sequence' };

/**
 * Every option of `llmkit distill`: the training options of `llmkit finetune` (data, schedule, checkpoints,
 * eval, device), which mean the same here and go to the same training loop, plus the distillation's own.
 */
export const DISTILL = defineCommand({
  name: 'distill',
  description: 'train a smaller student to do what a teacher does (logit or sequence-level distillation), then measure both side by side',
  recipes: true,
  options: {
    teacher: {
      field: textField(),
      value: '<model>',
      required: true,
      path: true,
      help: `the model to learn from: a Hugging Face folder (e.g. runs/x/merged, a fine-tuned or merged model), builtin:tiny, or ${IMPORTABLE_MODELS}`,
    },
    student: { field: textField(), value: '<model>', path: true, help: "a smaller existing model with the teacher's tokenizer, to train" },
    studentConfig: {
      field: studentConfigField(),
      value: '<key=value,...>',
      help: `build the student from the teacher's config with these changed: ${STUDENT_CONFIG_KEYS.join(', ')}`,
    },
    studentLayers: {
      field: layersField(),
      value: '<i,j,...>',
      help: 'the teacher layer each layer of a built student starts from',
      defaultHelp: 'evenly spaced, first and last kept',
    },
    forDraft: {
      field: booleanField(),
      default: false,
      help: "make a draft model for `llmkit serve --draft`: unless --student or --student-config say otherwise, a student of an eighth of the teacher's layers (at least 1), and the report measures speculative decoding with it against the teacher",
    },
    draftVocab: {
      field: intField(1),
      value: '<n>',
      help: "with --for-draft: the draft's output layer covers only the N tokens most frequent in the answers it learns (draft-vocab.json beside the model; `serve --draft` maps them back), which cuts a draft token's cost; verification stays the target's, so output is unchanged",
      defaultHelp: 'every token',
    },
    mode: {
      field: enumField(['logits', 'sequence']),
      value: '<name>',
      default: DISTILL_DEFAULTS.mode,
      help: "logits (match the teacher's next-token distributions) or sequence (fine-tune on its greedy answers)",
    },
    temperature: {
      field: numberField({ above: 0, max: 100 }),
      value: '<T>',
      help: 'logits mode: soften both distributions by T before comparing them',
      defaultHelp: String(DISTILL_DEFAULTS.temperature),
    },
    alpha: {
      field: numberField({ min: 0, max: 1 }),
      value: '<a>',
      help: 'logits mode: weight of the distillation term; 1 - alpha goes to cross-entropy on the labels',
      defaultHelp: String(DISTILL_DEFAULTS.alpha),
    },
    topK: { field: intField(1), value: '<k>', help: "logits mode: compare on the teacher's k most likely tokens only (less memory)" },
    maxNewTokens: { field: intField(1), value: '<n>', help: 'sequence mode: the longest teacher answer', defaultHelp: String(DISTILL_DEFAULTS.maxNewTokens) },
    ...TRAINING,
    out: { ...TRAINING.out, help: 'output folder: checkpoints, metrics.jsonl, llmkit-config.json, model/, onnx/, distill-report.json' },
    lr: { ...TRAINING.lr, defaultHelp: FINETUNE_DEFAULTS.lrFull.toExponential() },
    exactMatch: {
      field: intField(0),
      value: '<n>',
      help: 'greedy-answer the first N eval (else training) examples with teacher and student',
      defaultHelp: `${DISTILL_DEFAULTS.exactMatch} when the data has answers; 0 turns it off`,
    },
    report: {
      field: booleanField(),
      default: true,
      help: 'export both models to ONNX and measure them side by side at the end',
      negate: 'skip the ONNX export and the side-by-side measurement at the end',
    },
  },
  rules: {
    exclusive: [...(FINETUNE.rules?.exclusive ?? []), ['student', 'studentConfig'], ['student', 'studentLayers']],
    requires: { evalEvery: ['evalData', 'evalSplit'] },
    hints: {
      ...FINETUNE.rules?.hints,
      teacher: 'pass the model to learn from with --teacher (a Hugging Face folder, e.g. runs/x/merged)',
    },
  },
  finish: (options, typed) => {
    if (!options.student && !options.studentConfig && !options.studentLayers && !options.forDraft) {
      throw new UsageError(
        '--student or --student-config is required',
        "pass a smaller model with the teacher's tokenizer as --student, or build one from the teacher, e.g. --student-config num_hidden_layers=12",
      );
    }
    if (options.draftVocab !== undefined && !options.forDraft) throw new UsageError('--draft-vocab applies to --for-draft only', 'add --for-draft, or leave out --draft-vocab');
    for (const [key, mode] of Object.entries(MODE_ONLY)) {
      if (options[key as keyof typeof options] === undefined || options.mode === mode) continue;
      // Typing --mode over a recipe makes the recipe's settings for the other mode moot rather than an error.
      if (typed('mode') && !typed(key)) delete (options as Record<string, unknown>)[key];
      else throw new UsageError(`${flagName(key)} applies to --mode ${mode} only`);
    }
    return options;
  },
});

export type DistillOptions = z.output<typeof DISTILL.schema>;

export function resolveDistillOptions(flags: FlagValues, recipe?: Recipe): DistillOptions {
  return resolveOptions(DISTILL, flags, recipe);
}

/** What a built student is: its config changes over the teacher's and the teacher layer each of its layers starts from. */
export interface StudentPlan {
  config: Record<string, number>;
  layers: number[];
}

/**
 * Checks --student-config and --student-layers against the teacher's config.json before anything runs: only
 * dimensions the teacher has, none larger than the teacher's, heads that divide, layers the teacher has.
 */
export function planStudent(opts: Pick<DistillOptions, 'studentConfig' | 'studentLayers'> & { forDraft?: boolean }, teacher: Record<string, unknown>): StudentPlan {
  const config = { ...opts.studentConfig };
  const teacherLayers = Number(teacher.num_hidden_layers);
  // A draft runs k passes for each of the target's: it has to cost a small part of one.
  if (opts.forDraft && !opts.studentConfig && !opts.studentLayers) config.num_hidden_layers = Math.max(1, Math.ceil(teacherLayers / DRAFT_LAYER_SHARE));
  const count = config.num_hidden_layers ?? opts.studentLayers?.length ?? teacherLayers;
  if (opts.studentLayers && opts.studentLayers.length !== count) {
    throw new UsageError(`--student-layers lists ${opts.studentLayers.length} layers but --student-config has num_hidden_layers=${count}`, 'give one teacher layer for each student layer');
  }
  for (const [key, value] of Object.entries(config)) {
    if (typeof teacher[key] !== 'number')
      throw new UsageError(`--student-config ${key}: the teacher's config.json has no ${key}`, `change ${STUDENT_CONFIG_KEYS.filter((k) => typeof teacher[k] === 'number').join(', ')}`);
    if (value > (teacher[key] as number)) throw new UsageError(`--student-config ${key}=${value} is larger than the teacher's ${teacher[key]}`, 'a student is at most the size of its teacher');
  }
  const dims = { ...teacher, ...config } as Record<string, number>;
  if (dims.num_attention_heads % (dims.num_key_value_heads ?? dims.num_attention_heads) !== 0) {
    throw new UsageError(`--student-config: num_attention_heads ${dims.num_attention_heads} is not a multiple of num_key_value_heads ${dims.num_key_value_heads}`);
  }
  if (dims.head_dim === undefined && dims.hidden_size % dims.num_attention_heads !== 0) {
    throw new UsageError(`--student-config: hidden_size ${dims.hidden_size} is not a multiple of num_attention_heads ${dims.num_attention_heads}`);
  }
  const outside = opts.studentLayers?.find((i) => i >= teacherLayers);
  if (outside !== undefined) throw new UsageError(`--student-layers ${outside}: the teacher has layers 0 to ${teacherLayers - 1}`);
  // Evenly spaced with the first and the last kept (Distil-Whisper's "maximally spaced" layers).
  const layers = opts.studentLayers ?? Array.from({ length: count }, (_, i) => (count === 1 ? 0 : Math.round((i * (teacherLayers - 1)) / (count - 1))));
  return { config, layers };
}
