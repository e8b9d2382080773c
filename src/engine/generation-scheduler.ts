import type { BatchCache, DecoderSession } from './decoder-session.js';
import { gatherRows, leftPaddedMask, type RowSelection } from './kv-cache.js';
import type { LogitsProcessor, TokenLogprob } from './logits-processor.js';
import { tokenLogprob } from './logprobs.js';
import type { PrefixCache } from './prefix-cache.js';
import { TokenSampler, type SamplingParams } from './sampling.js';
import type { FinishReason, GenerationEnd } from './streamer.js';

/** Receives one request's tokens as they are sampled. */
export interface TokenSink {
  /**
   * Called with each sampled token that is not a stop token, with its log-probability when the request
   * asked for them; returns true when the request is done (a stop string).
   */
  token(id: number, logprob?: TokenLogprob): boolean;
  /** Called exactly once, when the request leaves the scheduler for any reason. */
  end(end: GenerationEnd): void;
}

export interface GenerationRequest {
  promptIds: readonly number[];
  /** At most this many new tokens; prompt + maxTokens must fit the context. */
  maxTokens: number;
  sampling: SamplingParams;
  /** Tokens that end the generation (EOS); empty to generate exactly maxTokens. */
  stopTokenIds: readonly number[];
  sink: TokenSink;
  /** Aborting it frees the request's slot at the next step. */
  signal?: AbortSignal;
  /** Shapes the logits before sampling (a grammar's token mask). */
  processor?: LogitsProcessor;
  /** Report each token's log-probability with this many alternatives (0: the token's own only). */
  logprobs?: number;
  /** `batch`: waits behind interactive requests and gives its row up to them (see GenerationScheduler.preempt). */
  lane?: Lane;
}

/** Interactive requests go first; batch-lane ones fill the capacity they leave. */
export type Lane = 'interactive' | 'batch';

/**
 * Several completions of one prompt (OpenAI's `n`): the prompt is prefilled once, in the first request's
 * row, and its cache is copied into the others' rows when they join the batch. The requests must share
 * `promptIds`; each has its own sampler, seed, processor and sink.
 */
export type RequestGroup = readonly GenerationRequest[];

export interface SchedulerLimits {
  /** Rows decoded together. */
  maxBatch: number;
  /** Requests waiting for a row; past it, submit throws `queue_full`. */
  maxQueue: number;
  /** Sum of prompt + max tokens over running requests; newcomers wait until they fit. */
  maxTokensTotal: number;
  /** Prompt tokens (padding included) prefilled between two decode steps, so running streams keep a steady pace. */
  prefillChunk: number;
}

export type RejectionCode = 'queue_full' | 'context_length_exceeded' | 'too_many_tokens' | 'empty_prompt' | 'unavailable' | 'unsupported';

/** A request the scheduler refuses up front; the server maps the code to an HTTP status. */
export class EngineRejection extends Error {
  constructor(
    readonly code: RejectionCode,
    message: string,
  ) {
    super(message);
    this.name = 'EngineRejection';
  }
}

/** One request inside the scheduler. */
class Sequence {
  readonly sampler: TokenSampler;
  /** Tokens whose keys/values are in the cache. */
  cached = 0;
  /** The last sampled token, fed at the next decode step. */
  next = -1;
  generated = 0;
  /** The sampled tokens, in order. */
  readonly output: number[] = [];
  finished?: FinishReason;
  /** One of a leader's followers. */
  follower = false;
  private readonly submittedAt = performance.now();
  private lastTokenAt = 0;
  private firstTokenMs?: number;
  private readonly gaps: number[] = [];

  constructor(
    readonly request: GenerationRequest,
    /** Rows that share this one's prompt and are prefilled with it (the rest of an `n` group). */
    readonly followers: Sequence[] = [],
  ) {
    this.sampler = new TokenSampler(request.sampling, request.promptIds);
  }

  get batchLane(): boolean {
    return this.request.lane === 'batch';
  }

  /** A batch-lane row alone in its group can leave the batch and come back (groups share one prefill). */
  get preemptible(): boolean {
    return this.batchLane && !this.followers.length && !this.follower;
  }

