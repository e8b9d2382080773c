import { totalmem } from 'node:os';
import { readNvidiaSmi } from '../env.js';
import type { Purpose } from './estimate.js';
import { UsageError } from '../../shared/errors.js';
import { formatBytes } from '../../shared/format.js';
import type { WorkerEvent } from '../worker-events.js';
import { CLEARLY_PAST, type FitVerdict, judgeFit, MEMORY_ADVICE } from './fit.js';
import { readModelShape } from './shape.js';

export interface FitRequest {
  model: string;
  purpose: Purpose;
  /** distill: the teacher's folder (default: the model itself, a student built from it is no larger). */
  teacher?: string;
  batchSize?: number;
  maxSeqLen?: number;
  device: 'auto' | 'cpu' | 'cuda';
  gradientCheckpointing?: boolean;
  loraR?: number;
  loraDropout?: number;
  /** serve: LoRA adapters over the model (one more rewrite of the graph while it opens). */
  loraAdapters?: boolean;
  /** serve: the adapters' weights and their per-row tables, bytes. */
  adapterBytes?: number;
}

export interface FitPlan extends FitVerdict {
  batchSize: number;
  maxSeqLen: number;
}

/** Training's default micro-batch and context cap (finetune's own), and serve's --max-batch. */
const DEFAULTS = { trainBatch: 8, trainSeqCap: 2048, serveBatch: 16 };

/** Reads the model's shape and this machine's memory (the largest GPU's with cuda, else RAM) and judges the fit. */
export async function planFit(r: FitRequest): Promise<FitPlan> {
  const shape = await readModelShape(r.model);
  const teacher = r.purpose === 'distill' ? (r.teacher ? await readModelShape(r.teacher) : shape) : undefined;
  const gpus = r.device === 'cpu' ? null : await readNvidiaSmi();
  const gpu = gpus?.length ? gpus.reduce((a, b) => (b.memoryBytes > a.memoryBytes ? b : a)) : null;
  const device = r.device === 'cuda' || (r.device === 'auto' && gpu) ? 'cuda' : 'cpu';
  const serve = r.purpose === 'serve';
  const batchSize = r.batchSize ?? (serve ? DEFAULTS.serveBatch : DEFAULTS.trainBatch);
  const maxSeqLen = r.maxSeqLen ?? (serve ? shape.context : Math.min(shape.context, DEFAULTS.trainSeqCap));
  const verdict = judgeFit(
    r.purpose,
    shape,
    {
      batchSize,
      maxSeqLen,
      device,
      gradientCheckpointing: r.gradientCheckpointing,
      loraR: r.loraR,
      loraDropout: r.loraDropout,
      teacher,
      weightBytes: shape.weightBytes ?? undefined,
      kvBytes: shape.kvBytes,
      openCopies: shape.openCopies(r.loraAdapters ?? false),
      adapterBytes: r.adapterBytes,
    },
    device === 'cuda' ? (gpu?.memoryBytes ?? 0) : totalmem(),
    device === 'cuda' ? (gpu?.name ?? 'GPU (none found)') : 'RAM',
  );
  return { ...verdict, batchSize, maxSeqLen };
}

/**
 * Before a long job: says the estimate (as a notice the progress view prints) and refuses in one line when it is
 * clearly past what there is, unless --force. Several processes (torchrun) split the work: not judged here.
 */
export async function checkMemoryFit(r: FitRequest & { force?: boolean; onEvent?: (e: WorkerEvent) => void }): Promise<FitPlan> {
  const plan = await planFit(r);
  const { total } = plan.estimate;
  const share = `${formatBytes(total)} of ${formatBytes(plan.available)} ${plan.availableOf}`;
  const advice = plan.advice.length ? `try ${plan.advice.map((a) => `${a.change} (${formatBytes(a.total)})`).join(' or ')}` : MEMORY_ADVICE;
  if (plan.clearlyNot && !r.force) {
    throw new UsageError(`estimated peak memory ${share} (batch ${plan.batchSize} × ${plan.maxSeqLen} tokens) cannot fit`, `${advice}; --force starts anyway`);
  }
  const verdict = plan.fits ? 'fits' : `may not fit: ${advice}`;
  r.onEvent?.({ event: 'log', level: plan.fits ? 'notice' : 'warning', message: `memory estimate ${share} (batch ${plan.batchSize} × ${plan.maxSeqLen} tokens): ${verdict}` });
  return plan;
}

/** serve's estimate: every model's weights, KV cache at --max-batch × its context, and one runtime; refused like training's. */
export async function checkServingMemory(
  paths: string[],
  o: { maxBatch: number; device: 'auto' | 'cpu' | 'cuda'; force?: boolean; loraAdapters?: boolean; adapterBytes?: number },
): Promise<{ total: number; available: number; availableOf: string }> {
  const plans = await Promise.all(paths.map((model) => planFit({ model, purpose: 'serve', batchSize: o.maxBatch, device: o.device, loraAdapters: o.loraAdapters, adapterBytes: o.adapterBytes })));
  // One process: the runtime is counted once, not per model.
  const oneRuntime = (key: 'total' | 'lengthIndependent') => plans.reduce((n, p) => n + p.estimate[key] - p.estimate.parts.runtime, plans[0].estimate.parts.runtime);
  const total = oneRuntime('total');
  const { available, availableOf } = plans[0];
  // The KV cache grows with the chats really served; refused only when the weights alone are far past what there is.
  if (oneRuntime('lengthIndependent') > CLEARLY_PAST * available && !o.force) {
    throw new UsageError(
      `estimated peak memory ${formatBytes(total)} of ${formatBytes(available)} ${availableOf} (--max-batch ${o.maxBatch} at each model's full context) cannot fit`,
      'lower --max-batch or --max-tokens-total, serve fewer models, or a quantized export; --force starts anyway',
    );
  }
  return { total, available, availableOf };
}
