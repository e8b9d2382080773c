import type { ExactMatch } from '../core/finetune/run.js';
import { asMetric, type WorkerEvent } from '../core/worker-events.js';
import { stopOnCtrlC, type GlobalFlags } from './output.js';
import { ProgressView } from './progress.js';

interface JobHooks {
  onEvent: (e: WorkerEvent) => void;
  stopSignal: AbortSignal;
}

/**
 * Runs a worker job the way the commands show it: the progress bar, exact-match results and checkpoints (of
 * training jobs) as lines above it, Ctrl-C to stop (at a checkpoint), then the summary (or JSON) on stdout.
 */
export async function runJobCommand<S>(
  flags: GlobalFlags,
  label: string,
  run: (hooks: JobHooks) => Promise<S>,
  formatSummary: (summary: S) => string,
  exactMatchWho: (when: string) => string = (when) => when,
): Promise<void> {
  const view = new ProgressView(flags, label);
  const onEvent = (e: WorkerEvent) => {
    view.onEvent(e);
    if (flags.json) return;
    const exact = asMetric(e, 'exact_match');
    if (exact) view.print(`${label}: exact match ${exactMatchWho(exact.when)}: ${formatExact(exact)}`);
    if (e.event === 'artifact' && e.kind === 'checkpoint') view.print(`${label}: checkpoint ${e.path}`);
  };
  const stop = stopOnCtrlC();
  try {
    const summary = await run({ onEvent, stopSignal: stop.signal });
    view.stop();
    process.stdout.write((flags.json ? JSON.stringify(summary) : formatSummary(summary)) + '\n');
  } finally {
    view.stop();
    stop.dispose();
  }
}

export function formatExact(m: ExactMatch): string {
  return `${m.correct}/${m.total} (${Math.round(m.value * 100)}%)`;
}