  /** What a prefill feeds: the prompt, and for a row that was preempted, the tokens it had sampled (recomputed, as vLLM does). */
  get prefillIds(): readonly number[] {
    return this.output.length ? [...this.request.promptIds, ...this.output] : this.request.promptIds;
  }

  /** Tokens this request (and its followers) may hold at most: what counts against maxTokensTotal. */
  get tokens(): number {
    return (this.request.promptIds.length + this.request.maxTokens) * (1 + this.followers.length);
  }

  /** This row and its followers. */
  get group(): Sequence[] {
    return [this, ...this.followers];
  }

  /** The tokens whose keys/values are in the cache: the prompt, then the output but its last token (not fed yet). */
  get cachedIds(): number[] {
    return [...this.request.promptIds, ...this.output].slice(0, this.cached);
  }

  get cancelled(): boolean {
    return !this.finished && this.request.signal?.aborted === true;
  }

  /** Samples the next token from this row's logits; ends the request on a stop token, a stop string or max tokens. */
  advance(logits: Float32Array): void {
    const { processor, logprobs } = this.request;
    const remaining = this.request.maxTokens - this.generated;
    const token = this.sampler.sample(logits, processor && ((row) => processor.apply(row, remaining)));
    processor?.accept(token);
    const logprob = logprobs === undefined ? undefined : tokenLogprob(logits, token, logprobs);
    const now = performance.now();
    if (this.generated === 0) this.firstTokenMs = now - this.submittedAt;
    else this.gaps.push(now - this.lastTokenAt);
    this.lastTokenAt = now;
    this.generated++;
    this.output.push(token);
    this.next = token;
    const { request } = this;
    if (request.stopTokenIds.includes(token) || request.sink.token(token, logprob)) this.finish('stop');
    else if (this.generated >= request.maxTokens) this.finish('length');
  }

  finish(reason: FinishReason, error?: Error): void {
    if (this.finished) return;
    this.finished = reason;
    this.request.sink.end({
      reason,
      promptTokens: this.request.promptIds.length,
      completionTokens: this.generated,
      timeToFirstTokenMs: this.firstTokenMs,
      interTokenMs: this.gaps,
      error,
    });
  }
}

/** Newcomers prefilled together: their prompts left-padded to one width, fed a chunk of columns per step. */
interface PrefillJob {
  seqs: Sequence[];
  width: number;
  ids: BigInt64Array;
  mask: BigInt64Array;
  positions: BigInt64Array;
  /** Columns prefilled so far. */
  done: number;
  cache: BatchCache;
}

/** The longest gap between two arrivals of one burst of requests (see GenerationScheduler.admit). */
const ADMISSION_WAIT_MS = 10;

/** Newcomers are grouped while padding stays under this share of the group's tokens. */
const MAX_PADDING_SHARE = 0.25;

/**
 * Spare cache columns a running batch gets when its rows are gathered, so that this many decode steps append
 * in place before the next copy. Attention reads the spare columns too (masked), so more is not free.
 */
const SPARE_COLUMNS = 32;

/** Row indices of the sequences still going. */
const liveRows = (seqs: readonly Sequence[]) => seqs.flatMap((s, b) => (s.finished ? [] : [b]));

/** A prefilled job's live rows with their followers: row b of the job's cache once per live member of its group. */
function expandGroups(seqs: readonly Sequence[]): { seqs: Sequence[]; rows: number[] } {
  const out: Sequence[] = [];
  const rows: number[] = [];
  seqs.forEach((leader, b) => {
    for (const s of leader.group) {
      if (s.finished) continue;
      out.push(s);
      rows.push(b);
    }
  });
  return { seqs: out, rows };
}

/**
 * Lets every row's processor get ready for its next token while `step` (the forward pass) runs. A processor
 * that fails ends its own row with the error; the other rows go on.
 */
async function withProcessors<T>(step: Promise<T>, seqs: readonly Sequence[]): Promise<T> {
  const ready = seqs.map(async (s) => {
    if (s.finished || !s.request.processor) return;
    try {
      await s.request.processor.prepare();
    } catch (e) {
      s.finish('error', e as Error);
    }
  });
  const [out] = await Promise.all([step, ...ready]);
  return out;
}

