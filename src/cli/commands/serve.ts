import type { Command } from 'commander';
import { SERVE } from '../../core/options/serve.js';
import { commandFrom } from '../command.js';
import { formatBytes } from '../output.js';
import { withImportProgress } from '../runnable-model.js';
import type { DrainResult } from '../../core/serve.js';

export function serveCommand(): Command {
  return commandFrom(SERVE, async (options, { flags }) => {
    const { startServer } = await import('../../core/serve.js');
    const server = await withImportProgress(flags, (onEvent) => startServer({ ...options, onEvent, log: (line) => process.stderr.write(line + '\n') }));
    const models = server.models.map((m) => ({
      id: m.id,
      path: m.engine.model.dir,
      device: m.engine.device,
      skipped: m.engine.deviceNotes,
    }));
    if (flags.json) process.stdout.write(JSON.stringify({ event: 'listening', url: server.url, authenticated: server.authenticated, models, batch: server.batch }) + '\n');
    else {
      for (const m of models) process.stdout.write(`model ${m.id} on ${m.device}${m.skipped.length ? ` (${m.skipped.join('; ')})` : ''}: ${m.path}\n`);
      process.stdout.write(`serving at ${server.url}/v1${server.authenticated ? ' (API key required)' : ''}; SIGTERM or Ctrl-C drains and stops\n`);
      process.stdout.write(`batch jobs and files: ${server.batch.dataDir}\n`);
      if (options.ui) process.stdout.write(`web playground and dashboard: ${server.url}/${options.runs ? ` (with the charts of the runs in ${options.runs})` : ''}\n`);
      const m = server.memory;
      if (m) process.stdout.write(`memory estimate at --max-batch ${options.maxBatch}: ${formatBytes(m.total)} of ${formatBytes(m.available)} ${m.availableOf}\n`);
    }
    await untilStopped(server.drain);
  });
}

/**
 * The first SIGTERM/SIGINT drains (new requests get 503, running ones finish until --drain-timeout); a second one
 * exits at once. An engine still stuck in a step after the drain is left to the exit (exit code 1).
 */
function untilStopped(drain: () => Promise<DrainResult>): Promise<void> {
  return new Promise((resolve, reject) => {
    const stop = (signal: string) => {
      process.off('SIGTERM', stop).off('SIGINT', stop);
      process.once('SIGTERM', () => process.exit(143)).once('SIGINT', () => process.exit(130));
      process.stderr.write(`${signal}: draining (finishing requests in flight; again to quit at once)\n`);
      drain().then(({ cutOff, modelsLeftBusy }) => {
        if (cutOff) process.stderr.write(`drain: ${cutOff} request${cutOff === 1 ? '' : 's'} still going at --drain-timeout; their connections were closed\n`);
        if (!modelsLeftBusy) return resolve();
        process.stderr.write(`drain: ${modelsLeftBusy} model${modelsLeftBusy === 1 ? '' : 's'} still in a step after the drain; exiting without waiting for it\n`);
        process.exit(1);
      }, reject);
    };
    process.on('SIGTERM', stop).on('SIGINT', stop);
  });
}
