import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../shared/errors.js';
import { runWorker } from '../workers/worker-run.js';
import type { WorkerEvent } from '../workers/protocol.js';
import { llmkitHome } from '../shared/paths.js';
import { tritonNameFor, writeTritonRepository, type TritonRepository, type TritonTarget } from './triton/repository.js';
import { resolveModelSource } from './import/model-source.js';

export interface ExportOptions {
  model: string;
  out: string;
  /** fp16 stores weights and computes in float16 (for GPUs); inputs, outputs and the KV cache stay float32. */
  dtype?: 'fp32' | 'fp16';
  /** Max abs logit difference vs PyTorch fp32 that the check accepts (default 1e-3 for fp32, 5e-2 for fp16). */
  tolerance?: number;
  /** Rewrite the decoder into ONNX Runtime's fused operators (RMSNorm, rotary, fused projections; docs/export.md). */
  fused?: boolean;
  /** Also write a Triton model repository for the export. */
  triton?: TritonTarget;
  /** Also fuse attention into GroupQueryAttention (implies `fused`; graph "fused-gqa", docs/export.md). */
  gqa?: boolean;
  onEvent?: (e: WorkerEvent) => void;
  stopSignal?: AbortSignal;
}

export interface ExportReport {
  path: string;
  parity: Record<string, number>;
  onnxBytes: number;
  triton?: TritonRepository;
}

/** Exports a Hugging Face causal LM to llmkit's ONNX decoder format and checks it against PyTorch. */
export async function exportModel(options: ExportOptions): Promise<ExportReport> {
  const opts = { ...options, model: await resolveModelSource(options.model, { onEvent: options.onEvent }) };
  const out = resolve(opts.out);
  // Checked here, not only by the worker, so a wrong path is refused before Python starts and with the usage exit code.
  const hint = 'pass a Hugging Face model folder (config.json, weights, tokenizer)';
  if (!existsSync(opts.model)) throw new UsageError(`model folder ${opts.model} does not exist`, hint);
  if (!existsSync(join(opts.model, 'config.json'))) throw new UsageError(`model folder ${opts.model} has no config.json`, hint);
  const { result } = await runWorker({
    job: 'export_onnx',
    config: { model: resolve(opts.model), out, dtype: opts.dtype ?? 'fp32', tolerance: opts.tolerance, fused: opts.fused ?? false, gqa: opts.gqa ?? false },
    logFile: join(llmkitHome(), 'logs', 'export.log'),
    onEvent: opts.onEvent,
    stopSignal: opts.stopSignal,
  });
  const report: ExportReport = { path: out, parity: result.parity as Record<string, number>, onnxBytes: Number(result.onnx_bytes) };
  if (opts.triton) {
    const { triton } = opts;
    report.triton = await writeTritonRepository({ ...triton, model: out, name: triton.name ?? tritonNameFor(out), onEvent: opts.onEvent, stopSignal: opts.stopSignal });
  }
  return report;
}
