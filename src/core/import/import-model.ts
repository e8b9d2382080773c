import { cpSync, existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { replaceFolder } from '../../shared/atomic.js';
import { UsageError } from '../../shared/errors.js';
import type { WorkerEvent } from '../../workers/protocol.js';
import { findOllamaModel } from './ollama-store.js';
import { importGguf, type ImportDtype } from './import-gguf.js';
import { parseModelSource, resolveModelSource } from './model-source.js';

export interface ImportModelOptions {
  model: string;
  out?: string;
  dtype: ImportDtype;
  onEvent?: (e: WorkerEvent) => void;
  stopSignal?: AbortSignal;
}

export interface ImportReport {
  /** The Hugging Face folder written (or found in the cache). */
  path: string;
  source: 'gguf' | 'ollama' | 'huggingface';
  /** The file read: the GGUF, the Ollama blob, or the hub cache's snapshot. */
  from: string;
  files: string[];
}

/** `llmkit import`: MODEL into --out, or into the import cache that commands given MODEL use. */
export async function importModel(opts: ImportModelOptions): Promise<ImportReport> {
  const source = parseModelSource(opts.model);
  if (source.kind === 'folder') {
    throw new UsageError(
      `${opts.model} is neither a .gguf file, an ollama: name nor a Hugging Face id`,
      existsSync(source.path) ? 'a model folder needs no import: pass it to the commands as it is' : 'pass a .gguf file, ollama:NAME[:TAG] or org/name',
    );
  }
  const kind = source.kind;
  if (!opts.out) {
    const path = await resolveModelSource(opts.model, opts);
    return { path, source: kind, from: kind === 'huggingface' ? path : kind === 'ollama' ? findOllamaModel(source.name).gguf : source.path, files: readdirSync(path).sort() };
  }
  const out = resolve(opts.out);
  if (kind === 'huggingface') {
    // The snapshot's files are links into the cache's blobs: the copy holds the files themselves.
    const snapshot = await resolveModelSource(opts.model, opts);
    await replaceFolder(out, async (tmp) => cpSync(snapshot, tmp, { recursive: true, dereference: true }));
    return { path: out, source: kind, from: snapshot, files: readdirSync(out).sort() };
  }
  const gguf = kind === 'ollama' ? findOllamaModel(source.name).gguf : source.path;
  await importGguf({ gguf, out, dtype: opts.dtype, onEvent: opts.onEvent, stopSignal: opts.stopSignal });
  return { path: out, source: kind, from: gguf, files: readdirSync(out).sort() };
}
