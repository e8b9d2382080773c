import { queuePosition } from './batch-plan.js';
import { checkFits, EngineRejection } from './engine-contract.js';
import { Sequence, type RequestGroup } from './sequence.js';

// Who may join a scheduler's queue, and when a batch starts: shared by both schedulers (generation-scheduler.ts,
// fixed-cache/fixed-cache-scheduler.ts) so that a request is refused or admitted the same way on either path.

export interface SchedulerLimits {
  /** Rows decoded together. */
  maxBatch: number;
  /** Requests waiting for a row; past it, submit throws `queue_full`. */
  maxQueue: number;
  /** Sum of prompt + max tokens over running requests; newcomers wait until they fit. */
  maxTokensTotal: number;
  /** Prompt tokens (padding included) prefilled between two decode steps, so running streams keep a steady pace. */
  prefillChunk: number;
  /** A step (prefill pass, decode step, draft) that takes longer fails its requests (see StepWatchdog); default 60 s. */
  stepTimeoutMs?: number;
}

/** The longest gap between two arrivals of one burst of requests (see GenerationScheduler.admit). */
const ADMISSION_WAIT_MS = 10;

/** Puts a request in the queue: after every interactive one if it is in the batch lane; `front`: first in its lane (a preempted row). */
export function enqueue(queue: Sequence[], seq: Sequence, front = false): void {
  const at = queuePosition(
    queue.map((s) => s.batchLane),
    seq.batchLane,
    front,
  );
  queue.splice(at, 0, seq);
}

/** The sequence that stands for a group (its first request, the others its followers), once the group fits the context. */
export function groupLeader(group: RequestGroup, contextLength: number, draftCost?: number): Sequence {
  const [request] = group;
  if (group.some((r) => r.promptIds !== request.promptIds)) throw new Error('the requests of a group must share promptIds');
  checkFits(request.promptIds.length, request.maxTokens, contextLength);
  return new Sequence(
    request,
    group.slice(1).map((r) => Object.assign(new Sequence(r, [], draftCost), { follower: true })),
    draftCost,
  );
}

/**
 * Refuses a group the limits can never take, or that finds the interactive queue full (`leader` stands for the
 * group: its tokens count every member).
 */
export function checkAdmission(leader: Sequence, queue: readonly Sequence[], limits: SchedulerLimits): void {
  if (leader.tokens > limits.maxTokensTotal) {
    throw new EngineRejection('too_many_tokens', `(prompt + max_tokens) × n (${leader.tokens}) is over this server's --max-tokens-total (${limits.maxTokensTotal})`);
  }
  const n = leader.group.length;
  if (n > limits.maxBatch) throw new EngineRejection('too_many_tokens', `n (${n}) is over this server's --max-batch (${limits.maxBatch})`);
  // The batch lane's caller bounds what it queues; maxQueue is the interactive clients' promise.
  const interactive = queue.findIndex((s) => s.batchLane);
  const waiting = interactive < 0 ? queue.length : interactive;
  if (!leader.batchLane && waiting >= limits.maxQueue) throw new EngineRejection('queue_full', `the queue is full (${limits.maxQueue} requests waiting)`);
}

/**
 * Waits while requests keep arriving, each within ADMISSION_WAIT_MS of the last, while `queued()` is below
 * `room()`; says whether any did. Requests sent together reach the queue milliseconds apart (and not at all while
 * a pass holds the event loop): waiting for them before a batch's first pass prefills them together and starts
 * the batch at full width.
 */
export async function awaitBurst(queued: () => number, room: () => number): Promise<boolean> {
  const before = queued();
  for (let seen = -1; seen !== queued() && queued() < room(); ) {
    seen = queued();
    await new Promise((resolve) => setTimeout(resolve, ADMISSION_WAIT_MS));
  }
  return queued() > before;
}
