import { join } from 'node:path';
import { loadExportedModel, type ExportedModel } from '../../engine/model-manifest.js';
import { runWorker } from '../../workers/worker-run.js';
import { removeIfExists, writeFileAtomic } from '../../shared/atomic.js';
import { LlmkitError } from '../../shared/errors.js';
import { exportModel } from '../export.js';
import { llmkitHome } from '../../shared/paths.js';
import { tritonNameFor, writeTritonRepository } from '../triton/repository.js';
import { resolveQuantizeOptions, type QuantizeOptions, type ResolvedQuantizeOptions } from './options.js';
import { measureQuantization, type QuantizeReport } from './report.js';
import { resolveModelSource } from '../import/model-source.js';
import { quantizeChart } from '../charts/reports.js';
import { scoreGgufPeers } from './gguf-compare.js';

export const REPORT_FILE = 'quantize-report.json';
/** The same figures as bars, readable without a terminal. */
export const REPORT_CHART = 'quantize-report.svg';

/**
 * Quantizes a model and measures it against fp32: exports a Hugging Face folder first (into a
 * temporary folder next to --out, removed afterwards), runs the `quantize` worker, then measures
 * both models here and writes quantize-report.json into the quantized folder.
 */
export async function runQuantize(opts: QuantizeOptions): Promise<QuantizeReport> {
  const o = resolveQuantizeOptions({ ...opts, model: await resolveModelSource(opts.model, { onEvent: opts.onEvent }) });
  const stopped = () => {
    if (opts.stopSignal?.aborted) throw new LlmkitError(`stopped before ${REPORT_FILE} was written`, 'run the command again for the report', 130);
  };
  const tempExport = `${o.out}.fp32-export`;
  try {
    const fp32 = o.exported ?? (await exportTo(tempExport, o, opts));
    stopped();
    await runWorker({
      job: 'quantize',
      config: {
        model: fp32.dir,
        out: o.out,
        bits: o.bits,
        block_size: o.blockSize,
        symmetric: o.symmetric,
        exclude: o.exclude,
        accuracy_level: o.accuracyLevel,
        head_bits: o.outputBits,
        scales: o.scales,
        ...(o.calibrationData ? { calibration_data: o.calibrationData, calibration_tokens: o.calibrationTokens } : {}),
      },
      logFile: join(llmkitHome(), 'logs', 'quantize.log'),
      onEvent: opts.onEvent,
      stopSignal: opts.stopSignal,
    });
    const report = await measureQuantization(fp32, loadExportedModel(o.out), o.model, {
      evalData: o.evalData,
      evalTokens: o.evalTokens,
      threads: o.threads,
      speed: o.speed,
      progress: (message, step, total) => {
        stopped();
        opts.onEvent?.({ event: 'progress', step, total, message, phase: 'measure' });
      },
      scorePeers: o.compareGguf ? (scoring) => scoreGgufPeers(o.compareGguf!, scoring, `${o.out}.compare-gguf`, opts) : undefined,
    });
    await writeFileAtomic(join(o.out, REPORT_FILE), JSON.stringify(report, null, 2) + '\n');
    await writeFileAtomic(join(o.out, REPORT_CHART), quantizeChart(report));
    const { triton } = opts;
    if (!triton) return report;
    return { ...report, triton: await writeTritonRepository({ ...triton, model: o.out, name: triton.name ?? tritonNameFor(o.out), onEvent: opts.onEvent, stopSignal: opts.stopSignal }) };
  } finally {
    if (!o.exported) await removeIfExists(tempExport);
  }
}

async function exportTo(dir: string, o: ResolvedQuantizeOptions, opts: QuantizeOptions): Promise<ExportedModel> {
  await exportModel({ model: o.model, out: dir, tolerance: o.tolerance, onEvent: opts.onEvent, stopSignal: opts.stopSignal });
  return loadExportedModel(dir);
}
