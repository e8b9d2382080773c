import { fits, planEviction, PrefillBudget, type BatchUse } from '../batch-plan.js';
import { checkAdmission, enqueue, groupLeader, type SchedulerLimits } from '../admission.js';
import { withProcessors } from '../step-processors.js';
import { MIN_REUSED_TOKENS, type PrefixCache } from '../prefix-cache.js';
import type { DeviceDraw } from '../sampling.js';
import type { RequestGroup, Sequence } from '../sequence.js';
import { DEFAULT_STEP_TIMEOUT_MS, StepTimeout, StepWatchdog, type WatchdogEvent } from '../step-watchdog.js';
import { bucketFor, type FixedCacheDecoder, type StepFeeds } from './fixed-cache-decoder.js';

/** A cache row's sequence, what its prefill feeds, how many of those tokens are in the row, and when it was seated. */
interface Slot {
  seq: Sequence;
  ids: readonly number[];
  done: number;
  seatedAt: number;
}

/**
 * Continuous batching over FixedCacheDecoder's slots: each request (each member of an `n` group) takes a free cache
 * row when it fits the limits, is prefilled into it in chunks between decode steps (the prefill budget of
 * batch-plan.ts), decodes in the bucket that holds the live rows, and frees the row the step it ends; nothing
 * is copied when rows join or leave. Tokens are chosen on the device (greedy, or top-k/top-p with the row's own
 * uniform numbers), or on the host from the row's logits where a grammar, logprobs or penalties need them.
 * With a PrefixCache (a float32 cache), finished rows' keys/values are kept and a newcomer whose prompt starts with
 * them has them written into its row instead of prefilled; an interactive request that finds no room takes the
 * rows of the batch-lane requests seated last, which resume later from their prompt and tokens (see preempt).
 *
 * Not here (GenerationScheduler has it, on the dynamic path, for exports made without --gqa): speculative decoding.
 */
export class FixedCacheScheduler {
  private readonly queue: Sequence[] = [];
  private readonly slots: (Slot | undefined)[];
  private loop: Promise<void> = Promise.resolve();
  private looping = false;
  private seated = 0;
  /** Rows that gave their place to an interactive request, since start. */
  preempted = 0;
  readonly drafter = undefined;
  readonly speculation = undefined;
  /**
   * Bounds every pass (StepWatchdog). A pass it gives up on keeps writing into the shared cache until it returns,
   * so its requests fail and no request takes a row until it has returned.
   */
  readonly watchdog: StepWatchdog;

  constructor(
    private readonly decoder: FixedCacheDecoder,
    readonly limits: SchedulerLimits,
    /** Called after each decode step with the number of rows it advanced (for metrics). */
    private readonly onDecodeStep?: (rows: number) => void,
    onWatchdog?: (event: WatchdogEvent) => void,
    private readonly prefixes?: PrefixCache,
  ) {
    this.slots = new Array(Math.min(limits.maxBatch, decoder.rows)).fill(undefined);
    this.watchdog = new StepWatchdog(limits.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS, onWatchdog);
  }

