import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ANONYMOUS, type ApiKey, type Authenticator } from '../access/auth.js';
import type { CompletionService } from '../completions.js';
import type { ModelRegistry } from '../model-registry.js';
import { ApiError, toApiError } from '../openai/errors.js';
import type { QuotaTracker } from '../access/quotas.js';
import { BatchRunner } from './batch-runner.js';
import { BatchStore } from './batch-store.js';
import { FileStore } from './file-store.js';
import type { LineExecutor } from './line-pool.js';
import { BatchApi } from './routes.js';

export interface BatchOptions {
  /** Files, batches and their logs live here (`files/`, `batches/`); one server at a time uses it. */
  dataDir: string;
  maxFileBytes: number;
  /** Batch lines in flight at once. */
  concurrency: number;
}

export interface BatchDeps {
  service: CompletionService;
  auth: Authenticator;
  models: ModelRegistry;
  quotas: QuotaTracker;
}

/** Data folders held by this process (a pid file alone cannot tell two servers of one process apart). */
const held = new Set<string>();

/**
 * The batch side of the server: the stores under the data folder, the runner (resumed at start) and the routes.
 * The folder is held with a pid file; a second live server on the same folder answers the batch routes with 503
 * and leaves the folder to the first, since two runners would run the same lines twice.
 */
export class BatchService {
  private constructor(
    readonly api: BatchApi | undefined,
    private readonly runner: BatchRunner | undefined,
    private readonly release: () => void,
    private readonly busyReason: string,
  ) {}

  static open(opts: BatchOptions, deps: BatchDeps): BatchService {
    const dir = resolve(opts.dataDir);
    const holder = lock(dir);
    if (holder) return new BatchService(undefined, undefined, () => {}, `the data folder ${dir} is in use by the server with pid ${holder} (pass --data-dir to give this server its own)`);
    const files = new FileStore(join(dir, 'files'));
    const batches = new BatchStore(join(dir, 'batches'));
    const runner = new BatchRunner({
      store: batches,
      files,
      concurrency: opts.concurrency,
      executorFor: (owner) => serviceExecutor(deps.service, keyNamed(deps.auth, owner)),
      modelProblem: (model) => {
        try {
          deps.models.resolve(model);
          return undefined;
        } catch (e) {
          return toApiError(e).message;
        }
      },
    });
    const api = new BatchApi({ files, batches, runner, maxFileBytes: opts.maxFileBytes, allowBatch: (key) => deps.quotas.allowFeatures(key, ['batch']) });
    return new BatchService(api, runner, () => unlock(dir), '');
  }

  /** Why the batch API is off ('' when it is on). */
  get unavailable(): string {
    return this.busyReason;
  }

  /** The routes, or a 503 when another server holds the data folder. */
  routes(): BatchApi {
    if (!this.api) throw new ApiError(503, `Files and batches are not available on this server: ${this.busyReason}.`, 'batch_unavailable');
    return this.api;
  }

  /** Stops the runner (lines in flight run again after the next start) and frees the data folder. */
  async close(): Promise<void> {
    await this.runner?.close();
    this.release();
  }
}

/** How a batch line runs: the same handler as an interactive request, as its owner, in the engine's batch lane. */
export function serviceExecutor(service: CompletionService, key: ApiKey | ApiError): LineExecutor {
  return async (line, signal) => {
    if (key instanceof ApiError) return { status: key.status, body: key.body };
    let response: object | undefined;
    try {
      const endpoint = line.url === '/v1/chat/completions' ? 'chat' : 'completion';
      await service.handle(endpoint, line.body, key, signal, { chunk: () => {}, complete: (r) => (response = r) }, { lane: 'batch' });
    } catch (e) {
      if (signal.aborted) return undefined;
      const error = toApiError(e);
      return { status: error.status, body: error.body, retryAfterS: Number(error.headers['Retry-After']) || undefined };
    }
    if (response) return { status: 200, body: response };
    if (signal.aborted) return undefined;
    return { status: 500, body: new ApiError(500, 'the generation ended without an answer (stopped by the content filter)', 'generation_stopped').body };
  };
}

/** The key a batch was created with, by name; a key removed since makes its lines fail with 401. */
function keyNamed(auth: Authenticator, name: string): ApiKey | ApiError {
  if (!auth.enabled) return ANONYMOUS;
  return auth.apiKeys.find((k) => k.name === name) ?? new ApiError(401, `The API key '${name}' that created this batch is no longer accepted by this server.`, 'invalid_api_key');
}

/** Takes the folder's pid file; returns the pid of a live server that holds it instead. */
function lock(dir: string): number | undefined {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'server.pid');
  if (held.has(dir)) return process.pid;
  try {
    const pid = Number(readFileSync(file, 'utf8'));
    if (pid && pid !== process.pid && alive(pid)) return pid;
  } catch {
    // No pid file: the folder is free.
  }
  writeFileSync(file, String(process.pid));
  held.add(dir);
  return undefined;
}

function unlock(dir: string): void {
  held.delete(dir);
  rmSync(join(dir, 'server.pid'), { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