/**
 * Continuous (iteration-level) batching over one decoder. Between two decode steps the scheduler
 * drops finished and cancelled rows, prefills newcomers (grouped by similar length, chunked under a
 * token budget) and merges them into the running batch, with one copy of the cache per change; a
 * decode step then advances every running row by one token. A long generation never blocks a short
 * one: the short one joins at the next step and leaves when it is done.
 */
export class GenerationScheduler {
  private readonly queue: Sequence[] = [];
  private job?: PrefillJob;
  /** Jobs whose prompts are in their cache, waiting to be merged into the running batch. */
  private prefilled: PrefillJob[] = [];
  private running: Sequence[] = [];
  private cache: BatchCache;
  private loop: Promise<void> = Promise.resolve();
  private looping = false;
  /** Batch-lane rows that gave their place to an interactive request, since start. */
  preempted = 0;

  constructor(
    private readonly decoder: DecoderSession,
    readonly limits: SchedulerLimits,
    /** Called after each decode step with the number of rows it advanced (for metrics). */
    private readonly onDecodeStep?: (rows: number) => void,
    /** Finished rows' keys/values, reused by newcomers that start with the same tokens. */
    readonly prefixes?: PrefixCache,
  ) {
    this.cache = decoder.emptyCache(0);
  }

  get contextLength(): number {
    return this.decoder.model.manifest.max_position_embeddings;
  }

  /** Requests waiting for a row. */
  get queueDepth(): number {
    return this.queue.length;
  }

  /** Rows being prefilled or decoded. */
  get batchSize(): number {
    return this.active().length;
  }

  /** Queues a request; its sink hears every token and the end. Throws EngineRejection before queueing. */
  submit(request: GenerationRequest): void {
    this.submitGroup([request]);
  }

  /** Queues several completions of one prompt, prefilled once (see RequestGroup). */
  submitGroup(group: RequestGroup): void {
    const [request] = group;
    if (group.some((r) => r.promptIds !== request.promptIds)) throw new Error('the requests of a group must share promptIds');
    const prompt = request.promptIds.length;
    if (prompt === 0) throw new EngineRejection('empty_prompt', 'the prompt is empty');
    if (prompt + request.maxTokens > this.contextLength) {
      throw new EngineRejection(
        'context_length_exceeded',
        `this model's maximum context length is ${this.contextLength} tokens, but ${prompt + request.maxTokens} were requested (${prompt} in the prompt, ${request.maxTokens} to generate)`,
      );
    }
    const leader = new Sequence(
      request,
      group.slice(1).map((r) => Object.assign(new Sequence(r), { follower: true })),
    );
    if (leader.tokens > this.limits.maxTokensTotal) {
      throw new EngineRejection('too_many_tokens', `(prompt + max_tokens) × n (${leader.tokens}) is over this server's --max-tokens-total (${this.limits.maxTokensTotal})`);
    }
    if (group.length > this.limits.maxBatch) throw new EngineRejection('too_many_tokens', `n (${group.length}) is over this server's --max-batch (${this.limits.maxBatch})`);
    // The batch lane's caller bounds what it queues; maxQueue is the interactive clients' promise.
    const interactive = this.queue.findIndex((s) => s.batchLane);
    const waiting = interactive < 0 ? this.queue.length : interactive;
    if (!leader.batchLane && waiting >= this.limits.maxQueue) throw new EngineRejection('queue_full', `the queue is full (${this.limits.maxQueue} requests waiting)`);
    this.enqueue(leader);
    if (!this.looping) {
      this.looping = true;
      this.loop = this.run();
    }
  }

  /** Interactive requests stand before every batch-lane one; each lane is first come, first served. */
  private enqueue(seq: Sequence, front = false): void {
    const firstBatch = this.queue.findIndex((s) => s.batchLane);
    const at = seq.batchLane ? (front ? (firstBatch < 0 ? this.queue.length : firstBatch) : this.queue.length) : firstBatch < 0 ? this.queue.length : firstBatch;
    this.queue.splice(at, 0, seq);
  }

  /** Resolves when nothing is queued or running. */
  async idle(): Promise<void> {
    while (this.looping) await this.loop;
  }

