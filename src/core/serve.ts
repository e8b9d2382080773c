import type { EngineOptions } from '../engine/local-engine.js';
import type { WatchdogEvent } from '../engine/step-watchdog.js';
import { runChartsIn } from './charts/runs.js';
import type { Device } from '../engine/devices.js';
import { API_KEYS_ENV, Authenticator, loadApiKeys } from '../serve/access/auth.js';
import { BlocklistFilter, type FilterMode } from '../serve/content-filter.js';
import { ModelRegistry, parseModelSpec, type ModelSpec, type ServedModel } from '../serve/model-registry.js';
import { MemoryCounterStore } from '../serve/access/counter-store.js';
import { emptyPolicy, loadQuotaFile } from '../serve/access/quota-file.js';
import { QuotaTracker, type RedisDownPolicy } from '../serve/access/quotas.js';
import { RedisCounterStore, RedisLink, RedisValueStore } from '../serve/access/redis-store.js';
import { ResponseCache } from '../serve/response-cache.js';
import { LlmServer } from '../serve/server.js';
import { ServerMetrics } from '../serve/server-metrics.js';
import { TritonEngine } from '../engine/triton/triton-engine.js';
import { UsageError } from '../shared/errors.js';
import { LoraAdapter } from '../engine/lora-adapter.js';
import { rowTableBytes } from '../engine/lora-feeds.js';
import { ADMIN_KEY_ENV } from '../serve/lora-admin.js';
import { llmkitHome } from '../shared/paths.js';
import { DEFAULT_LIMITS } from '../engine/local-engine.js';
import { checkServingMemory } from './memory/plan.js';
import { DEFAULT_MAX_FILE_MB } from '../serve/batch/objects.js';
import { join, resolve } from 'node:path';
import { DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_TTL_S } from './options/flag-values.js';
import { runnableModelFolder } from './import/runnable-model.js';
import type { WorkerEvent } from './worker-events.js';

export interface ServeOptions extends Omit<EngineOptions, 'onDecodeStep' | 'onWatchdog'> {
  /** Model folders: `PATH`, `NAME=PATH` or `NAME@VERSION=PATH`. */
  models: string[];
  host: string;
  /** 0 picks a free port. */
  port: number;
  apiKeys?: string[];
  apiKeysFile?: string;
  /** Per-key defaults; a keys file can set its own per key. */
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** YAML or JSON: accounts, keys and limits per account, key, model and feature (see quota-file.ts). */
  quotaFile?: string;
  /** redis://HOST:PORT: quota counters (and the response cache) shared by every replica. */
  redis?: string;
  /** While Redis is unreachable: `open` serves without quotas, `closed` refuses with 503 (default open). */
  redisDown?: RedisDownPolicy;
  /** Answer repeated deterministic requests from a cache (in Redis with --redis, else in memory). */
  cache?: boolean;
  /** Most entries the in-memory cache holds (least recently used go first). */
  cacheEntries?: number;
  /** Seconds a cached answer lives in Redis. */
  cacheTtlSeconds?: number;
  blocklist?: string;
  filterMode?: FilterMode;
  /** The access log: one line per request. */
  log: (line: string) => void;
  /** Progress of the import and export a model given as a .gguf file, an `ollama:` name or a Hugging Face id needs once. */
  onEvent?: (e: WorkerEvent) => void;
  /** Where generation runs: llmkit's engine in this process (default), or a Triton server (docs/deploy.md). */
  engine?: 'onnx' | 'triton';
  /** With engine 'triton': its HTTP endpoint, e.g. http://127.0.0.1:8000. */
  tritonUrl?: string;
  /** With engine 'triton': the generate model's name (default: `<model name>-generate`). */
  tritonModel?: string;
  /** Where uploaded files and batch jobs are kept (default: $LLMKIT_HOME/serve-data). */
  dataDir?: string;
  /** Largest upload to /v1/files, in MB (default 200, as OpenAI's). */
  batchFileMb?: number;
  /** How long a batch's lease lasts unless renewed, in seconds: how soon a server sharing the data folder takes over a dead one's batch (default 10). */
  batchLeaseS?: number;
  /** The web page at `/` (default true). */
  ui?: boolean;
  /** A folder of runs whose charts the dashboard shows (`--runs`). */
  runs?: string;
  /** LoRA adapters served over the one model: `PATH`, `NAME=PATH` or `NAME@VERSION=PATH` (PEFT folders). */
  adapters?: string[];
  /** The key of the runtime adapter API (/v1/load_lora_adapter, /v1/unload_lora_adapter); default $LLMKIT_ADMIN_KEY. */
  adminKey?: string;
  /** Start even when the memory estimate says the models cannot fit. */
  force?: boolean;
  /** How long a drain waits for requests in flight before it cuts them off (default 30 s). */
  drainTimeoutMs?: number;
}