  /** A row holds its prompt and new tokens in `capacity` columns. */
  get contextLength(): number {
    return Math.min(this.decoder.model.manifest.max_position_embeddings, this.decoder.capacity);
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  get batchSize(): number {
    return this.occupied().length;
  }

  submit(request: RequestGroup[number]): void {
    this.submitGroup([request]);
  }

  /** Queues several completions of one prompt; each member gets its own row and its own prefill. */
  submitGroup(group: RequestGroup): void {
    const leader = groupLeader(group, this.contextLength);
    checkAdmission(leader, this.queue, this.limits);
    enqueue(this.queue, leader);
    if (!this.looping) {
      this.looping = true;
      this.loop = this.run();
    }
  }

  /** Rows give way to a queued interactive request between steps (preempt), so an announced one has nothing to wait for. */
  arriving(): () => void {
    return () => {};
  }

  async idle(): Promise<void> {
    while (this.looping) await this.loop;
  }

  private occupied(): [number, Slot][] {
    return this.slots.flatMap((slot, i): [number, Slot][] => (slot && !slot.seq.finished ? [[i, slot]] : []));
  }

  private async run(): Promise<void> {
    try {
      // Requests submitted in the same turn of the event loop are seated together (one prefill pass on the CPU:
      // seatedTogether); no longer wait for a burst's companions (GenerationScheduler's admission): each row joins
      // the decode steps as soon as its prompt is in, so a lone request starts at once.
      await new Promise(setImmediate);
      while (this.queue.length || this.occupied().length) {
        this.dropCancelled();
        this.preempt();
        this.seat();
        // Nothing seated while an abandoned pass runs on (see watchdog): wait for it without holding the event loop.
        if (!this.occupied().length) {
          await new Promise((resolve) => setTimeout(resolve, 10));
          continue;
        }
        await this.prefill();
        this.free();
        await this.decode();
        this.free();
      }
    } finally {
      this.looping = false;
    }
  }

  private dropCancelled(): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (this.queue[i].group.every((s) => s.cancelled || s.finished)) for (const s of this.queue.splice(i, 1)[0].group) s.finish('cancelled');
    }
    for (const [, slot] of this.occupied()) if (slot.seq.cancelled) slot.seq.finish('cancelled');
    this.free();
  }

  /** Frees the rows of finished sequences, handing those that did not fail to the prefix cache. */
  private free(): void {
    this.slots.forEach((slot, i) => {
      if (!slot?.seq.finished) return;
      if (slot.seq.finished !== 'error') this.remember(i, slot.seq);
      this.slots[i] = undefined;
    });
  }

  /** Keeps a row's cached keys/values in the prefix cache (when there is one and they are worth keeping). */
  private remember(slot: number, seq: Sequence): void {
    if (!this.prefixes || seq.cached < MIN_REUSED_TOKENS) return;
    this.prefixes.store(seq.cachedIds, this.decoder.readRow(slot, seq.cached), seq.request.adapter);
  }

  /** Rows and tokens held by the seated requests. */
  private use(): BatchUse {
    const seated = this.occupied();
    return { rows: seated.length, tokens: seated.reduce((n, [, s]) => n + s.seq.tokens, 0) };
  }

  /**
   * An interactive request at the head of the queue that finds no room takes it from the batch lane: the batch-lane
   * rows seated last leave (their keys/values to the prefix cache, prefilled or not) and go back to the front of the
   * batch lane, to resume from their prompt and the tokens they had sampled. So an interactive request waits at most
   * for the pass in progress, never for a batch line to finish.
   */
  private preempt(): void {
    const head = this.queue[0];
    if (!head || head.batchLane || this.watchdog.abandonedSteps) return;
    const rows = this.occupied().sort(([, a], [, b]) => a.seatedAt - b.seatedAt);
    const asRow = ({ seq }: Slot) => ({ live: true, preemptible: seq.preemptible, tokens: seq.tokens });
    const plan = planEviction(
      { rows: head.group.length, tokens: head.tokens },
      this.use(),
      this.limits,
      undefined,
      rows.map(([, row]) => asRow(row)),
    );
    // Last seated first, each put at the front of the batch lane: they resume in the order they were seated.
    for (const [slot, row] of plan?.running.map((i) => rows[i]) ?? []) {
      if (row.done < row.ids.length) row.seq.cached = row.done;
      this.remember(slot, row.seq);
      row.seq.cached = 0;
      this.slots[slot] = undefined;
      enqueue(this.queue, row.seq, true);
      this.preempted++;
    }
  }

  /** Gives waiting groups free rows, first come first served, while they fit the batch and the token limit. */
  private seat(): void {
    while (this.queue.length && !this.watchdog.abandonedSteps) {
      const head = this.queue[0];
      const members = head.group.filter((s) => !s.finished);
      const free = this.slots.flatMap((slot, i) => (slot ? [] : [i]));
      if (members.length > free.length || !fits({ rows: members.length, tokens: head.tokens }, this.use(), this.limits)) return;
      this.queue.shift();
      members.forEach((seq, i) => (this.slots[free[i]] = this.seatIn(free[i], seq)));
    }
  }

  /** A sequence's row; the longest prefix of its prompt that the prefix cache holds is written into it, not prefilled. */
  private seatIn(slot: number, seq: Sequence): Slot {
    const ids = seq.prefillIds;
    const reused = this.prefixes?.lookup(ids, seq.request.adapter);
    if (reused) this.decoder.writeRow(slot, reused.cache);
    return { seq, ids, done: reused?.length ?? 0, seatedAt: this.seated++ };
  }

  /**
   * Prefills rows in slot order, a chunk a pass, within one step's budget (all of it when no row is decoding, so
   * requests sent together start together); on the CPU, rows seated together with prompts of one length go in one
   * pass first (seatedTogether).
   */
  private async prefill(): Promise<void> {
    const budget = new PrefillBudget(this.limits.prefillChunk, this.decoding().length > 0);
    const together = this.decoder.provider === 'cpu' ? this.seatedTogether(budget) : [];
    if (together.length > 1) {
      const columns = together[0][1].ids.length;
      budget.take(columns, together.length);
      await this.prefillPass(together, columns);
    }
    for (const [slot, row] of this.occupied()) {
      while (row.done < row.ids.length) {
        const columns = budget.take(row.ids.length - row.done, 1);
        if (!columns) return;
        if (!(await this.prefillPass([[slot, row]], columns))) break;
      }
    }
  }

  /**
   * Rows in consecutive slots, from the first whose prompt is not started, with prompts of that one's length, that a
   * single pass of this step's budget holds whole: one pass of several rows is faster than a pass a row (8 rows of
   * 128 tokens of the 100m preset: 1.4-1.5x, fp32 and int4, on 2 cores). Measured on the CPU only, so CUDA keeps a
   * pass a row; and ONNX Runtime takes several rows of several tokens only without past context, so whole prompts.
   */
  private seatedTogether(budget: PrefillBudget): [number, Slot][] {
    const run: [number, Slot][] = [];
    for (const entry of this.occupied().filter(([, row]) => row.done === 0)) {
      const [first, head] = run[0] ?? entry;
      if (entry[0] !== first + run.length || entry[1].ids.length !== head.ids.length) break;
      run.push(entry);
    }
    return run.length > 1 && budget.holds(run[0][1].ids.length, run.length) ? run : [];
  }

  /**
   * One pass of `columns` more tokens of each of `rows` (consecutive slots, each at the same column); a row whose
   * prompt is then all in its cache samples its first token. False when the pass failed (its requests have ended).
   */
  private async prefillPass(rows: [number, Slot][], columns: number): Promise<boolean> {
    const [[first, head]] = rows;
    const last = head.done + columns === head.ids.length;
    const seqs = rows.map(([, row]) => row.seq);
    // A greedy first token is the device's argmax: the logits cross only where the host chooses.
    const onHost = seqs.map((seq) => last && (seq.request.processor !== undefined || seq.request.logprobs !== undefined || seq.sampler.deviceChoice(false) !== 'greedy'));
    const chunks = rows.map(([, row]) => row.ids.slice(row.done, row.done + columns));
    const pass = this.decoder.prefillRows(first, chunks, head.done, { logits: onHost.some(Boolean) });
    let out: { tokens: number[]; logits?: Float32Array };
    try {
      out = await this.watchdog.guard('prefill pass', last ? withProcessors(pass, seqs) : pass);
    } catch (e) {
      this.fail(seqs, e as Error);
      return false;
    }
    const vocab = this.decoder.vocabSize;
    rows.forEach(([, row], i) => {
      row.done += columns;
      if (!last) return;
      row.seq.cached = row.ids.length;
      if (row.seq.finished) return;
      if (onHost[i]) row.seq.advance(out.logits!.subarray(i * vocab, (i + 1) * vocab));
      else row.seq.advanceWith(out.tokens[i]);
    });
    return true;
  }

  /** Ends the requests of a pass that failed, or that the watchdog gave up on (then the engine says it is unavailable). */
  private fail(seqs: readonly Sequence[], error: Error): void {
    for (const s of seqs) s.finish('error', error);
    if (error instanceof StepTimeout) this.watchdog.stuckOn(error, seqs.length);
  }

  /** Rows whose prompt is in their cache and that are still going. */
  private decoding(): [number, Slot][] {
    return this.occupied().filter(([, slot]) => slot.done === slot.ids.length);
  }

  /**
   * One decode step in the smallest bucket that holds every decoding row. Rows still being prefilled in the bucket
   * feed a dummy token at their next prefill column (which their next chunk overwrites); free rows at column 0.
   */
  private async decode(): Promise<void> {
    const rows = this.decoding();
    if (!rows.length) return;
    const bucket = bucketFor(Math.max(...rows.map(([slot]) => slot)) + 1);
    const feeds: StepFeeds = { ids: new BigInt64Array(bucket), positions: new BigInt64Array(bucket) };
    for (let slot = 0; slot < bucket; slot++) {
      const row = this.slots[slot];
      const column = row ? (row.done === row.ids.length ? row.seq.cached : row.done) : 0;
      feeds.positions[slot] = BigInt(column);
    }
    const draws: (DeviceDraw | undefined)[] = new Array(bucket).fill(undefined);
    const onHost = new Set<number>();
    for (const [slot, { seq }] of rows) {
      feeds.ids[slot] = BigInt(seq.next);
      const choice = seq.request.processor || seq.request.logprobs !== undefined ? undefined : seq.sampler.deviceChoice(this.decoder.samplesOnDevice);
      if (choice === undefined) onHost.add(slot);
      else if (choice !== 'greedy') draws[slot] = choice;
    }
    const seqs = rows.map(([, slot]) => slot.seq);
    let step: { tokens: BigInt64Array; drawn: boolean };
    try {
      step = await this.watchdog.guard('decode step', withProcessors(this.decoder.step(bucket, feeds, draws), seqs));
    } catch (e) {
      this.fail(seqs, e as Error);
      return;
    }
    for (const [slot, { seq }] of rows) {
      seq.cached++;
      if (seq.finished) continue;
      const draw = draws[slot];
      if (onHost.has(slot)) seq.advance(this.decoder.logitsOf(bucket, slot));
      else if (draw && !step.drawn) seq.advanceWith(seq.sampler.drawOnHost(this.decoder.logitsOf(bucket, slot), draw));
      else seq.advanceWith(Number(step.tokens[slot]));
    }
    this.onDecodeStep?.(rows.length);
  }
}
