import { decodeInputs, leftPaddedPrompts, promptColumns, type StepInputs } from './batch-inputs.js';
import { fits, groupForPrefill, planEviction, PrefillBudget, type BatchUse } from './batch-plan.js';
import type { BatchCache, DecoderSession, RowAdapters } from './decoder-session.js';
import type { Drafter } from './drafter.js';
import { awaitBurst, checkAdmission, enqueue, groupLeader, type SchedulerLimits } from './admission.js';
import { gatherRows, regroupInPlace, restrideInPlace, type RowPlacement, type RowSelection } from './kv-cache.js';
import { RunInterrupted } from './onnx-runtime.js';
import type { PrefixCache } from './prefix-cache.js';
import type { RequestGroup, Sequence } from './sequence.js';
import { withProcessors } from './step-processors.js';
import { DEFAULT_STEP_TIMEOUT_MS, StepTimeout, StepWatchdog, type WatchdogEvent } from './step-watchdog.js';

/**
 * What the scheduler runs its steps on: a prefill pass (`forward`, new columns over a cache) and a decode step
 * (`decodeInPlace`, one token a row, or a row's last token and its drafted ones). DecoderSession is the one;
 * another runtime plugs in here. Which rows run, how many columns, and who waits is decided in batch-plan.ts.
 */
export type StepDecoder = Pick<DecoderSession, 'model' | 'vocabSize' | 'emptyCache' | 'forward' | 'decodeInPlace'>;

/** Newcomers prefilled together: their prompts left-padded to one width, fed a chunk of columns per step. */
interface PrefillJob {
  seqs: Sequence[];
  width: number;
  prompts: StepInputs;
  /** Columns prefilled so far. */
  done: number;
  cache: BatchCache;
}

/** The longest a step waits for an interactive request being read and prepared (see GenerationScheduler.arriving). */
const ARRIVAL_WAIT_MS = 25;

/**
 * Spare cache columns a running batch gets when it needs more, so that this many decode steps append in place
 * before the next change of stride. Attention reads the spare columns too (masked): on the CPU a masked column
 * costs about as much as a real one (100m, 16 rows: 245 ms a step at 128 columns, 450 ms at 640), so the cache
 * grows as its longest row does rather than to where its rows may end.
 */
const SPARE_COLUMNS = 32;

/** Spare columns past which a running cache is narrowed (its longest rows left): a few steps' masked work pays for the move. */
const NARROW_AFTER = 4 * SPARE_COLUMNS;

/** Each row's LoRA adapter, or undefined when no row has one. */
function adaptersOf(seqs: readonly Sequence[]): RowAdapters | undefined {
  return seqs.some((s) => s.request.adapter) ? seqs.map((s) => s.request.adapter) : undefined;
}

/** Row indices of the sequences still going. */
const liveRows = (seqs: readonly Sequence[]) => seqs.flatMap((s, b) => (s.finished || s.parked ? [] : [b]));

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

/** Runs one row's part of a step; a throw there (sampling, the row's processor, its client's sink) ends that row alone. */
function alone(s: Sequence, part: () => void): void {
  try {
    part();
  } catch (e) {
    s.finish('error', e as Error);
  }
}

/**
 * Continuous (iteration-level) batching over one decoder. Between two decode steps the scheduler
 * drops finished and cancelled rows, prefills newcomers (grouped by similar length, chunked under a
 * token budget) and merges them into the running batch, with one copy of the cache per change; a
 * decode step then advances every running row by one token. A long generation never blocks a short
 * one: the short one joins at the next step and leaves when it is done. The choices are batch-plan.ts's;
 * the tensors they need are built in batch-inputs.ts; this class keeps the state and runs the steps.
 */
