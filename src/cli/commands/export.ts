import type { Command } from 'commander';
import type { ExportReport } from '../../core/export.js';
import { EXPORT } from '../../core/options/export.js';
import { commandFrom } from '../command.js';
import { writeGgufFile } from '../gguf-export.js';
import { runJobCommand } from '../job-run.js';
import { formatBytes, tritonLine } from '../output.js';

export function exportCommand(): Command {
  return commandFrom(EXPORT, async (options, { flags }) => {
    if (options.gguf) return writeGgufFile('export', options, flags);
    const { exportModel } = await import('../../core/export.js');
    await runJobCommand(
      flags,
      'export',
      (hooks) => exportModel({ ...options, ...hooks }),
      (report) => formatReport(options.model, report),
    );
  });
}

function formatReport(model: string, report: ExportReport): string {
  const worst = Math.max(...Object.values(report.parity));
  const line = `exported ${model} → ${report.path} (${formatBytes(report.onnxBytes)}); max |Δlogit| vs PyTorch ${worst.toExponential(1)} over prefill + 3 decode steps`;
  return report.triton ? `${line}\n${tritonLine(report.triton)}` : line;
}
