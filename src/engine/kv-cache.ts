import type { BatchCache } from './decoder-session.js';

/** Rows to take from one cache. */
export interface RowSelection {
  cache: BatchCache;
  rows: readonly number[];
  /** Where each chosen row's real tokens end in `cache` (default: at its `length`; rows after a verification pass may end before it). */
  ends?: readonly number[];
}

/**
 * Builds a batch cache of `length` positions from rows of other caches, in order: how rows join a
 * running batch, how finished rows leave it, and how a cache gets more spare columns. Each row is
 * right-aligned (its real tokens are its last ones), so a shorter source is left-padded with zeros and
 * a longer one loses leading padding; `length` must cover every chosen row's real tokens. `capacity`
 * (at least `length`) leaves spare columns after them. One copy of the chosen rows, per layer.
 */
export function gatherRows(selections: readonly RowSelection[], length: number, kvHeads: number, headDim: number, capacity = length): BatchCache {
  const batch = selections.reduce((n, s) => n + s.rows.length, 0);
  const layerCount = selections[0].cache.layers.length;
  const layers = Array.from({ length: layerCount }, () => ({
    key: new Float32Array(batch * kvHeads * capacity * headDim),
    value: new Float32Array(batch * kvHeads * capacity * headDim),
  }));
  let out = 0;
  for (const { cache, rows, ends } of selections) {
    const stride = cache.capacity ?? cache.length;
    for (const [i, row] of rows.entries()) {
      const end = ends?.[i] ?? cache.length;
      const n = Math.min(length, end);
      for (let h = 0; h < kvHeads; h++) {
        const from = ((row * kvHeads + h) * stride + end - n) * headDim;
        const to = ((out * kvHeads + h) * capacity + length - n) * headDim;
        for (let l = 0; l < layerCount; l++) {
          layers[l].key.set(cache.layers[l].key.subarray(from, from + n * headDim), to);
          layers[l].value.set(cache.layers[l].value.subarray(from, from + n * headDim), to);
        }
      }
      out++;
    }
  }
  return { batch, length, capacity, layers };
}

/**
 * The attention mask over a cache of `length` positions in `capacity` columns plus `newTokens`, for rows with
 * `cached` real tokens each: 1 on each row's real tokens and the new ones, 0 on padding and spare columns.
 */
export function leftPaddedMask(cached: readonly number[], length: number, newTokens: number, capacity = length): BigInt64Array {
  return spanMask(
    cached,
    cached.map(() => length),
    newTokens,
    capacity,
  );
}

/**
 * leftPaddedMask for rows that end at different columns (`ends[b]`, after a verification pass kept fewer of
 * some rows' new tokens), with `fed[b]` of the new tokens real (default all): 1 on the `cached[b]` columns
 * before `ends[b]` and on the real new tokens.
 */
export function spanMask(cached: readonly number[], ends: readonly number[], newTokens: number, capacity: number, fed?: readonly number[]): BigInt64Array {
  const width = capacity + newTokens;
  const mask = new BigInt64Array(cached.length * width);
  cached.forEach((n, b) => {
    mask.fill(1n, b * width + ends[b] - n, b * width + ends[b]);
    mask.fill(1n, b * width + capacity, b * width + capacity + (fed?.[b] ?? newTokens));
  });
  return mask;
}
