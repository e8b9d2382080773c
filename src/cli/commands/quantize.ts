import { join } from 'node:path';
import type { Command } from 'commander';
import { QUANTIZE } from '../../core/quantize/options.js';
import { commandFrom } from '../command.js';
import { writeGgufFile } from '../gguf-export.js';
import { runJobCommand } from '../job-run.js';
import { tritonLine } from '../output.js';

export function quantizeCommand(): Command {
  return commandFrom(QUANTIZE, async (options, { flags }) => {
    if (options.gguf) return writeGgufFile('quantize', options, flags);
    const { formatReportTable } = await import('../../core/quantize/report.js');
    const { REPORT_FILE, runQuantize } = await import('../../core/quantize/run.js');
    await runJobCommand(
      flags,
      'quantize',
      (hooks) => runQuantize({ ...options, ...hooks }),
      (report) => `${formatReportTable(report)}\nreport: ${join(options.out, REPORT_FILE)}${report.triton ? `\n${tritonLine(report.triton)}` : ''}`,
    );
  });
}