/** What a drain left: requests cut off at its deadline, and models whose engine was still busy when it gave up. */
export interface DrainResult {
  cutOff: number;
  modelsLeftBusy: number;
}

/** Kubernetes' default grace period between SIGTERM and SIGKILL is 30 s: a drain ends inside it. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 25_000;

/** After the deadline, how long the engines get to drop the cut-off requests (they leave at the next step). */
const ENGINE_CLOSE_GRACE_MS = 3_000;

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8080 (the OpenAI API is under /v1). */
  url: string;
  models: readonly ServedModel[];
  /** Whether requests need an API key. */
  authenticated: boolean;
  /** The peak-memory estimate for the models at --max-batch, against what there is (null: not judged). */
  memory: { total: number; available: number; availableOf: string } | null;
  /** Where files and batches are kept. */
  batch: { dataDir: string };
  /** Refuses new requests, finishes those in flight (until the drain deadline), closes the server and frees the models. */
  drain(): Promise<DrainResult>;
}

/** Loads the models and starts the OpenAI-compatible server; everything is checked before the models load. */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  if (!opts.models.length) throw new UsageError('serve needs at least one model folder', 'llmkit serve ./models/x-int8 [NAME@VERSION=./other …]');
  const named = opts.models.map(parseModelSpec);
  const runs = opts.runs ? runChartsIn(resolve(opts.runs)) : undefined;
  const openEngine = tritonEngines(opts, named.length);
  const adapters = (opts.adapters ?? []).map(parseModelSpec);
  const { targets: loraTargets, loaded: loadedAdapters } = await adapterTargets(opts, adapters, named.length, openEngine !== undefined);
  const adminKey = opts.adminKey ?? process.env[ADMIN_KEY_ENV];
  const quotaFile = opts.quotaFile ? loadQuotaFile(opts.quotaFile) : undefined;
  const auth = new Authenticator([...loadApiKeys({ keys: opts.apiKeys, file: opts.apiKeysFile, env: process.env[API_KEYS_ENV] }), ...(quotaFile?.keys ?? [])]);
  const filter = opts.blocklist ? BlocklistFilter.load(opts.blocklist, opts.filterMode ?? 'reject') : undefined;
  const policy = quotaPolicy(opts, quotaFile);
  const specs = await runnableSpecs(named, opts.onEvent);

  let models: ModelRegistry | undefined;
  const metrics = new ServerMetrics(() => models?.models ?? []);
  const redis = opts.redis ? await RedisLink.connect(opts.redis, opts.log) : undefined;
  const quotas = new QuotaTracker(policy, redis ? new RedisCounterStore(redis) : new MemoryCounterStore(), { redisDown: opts.redisDown ?? 'open', metrics });
  const cache = opts.cache
    ? new ResponseCache({ maxEntries: opts.cacheEntries ?? DEFAULT_CACHE_ENTRIES, redis: redis && new RedisValueStore(redis, opts.cacheTtlSeconds ?? DEFAULT_CACHE_TTL_S), metrics })
    : undefined;
  const device = opts.device === 'cpu' || opts.device === 'cuda' ? opts.device : 'auto';
  // Triton holds the weights in its own process, and WebGPU's memory is the driver's to report: judged for ONNX Runtime on CPU or CUDA only.
  let memory: RunningServer['memory'] = null;
  try {
    memory =
      openEngine || opts.device === 'webgpu'
        ? null
        : await checkServingMemory(
            specs.map((s) => s.path),
            {
              maxBatch: opts.maxBatch ?? DEFAULT_LIMITS.maxBatch,
              device,
              force: opts.force,
              loraAdapters: Boolean(loraTargets),
              adapterBytes: servedAdapterBytes(loadedAdapters, opts.maxBatch ?? DEFAULT_LIMITS.maxBatch),
            },
          );
    models = await ModelRegistry.open(specs, {
      ...opts,
      loraTargets,
      openEngine,
      onDecodeStep: (model, rows) => metrics.decodeBatch.observe(rows, { model }),
      onWatchdog: (model, event) => opts.log(watchdogLine(model, event)),
    });
    for (const adapter of adapters) await models.addAdapter(adapter);
  } catch (e) {
    await models?.close();
    await redis?.close();
    throw e;
  }
  const batch = batchSettings(opts);
  const admin = adminKey ? new Authenticator([{ key: adminKey, name: 'admin' }]) : undefined;
  const server = new LlmServer({ models, auth, quotas, metrics, filter, cache, log: opts.log, ui: opts.ui, batch, admin, runs });
  let url: string;
  try {
    url = await server.listen(opts.port, opts.host);
  } catch (e) {
    await server.batches?.close();
    await models.close();
    await redis?.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UsageError(`port ${opts.port} on ${opts.host} is in use`, 'pass another --port (0 picks a free one)');
    throw e;
  }
  const registry = models;
  return {
    url,
    models: registry.models,
    authenticated: auth.enabled,
    memory,
    batch: { dataDir: batch.dataDir },
    drain: async () => {
      const cutOff = await server.drain(opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS);
      // An engine stuck in a step would hold the drain forever: past the grace its session is left to the process's exit.
      const closes = registry.models.map((m) => withinMs(m.engine.close(), ENGINE_CLOSE_GRACE_MS));
      const modelsLeftBusy = (await Promise.all(closes)).filter((closed) => !closed).length;
      await redis?.close();
      return { cutOff, modelsLeftBusy };
    },
  };
}

