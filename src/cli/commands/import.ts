import type { Command } from 'commander';
import type { ImportReport } from '../../core/import/import-model.js';
import { IMPORT } from '../../core/options/import.js';
import { commandFrom } from '../command.js';
import { runJobCommand } from '../job-run.js';

export function importCommand(): Command {
  return commandFrom(IMPORT, async (options, { flags }) => {
    const { importModel } = await import('../../core/import/import-model.js');
    await runJobCommand(flags, 'import', (hooks) => importModel({ ...options, ...hooks }), formatReport);
  });
}

function formatReport(report: ImportReport): string {
  return `imported ${report.from} (${report.source}) → ${report.path}\n${report.files.join(', ')}`;
}
