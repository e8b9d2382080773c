import type { Command } from 'commander';
import { EXPORT } from '../../core/options/export.js';
import { commandFrom } from '../command.js';
import { formatBytes, stopOnCtrlC, tritonLine } from '../output.js';
import { ProgressView } from '../progress.js';

export function exportCommand(): Command {
  return commandFrom(EXPORT, async (options, { flags }) => {
    const { exportModel } = await import('../../core/export.js');
    const view = new ProgressView(flags, 'export');
    const stop = stopOnCtrlC();
    try {
      const report = await exportModel({ ...options, onEvent: view.onEvent, stopSignal: stop.signal });
      view.stop();
      if (flags.json) process.stdout.write(JSON.stringify(report) + '\n');
      else {
        const worst = Math.max(...Object.values(report.parity));
        process.stdout.write(`exported ${options.model} → ${report.path} (${formatBytes(report.onnxBytes)}); max |Δlogit| vs PyTorch ${worst.toExponential(1)} over prefill + 3 decode steps\n`);
        if (report.triton) process.stdout.write(tritonLine(report.triton));
      }
    } finally {
      stop.dispose();
    }
  });
}
