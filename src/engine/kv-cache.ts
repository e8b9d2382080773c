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
export function gatherRows(selections: readonly RowSelection[], length: number, kvHeads: number, headDim: number, capacity = length, slots = 0): BatchCache {
  const batch = selections.reduce((n, s) => n + s.rows.length, 0);
  const layerCount = selections[0].cache.layers.length;
  const rowFloats = kvHeads * capacity * headDim;
  // Room for `slots` rows, of which the first `batch` are the cache: regroupInPlace adds rows there.
  const room = Math.max(slots, batch);
  const rowsOf = (floats: Float32Array) => (room > batch ? floats.subarray(0, batch * rowFloats) : floats);
  const layers = Array.from({ length: layerCount }, () => ({
    key: rowsOf(new Float32Array(room * rowFloats)),
    value: rowsOf(new Float32Array(room * rowFloats)),
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
  return { batch, length, capacity, slots: room, layers };
}

/**
 * Changes a running batch's rows without copying the rows that stay, in the arrays gatherRows gave room for: the
 * slots of leaving rows are taken by the last kept rows (one row copied per hole), and the joining rows are
 * written into the slots after them, right-aligned to end at the cache's `length` (the column the running rows
 * decode at). A full regather copies every row, which behind a large batch holds the scheduler for several
 * decode steps' worth of memory traffic each time one request joins or leaves. Returns the new cache (views of
 * the same arrays) and, for each of its kept rows, the row it was (`kept[i]`), or undefined when the cache has
 * no room: too few row slots, no spare column, or a joining row with more real tokens than `length` (`cached`).
 */
export function regroupInPlace(
  cache: BatchCache,
  keep: readonly number[],
  joining: readonly (RowSelection & { cached: readonly number[] })[],
  kvHeads: number,
  headDim: number,
): { cache: BatchCache; kept: number[] } | undefined {
  const { length, slots = cache.batch } = cache;
  const capacity = cache.capacity ?? length;
  const batch = keep.length + joining.reduce((n, s) => n + s.rows.length, 0);
  if (batch > slots || length >= capacity || !keep.length || joining.some((s) => s.cached.some((n) => n > length))) return undefined;
  const rowFloats = kvHeads * capacity * headDim;
  if (cache.layers.some((l) => l.key.buffer.byteLength - l.key.byteOffset < slots * rowFloats * 4)) return undefined;
  const layers = cache.layers.map((l) => ({
    key: new Float32Array(l.key.buffer, l.key.byteOffset, slots * rowFloats),
    value: new Float32Array(l.value.buffer, l.value.byteOffset, slots * rowFloats),
  }));
  const copyRow = (from: number, to: number) => {
    for (const l of layers) for (const a of [l.key, l.value]) a.copyWithin(to * rowFloats, from * rowFloats, (from + 1) * rowFloats);
  };
  // Kept rows below keep.length stay where they are; each hole there takes one of the kept rows above it.
  const staying = new Set(keep);
  const movers = keep.filter((b) => b >= keep.length);
  const kept = Array.from({ length: keep.length }, (_, i) => (staying.has(i) ? i : movers.shift()!));
  kept.forEach((from, to) => from !== to && copyRow(from, to));
  let out = keep.length;
  for (const { cache: source, rows, ends } of joining) {
    const stride = source.capacity ?? source.length;
    for (const [i, row] of rows.entries()) {
      const end = ends?.[i] ?? source.length;
      const n = Math.min(length, end);
      for (const l of layers) {
        l.key.fill(0, out * rowFloats, (out + 1) * rowFloats);
        l.value.fill(0, out * rowFloats, (out + 1) * rowFloats);
      }
      for (let h = 0; h < kvHeads; h++) {
        const from = ((row * kvHeads + h) * stride + end - n) * headDim;
        const to = ((out * kvHeads + h) * capacity + length - n) * headDim;
        source.layers.forEach((l, li) => {
          layers[li].key.set(l.key.subarray(from, from + n * headDim), to);
          layers[li].value.set(l.value.subarray(from, from + n * headDim), to);
        });
      }
      out++;
    }
  }
  const view = (a: Float32Array) => a.subarray(0, batch * rowFloats);
  return { cache: { batch, length, capacity, slots, layers: layers.map((l) => ({ key: view(l.key), value: view(l.value) })) }, kept };
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
