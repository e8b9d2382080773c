import { basename, resolve } from 'node:path';
import { UsageError } from '../shared/errors.js';
import { Engine, type EngineOptions } from '../engine/engine.js';
import type { GenerationEngine } from '../engine/generation-engine.js';
import { ApiError } from './openai/errors.js';

/** One model folder to serve, as given on the command line: `path`, `name=path` or `name@version=path`. */
export interface ModelSpec {
  name: string;
  version?: string;
  path: string;
}

export interface ServedModel {
  /** What clients put in `model`: `name` or `name@version`. */
  id: string;
  name: string;
  version?: string;
  engine: GenerationEngine;
  /** Unix seconds when it was loaded. */
  created: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/;

export function parseModelSpec(arg: string): ModelSpec {
  const eq = arg.indexOf('=');
  if (eq < 0) return { name: defaultName(arg), path: arg };
  const [name, version] = arg.slice(0, eq).split('@');
  const path = arg.slice(eq + 1);
  if (!NAME.test(name) || (version !== undefined && !NAME.test(version)) || !path) {
    throw new UsageError(`model ${arg} is not PATH, NAME=PATH or NAME@VERSION=PATH`, 'names and versions use letters, digits and . _ : / -');
  }
  return { name, version, path };
}

/** A model's name where the spec gives none: its folder's or GGUF file's name, or the Ollama model's. */
function defaultName(arg: string): string {
  if (arg.startsWith('ollama:')) return arg.slice('ollama:'.length);
  return basename(resolve(arg)).replace(/\.gguf$/i, '');
}

/**
 * The models one server holds, each with its own engine (and so its own batch). `model` in a request
 * picks one by `name@version`, or by `name` alone for the last version listed.
 */
export class ModelRegistry {
  private constructor(readonly models: readonly ServedModel[]) {}

  /** `openEngine` replaces llmkit's own engine (ONNX Runtime in this process) with another, e.g. Triton's. */
  static async open(
    specs: ModelSpec[],
    opts: Omit<EngineOptions, 'onDecodeStep'> & { onDecodeStep?: (model: string, rows: number) => void; openEngine?: (spec: ModelSpec) => Promise<GenerationEngine> },
  ): Promise<ModelRegistry> {
    const ids = specs.map((s) => (s.version ? `${s.name}@${s.version}` : s.name));
    const twice = ids.find((id, i) => ids.indexOf(id) !== i);
    if (twice) throw new UsageError(`model ${twice} is listed twice`, 'give each model a distinct NAME=PATH or NAME@VERSION=PATH');
    const models: ServedModel[] = [];
    try {
      for (const [i, spec] of specs.entries()) {
        const engine = opts.openEngine ? await opts.openEngine(spec) : await Engine.open(spec.path, { ...opts, onDecodeStep: (rows) => opts.onDecodeStep?.(ids[i], rows) });
        models.push({ id: ids[i], name: spec.name, version: spec.version, engine, created: Math.floor(Date.now() / 1000) });
      }
    } catch (e) {
      await Promise.all(models.map((m) => m.engine.close()));
      throw e;
    }
    return new ModelRegistry(models);
  }

  /** The model a request names; 404 in OpenAI's shape, listing what exists, when there is none. */
  resolve(model: string): ServedModel {
    const found = this.models.find((m) => m.id === model) ?? this.models.findLast((m) => m.name === model);
    if (found) return found;
    throw new ApiError(404, `The model '${model}' does not exist; this server has: ${this.models.map((m) => m.id).join(', ')}`, 'model_not_found', 'model');
  }

  /** Announces an interactive request to every model (its model is not known until its body is read); call the result once it is queued. */
  arriving(): () => void {
    const releases = this.models.map((m) => m.engine.arriving?.());
    return () => {
      for (const release of releases) release?.();
    };
  }

  /** Null when every model can take requests, else why one cannot. */
  async unavailable(): Promise<string | null> {
    const reasons = await Promise.all(this.models.map(async (m) => [m.id, await m.engine.unavailable()] as const));
    const down = reasons.find(([, why]) => why !== null);
    return down ? `${down[0]}: ${down[1]}` : null;
  }

  /** Waits for running requests and frees every model's session. */
  async close(): Promise<void> {
    await Promise.all(this.models.map((m) => m.engine.close()));
  }
}
