/**
 * Sliding-window counters behind the quotas: in this process's memory (one replica), or in Redis
 * (redis-store.ts) so that every replica counts against the same windows. A window of W ms is kept as
 * buckets of B ms (a minute as 60 one-second buckets, a day as 24 hours); a bucket counts until it has
 * wholly left the window, so a limit is never exceeded and Retry-After is at most one bucket late.
 */

export interface Window {
  /** Suffix of the counter's name: counters of the same subject with different windows are different counters. */
  name: 'm' | 'd';
  ms: number;
  bucketMs: number;
}

export const MINUTE: Window = { name: 'm', ms: 60_000, bucketMs: 1_000 };
export const DAY: Window = { name: 'd', ms: 86_400_000, bucketMs: 3_600_000 };

export interface CounterTake {
  /** The counter's name, e.g. `key:acme-web:requests`. */
  id: string;
  window: Window;
  /** 0: no limit (the counter is only kept for usage reports). */
  limit: number;
  amount: number;
}

/** `refused`: the index of the first counter that would go over its limit, and when it would not. */
export type TakeResult = { refused: undefined } | { refused: number; waitMs: number };

export interface CounterStore {
  /**
   * Adds each amount to its counter if none of them would go over its limit, else adds nothing: one
   * atomic step, so two replicas can never both take the last unit.
   */
  take(counters: readonly CounterTake[], now: number): Promise<TakeResult>;
  /** What each counter holds in its current window. */
  read(counters: readonly Pick<CounterTake, 'id' | 'window'>[], now: number): Promise<number[]>;
  close(): Promise<void>;
}

/** The counters of one replica, in memory: the default without --redis. */
export class MemoryCounterStore implements CounterStore {
  /** Counter → bucket index → amount. */
  private readonly counters = new Map<string, Map<number, number>>();

  async take(counters: readonly CounterTake[], now: number): Promise<TakeResult> {
    for (const [i, c] of counters.entries()) {
      if (!c.limit) continue;
      const buckets = this.live(c, now);
      const total = [...buckets.values()].reduce((a, b) => a + b, 0);
      if (total + c.amount > c.limit) return { refused: i, waitMs: waitMs(buckets, total + c.amount - c.limit, c, now) };
    }
    for (const c of counters) {
      const buckets = this.live(c, now);
      const bucket = Math.floor(now / c.window.bucketMs);
      buckets.set(bucket, (buckets.get(bucket) ?? 0) + c.amount);
    }
    return { refused: undefined };
  }

  async read(counters: readonly Pick<CounterTake, 'id' | 'window'>[], now: number): Promise<number[]> {
    return counters.map((c) => [...this.live(c, now).values()].reduce((a, b) => a + b, 0));
  }

  async close(): Promise<void> {}

  /** The counter's buckets still in the window (older ones are dropped). */
  private live(c: Pick<CounterTake, 'id' | 'window'>, now: number): Map<number, number> {
    const id = `${c.id}:${c.window.name}`;
    const buckets = this.counters.get(id) ?? new Map<number, number>();
    for (const b of buckets.keys()) if (!inWindow(b, c.window, now)) buckets.delete(b);
    this.counters.set(id, buckets);
    return buckets;
  }
}

const inWindow = (bucket: number, w: Window, now: number) => (bucket + 1) * w.bucketMs > now - w.ms;

/** Milliseconds until the oldest buckets holding `excess` units have left the window (the whole window if the amount alone is over the limit). */
function waitMs(buckets: Map<number, number>, excess: number, c: CounterTake, now: number): number {
  if (c.amount > c.limit) return c.window.ms;
  let freed = 0;
  for (const b of [...buckets.keys()].sort((x, y) => x - y)) {
    freed += buckets.get(b)!;
    if (freed >= excess) return (b + 1) * c.window.bucketMs + c.window.ms - now;
  }
  return c.window.ms;
}
