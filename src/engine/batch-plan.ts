/**
 * The scheduler's decisions, as pure functions of lengths, counts and limits: which waiting requests are
 * prefilled together, how many prompt columns a prefill pass takes, where a request stands in the queue, and
 * which batch-lane rows give their place to an interactive request. GenerationScheduler asks these and does
 * what they say on a decoder; they never see a tensor, a cache or a model.
 */

/** A request waiting for rows: its group's rows, the tokens it may hold, and the ids a prefill feeds. */
export interface WaitingRequest {
  /** Prompt (and, after a preemption, its sampled tokens) to prefill. */
  prefillLength: number;
  /** (prompt + max tokens) × rows: what counts against maxTokensTotal. */
  tokens: number;
  /** 1, or n for a group of choices. */
  rows: number;
}

/** What the rows being prefilled or decoded hold now. */
export interface BatchUse {
  rows: number;
  tokens: number;
}

export interface PlanLimits {
  maxBatch: number;
  maxTokensTotal: number;
  prefillChunk: number;
}

/** Newcomers are grouped while padding stays under this share of the group's tokens. */
export const MAX_PADDING_SHARE = 0.25;

/** Whether a request fits beside what the batch holds. */
export function fits(request: Pick<WaitingRequest, 'rows' | 'tokens'>, use: BatchUse, limits: Pick<PlanLimits, 'maxBatch' | 'maxTokensTotal'>): boolean {
  return use.rows + request.rows <= limits.maxBatch && use.tokens + request.tokens <= limits.maxTokensTotal;
}

/**
 * The queue's head and the later requests of similar length that fit the batch, the token limit and one
 * prefill budget of padded columns: their queue indices, in order, and the width they are left-padded to.
 * The head is never overtaken: when it does not fit, nothing is picked.
 */
export function groupForPrefill(queue: readonly WaitingRequest[], use: BatchUse, limits: PlanLimits): { picked: number[]; width: number } {
  const picked: number[] = [];
  let { rows, tokens } = use;
  let width = 0;
  let real = 0;
  for (let i = 0; i < queue.length && rows < limits.maxBatch; i++) {
    const r = queue[i];
    const w = Math.max(width, r.prefillLength);
    const padded = w * (picked.length + 1);
    const fitsGroup = picked.length === 0 || (padded <= limits.prefillChunk && padded <= (real + r.prefillLength) * (1 + MAX_PADDING_SHARE));
    const fitsBatch = fits(r, { rows, tokens }, limits);
    if (!fitsBatch && picked.length === 0) break;
    if (!fitsBatch || !fitsGroup) continue;
    picked.push(i);
    rows += r.rows;
    tokens += r.tokens;
    width = w;
    real += r.prefillLength;
  }
  return { picked, width };
}

/**
 * The prompt columns one step prefills between two decode steps: a pass of a job of `rows` rows takes at most
 * the budget left ÷ rows columns. While rows are decoding, the passes of one step share one budget, so running
 * streams keep a steady pace; with none decoding nobody waits, and each pass gets a whole budget.
 */
export class PrefillBudget {
  private left: number;

  constructor(
    private readonly chunk: number,
    readonly decoding: boolean,
  ) {
    this.left = chunk;
  }

  /** Whether a pass of `columns` for each of `rows` rows fits what this step has left (take would give them all). */
  holds(columns: number, rows: number): boolean {
    return columns * rows <= (this.decoding ? this.left : this.chunk);
  }

  /** Columns for the next pass of a job with `remaining` columns to go; 0 once this step's budget is spent. */
  take(remaining: number, rows: number): number {
    if (!this.decoding) this.left = this.chunk;
    const columns = Math.min(remaining, Math.floor(this.left / rows));
    // A job wider than a whole budget (more rows than columns in it) still gets one column a step.
    if (columns < 1 && this.left < this.chunk) return 0;
    const taken = Math.max(1, columns);
    this.left -= taken * rows;
    return taken;
  }
}

/** Interactive requests stand before every batch-lane one; each lane is first come, first served (a preempted row goes first in its lane). */
export function queuePosition(queuedBatchLane: readonly boolean[], batchLane: boolean, front = false): number {
  const firstBatch = queuedBatchLane.indexOf(true);
  const end = queuedBatchLane.length;
  if (!batchLane || front) return firstBatch < 0 ? end : firstBatch;
  return end;
}

/** A row the batch holds, as preemption sees it. */
export interface RunningRow {
  live: boolean;
  /** A batch-lane row alone in its group. */
  preemptible: boolean;
  tokens: number;
}

/**
 * What gives way to an interactive request at the queue's head that finds no room: the batch-lane job being
 * prefilled (when all of it is batch lane), then batch-lane rows from the last to join. Undefined when the head
 * fits already, or when evicting every candidate would still not make room (that would only throw work away).
 */
export function planEviction(
  head: Pick<WaitingRequest, 'rows' | 'tokens'>,
  use: BatchUse,
  limits: Pick<PlanLimits, 'maxBatch' | 'maxTokensTotal'>,
  job: readonly RunningRow[] | undefined,
  running: readonly RunningRow[],
): { job: boolean; running: number[] } | undefined {
  let rows = use.rows + head.rows - limits.maxBatch;
  let tokens = use.tokens + head.tokens - limits.maxTokensTotal;
  if (rows <= 0 && tokens <= 0) return undefined;
  const takeJob = job !== undefined && job.length > 0 && job.every((r) => r.preemptible);
  for (const r of takeJob ? job : []) [rows, tokens] = [rows - 1, tokens - r.tokens];
  const evicted: number[] = [];
  for (let b = running.length - 1; b >= 0 && (rows > 0 || tokens > 0); b--) {
    if (!running[b].live || !running[b].preemptible) continue;
    evicted.push(b);
    [rows, tokens] = [rows - 1, tokens - running[b].tokens];
  }
  if (rows > 0 || tokens > 0) return undefined;
  return { job: takeJob, running: evicted };
}
