import { type EstimateOptions, estimateMemory, type MemoryEstimate, type ModelShape, type Purpose } from './estimate.js';

/** The same advice the worker's out-of-memory error gives, when no single change is enough. */
export const MEMORY_ADVICE = 'lower --batch-size (raise --grad-accum to keep the global batch), add --gradient-checkpointing, use --lora, or shorten --max-seq-len';

export interface FitVerdict {
  estimate: MemoryEstimate;
  available: number;
  /** What `available` is: "RAM" or the GPU's name. */
  availableOf: string;
  fits: boolean;
  /** Far past what there is even with short rows (weights, optimizer state): commands refuse to start (unless --force). */
  clearlyNot: boolean;
  /** Changes that would bring it under, each with its estimate. */
  advice: { change: string; total: number }[];
}

/** Estimates beyond this multiple of what there is are refused before a job starts: the estimate is good to ~20 %. */
export const CLEARLY_PAST = 1.25;

export function judgeFit(purpose: Purpose, shape: ModelShape, o: EstimateOptions, available: number, availableOf: string): FitVerdict {
  const estimate = estimateMemory(purpose, shape, o);
  const fits = estimate.total <= available;
  const advice: FitVerdict['advice'] = [];
  if (!fits) {
    const tryWith = (change: string, purposeNow: Purpose, changed: Partial<EstimateOptions>) => {
      const total = estimateMemory(purposeNow, shape, { ...o, ...changed }).total;
      if (total <= available) advice.push({ change, total });
    };
    if (purpose !== 'serve' && !o.gradientCheckpointing) tryWith('--gradient-checkpointing', purpose, { gradientCheckpointing: true });
    for (let b = Math.floor(o.batchSize / 2); b >= 1 && advice.length < 2; b = Math.floor(b / 2)) {
      tryWith(purpose === 'serve' ? `--max-batch ${b}` : `--batch-size ${b} --grad-accum ${Math.ceil(o.batchSize / b)}`, purpose, { batchSize: b });
      if (b === 1) break;
    }
    if (purpose === 'finetune') tryWith('--lora', 'lora', {});
    if (purpose !== 'serve' && o.maxSeqLen > 256) tryWith(`--max-seq-len ${Math.floor(o.maxSeqLen / 2)}`, purpose, { maxSeqLen: Math.floor(o.maxSeqLen / 2) });
  }
  return { estimate, available, availableOf, fits, clearlyNot: estimate.lengthIndependent > CLEARLY_PAST * available, advice };
}