export class GenerationScheduler {
  private readonly queue: Sequence[] = [];
  private job?: PrefillJob;
  /** A batch-lane job set aside, its progress kept, while an interactive request that arrived during it is prefilled. */
  private aside?: PrefillJob;
  /** Jobs whose prompts are in their cache, waiting to be merged into the running batch. */
  private prefilled: PrefillJob[] = [];
  private running: Sequence[] = [];
  private cache: BatchCache;
  private loop: Promise<void> = Promise.resolve();
  private looping = false;
  /** Batch-lane rows that gave their place to an interactive request, since start. */
  preempted = 0;
  /** Changes of the running batch made in its cache's own arrays, and full copies of it (regather), since start. */
  readonly cacheChanges = { inPlace: 0, copies: 0 };
  /** Interactive requests announced (arriving) and not queued yet. */
  private arrivals = 0;
  /** Stops the pass in progress when it serves the batch lane alone (see interruptBatchLane). */
  private interruptible?: AbortController;
  /** Batch-lane passes stopped for an interactive request, since start. */
  interrupted = 0;

  constructor(
    private readonly decoder: StepDecoder,
    readonly limits: SchedulerLimits,
    /** Called after each decode step with the number of rows it advanced (for metrics). */
    private readonly onDecodeStep?: (rows: number) => void,
    /** Finished rows' keys/values, reused by newcomers that start with the same tokens. */
    readonly prefixes?: PrefixCache,
    /** Proposes tokens that each decode step verifies along with its own (speculative decoding). */
    readonly drafter?: Drafter,
    /** Hears of steps or batches that got stuck, and of the recovery (for the server's log). */
    onWatchdog?: (event: WatchdogEvent) => void,
  ) {
    this.cache = decoder.emptyCache(0);
    this.watchdog = new StepWatchdog(limits.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS, onWatchdog);
  }

  /** Bounds each step; says whether the engine is stuck (see StepWatchdog). */
  readonly watchdog: StepWatchdog;
  /** When the loop last went round (or started): a batch with work that does not go round for long is stuck. */
  private progressAt = performance.now();
  private progressCheck?: NodeJS.Timeout;

  /** Tokens drafted and accepted since start, and the passes that verified any (all 0 without a drafter). */
  readonly drafts = { proposed: 0, accepted: 0, passes: 0 };

  /** The draft counters when this scheduler drafts (for /metrics), else undefined. */
  get speculation(): { proposed: number; accepted: number; passes: number } | undefined {
    return this.drafter && this.drafts;
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
  submit(request: RequestGroup[number]): void {
    this.submitGroup([request]);
  }

  /** Queues several completions of one prompt, prefilled once (see RequestGroup). */
  submitGroup(group: RequestGroup): void {
    const leader = groupLeader(group, this.contextLength, this.drafter?.costPerToken);
    checkAdmission(leader, this.queue, this.limits);
    enqueue(this.queue, leader);
    if (!leader.batchLane) this.interruptBatchLane();
    this.startLoop();
  }

  private startLoop(): void {
    if (this.looping) return;
    this.looping = true;
    this.progressAt = performance.now();
    this.loop = this.run();
    this.progressCheck ??= setInterval(() => this.checkProgress(), this.watchdog.limitMs / 4).unref();
  }

  /**
   * The backstop behind the steps' own bounds: a loop that has not gone round for twice the step limit while
   * requests wait is stuck somewhere no step bound covers. Everything it holds is failed (the loop, if it ever
   * comes back, drops finished rows), so no client waits forever, and /ready says so until a step completes.
   */
  private checkProgress(): void {
    if (!this.looping) {
      clearInterval(this.progressCheck);
      this.progressCheck = undefined;
      return;
    }
    const stalledMs = performance.now() - this.progressAt;
    if (stalledMs < 2 * this.watchdog.limitMs) return;
    this.progressAt = performance.now();
    const error = this.watchdog.timeout(`the batch made no progress for ${Math.round(stalledMs / 1000)} s`);
    this.watchdog.stuckOn(error, this.failEverything(error));
  }

  /** Ends every queued, prefilling and running request with `error`; returns how many. */
  private failEverything(error: Error): number {
    const all = [...this.queue.splice(0).flatMap((s) => s.group), ...this.active()];
    for (const s of all) s.finish('error', error);
    return all.length;
  }

  /** After a fault: no job, no rows, an empty cache (queued requests were failed with the rest). */
  private reset(): void {
    this.job = undefined;
    this.aside = undefined;
    this.prefilled = [];
    this.running = [];
    this.cache = this.decoder.emptyCache(0);
  }

  /**
   * Announces an interactive request that is being read and prepared; call the result once it is queued (or refused).
   * A step holds the event loop for its whole length (ONNX Runtime runs on the main thread), and reading a request
   * takes a few turns of the loop: behind a batch, each turn would cost a full-width step. So while one is announced,
   * the next step waits for it (at most ARRIVAL_WAIT_MS), and the request is prefilled before that step instead of after several.
   */
  arriving(): () => void {
    this.arrivals++;
    this.interruptBatchLane();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.arrivals--;
    };
  }

