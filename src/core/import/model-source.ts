import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic.js';
import { UsageError } from '../../shared/errors.js';
import { llmkitHome, pythonSourceDir } from '../../shared/paths.js';
import type { WorkerEvent } from '../../workers/protocol.js';
import { runWorker } from '../../workers/worker-run.js';
import { cachedSnapshot, hfHubCache, isHfModelId, splitRevision } from './hf-cache.js';
import { importGguf, type ImportDtype } from './import-gguf.js';
import { findOllamaModel } from './ollama-store.js';
import { makeOnce } from '../../shared/made-once.js';

/** What a command's MODEL argument names, besides a folder. */
export type ModelSource = { kind: 'folder'; path: string } | { kind: 'gguf'; path: string } | { kind: 'ollama'; name: string } | { kind: 'huggingface'; id: string };

export function parseModelSource(ref: string): ModelSource {
  if (ref.startsWith('ollama:')) return { kind: 'ollama', name: ref.slice('ollama:'.length) };
  if (ref.toLowerCase().endsWith('.gguf')) return { kind: 'gguf', path: resolve(ref) };
  if (isHfModelId(ref)) return { kind: 'huggingface', id: ref };
  return { kind: 'folder', path: resolve(ref) };
}

export interface ResolveModelOptions {
  onEvent?: (e: WorkerEvent) => void;
  /** The precision an import writes (float32 unless asked). */
  dtype?: ImportDtype;
}

/**
 * A Hugging Face model folder for any MODEL argument: a folder is itself; a .gguf file and an `ollama:` name are imported
 * into LLMKIT_HOME/imported once (keyed by the file, or the blob's digest, and the importer); a Hugging Face id is its
 * snapshot in the local hub cache, fetched with huggingface_hub only when the cache does not hold it.
 */
export async function resolveModelSource(ref: string, opts: ResolveModelOptions = {}): Promise<string> {
  const source = parseModelSource(ref);
  switch (source.kind) {
    case 'folder':
      return source.path;
    case 'gguf': {
      if (!existsSync(source.path) || !statSync(source.path).isFile())
        throw new UsageError(`GGUF file ${ref} does not exist`, 'pass a .gguf file, ollama:NAME[:TAG], a Hugging Face id or a model folder');
      return importedOnce(source.path, await fileDigest(source.path), opts);
    }
    case 'ollama': {
      const model = findOllamaModel(source.name);
      return importedOnce(model.gguf, model.digest.replace('sha256:', ''), opts);
    }
    case 'huggingface':
      return huggingFaceFolder(source.id, opts);
  }
}

/**
 * The cached import of a GGUF file, made on first use, keyed by the file's sha256 (which an Ollama blob is named by, so
 * a file and the same model in Ollama share one import), the precision and the importer.
 */
async function importedOnce(gguf: string, digest: string, opts: ResolveModelOptions): Promise<string> {
  const dtype = opts.dtype ?? 'float32';
  const importer = createHash('sha256')
    .update(await readFile(join(pythonSourceDir, 'llmkit_worker', 'import_gguf.py')))
    .digest('hex');
  const out = join(llmkitHome(), 'imported', `sha256-${digest.slice(0, 16)}-${dtype}-${importer.slice(0, 8)}`);
  await makeOnce(
    out,
    () => existsSync(join(out, 'config.json')),
    () => importGguf({ gguf, out, dtype, onEvent: opts.onEvent }),
  );
  return out;
}

/** A file's sha256, remembered by path, size and modification time (a GGUF is gigabytes; hashing it once is enough). */
async function fileDigest(path: string): Promise<string> {
  const { size, mtimeMs } = statSync(path);
  const index = join(llmkitHome(), 'imported', 'digests.json');
  const known = existsSync(index) ? (JSON.parse(await readFile(index, 'utf8')) as Record<string, string>) : {};
  const key = `${path}:${size}:${mtimeMs}`;
  if (known[key]) return known[key];
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  known[key] = hash.digest('hex');
  await writeFileAtomic(index, JSON.stringify(known, null, 1));
  return known[key];
}

async function huggingFaceFolder(id: string, opts: ResolveModelOptions): Promise<string> {
  let snapshot = cachedSnapshot(id);
  if (!snapshot) {
    const { repo, revision } = splitRevision(id);
    opts.onEvent?.({ event: 'log', level: 'info', message: `${id} is not in the Hugging Face cache ${hfHubCache()}: downloading` });
    const { result } = await runWorker({ job: 'hf_download', config: { repo, revision }, logFile: join(llmkitHome(), 'logs', 'import.log'), onEvent: opts.onEvent });
    snapshot = result.path;
  }
  const files = readdirSync(snapshot);
  if (files.includes('config.json')) return snapshot;
  const ggufs = files.filter((f) => f.toLowerCase().endsWith('.gguf'));
  if (ggufs.length === 1) return importedOnce(join(snapshot, ggufs[0]), await fileDigest(join(snapshot, ggufs[0])), opts);
  throw new UsageError(
    `Hugging Face model ${id} (${snapshot}) has no config.json${ggufs.length ? ` and ${ggufs.length} GGUF files` : ''}`,
    ggufs.length ? `pass one of its GGUF files: ${join(snapshot, ggufs[0])}` : 'pass a model folder',
  );
}
