import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic.js';
import { LlmkitError, UsageError } from '../../shared/errors.js';
import { checkModelFolder, resolveModel } from '../finetune/model.js';
import { FINETUNE } from '../finetune/options.js';
import { checkTrainingInputs, checkTrainingMemory, runTrainingJob, type DistillExtra, type ExactMatch, type FinetuneContext, type FinetuneSummary } from '../finetune/run.js';
import { toSnakeCase } from '../../shared/case.js';
import { findMetric } from '../../workers/jobs.js';
import { flagName } from '../options/recipe.js';
import { DISTILL_DEFAULTS, planStudent, type DistillOptions, type StudentPlan } from './options.js';
import { measureDistillation, type DistillReport } from './report.js';

export const REPORT_FILE = 'distill-report.json';
/** Where a student built from the teacher's config is written before training. */
export const STUDENT_INIT = 'student-init';

export interface DistillSummary {
  mode: 'logits' | 'sequence';
  teacher: { path: string; parameters: number; exactMatch: ExactMatch | null };
  /** A built student's start: the teacher layer each of its layers came from, and how many tensors were copied. */
  studentInit: { path: string; layers: number[]; copiedTensors: number; freshTensors: number } | null;
  /** The student's training as `llmkit finetune` reports it (in logits mode its train loss is the distillation loss). */
  training: FinetuneSummary;
  report: DistillReport | null;
  reportFile: string | null;
}

/**
 * Checks teacher, student, data and flags before anything starts (the data and training flags the way
 * `llmkit finetune` checks them), runs the `distill` worker, which trains the student through finetune's
 * loop, then exports both models and measures them side by side into distill-report.json.
 */
export async function runDistill(opts: DistillOptions, ctx: FinetuneContext = {}): Promise<DistillSummary> {
  const teacher = await checkModelFolder(await resolveModel(opts.teacher, ctx.onEvent), 'teacher model folder');
  const student = opts.student ? await checkModelFolder(await resolveModel(opts.student, ctx.onEvent), 'student model folder') : null;
  if (student?.path === teacher.path) throw new UsageError('--student is the teacher', 'pass a smaller model, or build one with --student-config');
  const plan = student ? null : planStudent(opts, JSON.parse(await readFile(join(teacher.path, 'config.json'), 'utf8')) as Record<string, unknown>);
  // A built student has the teacher's tokenizer, chat template and context, so the data is checked against the teacher's.
  const model = student ?? { ...teacher, path: join(resolve(opts.out), STUDENT_INIT) };
  const checked = await checkTrainingInputs(FINETUNE.schema.parse({ ...opts, model: model.path, exactMatch: opts.exactMatch ?? 0 }), model);
  const answered = [...checked.data, ...checked.evalData].some((f) => f.format !== 'text');
  const inputs = { ...checked, options: { ...checked.options, exactMatch: opts.exactMatch ?? (answered ? DISTILL_DEFAULTS.exactMatch : 0) } };
  const text = checked.data.find((f) => f.format === 'text');
  if (opts.mode === 'sequence' && text) {
    throw new UsageError(`--mode sequence needs prompts for the teacher to answer, and ${text.path} holds plain text`, 'use messages, alpaca or prompt/completion data, or --mode logits');
  }

  const settings = distillSettings(opts, teacher.path, student?.path ?? null, plan);
  if (opts.resume) await checkSameSettings(inputs.options.out, settings);
  // A student built from the teacher is not on disk yet: the teacher's shape bounds it.
  await checkTrainingMemory({ ...inputs.options, model: student?.path ?? teacher.path }, 'distill', ctx, teacher.path);
  const extra = distillExtra(settings);
  const { summary: training, events } = await runTrainingJob(inputs, { job: 'distill', options: { ...inputs.options, ...settings, report: opts.report }, extra }, ctx);

  const init = findMetric(events, 'student_init');
  const teacherExact = findMetric(events, 'exact_match', 'teacher') ?? null;
  const summary: DistillSummary = {
    mode: opts.mode,
    teacher: { path: teacher.path, parameters: Number(findMetric(events, 'teacher')?.parameters), exactMatch: teacherExact },
    studentInit: init ? { path: model.path, layers: init.layers, copiedTensors: init.copied_tensors, freshTensors: init.fresh_tensors } : null,
    training,
    report: null,
    reportFile: null,
  };
  if (!opts.report) return summary;
  try {
    summary.report = await measureDistillation({
      teacher: teacher.path,
      student: training.modelOut!,
      out: training.out,
      parameters: [summary.teacher.parameters, training.totalParameters],
      exactMatch: [teacherExact?.value ?? null, training.exactMatch?.after?.value ?? null],
      draft: opts.forDraft,
      onEvent: ctx.onEvent,
      stopSignal: ctx.stopSignal,
    });
  } catch (e) {
    if (!(e instanceof LlmkitError)) throw e;
    throw new LlmkitError(`the student is trained (${training.modelOut}) but the report failed: ${e.message}`, e.hint, e.exitCode, e.details);
  }
  summary.reportFile = join(training.out, REPORT_FILE);
  await writeFileAtomic(summary.reportFile, JSON.stringify(summary.report, null, 2) + '\n');
  return summary;
}

/** Distillation's own settings, saved with the run's options (a resume must have the same); the other mode's are null. */
export function distillSettings(opts: DistillOptions, teacher: string, student: string | null, plan: StudentPlan | null) {
  const sequence = opts.mode === 'sequence';
  return {
    teacher,
    student,
    studentConfig: plan?.config ?? null,
    studentLayers: plan?.layers ?? null,
    mode: opts.mode,
    temperature: sequence ? null : (opts.temperature ?? DISTILL_DEFAULTS.temperature),
    alpha: sequence ? null : (opts.alpha ?? DISTILL_DEFAULTS.alpha),
    topK: sequence ? null : (opts.topK ?? null),
    maxNewTokens: sequence ? (opts.maxNewTokens ?? DISTILL_DEFAULTS.maxNewTokens) : null,
    draftVocab: opts.draftVocab ?? null,
  };
}

/** What the distill job's config adds to finetune's (the student folder is finetune's `model`). */
export function distillExtra(settings: ReturnType<typeof distillSettings>): DistillExtra {
  const { student: _, topK, draftVocab, ...sent } = settings;
  return toSnakeCase({ ...sent, topK: topK ?? 0, draftVocab: draftVocab ?? 0 });
}

/** The finetune job refuses a checkpoint made with other training settings; these are distillation's. */
async function checkSameSettings(out: string, settings: Record<string, unknown>): Promise<void> {
  const file = join(out, 'llmkit-config.json');
  if (!existsSync(file)) return;
  const saved = (JSON.parse(await readFile(file, 'utf8')) as { options?: Record<string, unknown> }).options ?? {};
  for (const [key, value] of Object.entries(settings)) {
    const before = JSON.stringify(saved[key] ?? null);
    if (before !== JSON.stringify(value)) {
      throw new UsageError(`--resume: ${out} was made with ${flagName(key)} ${before}, this run has ${JSON.stringify(value)}`, `resume with the same ${flagName(key)}, or start a new --out`);
    }
  }
}