  private async run(): Promise<void> {
    try {
      // (A batch that one request fills starts at once: the wait would hold the request in the queue for nothing.)
      if (this.queue.length < this.limits.maxBatch) await this.admit();
      while (this.queue.length || this.job || this.running.length) {
        await this.prefill();
        this.rebuild();
        if (this.running.length) await this.decode();
      }
    } finally {
      // Cleared in the same turn as the last check of the queue, so a request submitted after it starts a new loop.
      this.looping = false;
    }
  }

  private active(): Sequence[] {
    return [...this.running, ...[...this.prefilled.flatMap((j) => j.seqs), ...(this.job?.seqs ?? [])].flatMap((s) => s.group)].filter((s) => !s.finished);
  }

  /**
   * Spends one step's prefill budget; jobs whose prompts are now fully in their cache go to `prefilled`. When no
   * row is decoding there is no one to keep waiting, so everything queued that fits the batch is prefilled
   * before the next decode step (still in passes of at most one budget): requests sent together start together,
   * and the batch decodes at full width from its first step.
   */
  private async prefill(): Promise<void> {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (this.queue[i].cancelled) for (const s of this.queue.splice(i, 1)[0].group) s.finish('cancelled');
    }
    this.preempt();
    const decoding = this.running.some((s) => !s.finished);
    const chunk = this.limits.prefillChunk;
    for (let budget = chunk; ; ) {
      // Nobody waits on a decode step: each pass may use a whole budget.
      if (!decoding) budget = chunk;
      const job = (this.job ??= this.nextJob());
      if (!job) {
        // The queue is empty (or what waits does not fit): before the first decode step, wait for stragglers.
        if (decoding || this.queue.length || !this.prefilled.length || !(await this.admit())) break;
        continue;
      }
      const members = job.seqs.flatMap((s) => s.group);
      if (members.every((s) => s.cancelled || s.finished)) {
        for (const s of members) s.finish('cancelled');
        this.job = undefined;
        continue;
      }
      const fits = Math.min(job.width - job.done, Math.floor(budget / job.seqs.length));
      // This step's budget is spent (a job wider than a whole budget still gets one column a step).
      if (fits < 1 && budget < chunk) break;
      const columns = Math.max(1, fits);
      budget -= columns * job.seqs.length;
      try {
        await this.prefillChunk(job, columns);
      } catch (e) {
        for (const s of members) s.finish('error', e as Error);
        this.job = undefined;
        continue;
      }
      if (job.done < job.width) continue;
      this.job = undefined;
      this.prefilled.push(job);
    }
  }

  /**
   * An interactive request at the head of the queue that finds no room takes it from the batch lane: the batch-lane
   * job being prefilled and the batch-lane rows that joined last go back to the queue's batch lane, and resume later from
   * their prompt and the tokens they had sampled (their keys/values kept in the prefix cache when it is on). So an
   * interactive request waits at most for the step in progress, never for a batch line to finish.
   */
  private preempt(): void {
    const head = this.queue[0];
    if (!head || head.batchLane) return;
    const active = this.active();
    let rows = active.length + head.group.length - this.limits.maxBatch;
    let tokens = active.reduce((n, s) => n + s.tokens, 0) + head.tokens - this.limits.maxTokensTotal;
    if (rows <= 0 && tokens <= 0) return;
    const job = this.job?.seqs.every((s) => s.preemptible) ? this.job : undefined;
    const evicted = (job?.seqs ?? []).slice();
    for (const s of evicted) [rows, tokens] = [rows - 1, tokens - s.tokens];
    for (let b = this.running.length - 1; b >= 0 && (rows > 0 || tokens > 0); b--) {
      const s = this.running[b];
      if (s.finished || !s.preemptible) continue;
      evicted.push(s);
      [rows, tokens] = [rows - 1, tokens - s.tokens];
    }
    // Evicting what cannot make room would only throw work away: the head waits for interactive rows to finish.
    if (rows > 0 || tokens > 0) return;
    if (job) this.job = undefined;
    const leaving = new Set(evicted);
    const stays = this.running.flatMap((s, b) => (leaving.has(s) ? [] : [b]));
    if (stays.length < this.running.length) {
      this.remember(this.cache, this.running, (s) => leaving.has(s));
      const kept = stays.map((b) => this.running[b]);
      this.cache = kept.length ? this.regather([{ cache: this.cache, rows: stays }], Math.max(...kept.map((s) => s.cached))) : this.decoder.emptyCache(0);
      this.running = kept;
    }
    for (const s of evicted.reverse()) {
      s.cached = 0;
      this.enqueue(s, true);
    }
    this.preempted += evicted.length;
  }

  /**
   * Waits while requests keep arriving, each within ADMISSION_WAIT_MS of the last, up to a full batch; says
   * whether any did. Requests sent together reach the queue milliseconds apart (and not at all while a pass
   * holds the event loop): waiting for them before a batch's first pass and first decode step prefills them
   * together and starts the batch at full width.
   */
  private async admit(): Promise<boolean> {
    const before = this.queue.length;
    for (let seen = -1; seen !== this.queue.length && this.queue.length + this.active().length < this.limits.maxBatch; ) {
      seen = this.queue.length;
      await new Promise((resolve) => setTimeout(resolve, ADMISSION_WAIT_MS));
    }
    return this.queue.length > before;
  }

  private async prefillChunk(job: PrefillJob, columns: number): Promise<void> {
    const rows = job.seqs.length;
    const ids = new BigInt64Array(rows * columns);
    const positions = new BigInt64Array(rows * columns);
    const mask = new BigInt64Array(rows * (job.done + columns));
    for (let b = 0; b < rows; b++) {
      const from = b * job.width;
      ids.set(job.ids.subarray(from + job.done, from + job.done + columns), b * columns);
      positions.set(job.positions.subarray(from + job.done, from + job.done + columns), b * columns);
      mask.set(job.mask.subarray(from, from + job.done + columns), b * (job.done + columns));
    }
    const last = job.done + columns === job.width;
    const forward = this.decoder.forward(ids, mask, positions, job.cache);
    const step = last
      ? await withProcessors(
          forward,
          job.seqs.flatMap((s) => s.group),
        )
      : await forward;
    job.cache = step.cache;
    job.done += columns;
    if (!last) return;
    const vocab = this.decoder.vocabSize;
    job.seqs.forEach((leader, b) => {
      const row = step.logits.subarray(((b + 1) * step.logitsPositions - 1) * vocab, (b + 1) * step.logitsPositions * vocab);
      for (const s of leader.group) {
        s.cached = s.prefillIds.length;
        // Each member of a group samples from its own copy: sampling edits the logits in place.
        if (!s.cancelled && !s.finished) s.advance(s === leader ? row : row.slice());
      }
    });
  }

  /** Groups the queue's head with later requests of similar length that fit the batch, the budget and the token limit. */
  private nextJob(): PrefillJob | undefined {
    const active = this.active();
    let free = this.limits.maxBatch - active.length;
    let tokens = active.reduce((n, s) => n + s.tokens, 0);
    const head = this.queue[0];
    if (head && free >= head.group.length && tokens + head.tokens <= this.limits.maxTokensTotal) {
      const reused = this.prefixes?.lookup(head.prefillIds);
      if (reused) return this.newJob([this.queue.shift()!], head.prefillIds.length, reused);
    }
    const seqs: Sequence[] = [];
    let width = 0;
    let real = 0;
    for (let i = 0; i < this.queue.length && free > 0; ) {
      const s = this.queue[i];
      const n = s.prefillIds.length;
      const w = Math.max(width, n);
      const fitsTokens = tokens + s.tokens <= this.limits.maxTokensTotal && s.group.length <= free;
      const padded = w * (seqs.length + 1);
      const fitsGroup = seqs.length === 0 || (padded <= this.limits.prefillChunk && padded <= (real + n) * (1 + MAX_PADDING_SHARE));
      if (!fitsTokens && seqs.length === 0) break; // the head waits for room; nobody overtakes it
      if (fitsTokens && fitsGroup) {
        seqs.push(...this.queue.splice(i, 1));
        tokens += s.tokens;
        width = w;
        real += n;
        free -= s.group.length;
      } else i++;
    }
    return seqs.length ? this.newJob(seqs, width) : undefined;
  }

  /** A prefill job for prompts left-padded to `width`; a reused prefix (one row) is already in its cache. */
  private newJob(seqs: Sequence[], width: number, reused?: { length: number; cache: BatchCache }): PrefillJob {
    const ids = new BigInt64Array(seqs.length * width);
    const mask = new BigInt64Array(seqs.length * width);
    const positions = new BigInt64Array(seqs.length * width);
    seqs.forEach((s, b) => {
      const prompt = s.prefillIds;
      const pad = width - prompt.length;
      prompt.forEach((t, i) => {
        ids[b * width + pad + i] = BigInt(t);
        mask[b * width + pad + i] = 1n;
        positions[b * width + pad + i] = BigInt(i);
      });
    });
    return { seqs, width, ids, mask, positions, done: reused?.length ?? 0, cache: reused?.cache ?? this.decoder.emptyCache(seqs.length) };
  }

  /** Drops finished and cancelled rows and merges newcomers: one copy of the cache, trimmed to the longest row. */
  private rebuild(): void {
    const joining = this.prefilled;
    this.prefilled = [];
    for (const s of [...this.running, ...joining.flatMap((j) => j.seqs.flatMap((l) => l.group))]) if (s.cancelled) s.finish('cancelled');
    this.remember(this.cache, this.running);
    for (const job of joining) this.remember(job.cache, job.seqs);
    const keep = liveRows(this.running);
    const newcomers = joining.map((job) => ({ job, ...expandGroups(job.seqs) }));
    if (keep.length === this.running.length && newcomers.every((n) => !n.rows.length)) return;
    const seqs = [...keep.map((b) => this.running[b]), ...newcomers.flatMap((n) => n.seqs)];
    this.running = seqs;
    if (!seqs.length) {
      this.cache = this.decoder.emptyCache(0);
      return;
    }
    const selections = [{ cache: this.cache, rows: keep }, ...newcomers.map(({ job, rows }) => ({ cache: job.cache, rows }))];
    this.cache = this.regather(
      selections.filter((s) => s.rows.length),
      Math.max(...seqs.map((s) => s.cached)),
    );
  }

  /** Hands the rows that finished (not with an error), or the chosen ones, to the prefix cache before their cache is dropped. */
  private remember(cache: BatchCache, seqs: readonly Sequence[], chosen = (s: Sequence) => s.finished !== undefined && s.finished !== 'error'): void {
    if (!this.prefixes) return;
    seqs.forEach((s, b) => {
      if (!chosen(s) || !s.cached) return;
      const { num_kv_heads: kvHeads, head_dim: headDim } = this.decoder.model.manifest;
      this.prefixes!.store(s.cachedIds, gatherRows([{ cache, rows: [b] }], s.cached, kvHeads, headDim));
    });
  }

  /** One copy of the chosen rows into a new cache, with spare columns where decode steps append in place. */
  private regather(selections: RowSelection[], length: number): BatchCache {
    const { num_kv_heads: kvHeads, head_dim: headDim } = this.decoder.model.manifest;
    return gatherRows(selections, length, kvHeads, headDim, length + SPARE_COLUMNS);
  }

  private async decode(): Promise<void> {
    const rows = this.running;
    const ids = BigInt64Array.from(rows, (s) => BigInt(s.next));
    const positions = BigInt64Array.from(rows, (s) => BigInt(s.cached));
    if ((this.cache.capacity ?? this.cache.length) <= this.cache.length) {
      this.cache = this.regather([{ cache: this.cache, rows: rows.map((_, b) => b) }], this.cache.length);
    }
    const mask = leftPaddedMask(
      rows.map((s) => s.cached),
      this.cache.length,
      1,
      this.cache.capacity,
    );
    let step;
    try {
      step = await withProcessors(this.decoder.decodeInPlace(ids, mask, positions, this.cache), rows);
    } catch (e) {
      for (const s of rows) s.finish('error', e as Error);
      this.running = [];
      this.cache = this.decoder.emptyCache(0);
      return;
    }
    this.cache = step.cache;
    const vocab = this.decoder.vocabSize;
    rows.forEach((s, b) => {
      s.cached++;
      if (!s.finished) s.advance(step.logits.subarray(b * vocab, (b + 1) * vocab));
    });
    this.onDecodeStep?.(rows.length);
  }
}
