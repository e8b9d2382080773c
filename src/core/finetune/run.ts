import { existsSync, readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { WorkerEvent } from '../../workers/protocol.js';
import { runWorker } from '../../workers/worker-run.js';
import { writeFileAtomic } from '../../shared/atomic.js';
import { UsageError } from '../../shared/errors.js';
import { TRAINING_CHART, writeTrainingChart } from '../charts/training.js';
import { checkMemoryFit } from '../memory/plan.js';
import { validateDataFile, type DataFile } from './data.js';
import { checkModelFolder, resolveModel, type ModelFolder } from './model.js';
import { checkDistributedFlags, checkGpuCount, torchrunLauncher } from './launch.js';
import { FINETUNE_DEFAULTS, type FinetuneOptions } from './options.js';
import type { ExactMatch, JobConfig } from '../../workers/jobs.js';
import { toCamelCase, toSnakeCase } from '../../shared/case.js';

export interface FinetuneContext {
  onEvent?: (event: WorkerEvent) => void;
  /** Aborting it (Ctrl-C) makes the worker checkpoint and stop; runFinetune then throws WorkerInterrupted. */
  stopSignal?: AbortSignal;
  /** The recipe the options came from, recorded in the saved config. */
  recipe?: string;
}

/** What an exact-match evaluation found (the worker's own shape, from jobs.ts). */
export type { ExactMatch };

export interface FinetuneSummary {
  out: string;
  method: 'lora' | 'full';
  model: string;
  steps: number;
  epochs: number;
  firstLoss: number | null;
  lastLoss: number | null;
  evalLoss: number | null;
  /** Real (unpadded) tokens per second, leaving out the first steps (compilation and warm-up). */
  tokensPerSecond: number | null;
  trainTokens: number;
  trainSeconds: number;
  /** The highest of the processes' peaks; each process's own in peakMemoryPerProcess (rank order). */
  peakMemoryBytes: number | null;
  peakMemoryPerProcess: (number | null)[];
  /** Training processes (torchrun's world size); tokensPerSecond counts all of them. */
  processes: number;
  /** Whose peak: the GPU's allocations, or the worker process's resident memory on CPU. */
  memoryKind: 'cuda' | 'cpu_rss' | null;
  examples: number;
  evalExamples: number;
  truncated: number;
  dropped: number;
  maxSeqLen: number;
  trainableParameters: number;
  totalParameters: number;
  device: string;
  precision: string;
  compiled: boolean;
  exactMatch: { before: ExactMatch | null; after: ExactMatch | null } | null;
  adapter: string | null;
  merged: string | null;
  modelOut: string | null;
  resumedFrom: string | null;
  metrics: string;
  /** metrics.svg: loss, learning rate and tokens/s by step, drawn from metrics.jsonl. */
  chart: string | null;
  /** --report-to tensorboard: the folder of the run's event files (`tensorboard --logdir` it). */
  tensorboard: string | null;
  config: string;
  log: string;
}

/**
 * Validates everything that can be checked without training (model folder, every data line, flag
 * combinations that need the model or data to judge), saves the resolved config in the output folder,
 * then runs the `finetune` worker and returns its summary.
 */
export async function runFinetune(opts: FinetuneOptions, ctx: FinetuneContext = {}): Promise<FinetuneSummary> {
  const model = await checkModelFolder(await resolveModel(opts.model, ctx.onEvent));
  const inputs = await checkTrainingInputs(opts, model);
  await checkTrainingMemory(inputs.options, opts.lora ? 'lora' : 'finetune', ctx);
  return (await runTrainingJob(inputs, { job: 'finetune', options: inputs.options }, ctx)).summary;
}

/** The memory estimate before a one-process run starts (refused when clearly too big, unless --force). */
export async function checkTrainingMemory(o: TrainingInputs['options'], purpose: 'finetune' | 'lora' | 'distill', ctx: FinetuneContext, teacher?: string): Promise<void> {
  if ((o.gpus ?? 1) > 1 || (o.nproc ?? 1) > 1) return;
  const device = o.device === 'cuda' || o.device === 'cpu' ? o.device : 'auto';
  await checkMemoryFit({
    model: o.model,
    teacher,
    purpose,
    batchSize: o.batchSize,
    maxSeqLen: o.maxSeqLen,
    device,
    gradientCheckpointing: o.gradientCheckpointing,
    loraR: o.loraR,
    loraDropout: o.loraDropout,
    force: o.force,
    onEvent: ctx.onEvent,
  });
}

/** The options with every model- and data-dependent default settled, and the validated data files. */
export interface TrainingInputs {
  options: FinetuneOptions & { lr: number; epochs?: number; maxSeqLen: number };
  data: DataFile[];
  evalData: DataFile[];
}

/** What runFinetune checks before training `model` (distill's student goes through the same checks). */
export async function checkTrainingInputs(opts: FinetuneOptions, model: ModelFolder): Promise<TrainingInputs> {
  checkDistributedFlags(opts);
  await checkGpuCount(opts);
  const out = resolve(opts.out);
  checkOutFolder(out, opts.resume);
  const data = await Promise.all(opts.data.map((p) => validateDataFile(resolve(p), '--data')));
  const evalData = await Promise.all((opts.evalData ?? []).map((p) => validateDataFile(resolve(p), '--eval-data')));
  const maxSeqLen = opts.maxSeqLen ?? Math.min(FINETUNE_DEFAULTS.maxSeqLenCap, model.maxPositions ?? FINETUNE_DEFAULTS.maxSeqLenCap);
  checkAgainstData(opts, data, evalData, model.hasChatTemplate);
  if (model.maxPositions !== null && maxSeqLen > model.maxPositions) {
    throw new UsageError(`--max-seq-len ${maxSeqLen} is longer than the model's context (${model.maxPositions} tokens)`, `use --max-seq-len ${model.maxPositions} or less`);
  }
  const options = {
    ...opts,
    model: model.path,
    out,
    lr: opts.lr ?? (opts.lora ? FINETUNE_DEFAULTS.lrLora : FINETUNE_DEFAULTS.lrFull),
    epochs: opts.maxSteps ? undefined : (opts.epochs ?? FINETUNE_DEFAULTS.epochs),
    maxSeqLen,
  };
  return { options, data, evalData };
}

/** What the distill job's config adds to the finetune job's (jobs.ts). */
export type DistillExtra = Omit<JobConfig<'distill'>, keyof JobConfig<'finetune'>>;

/**
 * The worker job: `finetune`, or `distill`, which takes the same config plus its own and trains through
 * finetune's loop. `options` are saved as the options in llmkit-config.json.
 */
export type TrainingJob = { job: 'finetune'; options: Record<string, unknown> } | { job: 'distill'; options: Record<string, unknown>; extra: DistillExtra };

/** Saves the resolved config next to the outputs, runs the training job and returns its summary and events. */
export async function runTrainingJob(inputs: TrainingInputs, job: TrainingJob, ctx: FinetuneContext): Promise<{ summary: FinetuneSummary; events: WorkerEvent[] }> {
  const { options: o, data, evalData } = inputs;
  const configFile = join(o.out, 'llmkit-config.json');
  await writeFileAtomic(configFile, JSON.stringify({ command: job.job, recipe: ctx.recipe ?? null, options: job.options, data, evalData }, null, 2) + '\n');

  const logFile = join(o.out, `${job.job}.log`);
  const run = { logFile, onEvent: ctx.onEvent, stopSignal: ctx.stopSignal, launcher: await torchrunLauncher(o) };
  const config = workerConfig(o, data, evalData);
  const { result, events } = await (job.job === 'finetune' ? runWorker({ job: 'finetune', config, ...run }) : runWorker({ job: 'distill', config: { ...config, ...job.extra }, ...run }))
    // Drawn whether the run finished, stopped or failed: the curves up to a Ctrl-C or a crash are the ones to look at.
    .finally(() => writeTrainingChart(o.out, `${job.job}: ${basename(o.model)}`).catch(() => null));
  // The result in llmkit's names; four fields are named for what they are here (model is the input, modelOut the output).
  const { model: modelOut, tokens_per_s: tokensPerSecond, peak_memory_per_rank: peakMemoryPerProcess, ...same } = result;
  const summary: FinetuneSummary = {
    ...toCamelCase(same),
    out: o.out,
    model: o.model,
    maxSeqLen: o.maxSeqLen,
    tokensPerSecond,
    peakMemoryPerProcess,
    modelOut,
    metrics: join(o.out, 'metrics.jsonl'),
    chart: existsSync(join(o.out, TRAINING_CHART)) ? join(o.out, TRAINING_CHART) : null,
    tensorboard: o.reportTo === 'tensorboard' ? join(o.out, 'tensorboard') : null,
    config: configFile,
    log: logFile,
  };
  return { summary, events };
}

/** A finished or interrupted run is never overwritten by accident; a run that failed before its first checkpoint may be. */
function checkOutFolder(out: string, resume: boolean): void {
  const checkpoints = join(out, 'checkpoints');
  const hasCheckpoint = existsSync(checkpoints) && readdirSync(checkpoints).some((f) => /^checkpoint-\d+$/.test(f));
  if (resume && !hasCheckpoint) throw new UsageError(`--resume: ${out} has no checkpoint to resume from`, 'start the run without --resume');
  const outputs = ['adapter', 'model', 'merged'].filter((f) => existsSync(join(out, f)));
  if (!resume && (hasCheckpoint || outputs.length)) {
    throw new UsageError(`--out ${out} already holds a run`, 'pass --resume to continue it, or choose another --out');
  }
}

function checkAgainstData(opts: FinetuneOptions, data: DataFile[], evalData: DataFile[], hasChatTemplate: boolean): void {
  for (const file of [...data, ...evalData]) {
    if ((file.format === 'messages' || file.format === 'alpaca') && !hasChatTemplate) {
      throw new UsageError(`${file.path} holds ${file.format} examples, but the model has no chat template to render them`, 'use prompt/completion or text data, or add a chat_template to the model');
    }
  }
  const answered = (evalData.length ? evalData : data).filter((f) => f.format !== 'text');
  if (opts.exactMatch > 0 && answered.length === 0) {
    throw new UsageError('--exact-match needs examples with answers (messages, alpaca or prompt/completion data), not plain text');
  }
  const total = data.reduce((n, f) => n + f.examples, 0);
  if (opts.evalSplit !== undefined && total - Math.max(1, Math.round(total * opts.evalSplit)) < 1) {
    throw new UsageError(`--eval-split ${opts.evalSplit} leaves no training example (the data has ${total})`, 'use a smaller split or --eval-data');
  }
}

/** The finetune job's config (jobs.ts): the resolved options in the worker's names, with null for "not set". */
export function workerConfig(o: TrainingInputs['options'], data: DataFile[], evalData: DataFile[]): JobConfig<'finetune'> {
  const files = (list: DataFile[]) => list.map((f) => ({ path: f.path, format: f.format }));
  return toSnakeCase({
    model: o.model,
    data: files(data),
    evalData: evalData.length ? files(evalData) : null,
    evalSplit: o.evalSplit ?? null,
    out: o.out,
    lora: o.lora,
    loraR: o.loraR,
    loraAlpha: o.loraAlpha,
    loraDropout: o.loraDropout,
    loraTargets: o.loraTargets ?? null,
    epochs: o.epochs ?? null,
    maxSteps: o.maxSteps ?? null,
    batchSize: o.batchSize,
    gradAccum: o.gradAccum,
    lr: o.lr,
    schedule: o.schedule,
    warmupRatio: o.warmupRatio,
    weightDecay: o.weightDecay,
    maxGradNorm: o.maxGradNorm,
    seed: o.seed,
    maxSeqLen: o.maxSeqLen,
    packing: o.packing,
    trainOnPrompt: o.trainOnPrompt,
    gradientCheckpointing: o.gradientCheckpointing,
    evalEvery: o.evalEvery ?? null,
    saveEvery: o.saveEvery,
    saveMinutes: o.saveMinutes,
    keepCheckpoints: o.keepCheckpoints,
    resume: o.resume,
    merge: o.merge,
    precision: o.precision,
    compile: o.compile,
    exactMatch: o.exactMatch,
    // --gpus means one CUDA device per process; each rank picks its own from LOCAL_RANK.
    device: o.gpus !== undefined ? 'cuda' : o.device,
    fsdp: o.fsdp,
    reportTo: o.reportTo,
  });
}
