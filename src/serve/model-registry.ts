import { basename, resolve } from 'node:path';
import { UsageError } from '../shared/errors.js';
import { LocalEngine, type EngineOptions } from '../engine/local-engine.js';
import type { GenerationEngine } from '../engine/engine-contract.js';
import type { WatchdogEvent } from '../engine/step-watchdog.js';
import { AdapterEngine } from '../engine/adapter-engine.js';
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
  /** A LoRA adapter's: the id of the model it runs over (OpenAI/vLLM's `parent`), and its folder. */
  parent?: string;
  adapterPath?: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/;

const specId = (s: ModelSpec) => (s.version ? `${s.name}@${s.version}` : s.name);

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
  private constructor(private list: readonly ServedModel[]) {}

  /** What is served now (adapters come and go: each change makes a new list, so a list read stays as it was). */
  get models(): readonly ServedModel[] {
    return this.list;
  }

  /** `openEngine` replaces llmkit's own engine (ONNX Runtime in this process) with another, e.g. Triton's. */
  static async open(
    specs: ModelSpec[],
    opts: Omit<EngineOptions, 'onDecodeStep' | 'onWatchdog'> & {
      onDecodeStep?: (model: string, rows: number) => void;
      onWatchdog?: (model: string, event: WatchdogEvent) => void;
      openEngine?: (spec: ModelSpec) => Promise<GenerationEngine>;
    },
  ): Promise<ModelRegistry> {
    const ids = specs.map(specId);
    const twice = ids.find((id, i) => ids.indexOf(id) !== i);
    if (twice) throw new UsageError(`model ${twice} is listed twice`, 'give each model a distinct NAME=PATH or NAME@VERSION=PATH');
    const models: ServedModel[] = [];
    try {
      for (const [i, spec] of specs.entries()) {
        const engine = opts.openEngine
          ? await opts.openEngine(spec)
          : await LocalEngine.open(spec.path, { ...opts, onDecodeStep: (rows) => opts.onDecodeStep?.(ids[i], rows), onWatchdog: (event) => opts.onWatchdog?.(ids[i], event) });
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
    const releases = this.models.filter((m) => !m.parent).map((m) => m.engine.arriving?.());
    return () => {
      for (const release of releases) release?.();
    };
  }

  /** Null when every model can take requests, else why one cannot. */
  async unavailable(): Promise<string | null> {
    const reasons = await Promise.all(this.models.filter((m) => !m.parent).map(async (m) => [m.id, await m.engine.unavailable()] as const));
    const down = reasons.find(([, why]) => why !== null);
    return down ? `${down[0]}: ${down[1]}` : null;
  }

  /**
   * Serves a PEFT LoRA adapter as a model of its own over the base that takes adapters (opened with LoRA inputs):
   * its requests share the base's batch and weights. Throws a UsageError (one line) when it cannot.
   */
  async addAdapter(spec: ModelSpec): Promise<ServedModel> {
    const base = this.list.find((m): m is ServedModel & { engine: LocalEngine } => m.engine instanceof LocalEngine && m.engine.decoder.lora !== undefined);
    if (!base) throw new UsageError('no served model takes LoRA adapters', 'start the server with --adapter NAME=PATH or --lora-targets q_proj,v_proj,…');
    const id = specId(spec);
    this.refuseTaken(id);
    const adapter = await base.engine.loadAdapter(spec.path, id);
    this.refuseTaken(id); // (another load of the same name may have finished while this one read its files)
    const model: ServedModel = {
      id,
      name: spec.name,
      version: spec.version,
      engine: new AdapterEngine(base.engine, adapter),
      created: Math.floor(Date.now() / 1000),
      parent: base.id,
      adapterPath: adapter.path,
    };
    this.list = [...this.list, model];
    return model;
  }

  /** Stops serving an adapter: new requests for it get 404, those in flight finish with it. */
  removeAdapter(id: string): ServedModel {
    const model = this.list.find((m) => m.id === id);
    if (!model) throw new ApiError(404, `The LoRA adapter '${id}' is not loaded; this server has: ${this.models.map((m) => m.id).join(', ')}`, 'model_not_found', 'lora_name');
    if (!model.parent) throw new ApiError(400, `'${id}' is a base model, not a LoRA adapter: only adapters can be unloaded`, 'invalid_request_error', 'lora_name');
    this.list = this.list.filter((m) => m !== model);
    return model;
  }

  private refuseTaken(id: string): void {
    if (this.list.some((m) => m.id === id)) throw new UsageError(`a model or adapter named ${id} is already served`, 'give the adapter a name no served model has');
  }

  /** Waits for running requests and frees every model's session. */
  async close(): Promise<void> {
    await Promise.all(this.models.map((m) => m.engine.close()));
  }
}
