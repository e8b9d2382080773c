import { existsSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../../shared/atomic.js';
import { BatchLease, leaseHolder } from './batch-lease.js';
import { ApiError } from '../openai/errors.js';
import type { BatchRecord, BatchStore } from './batch-store.js';
import type { FileStore } from './file-store.js';
import { readInputFile } from './input-file.js';
import { lineUsage, runLines, type LineExecutor } from './line-pool.js';
import { COMPLETION_WINDOW_S, newId, type BatchLine, type BatchObject, type BatchStatus, type ResultLine } from './objects.js';
import { readResults, ResultLog } from './result-log.js';

export interface BatchRunnerDeps {
  store: BatchStore;
  files: FileStore;
  /** How lines of a batch created by `owner` run (as that API key). */
  executorFor(owner: string): LineExecutor;
  /** Why a model named in a line cannot be served, if it cannot. */
  modelProblem(model: string): string | undefined;
  /** Lines in flight at once: enough to keep the engine's batch full behind interactive traffic. */
  concurrency: number;
  /** How long a batch's lease lasts unless renewed (see BatchLease): how soon another server takes over from a dead one. */
  leaseMs?: number;
  now?: () => number;
}

/** Why a running batch stopped early ('lost': another server took its lease over). */
type StopReason = 'cancel' | 'expire' | 'shutdown' | 'lost';

const DEFAULT_LEASE_MS = 10_000;

/** State changes are written at least this often while lines finish (the logs are the record; this is for polling). */
const SAVE_EVERY_MS = 500;

/**
 * How often a running batch compares the wall clock with its `expires_at`. One timer for the whole window would run
 * on the monotonic clock, which stands still while the host is suspended and does not follow the clock when it is
 * set forward: the batch would outlive the window its owner was promised.
 */
const EXPIRY_CHECK_MS = 1000;

/**
 * Runs batches one after another, oldest first, through OpenAI's states: validating (the input file checked line by
 * line) → in_progress (lines run; each finished one appended to the output or error log) → finalizing (the logs
 * become files) → completed, or failed (validation), expired (past the completion window), cancelling → cancelled.
 * After a restart, every batch that was not finished carries on from its logs. Servers sharing a data folder each
 * run a batch only under its lease (BatchLease), and look for batches nobody holds (new, or their server died)
 * every half lease: each batch runs on one server at a time, and a dead server's batches go on elsewhere.
 */
export class BatchRunner {
  private readonly queue: string[] = [];
  private readonly stops = new Map<string, AbortController>();
  private pumping?: Promise<void>;
  private closed = false;
  /** This server among those that share the folder. */
  private readonly holder = leaseHolder();
  private readonly leaseMs: number;
  private readonly scan: NodeJS.Timeout;

  constructor(private readonly deps: BatchRunnerDeps) {
    this.leaseMs = deps.leaseMs ?? DEFAULT_LEASE_MS;
    this.findUnheld();
    this.scan = setInterval(() => this.findUnheld(), this.leaseMs / 2).unref();
  }

  /** Queues the unfinished batches that no server holds. */
  private findUnheld(): void {
    for (const record of this.deps.store.all()) {
      const { id, status } = record.batch;
      if (!isFinal(status) && !this.queue.includes(id) && BatchLease.free(this.deps.store.dir, id)) this.queue.push(id);
    }
    this.pump();
  }

  async create(owner: string, request: { input_file_id: string; endpoint: BatchObject['endpoint']; completion_window: string; metadata?: Record<string, string> | null }): Promise<BatchObject> {
    const input = this.deps.files.get(owner, request.input_file_id);
    if (input.purpose !== 'batch') throw new ApiError(400, `File ${input.id} has purpose '${input.purpose}': upload the batch's input with purpose 'batch'.`, 'invalid_file_purpose', 'input_file_id');
    const created = this.now();
    const record: BatchRecord = {
      owner,
      createdMs: Date.now(),
      outputFileId: newId('file-'),
      errorFileId: newId('file-'),
      batch: {
        id: newId('batch_'),
        object: 'batch',
        endpoint: request.endpoint,
        errors: null,
        input_file_id: input.id,
        completion_window: request.completion_window,
        status: 'validating',
        output_file_id: null,
        error_file_id: null,
        created_at: created,
        in_progress_at: null,
        expires_at: created + COMPLETION_WINDOW_S,
        finalizing_at: null,
        completed_at: null,
        failed_at: null,
        expired_at: null,
        cancelling_at: null,
        cancelled_at: null,
        request_counts: { total: 0, completed: 0, failed: 0 },
        usage: { input_tokens: 0, output_tokens: 0, total_tokens: 0 },
        metadata: request.metadata ?? null,
      },
    };
    await this.deps.store.save(record);
    this.queue.push(record.batch.id);
    this.pump();
    // As it is now: the runner moves on to validating at once.
    return structuredClone(record.batch);
  }

  /**
   * Moves a batch to cancelling; lines in flight stop at the engine's next step, finished ones stay in its output.
   * A batch this server does not run gets a cancel marker, which the server that runs it (or takes it next) acts on.
   */
  async cancel(owner: string, id: string): Promise<BatchObject> {
    const record = this.deps.store.get(id, owner);
    const { status } = record.batch;
    if (status === 'cancelling' || status === 'cancelled') return record.batch;
    if (status !== 'validating' && status !== 'in_progress') throw new ApiError(400, `Cannot cancel a batch with status '${status}'.`, 'batch_not_cancellable', 'batch_id');
    if (!this.stops.has(id)) {
      await writeFileAtomic(this.deps.store.cancelPath(id), String(this.now()));
      return structuredClone(this.deps.store.get(id).batch);
    }
    await this.setStatus(record, 'cancelling');
    this.stops.get(id)?.abort('cancel' satisfies StopReason);
    return structuredClone(record.batch);
  }

  /** Stops taking lines and abandons those in flight (they run again after a restart, or on another server); resolves when nothing runs. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.scan);
    for (const stop of this.stops.values()) stop.abort('shutdown' satisfies StopReason);
    await this.pumping;
  }

  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = (async () => {
      // Not in this turn: the promise must be in `pumping` before its end clears it.
      await Promise.resolve();
      try {
        while (this.queue.length && !this.closed) await this.processLeased(this.queue[0]);
      } finally {
        this.pumping = undefined;
      }
      if (this.queue.length && !this.closed) this.pump();
    })();
  }

  /**
   * Runs a batch if this server gets its lease (another may have taken it since it was queued), renewing the lease
   * while it runs and acting on a cancel marker; gives the lease up when done or shutting down.
   */
  private async processLeased(id: string): Promise<void> {
    const { store } = this.deps;
    const lease = BatchLease.take(store.dir, id, this.holder, this.leaseMs);
    if (!lease) return void this.queue.shift();
    const record = store.open(id);
    // Finished by the server that held it between this one's look at the folder and now.
    if (isFinal(record.batch.status)) {
      store.close(id);
      lease.release();
      return void this.queue.shift();
    }
    const renew = setInterval(() => void this.renew(lease, record).catch(() => {}), this.leaseMs / 3);
    try {
      if (existsSync(store.cancelPath(id)) && (record.batch.status === 'validating' || record.batch.status === 'in_progress')) await this.setStatus(record, 'cancelling');
      await this.process(record, lease);
    } finally {
      clearInterval(renew);
      store.close(id);
      lease.release();
    }
  }

  /** Keeps the lease of a running batch; stops it when another server took it over, cancels it when asked elsewhere. */
  private async renew(lease: BatchLease, record: BatchRecord): Promise<void> {
    const { id } = record.batch;
    if (!(await lease.renew())) this.stops.get(id)?.abort('lost' satisfies StopReason);
    else if (this.stops.has(id) && existsSync(this.deps.store.cancelPath(id))) await this.cancel(record.owner, id);
  }

  private async process(record: BatchRecord, lease: BatchLease): Promise<void> {
    try {
      const { status } = record.batch;
      if (status === 'finalizing') await this.finalize(record, record.final ?? 'completed');
      else if (status === 'cancelling' && !this.stops.has(record.batch.id)) await this.finalize(record, 'cancelled');
      else {
        const lines = status === 'validating' ? await this.validate(record) : this.readLines(record);
        if (lines) await this.runBatch(record, lines, lease);
      }
    } catch (e) {
      // A broken record (its input file gone from disk) fails alone; the server and the other batches go on.
      record.batch.errors = { object: 'list', data: [{ code: 'internal_error', message: (e as Error).message, param: null, line: null }] };
      await this.setStatus(record, 'failed');
    }
    if (!this.closed) this.queue.shift();
  }

  /** Checks every line; a batch with any problem fails with the list of them, as OpenAI's does. */
  private async validate(record: BatchRecord): Promise<BatchLine[] | undefined> {
    const { batch } = record;
    const text = this.deps.files.read(record.owner, batch.input_file_id).toString('utf8');
    const { lines, errors } = readInputFile(text, { endpoint: batch.endpoint, modelProblem: this.deps.modelProblem });
    if (errors.length) {
      batch.errors = { object: 'list', data: errors };
      await this.setStatus(record, 'failed');
      return undefined;
    }
    batch.request_counts.total = lines.length;
    await this.setStatus(record, 'in_progress');
    return lines;
  }

  /** A batch that was validated before a restart: its lines as they were (a model unloaded since fails its lines alone). */
  private readLines(record: BatchRecord): BatchLine[] {
    const text = this.deps.files.read(record.owner, record.batch.input_file_id).toString('utf8');
    return readInputFile(text, { endpoint: record.batch.endpoint, modelProblem: () => undefined }).lines;
  }

  private async runBatch(record: BatchRecord, lines: BatchLine[], lease: BatchLease): Promise<void> {
    const { batch } = record;
    const output = ResultLog.open(this.deps.store.logPath(batch.id, 'output'));
    const errors = ResultLog.open(this.deps.store.logPath(batch.id, 'errors'));
    const stop = new AbortController();
    this.stops.set(batch.id, stop);
    if (batch.status === 'cancelling') stop.abort('cancel' satisfies StopReason);
    const expireDue = () => this.now() >= batch.expires_at && stop.abort('expire' satisfies StopReason);
    expireDue();
    const expiry = setInterval(expireDue, EXPIRY_CHECK_MS);
    let saved = Date.now();
    try {
      await runLines({
        lines: lines.filter((l) => !output.done.has(l.custom_id) && !errors.done.has(l.custom_id)),
        execute: this.deps.executorFor(record.owner),
        concurrency: this.deps.concurrency,
        signal: stop.signal,
        record: (_line, result, ok) => {
          // Another server took the batch over (this one was stalled past its lease): the line is its to write.
          if (stop.signal.aborted && stop.signal.reason === 'lost') return;
          if (!lease.held()) return stop.abort('lost' satisfies StopReason);
          (ok ? output : errors).append(result);
          // (A finished line is kept; the window is checked before the next one starts.)
          expireDue();
          batch.request_counts = { ...batch.request_counts, completed: output.count, failed: errors.count };
          if (ok) addUsage(batch, result);
          if (Date.now() - saved >= SAVE_EVERY_MS) {
            saved = Date.now();
            void this.deps.store.save(record);
          }
        },
      });
      const reason = stop.signal.aborted ? (stop.signal.reason as StopReason) : undefined;
      if (reason === 'lost') return;
      if (reason === 'shutdown') return void (await this.deps.store.save(record));
      if (reason === 'expire') expireRest(lines, output, errors);
      output.close();
      errors.close();
      await this.finalize(record, reason === 'cancel' ? 'cancelled' : reason === 'expire' ? 'expired' : 'completed');
    } finally {
      clearInterval(expiry);
      this.stops.delete(batch.id);
      output.close();
      errors.close();
    }
  }

  /**
   * The logs become the output and error files. Their ids were chosen at creation and the target state is saved
   * before any file moves, so a crash anywhere in here is finished the same way after the restart; the counts come
   * from the files as they end up.
   */
  private async finalize(record: BatchRecord, final: 'completed' | 'cancelled' | 'expired'): Promise<void> {
    const { batch } = record;
    record.final = final;
    if (final !== 'cancelled') await this.setStatus(record, 'finalizing');
    else await this.deps.store.save(record);
    const files = [
      { which: 'output' as const, id: record.outputFileId, name: 'batch_output.jsonl', field: 'output_file_id' as const },
      { which: 'errors' as const, id: record.errorFileId, name: 'batch_errors.jsonl', field: 'error_file_id' as const },
    ];
    const results = { output: [] as ResultLine[], errors: [] as ResultLine[] };
    for (const { which, id, name, field } of files) {
      const log = this.deps.store.logPath(batch.id, which);
      if (!this.deps.files.has(id)) {
        if (!readResults(log).results.length) continue;
        await this.deps.files.adopt(record.owner, id, `${batch.id}_${name}`, log);
      }
      results[which] = readResults(this.deps.files.dataPath(id)).results;
      batch[field] = id;
    }
    batch.request_counts = { total: batch.request_counts.total, completed: results.output.length, failed: results.errors.length };
    batch.usage = { input_tokens: 0, output_tokens: 0, total_tokens: 0 };
    for (const r of results.output) addUsage(batch, r);
    await this.setStatus(record, final);
    rmSync(this.deps.store.batchDir(batch.id), { recursive: true, force: true });
    rmSync(this.deps.store.cancelPath(batch.id), { force: true });
  }

  private async setStatus(record: BatchRecord, status: BatchStatus): Promise<void> {
    record.batch.status = status;
    if (status !== 'validating') record.batch[`${status}_at`] = this.now();
    await this.deps.store.save(record);
  }

  private now(): number {
    return (this.deps.now ?? (() => Math.floor(Date.now() / 1000)))();
  }
}

/** Lines a batch past its window never ran: each gets an error line, as OpenAI writes them. */
function expireRest(lines: readonly BatchLine[], output: ResultLog, errors: ResultLog): void {
  for (const line of lines) {
    if (output.done.has(line.custom_id) || errors.done.has(line.custom_id)) continue;
    errors.append({
      id: newId('batch_req_'),
      custom_id: line.custom_id,
      response: null,
      error: { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' },
    });
  }
}

function addUsage(batch: BatchObject, result: ResultLine): void {
  const { input, output } = lineUsage(result);
  batch.usage.input_tokens += input;
  batch.usage.output_tokens += output;
  batch.usage.total_tokens += input + output;
}

function isFinal(status: BatchStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'expired' || status === 'cancelled';
}
