import type { BatchCache } from './decoder-session.js';

export const DEFAULT_PREFIX_CACHE_MB = 256;

/** Shorter shared prefixes are prefilled again: the copy and the bookkeeping would cost about as much. */
export const MIN_REUSED_TOKENS = 16;

interface Entry {
  /** The tokens whose keys/values `cache` holds, in order. */
  ids: readonly number[];
  /** One row, `ids.length` positions, no padding, no spare columns. */
  cache: BatchCache;
  bytes: number;
  /** The LoRA adapter the keys/values were computed with (they differ per adapter); none: the base model. */
  adapter?: object;
}

/**
 * Keys and values of recently finished requests, for prefix reuse: chat clients resend the whole
 * conversation each turn, so a new prompt usually starts with an earlier request's prompt and answer.
 * A newcomer whose prompt shares at least MIN_REUSED_TOKENS leading tokens with an entry starts its
 * prefill from a copy of those positions instead of computing them again. The keys and values of a
 * position depend only on the tokens up to it, so the output is the same tokens (the test checks it).
 * Bounded in bytes; the least recently used entry goes first.
 */
export class PrefixCache {
  /** Insertion order is recency: a hit moves its entry to the end. */
  private readonly entries: Entry[] = [];
  private bytes = 0;
  /** Prompt tokens that were not prefilled thanks to a hit, since start. */
  reusedTokens = 0;
  hits = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly kvHeads: number,
    private readonly headDim: number,
  ) {}

  /** Keeps one row's cache (its `ids.length` real positions, right-aligned in `cache` as in a running batch). */
  store(ids: readonly number[], row: BatchCache, adapter?: object): void {
    if (ids.length < MIN_REUSED_TOKENS) return;
    const bytes = row.layers.reduce((n, l) => n + l.key.byteLength + l.value.byteLength, 0);
    if (bytes > this.maxBytes) return;
    // An entry that is a prefix of the new one says nothing the new one does not.
    for (let i = this.entries.length - 1; i >= 0; i--) {
      if (this.entries[i].adapter === adapter && commonPrefix(this.entries[i].ids, ids) === this.entries[i].ids.length) this.drop(i);
    }
    this.entries.push({ ids: [...ids], cache: row, bytes, adapter });
    this.bytes += bytes;
    while (this.bytes > this.maxBytes) this.drop(0);
  }

  /**
   * The longest stored prefix of `ids`, leaving at least one token to prefill (its logits give the first
   * new token): a one-row cache of that many positions, a copy the caller may extend.
   */
  lookup(ids: readonly number[], adapter?: object): { length: number; cache: BatchCache } | undefined {
    let best = -1;
    let length = 0;
    this.entries.forEach((e, i) => {
      const n = e.adapter === adapter ? Math.min(commonPrefix(e.ids, ids), ids.length - 1) : 0;
      if (n > length) [best, length] = [i, n];
    });
    if (length < MIN_REUSED_TOKENS) return undefined;
    const [entry] = this.entries.splice(best, 1);
    this.entries.push(entry);
    this.hits++;
    this.reusedTokens += length;
    return { length, cache: leadingPositions(entry.cache, length, this.kvHeads, this.headDim) };
  }

  private drop(i: number): void {
    this.bytes -= this.entries[i].bytes;
    this.entries.splice(i, 1);
  }
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** The first `n` positions of a one-row cache without spare columns ([kvHeads, length, headDim] per layer), copied. */
function leadingPositions(cache: BatchCache, n: number, kvHeads: number, headDim: number): BatchCache {
  const take = (from: Float32Array) => {
    const out = new Float32Array(kvHeads * n * headDim);
    for (let h = 0; h < kvHeads; h++) out.set(from.subarray(h * cache.length * headDim, (h * cache.length + n) * headDim), h * n * headDim);
    return out;
  };
  return { batch: 1, length: n, layers: cache.layers.map((l) => ({ key: take(l.key), value: take(l.value) })) };
}
