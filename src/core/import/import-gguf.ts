import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../../shared/errors.js';
import { llmkitHome, pythonSourceDir } from '../../shared/paths.js';
import type { JobResult } from '../../workers/jobs.js';
import type { WorkerEvent } from '../../workers/protocol.js';
import { runWorker } from '../../workers/worker-run.js';
import { ggufPackageDir } from '../gguf/export.js';

export const IMPORT_DTYPES = ['float32', 'bfloat16', 'float16'] as const;
export type ImportDtype = (typeof IMPORT_DTYPES)[number];
export type ImportGgufReport = JobResult<'import_gguf'>;

export interface ImportGgufOptions {
  gguf: string;
  out: string;
  dtype: ImportDtype;
  onEvent?: (e: WorkerEvent) => void;
  stopSignal?: AbortSignal;
}

/** A GGUF file into a Hugging Face folder with the `import_gguf` worker (import_gguf.py). */
export async function importGguf(opts: ImportGgufOptions): Promise<ImportGgufReport> {
  const gguf = resolve(opts.gguf);
  if (!existsSync(gguf) || !statSync(gguf).isFile()) throw new UsageError(`GGUF file ${opts.gguf} does not exist`, 'pass a .gguf file, ollama:NAME[:TAG] or a Hugging Face model id');
  const packages = await ggufPackageDir(opts.onEvent);
  const { result } = await runWorker({
    job: 'import_gguf',
    config: { gguf, out: resolve(opts.out), dtype: opts.dtype },
    env: { PYTHONPATH: [pythonSourceDir, packages].join(':') },
    logFile: join(llmkitHome(), 'logs', 'import.log'),
    onEvent: opts.onEvent,
    stopSignal: opts.stopSignal,
  });
  return result;
}
