import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { loadExportedModel } from '../../engine/model-manifest.js';
import type { WorkerEvent } from '../../workers/protocol.js';
import { removeIfExists } from '../../shared/atomic.js';
import { LlmkitError } from '../../shared/errors.js';
import { exportModel } from '../export.js';
import { measureQuantization, type MeasuredFigures, type QuantizeReport } from '../quantize/report.js';
import { measureSpeculation, type SpeculationBenchResult } from '../bench/speculation.js';

/** One model's row of the report; relative figures are against the teacher's row. distill always times decode. */
export interface DistilledModelFigures extends Omit<MeasuredFigures, 'decodeTokensPerSecond' | 'speedup'> {
  decodeTokensPerSecond: number;
  speedup: number;
  role: 'teacher' | 'student';
  /** The Hugging Face folder. */
  path: string;
  /** The ONNX export measured here: the student's is kept (`llmkit serve` runs it), the teacher's is removed. */
  onnx: string | null;
  parameters: number;
  /** Greedy answers that match the data's exactly, or null when the data has no answers. */
  exactMatch: number | null;
}

/** distill-report.json: teacher and student measured side by side in one run, and how. */
export interface DistillReport {
  version: 1;
  createdAt: string;
  machine: QuantizeReport['machine'];
  eval: QuantizeReport['eval'];
  speed: NonNullable<QuantizeReport['speed']>;
  models: DistilledModelFigures[];
  /** `--for-draft`: the student drafting for the teacher (speculative decoding) against the teacher alone, greedy, batch 1. */
  draft?: SpeculationBenchResult;
}

export interface MeasureDistillationInput {
  teacher: string;
  student: string;
  /** The run's folder: the student's export goes to <out>/onnx, and <out>/eval.txt (written by the worker) is scored. */
  out: string;
  /** Teacher's, then student's (counted by the worker). */
  parameters: [number, number];
  exactMatch: [number | null, number | null];
  /** Also measure the student as the teacher's draft (`--for-draft`). */
  draft?: boolean;
  onEvent?: (e: WorkerEvent) => void;
  stopSignal?: AbortSignal;
}

/**
 * Exports teacher and student to ONNX and measures them as `llmkit quantize` measures a quantized model
 * against fp32 (the teacher is the reference): size, batch-1 decode speed on the CPU, and perplexity, top-1
 * agreement and KL on the eval data as the models read it (prompts and answers, chat template applied).
 */
export async function measureDistillation(input: MeasureDistillationInput): Promise<DistillReport> {
  const { onEvent, stopSignal } = input;
  const teacherOnnx = join(input.out, 'report-teacher-onnx');
  const studentOnnx = join(input.out, 'onnx');
  try {
    // The two exports' progress reads alike: say whose it is.
    const tagged = (who: string) => (e: WorkerEvent) => onEvent?.(e.event === 'progress' ? { ...e, message: `${who} export: ${e.message ?? ''}` } : e);
    await exportModel({ model: input.teacher, out: teacherOnnx, onEvent: tagged('teacher'), stopSignal });
    await exportModel({ model: input.student, out: studentOnnx, onEvent: tagged('student'), stopSignal });
    const measured = await measureQuantization(loadExportedModel(teacherOnnx), loadExportedModel(studentOnnx), input.teacher, {
      evalData: join(input.out, 'eval.txt'),
      evalTokens: 8192,
      threads: availableParallelism(),
      progress: (message, step, total) => {
        if (stopSignal?.aborted) throw new LlmkitError('stopped before the report was measured', `the student is saved in ${input.student}`, 130);
        onEvent?.({ event: 'progress', step, total, message });
      },
    });
    const models = measured.models.map(
      (m, i): DistilledModelFigures => ({
        role: i === 0 ? 'teacher' : 'student',
        path: i === 0 ? input.teacher : input.student,
        onnx: i === 0 ? null : studentOnnx,
        parameters: input.parameters[i],
        bytes: m.bytes,
        sizeRatio: m.sizeRatio,
        // measureQuantization times decode unless told not to (speed: false), and distill does not.
        decodeTokensPerSecond: m.decodeTokensPerSecond!,
        speedup: m.speedup!,
        perplexity: m.perplexity,
        perplexityChange: m.perplexityChange,
        top1Agreement: m.top1Agreement,
        meanKl: m.meanKl,
        exactMatch: input.exactMatch[i],
      }),
    );
    const report: DistillReport = { version: 1, createdAt: measured.createdAt, machine: measured.machine, eval: measured.eval, speed: measured.speed!, models };
    if (input.draft) {
      onEvent?.({ event: 'progress', step: 0, total: 1, message: 'speculative decoding: student drafting for the teacher' });
      report.draft = await measureSpeculation({
        model: teacherOnnx,
        draft: studentOnnx,
        prompts: await evalWindows(teacherOnnx, join(input.out, 'eval.txt')),
        rounds: 2,
        threads: availableParallelism(),
        maxTokens: DRAFT_CHECK_TOKENS,
      });
    }
    return report;
  } finally {
    await removeIfExists(teacherOnnx);
  }
}

/** Tokens each prompt generates when the report measures the student as a draft. */
const DRAFT_CHECK_TOKENS = 48;

/** Up to 8 prompts of 48 tokens taken evenly from the eval text as the models read it: the draft is judged in its domain. */
async function evalWindows(model: string, evalText: string): Promise<number[][]> {
  const { ModelTokenizer } = await import('../../engine/tokenizer.js');
  const ids = (await ModelTokenizer.load(model)).encode(await readFile(evalText, 'utf8'));
  const width = 48;
  const count = Math.max(1, Math.min(8, Math.floor(ids.length / width)));
  const step = Math.floor(ids.length / count);
  return Array.from({ length: count }, (_, i) => ids.slice(i * step, i * step + width)).filter((w) => w.length > 0);
}