  /**
   * An interactive request goes before the pass in progress when that pass serves the batch lane alone: ONNX Runtime
   * stops it before its next node (llmkit's binding; on onnxruntime-node it runs to its end), and the batch runs it
   * again after the request's own prefill. Its rows lose what the pass had done, at most one pass per arrival; an
   * interactive request waits for no batch-lane pass, only for a step with interactive rows in it.
   */
  private interruptBatchLane(): void {
    this.interruptible?.abort();
  }

  /** The signal that stops a pass over `seqs` for an interactive arrival, when all of them are batch lane. */
  private interruptibleFor(seqs: readonly Sequence[]): AbortSignal | undefined {
    this.interruptible = seqs.every((s) => s.batchLane) ? new AbortController() : undefined;
    return this.interruptible?.signal;
  }

  /** Lets announced interactive requests reach the queue before a step, when batch-lane rows would make them wait. */
  private async awaitArrivals(): Promise<void> {
    if (!this.arrivals || !this.active().some((s) => s.batchLane)) return;
    for (const until = performance.now() + ARRIVAL_WAIT_MS; this.arrivals > 0 && performance.now() < until; ) await new Promise((r) => setImmediate(r));
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
        this.progressAt = performance.now();
        // (Only then: an await here would let a request submitted right after this loop started wait in the queue.)
        if (this.arrivals) await this.awaitArrivals();
        await this.prefill();
        this.rebuild();
        if (this.running.length) await this.decode();
      }
    } catch (e) {
      // A fault outside any one row (a bug in a step's bookkeeping): every request here ends with it, and the
      // scheduler starts afresh, rather than leave them waiting with no loop to serve them.
      const failed = this.failEverything(e as Error);
      this.reset();
      this.watchdog.failed(e as Error, failed);
    } finally {
      // Cleared in the same turn as the last check of the queue, so a request submitted after it starts a new loop.
      this.looping = false;
    }
  }

  private active(): Sequence[] {
    const jobs = [...this.prefilled, ...(this.job ? [this.job] : []), ...(this.aside ? [this.aside] : [])];
    return [...this.running, ...jobs.flatMap((j) => j.seqs.flatMap((s) => s.group))].filter((s) => !s.finished && !s.parked);
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
    const budget = new PrefillBudget(
      this.limits.prefillChunk,
      this.running.some((s) => !s.finished),
    );
    for (;;) {
      if (this.arrivals) await this.awaitArrivals();
      this.interactiveFirst();
      const job = (this.job ??= this.pickJob());
      if (!job) {
        // The queue is empty (or what waits does not fit): before the first decode step, wait for stragglers.
        if (budget.decoding || this.queue.length || !this.prefilled.length || !(await this.admit())) return;
        continue;
      }
      const members = job.seqs.flatMap((s) => s.group);
      if (members.every((s) => s.cancelled || s.finished)) {
        for (const s of members) s.finish('cancelled');
        this.job = undefined;
        continue;
      }
      const columns = budget.take(job.width - job.done, job.seqs.length);
      if (!columns) return;
      await this.prefillPass(job, columns);
    }
  }

  /**
   * An interactive request at the queue's head goes before the batch-lane job being prefilled (its pass was
   * interrupted, see interruptBatchLane): the job gives its rows up when the request needs them (preempt), else it
   * waits aside with what it has done and resumes after the request's prefill (pickJob).
   */
  private interactiveFirst(): void {
    const head = this.queue[0];
    if (!head || head.batchLane || !this.job?.seqs.every((s) => s.batchLane)) return;
    this.preempt();
    if (!this.job || this.aside) return;
    this.aside = this.job;
    this.job = undefined;
  }

  /** The job to prefill next: a job set aside resumes unless an interactive request waits; else a new one (nextJob). */
  private pickJob(): PrefillJob | undefined {
    const aside = this.aside;
    if (aside && !(this.queue[0] && !this.queue[0].batchLane)) {
      this.aside = undefined;
      return aside;
    }
    const job = this.nextJob();
    if (job || !aside) return job;
    this.aside = undefined;
    return aside;
  }

  /** Prefills `columns` more of a job's prompts; a job whose prompts are all in its cache goes to `prefilled`, one that failed ends. */
  private async prefillPass(job: PrefillJob, columns: number): Promise<void> {
    try {
      await this.prefillChunk(job, columns);
    } catch (e) {
      if (e instanceof RunInterrupted) {
        this.interrupted++;
        return;
      }
      const members = job.seqs.flatMap((l) => l.group);
      for (const s of members) s.finish('error', e as Error);
      if (e instanceof StepTimeout) this.watchdog.stuckOn(e, members.length);
      this.job = undefined;
      return;
    }
    if (job.done < job.width) return;
    this.job = undefined;
    this.prefilled.push(job);
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
    const asRow = (s: Sequence) => ({ live: !s.finished && !s.parked, preemptible: s.preemptible, tokens: s.tokens });
    const plan = planEviction({ rows: head.group.length, tokens: head.tokens }, this.use(), this.limits, this.job?.seqs.map(asRow), this.running.map(asRow));
    if (!plan) return;
    const fromJob = plan.job ? this.job!.seqs : [];
    if (plan.job) this.job = undefined;
    for (const s of [...fromJob].reverse()) {
      s.cached = 0;
      enqueue(this.queue, s, true);
    }
    // Rows leave in the next rebuild's copy of the cache, the one that merges the newcomer: no copy before its first token.
    for (const b of plan.running) this.running[b].parked = true;
    this.preempted += fromJob.length + plan.running.length;
  }

  /** Rows and tokens held by what is being prefilled or decoded. */
  private use(): BatchUse {
    const active = this.active();
    return { rows: active.length, tokens: active.reduce((n, s) => n + s.tokens, 0) };
  }

  /** Waits for a burst of requests, up to a full batch (awaitBurst). */
  private admit(): Promise<boolean> {
    return awaitBurst(
      () => this.queue.length,
      () => this.limits.maxBatch - this.active().length,
    );
  }

  private async prefillChunk(job: PrefillJob, columns: number): Promise<void> {
    const { ids, mask, positions } = promptColumns(job.prompts, job.seqs.length, job.width, job.done, columns);
    const last = job.done + columns === job.width;
    const forward = this.decoder.forward(ids, mask, positions, job.cache, adaptersOf(job.seqs), this.interruptibleFor(job.seqs));
    const step = await this.watchdog
      .guard(
        'prefill pass',
        last
          ? withProcessors(
              forward,
              job.seqs.flatMap((s) => s.group),
            )
          : forward,
      )
      .finally(() => (this.interruptible = undefined));
    job.cache = step.cache;
    job.done += columns;
    if (!last) return;
    const vocab = this.decoder.vocabSize;
    job.seqs.forEach((leader, b) => {
      const row = step.logits.subarray(((b + 1) * step.logitsPositions - 1) * vocab, (b + 1) * step.logitsPositions * vocab);
      for (const s of leader.group) {
        s.cached = s.prefillIds.length;
        // Each member of a group samples from its own copy: sampling edits the logits in place.
        if (!s.cancelled && !s.finished) alone(s, () => s.advance(s === leader ? row : row.slice()));
      }
    });
  }

  /** The next prefill job: the queue's head alone when its prompt starts with a cached prefix, else the group batch-plan.ts picks. */
  private nextJob(): PrefillJob | undefined {
    const use = this.use();
    const head = this.queue[0];
    if (head && fits({ rows: head.group.length, tokens: head.tokens }, use, this.limits)) {
      const reused = this.prefixes?.lookup(head.prefillIds, head.request.adapter);
      if (reused && this.rejoin(head, reused)) return this.nextJob();
      if (reused) return this.newJob([this.queue.shift()!], head.prefillIds.length, reused);
    }
    // An interactive head is grouped with interactive requests only: its first token does not wait for batch lines' prompts.
    const lane = head && !head.batchLane ? this.queue.filter((s) => !s.batchLane) : this.queue;
    const waiting = lane.map((s) => ({ prefillLength: s.prefillIds.length, tokens: s.tokens, rows: s.group.length }));
    const { picked, width } = groupForPrefill(waiting, use, this.limits);
    const seqs = picked.map((i) => this.queue[i]);
    for (const i of [...picked].reverse()) this.queue.splice(i, 1);
    return seqs.length ? this.newJob(seqs, width) : undefined;
  }

  /**
   * A batch-lane request whose keys/values come back whole from the prefix cache but for its last token (a preempted
   * row: its last sampled token, never fed; a new line: its prompt's last token) goes straight to `prefilled`: the
   * next decode step feeds that token beside the running rows and samples from it, as if the row had been running all
   * along, instead of a prefill pass of one column for it alone (a quarter to half a step of a large batch each, which
   * the batch and any arriving request wait through). An interactive request keeps its own pass: its first token
   * then comes after that short pass, not after a full-width step.
   */
  private rejoin(head: Sequence, reused: { length: number; cache: BatchCache }): boolean {
    if (!head.batchLane || head.followers.length || reused.length !== head.prefillIds.length - 1) return false;
    this.queue.shift();
    head.cached = reused.length;
    head.next = head.prefillIds[reused.length];
    this.prefilled.push({ seqs: [head], width: reused.length, prompts: leftPaddedPrompts([], 0), done: reused.length, cache: reused.cache });
    return true;
  }

  /** A prefill job for prompts left-padded to `width`; a reused prefix (one row) is already in its cache. */
  private newJob(seqs: Sequence[], width: number, reused?: { length: number; cache: BatchCache }): PrefillJob {
    const prompts = leftPaddedPrompts(
      seqs.map((s) => s.prefillIds),
      width,
    );
    return { seqs, width, prompts, done: reused?.length ?? 0, cache: reused?.cache ?? this.decoder.emptyCache(seqs.length) };
  }

  /** Drops finished and cancelled rows and merges newcomers: one copy of the cache, trimmed to the longest row. */
  private rebuild(): void {
    const joining = this.prefilled;
    this.prefilled = [];
    const stopping = new Set(this.running.filter((s) => s.cancelled && !s.finished));
    for (const s of [...this.running, ...joining.flatMap((j) => j.seqs.flatMap((l) => l.group))]) if (s.cancelled) s.finish('cancelled');
    // (Rows that finished at a decode step were handed to the prefix cache right after it.)
    this.remember(this.cache, this.running, true, (s) => stopping.has(s));
    const parked = this.running.filter((s) => s.parked && !s.finished);
    this.remember(this.cache, parked.length ? this.running : [], true, (s) => s.parked && !s.finished);
    for (const job of joining) this.remember(job.cache, job.seqs, false);
    for (const s of this.running) if (s.finished || s.parked) this.drafter?.forget(s);
    const keep = liveRows(this.running);
    // Preempted rows go back to the front of the batch lane and resume from their tokens (see preempt).
    for (const s of parked.reverse()) {
      s.parked = false;
      s.cached = 0;
      enqueue(this.queue, s, true);
    }
    const newcomers = joining.map((job) => ({ job, ...expandGroups(job.seqs) }));
    if (keep.length === this.running.length && newcomers.every((n) => !n.rows.length)) return;
    const seqs = [...keep.map((b) => this.running[b]), ...newcomers.flatMap((n) => n.seqs)];
    if (!seqs.length) {
      this.running = seqs;
      this.cache = this.decoder.emptyCache(0);
      return;
    }
    if (this.regroup(keep, newcomers)) return;
    const selections = [{ cache: this.cache, rows: keep, ends: keep.map((b) => this.running[b].column) }, ...newcomers.map(({ job, rows }) => ({ cache: job.cache, rows }))];
    this.running = seqs;
    this.cache = this.regather(
      selections.filter((s) => s.rows.length),
      Math.max(...seqs.map((s) => s.cached)),
    );
  }

  /**
   * Rows leave and join in the running cache's own arrays when it has room (see regroupInPlace): the rows that stay
   * are not copied and keep their columns; newcomers end at the cache's length. Says whether it could.
   */
  private regroup(keep: readonly number[], newcomers: readonly { job: PrefillJob; seqs: Sequence[]; rows: number[] }[]): boolean {
    const { num_kv_heads: kvHeads, head_dim: headDim } = this.decoder.model.manifest;
    const joining = newcomers.filter((n) => n.rows.length).map(({ job, seqs, rows }) => ({ cache: job.cache, rows, cached: seqs.map((s) => s.cached) }));
    const regrouped = regroupInPlace(this.cache, keep, joining, kvHeads, headDim, this.placement);
    if (!regrouped) return false;
    const joined = newcomers.flatMap((n) => n.seqs);
    joined.forEach((s, i) => (s.column = regrouped.columns[i]));
    this.running = [...regrouped.kept.map((b) => this.running[b]), ...joined];
    // Its length is where the longest row now ends: the one that ended furthest may have left.
    this.cache = { ...regrouped.cache, length: Math.max(...this.running.map((s) => s.column)) };
    this.cacheChanges.inPlace++;
    this.narrow();
    return true;
  }

  /**
   * Rows that join decode from their own column (RowPlacement 'own'), except on a "fused-gqa" graph, whose
   * GroupQueryAttention writes every row's new keys at one column.
   */
  private get placement(): RowPlacement {
    return this.decoder.model.manifest.graph === 'fused-gqa' ? 'aligned' : 'own';
  }

  /** Gives the running cache room for `width` more columns after its longest row: a new stride in place, else a regather. */
  private widen(width: number): void {
    const { num_kv_heads: kvHeads, head_dim: headDim } = this.decoder.model.manifest;
    const wider = restrideInPlace(this.cache, this.cache.length + Math.max(width, SPARE_COLUMNS), kvHeads, headDim);
    if (wider) {
      this.cache = wider;
      this.cacheChanges.inPlace++;
      return;
    }
    const rows = this.running;
    this.cache = this.regather([{ cache: this.cache, rows: rows.map((_, b) => b), ends: rows.map((s) => s.column) }], Math.max(...rows.map((s) => s.cached)));
  }

  /** Drops spare columns no row will reach soon (the rows that held them left), in place. */
  private narrow(): void {
    const capacity = this.cache.capacity ?? this.cache.length;
    if (capacity - this.cache.length <= NARROW_AFTER) return;
    const { num_kv_heads: kvHeads, head_dim: headDim } = this.decoder.model.manifest;
    this.cache = restrideInPlace(this.cache, this.cache.length + SPARE_COLUMNS, kvHeads, headDim) ?? this.cache;
  }

  /**
   * Hands the rows that finished (not with an error), or the chosen ones, to the prefix cache before their cache is
   * dropped; `running`: the cache is the running batch's, where each row ends at its own column.
   */
  private remember(cache: BatchCache, seqs: readonly Sequence[], running: boolean, chosen = (s: Sequence) => s.finished !== undefined && s.finished !== 'error'): void {
    if (!this.prefixes) return;
    seqs.forEach((s, b) => {
      if (!chosen(s) || !s.cached) return;
      const { num_kv_heads: kvHeads, head_dim: headDim } = this.decoder.model.manifest;
      this.prefixes!.store(s.cachedIds, gatherRows([{ cache, rows: [b], ends: running ? [s.column] : undefined }], s.cached, kvHeads, headDim), s.request.adapter);
    });
  }

  /**
   * One copy of the chosen rows into a new cache, right-aligned, with spare columns where decode steps append in
   * place; the running rows (`this.running`, in the selections' order) then end at its length.
   */
  private regather(selections: RowSelection[], length: number): BatchCache {
    const { num_kv_heads: kvHeads, head_dim: headDim } = this.decoder.model.manifest;
    for (const s of this.running) s.column = length;
    this.cacheChanges.copies++;
    // Room for a stride four times as wide (restrideInPlace) before the next regather; the pages of room no row
    // reaches are never touched.
    const capacity = length + SPARE_COLUMNS;
    return gatherRows(selections, length, kvHeads, headDim, capacity, this.limits.maxBatch, Math.min(4 * capacity, this.contextLength + SPARE_COLUMNS));
  }

  /**
   * One decode step: every running row feeds its last token, and the rows with a draft their drafted tokens
   * after it, verified in the same pass. Each row keeps the tokens up to its first rejection; its cache simply
   * ends there (the next pass masks and overwrites the rest), so rows end at different columns until the next
   * regather aligns them.
   */
  private async decode(): Promise<void> {
    const rows = this.running;
    let drafts;
    try {
      drafts = await this.proposals(rows);
    } catch (e) {
      return this.failRunning(e as Error);
    }
    const width = 1 + Math.max(0, ...drafts.map((d) => d.length));
    if (rows.some((s) => s.column + width > (this.cache.capacity ?? this.cache.length))) this.widen(width);
    const columns = rows.map((s) => s.column);
    const { ids, mask, positions } = decodeInputs(rows, drafts, this.cache.capacity ?? this.cache.length);
    let step;
    try {
      const pass = this.decoder.decodeInPlace(ids, mask, positions, this.cache, columns, adaptersOf(rows), this.interruptibleFor(rows));
      step = await this.watchdog.guard('decode step', withProcessors(pass, rows));
    } catch (e) {
      if (!(e instanceof RunInterrupted)) return this.failRunning(e as Error);
      // The rows end where they did; the step runs again after the interactive request's prefill.
      this.interrupted++;
      return;
    } finally {
      this.interruptible = undefined;
    }
    const vocab = this.decoder.vocabSize;
    rows.forEach((s, b) => {
      const logits = step.logits.subarray(b * width * vocab, (b + 1) * width * vocab);
      let kept = 1;
      alone(s, () => {
        if (drafts[b].length) kept = s.acceptDraft(logits, vocab, drafts[b]);
        else if (!s.finished) s.advance(logits.subarray(0, vocab));
      });
      this.drafts.accepted += kept - 1;
      s.cached += kept;
      s.column += kept;
    });
    this.cache = { ...step.cache, length: Math.max(...rows.map((s) => s.column)) };
    // The rows this step finished go to the prefix cache now, before the next prefill: requests waiting with the
    // same prompt (a batch file's repeated instructions, a chat's next turn) start from them instead of prefilling.
    this.remember(this.cache, rows, true);
    this.onDecodeStep?.(rows.length);
  }

  /** A decode step that failed or got stuck ends every running row; their cache goes with them. */
  private failRunning(error: Error): void {
    for (const s of this.running) s.finish('error', error);
    if (error instanceof StepTimeout) this.watchdog.stuckOn(error, this.running.length);
    this.running = [];
    this.cache = this.decoder.emptyCache(0);
  }

  /** Each row's drafted tokens for this step (none without a drafter, under a grammar, or with one token to go). */
  private async proposals(rows: readonly Sequence[]): Promise<number[][]> {
    const drafts = rows.map((): number[] => []);
    if (!this.drafter) return drafts;
    const asking = rows.flatMap((s, b) => {
      const k = Math.min(s.draftLength?.next() ?? 0, s.request.maxTokens - s.generated - 1, this.contextLength - 1 - s.cached);
      return k > 0 && !s.finished ? [{ b, request: { row: s, context: [...s.request.promptIds, ...s.output], k } }] : [];
    });
    if (!asking.length) return drafts;
    const proposed = await this.watchdog.guard('draft', this.drafter.propose(asking.map((a) => a.request)));
    asking.forEach((a, i) => (drafts[a.b] = proposed[i].slice(0, a.request.k)));
    const count = drafts.reduce((n, d) => n + d.length, 0);
    if (count) this.drafts.passes++;
    this.drafts.proposed += count;
    return drafts;
  }
}
