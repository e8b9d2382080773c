import { join, resolve } from 'node:path';
import { runWorker } from '../workers/worker-run.js';
import type { WorkerEvent } from '../workers/protocol.js';
import { llmkitHome } from './paths.js';

export interface ExportOptions {
  model: string;
  out: string;
  /** Max abs logit difference vs PyTorch that the check accepts (fp32). */
  tolerance?: number;
  onEvent?: (e: WorkerEvent) => void;
  stopSignal?: AbortSignal;
}

export interface ExportReport {
  path: string;
  parity: Record<string, number>;
  onnxBytes: number;
}

/** Exports a Hugging Face causal LM to llmkit's ONNX decoder format and checks it against PyTorch. */
export async function exportModel(opts: ExportOptions): Promise<ExportReport> {
  const out = resolve(opts.out);
  const { result } = await runWorker({
    job: 'export_onnx',
    config: { model: resolve(opts.model), out, tolerance: opts.tolerance ?? 1e-3 },
    logFile: join(llmkitHome(), 'logs', 'export.log'),
    onEvent: opts.onEvent,
    stopSignal: opts.stopSignal,
  });
  return { path: out, parity: result.parity as Record<string, number>, onnxBytes: Number(result.onnx_bytes) };
}
