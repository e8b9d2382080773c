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
  /** Files, batches and their logs live here (`files/`, `batches/`); servers may share it. */
  dataDir: string;
  maxFileBytes: number;
  /** Batch lines in flight at once. */
  concurrency: number;
  /** A batch's lease (see BatchLease); default 10 s. */
  leaseMs?: number;
}

export interface BatchDeps {
  service: CompletionService;
  auth: Authenticator;
  models: ModelRegistry;
  quotas: QuotaTracker;
}

/**
 * The batch side of the server: the stores under the data folder, the runner (which resumes unfinished batches) and
 * the routes. Several servers may share one data folder: each batch runs on one of them at a time (BatchLease).
 */
export class BatchService {
  private constructor(
    readonly api: BatchApi,
    private readonly runner: BatchRunner,
  ) {}

  static open(opts: BatchOptions, deps: BatchDeps): BatchService {
    const dir = resolve(opts.dataDir);
    const files = new FileStore(join(dir, 'files'));
    const batches = new BatchStore(join(dir, 'batches'));
    const runner = new BatchRunner({
      store: batches,
      files,
      concurrency: opts.concurrency,
      leaseMs: opts.leaseMs,
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
    return new BatchService(api, runner);
  }

  routes(): BatchApi {
    return this.api;
  }

  /** Stops the runner: lines in flight run again after the next start, or on another server of the folder. */
  async close(): Promise<void> {
    await this.runner.close();
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
