import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../../shared/errors.js';

/** An Ollama model's weights: the GGUF blob its manifest names (blobs are named by their sha256, so the digest keys caches). */
export interface OllamaModel {
  name: string;
  gguf: string;
  digest: string;
}

const MODEL_LAYER = 'application/vnd.ollama.image.model';
const ADAPTER_LAYER = 'application/vnd.ollama.image.adapter';

/** Where Ollama keeps its models: $OLLAMA_MODELS, or ~/.ollama/models. */
export function ollamaStore(): string {
  return process.env.OLLAMA_MODELS || join(homedir(), '.ollama', 'models');
}

/**
 * `NAME[:TAG]` as Ollama spells it (`smollm2`, `smollm2:135m`, `me/model:q4`, `host/ns/model:tag`) to its manifest,
 * manifests/<host>/<namespace>/<model>/<tag>, and from there to the model layer's blob.
 */
export function findOllamaModel(reference: string, store = ollamaStore()): OllamaModel {
  const [path, tag = 'latest'] = splitTag(reference);
  const parts = path.split('/');
  const [host, namespace, model] = parts.length === 3 ? parts : parts.length === 2 ? ['registry.ollama.ai', ...parts] : ['registry.ollama.ai', 'library', path];
  const name = `${path}:${tag}`;
  const manifest = join(store, 'manifests', host, namespace, model, tag);
  if (!existsSync(manifest)) {
    const known = listOllamaModels(store);
    throw new UsageError(
      `ollama:${name} is not in the Ollama store ${store}`,
      known.length ? `models there: ${known.slice(0, 8).join(', ')}` : `pull it with \`ollama pull ${name}\`, or set OLLAMA_MODELS to the store`,
    );
  }
  const layers = (JSON.parse(readFileSync(manifest, 'utf8')) as { layers?: { mediaType: string; digest: string }[] }).layers ?? [];
  if (layers.some((l) => l.mediaType === ADAPTER_LAYER)) {
    throw new UsageError(`ollama:${name} is a base model with a LoRA adapter layer`, 'import its base model, and the adapter separately');
  }
  const layer = layers.find((l) => l.mediaType === MODEL_LAYER);
  if (!layer) throw new UsageError(`ollama:${name}: its manifest ${manifest} names no model layer (${MODEL_LAYER})`, 'pull the model again with `ollama pull`');
  const gguf = join(store, 'blobs', layer.digest.replace(':', '-'));
  if (!existsSync(gguf)) throw new UsageError(`ollama:${name}: the blob ${gguf} its manifest names is missing`, `pull the model again with \`ollama pull ${name}\``);
  return { name, gguf, digest: layer.digest };
}

function splitTag(reference: string): [string, string | undefined] {
  const colon = reference.lastIndexOf(':');
  return colon > reference.lastIndexOf('/') ? [reference.slice(0, colon), reference.slice(colon + 1)] : [reference, undefined];
}

/** NAME:TAG of every model in the store (the library namespace's without its prefix, as `ollama list` shows them). */
function listOllamaModels(store: string): string[] {
  const root = join(store, 'manifests');
  const walk = (dir: string, depth: number): string[] =>
    !existsSync(dir) ? [] : readdirSync(dir, { withFileTypes: true }).flatMap((e) => (depth < 3 ? (e.isDirectory() ? walk(join(dir, e.name), depth + 1) : []) : [join(dir, e.name)]));
  return walk(root, 0).map((file) => {
    const [host, namespace, model, tag] = file.slice(root.length + 1).split('/');
    const path = host === 'registry.ollama.ai' ? (namespace === 'library' ? model : `${namespace}/${model}`) : `${host}/${namespace}/${model}`;
    return `${path}:${tag}`;
  });
}
