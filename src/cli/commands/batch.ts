import type { Command } from 'commander';
import type { OfflineBatchSummary } from '../../core/batch/run.js';
import { BATCH } from '../../core/options/batch.js';
import { commandFrom } from '../command.js';
import { BatchProgressView } from '../progress.js';
import { withImportProgress } from '../runnable-model.js';

export function batchCommand(): Command {
  return commandFrom(BATCH, async (options, { flags }) => {
    const { runOfflineBatch } = await import('../../core/batch/run.js');
    const view = new BatchProgressView(flags);
    const stop = new AbortController();
    const onSigint = () => {
      if (stop.signal.aborted) process.exit(130);
      view.stop();
      process.stderr.write(`\nstopping: every finished line is in ${options.output}; run the same command to go on (Ctrl-C again to quit at once)\n`);
      stop.abort();
    };
    process.on('SIGINT', onSigint);
    try {
      const summary = await withImportProgress(flags, (onEvent) => runOfflineBatch({ ...options, onEvent, onProgress: view.update, signal: stop.signal }));
      view.stop();
      process.stdout.write((flags.json ? JSON.stringify(summary) : formatSummary(summary)) + '\n');
      // Failed lines are results too (in the output, with their status): only a run that stopped early is not a success.
      return summary.interrupted ? 130 : 0;
    } finally {
      view.stop();
      process.off('SIGINT', onSigint);
    }
  });
}

function formatSummary(s: OfflineBatchSummary): string {
  const lines = [
    `${s.succeeded + s.failed} of ${s.total - s.resumed} lines run on ${s.target} in ${s.seconds.toFixed(1)} s: ${s.succeeded} answered, ${s.failed} failed${s.resumed ? ` (${s.resumed} were already done)` : ''}`,
    `tokens: ${s.promptTokens} prompt, ${s.completionTokens} generated (${s.tokensPerSecond.toFixed(1)} tok/s)`,
    `output: ${s.output}`,
  ];
  if (s.interrupted) lines.push(`stopped before the end: run the same command to go on from line ${s.resumed + s.succeeded + s.failed + 1} of ${s.total}`);
  return lines.join('\n');
}
