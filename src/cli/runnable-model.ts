import type { WorkerEvent } from '../core/worker-events.js';
import type { GlobalFlags } from './output.js';
import { ProgressView } from './progress.js';

/**
 * A run-a-model command's MODEL argument as an exported folder (a .gguf file, an `ollama:` name or a Hugging Face id
 * is imported and exported the first time), showing that work's progress as the other jobs do.
 */
export async function runnableModel(flags: GlobalFlags, ref: string): Promise<string> {
  return withImportProgress(flags, async (onEvent) => {
    const { runnableModelFolder } = await import('../core/import/runnable-model.js');
    return runnableModelFolder(ref, { onEvent });
  });
}

/** Runs `work` with a progress view for the import and export it may start. */
export async function withImportProgress<T>(flags: GlobalFlags, work: (onEvent: (e: WorkerEvent) => void) => Promise<T>): Promise<T> {
  const view = new ProgressView(flags, 'import');
  try {
    return await work(view.onEvent);
  } finally {
    view.stop();
  }
}