/** The quota file's policy (or none), with --rpm / --tpm filling what its defaults leave open. */
function quotaPolicy(opts: ServeOptions, quotaFile: ReturnType<typeof loadQuotaFile> | undefined): ReturnType<typeof emptyPolicy> {
  const policy = quotaFile?.policy ?? emptyPolicy();
  if (opts.requestsPerMinute) policy.defaults.rpm ??= opts.requestsPerMinute;
  if (opts.tokensPerMinute) policy.defaults.tpm ??= opts.tokensPerMinute;
  return policy;
}

/** Where batch files are kept and how many lines run at once. */
function batchSettings(opts: ServeOptions) {
  return {
    dataDir: resolve(opts.dataDir ?? join(llmkitHome(), 'serve-data')),
    maxFileBytes: (opts.batchFileMb ?? DEFAULT_MAX_FILE_MB) * 2 ** 20,
    // Twice the engine's batch: lines wait in its batch lane, so a row freed by a finished line is taken at the next step.
    concurrency: 2 * (opts.maxBatch ?? DEFAULT_LIMITS.maxBatch),
    leaseMs: opts.batchLeaseS && opts.batchLeaseS * 1000,
  };
}

/** Each model's folder as the engine opens it: exported first (once) where the spec names a GGUF file, an Ollama model or a Hugging Face id. */
async function runnableSpecs(specs: ModelSpec[], onEvent?: (e: WorkerEvent) => void): Promise<ModelSpec[]> {
  const runnable: ModelSpec[] = [];
  for (const spec of specs) runnable.push({ ...spec, path: await runnableModelFolder(spec.path, { onEvent }) });
  return runnable;
}

/**
 * The projections the base takes LoRA adapters on: --lora-targets, else every projection the --adapter folders
 * adapt; undefined without adapters (the graph stays as exported). Adapters need one base, run by llmkit's engine.
 */
async function adapterTargets(opts: ServeOptions, adapters: ModelSpec[], models: number, triton: boolean): Promise<{ targets: string[] | undefined; loaded: LoraAdapter[] }> {
  if (!adapters.length && !opts.loraTargets?.length) return { targets: undefined, loaded: [] };
  const hint = 'serve one exported base model with its adapters: llmkit serve BASE --adapter NAME=PATH …';
  if (models !== 1) throw new UsageError(`--adapter and --lora-targets serve adapters over one base model, but ${models} models are listed`, hint);
  if (triton) throw new UsageError('--adapter and --lora-targets need --engine onnx (Triton runs the model as exported)', hint);
  const loaded = await Promise.all(adapters.map((a) => LoraAdapter.load(a.path)));
  return { targets: opts.loraTargets?.length ? [...opts.loraTargets] : [...new Set(loaded.flatMap((a) => a.targets))].sort(), loaded };
}

