import { join } from 'node:path';
import type { Command } from 'commander';
import { QUANTIZE } from '../../core/quantize/options.js';
import { commandFrom } from '../command.js';
import { stopOnCtrlC, tritonLine } from '../output.js';
import { ProgressView } from '../progress.js';

export function quantizeCommand(): Command {
  return commandFrom(QUANTIZE, async (options, { flags }) => {
    const { formatReportTable } = await import('../../core/quantize/report.js');
    const { REPORT_FILE, runQuantize } = await import('../../core/quantize/run.js');
    const view = new ProgressView(flags, 'quantize');
    const stop = stopOnCtrlC();
    try {
      const report = await runQuantize({ ...options, onEvent: view.onEvent, stopSignal: stop.signal });
      view.stop();
      if (flags.json) process.stdout.write(JSON.stringify(report) + '\n');
      else process.stdout.write(`${formatReportTable(report)}\nreport: ${join(options.out, REPORT_FILE)}\n${report.triton ? tritonLine(report.triton) : ''}`);
    } finally {
      stop.dispose();
    }
  });
}
