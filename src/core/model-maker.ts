import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { runWorker } from '../workers/worker-run.js';
import type { WorkerEvent } from '../workers/protocol.js';
import { UsageError } from '../shared/errors.js';
import { MODEL_PRESETS, type ModelPreset } from './options/flag-values.js';
import { llmkitHome, pythonSourceDir } from '../shared/paths.js';
import { makeOnce } from '../shared/made-once.js';

export interface MakeModelOptions {
  preset: ModelPreset;
  seed: number;
  /** Where to write it; default: a cache folder under LLMKIT_HOME keyed by everything that shapes it. */
  out?: string;
  /** Text files to train the tokenizer on (default: the bundled corpus). */
  corpus?: string[];
  onEvent?: (e: WorkerEvent) => void;
}

export interface MadeModel {
  path: string;
  parameters: number | null;
  cached: boolean;
}

export function parsePreset(value: string): ModelPreset {
  if ((MODEL_PRESETS as readonly string[]).includes(value)) return value as ModelPreset;
  throw new UsageError(`--preset must be one of ${MODEL_PRESETS.join(', ')} (got ${value})`);
}

/**
 * Makes one of llmkit's own Llama-family models (no hub is needed) or returns the cached copy.
 * The cache key covers the preset, seed, corpus and the maker's source, so a change to any of them
 * makes a new model rather than reusing a stale one.
 */
export async function makeModel(opts: MakeModelOptions): Promise<MadeModel> {
  const corpus = opts.corpus?.map((p) => resolve(p));
  const out = opts.out ? resolve(opts.out) : join(llmkitHome(), 'models', `${opts.preset}-seed${opts.seed}-${await cacheKey(opts.preset, opts.seed, corpus)}`);
  const make = async () =>
    (
      await runWorker({
        job: 'make_model',
        config: { out, preset: opts.preset, seed: opts.seed, corpus },
        logFile: join(llmkitHome(), 'logs', 'make_model.log'),
        onEvent: opts.onEvent,
      })
    ).result.parameters;
  if (opts.out) return { path: out, parameters: await make(), cached: false };
  const made = await makeOnce(
    out,
    () => existsSync(join(out, 'model.safetensors')),
    async () => ({ parameters: await make() }),
  );
  return { path: out, parameters: made?.parameters ?? null, cached: made === undefined };
}

async function cacheKey(preset: string, seed: number, corpus?: string[]): Promise<string> {
  const hash = createHash('sha256').update(`${preset}:${seed}:`);
  hash.update(await readFile(join(pythonSourceDir, 'llmkit_worker', 'make_model.py')));
  for (const file of corpus ?? [join(pythonSourceDir, 'llmkit_worker', 'assets', 'tiny_corpus.txt')]) hash.update(await readFile(file));
  return hash.digest('hex').slice(0, 10);
}