/**
 * The adapters' own weights, and the per-row tables the batch reads them from (kept for --max-batch rows at the
 * largest rank, over every projection some adapter adapts). Adapters added later through the admin endpoint are
 * not known yet: the estimate at start counts those given on the command line.
 */
function servedAdapterBytes(adapters: LoraAdapter[], maxBatch: number): number {
  if (!adapters.length) return 0;
  const modules = new Map<string, { inFeatures: number; outFeatures: number }>();
  for (const a of adapters) for (const [key, w] of a.modules) modules.set(key, w);
  const rank = Math.max(...adapters.map((a) => a.rank));
  return adapters.reduce((n, a) => n + a.bytes, 0) + maxBatch * rowTableBytes(modules.values(), rank);
}

/** Whether `p` settled within `ms`. */
async function withinMs(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The server log's line for a stuck step or batch, a scheduler fault, or the recovery. */
function watchdogLine(model: string, event: WatchdogEvent): string {
  if (event.kind === 'recovered') return `watchdog: model ${model} recovered (${event.message}); /ready is 200 again`;
  const failed = `${event.failed} request${event.failed === 1 ? '' : 's'} failed`;
  if (event.kind === 'failed') return `watchdog: model ${model}: the scheduler failed (${event.message}); ${failed}, it goes on with new ones`;
  return `watchdog: model ${model}: ${event.message}; ${failed}, /ready is 503 until a step completes`;
}

/** With --engine triton, how each model's engine opens; undefined for llmkit's own engine. Flags are checked first. */
function tritonEngines(opts: ServeOptions, models: number): ((spec: ModelSpec) => Promise<TritonEngine>) | undefined {
  if ((opts.engine ?? 'onnx') === 'onnx') {
    if (opts.tritonUrl || opts.tritonModel) throw new UsageError('--triton-url and --triton-model need --engine triton');
    return undefined;
  }
  const url = opts.tritonUrl;
  if (!url) throw new UsageError('--engine triton needs --triton-url', "e.g. --triton-url http://127.0.0.1:8000 (Triton's HTTP port)");
  if (!/^https?:\/\/[^/]+/.test(url)) throw new UsageError(`--triton-url must be an http:// or https:// URL (got ${url})`);
  if (opts.tritonModel && models > 1)
    throw new UsageError('--triton-model names one model, but several are served', 'serve one model per llmkit, or leave --triton-model out (each uses <name>-generate)');
  return (spec) => TritonEngine.open(spec.path, { url, model: opts.tritonModel ?? `${spec.name}-generate` });
}

export interface AskOnceResult {
  url: string;
  model: string;
  device: string;
  answer: string;
  finishReason: string;
  promptTokens: number;
  completionTokens: number;
}

/**
 * Serves one model on a free local port, asks it one chat question through the official `openai`
 * client, and drains the server: the demo's proof that a model folder becomes a working API.
 */
export async function askOnce(opts: { model: string; device?: Device; question: string; maxTokens: number }): Promise<AskOnceResult> {
  const { default: OpenAI } = await import('openai');
  const log: string[] = [];
  const server = await startServer({ models: [`demo=${opts.model}`], host: '127.0.0.1', port: 0, device: opts.device ?? 'auto', log: (line) => log.push(line) });
  try {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'not-needed', maxRetries: 0 });
    const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: opts.question }], max_tokens: opts.maxTokens, temperature: 0 });
    return {
      url: server.url,
      model: r.model,
      device: server.models[0].engine.device,
      answer: r.choices[0].message.content ?? '',
      finishReason: r.choices[0].finish_reason,
      promptTokens: r.usage?.prompt_tokens ?? 0,
      completionTokens: r.usage?.completion_tokens ?? 0,
    };
  } finally {
    await server.drain();
  }
}
