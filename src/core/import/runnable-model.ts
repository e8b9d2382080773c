import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { llmkitHome, pythonSourceDir } from '../../shared/paths.js';
import type { WorkerEvent } from '../../workers/protocol.js';
import { exportModel } from '../export.js';
import { parseModelSource, resolveModelSource } from './model-source.js';
import { makeOnce } from '../../shared/made-once.js';

/**
 * An exported (ONNX) model folder for the MODEL argument of a command that runs a model (chat, serve, bench): a folder
 * is itself; a .gguf file, an `ollama:` name or a Hugging Face id is imported (resolveModelSource) and exported once,
 * into LLMKIT_HOME/imported beside its import, and again when the exporter changes.
 */
export async function runnableModelFolder(ref: string, opts: { onEvent?: (e: WorkerEvent) => void } = {}): Promise<string> {
  if (parseModelSource(ref).kind === 'folder') return ref;
  const model = await resolveModelSource(ref, opts);
  const imported = join(llmkitHome(), 'imported');
  // An import is already named by its file's digest; a Hugging Face snapshot is named by its path in the hub cache.
  const key = resolve(model).startsWith(imported) ? basename(model) : `hf-${createHash('sha256').update(resolve(model)).digest('hex').slice(0, 16)}`;
  const out = join(imported, `${key}-onnx-${exporterDigest()}`);
  await makeOnce(
    out,
    () => existsSync(join(out, 'llmkit.json')),
    () => exportModel({ model, out, onEvent: opts.onEvent }),
  );
  return out;
}

function exporterDigest(): string {
  return createHash('sha256')
    .update(readFileSync(join(pythonSourceDir, 'llmkit_worker', 'export_onnx.py')))
    .digest('hex')
    .slice(0, 8);
}
