import type { BatchCache, LayerCache } from './decoder-session.js';

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
export function gatherRows(selections: readonly RowSelection[], length: number, kvHeads: number, headDim: number, capacity = length, slots = 0, columnRoom = capacity): BatchCache {
  const batch = selections.reduce((n, s) => n + s.rows.length, 0);
  const layerCount = selections[0].cache.layers.length;
  const rowFloats = kvHeads * capacity * headDim;
  // Room for `slots` rows of `columnRoom` columns, of which the first `batch` rows of `capacity` are the cache:
  // regroupInPlace adds rows there, restrideInPlace columns. (Pages of room never written are never touched.)
  const room = Math.max(slots, batch);
  const floats = room * kvHeads * Math.max(columnRoom, capacity) * headDim;
  const rowsOf = (array: Float32Array) => (array.length > batch * rowFloats ? array.subarray(0, batch * rowFloats) : array);
  const layers = Array.from({ length: layerCount }, () => ({
    key: rowsOf(new Float32Array(floats)),
    value: rowsOf(new Float32Array(floats)),
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
 * Where rows that join a running batch put their keys/values: `aligned`, right-aligned to end at the cache's
 * `length`, the column every row decodes at (a "fused-gqa" graph writes all rows at one column); `own`, from column 0,
 * each row then decoding at its own column. Aligned rows drift right as rows come and go, so their cache needs
 * new columns every few steps for as long as the batch runs; rows of their own need them only while one grows
 * longer than every row before it.
 */
export type RowPlacement = 'aligned' | 'own';

/**
 * Changes a running batch's rows without copying the rows that stay, in the arrays gatherRows gave room for: the
 * slots of leaving rows are taken by the last kept rows (one row copied per hole), and the joining rows are
 * written into the slots after them, placed as `placement` says. A full regather copies every row, which behind
 * a large batch holds the scheduler for several decode steps' worth of memory traffic each time one request joins
 * or leaves. Returns the new cache (views of the same arrays), for each of its kept rows the row it was (`kept[i]`),
 * and the column each joining row ends at; or undefined when the cache has no room: too few row slots, or (aligned)
 * no spare column or a joining row with more real tokens (`cached`) than `length`, or (own) than `capacity` - 1.
 */
export function regroupInPlace(
  cache: BatchCache,
  keep: readonly number[],
  joining: readonly (RowSelection & { cached: readonly number[] })[],
  kvHeads: number,
  headDim: number,
  placement: RowPlacement = 'aligned',
): { cache: BatchCache; kept: number[]; columns: number[] } | undefined {
  const { length, slots = cache.batch } = cache;
  const capacity = cache.capacity ?? length;
  const batch = keep.length + joining.reduce((n, s) => n + s.rows.length, 0);
  const own = placement === 'own';
  const longest = Math.max(0, ...joining.flatMap((s) => s.cached));
  if (batch > slots || !keep.length || (own ? longest >= capacity : length >= capacity || longest > length)) return undefined;
  const layers = arraysFor(cache, slots, capacity, kvHeads, headDim);
  if (!layers) return undefined;
  const rowFloats = kvHeads * capacity * headDim;
  const copyRow = (from: number, to: number) => {
    for (const l of layers) for (const a of [l.key, l.value]) a.copyWithin(to * rowFloats, from * rowFloats, (from + 1) * rowFloats);
  };
  // Kept rows below keep.length stay where they are; each hole there takes one of the kept rows above it.
  const staying = new Set(keep);
  const movers = keep.filter((b) => b >= keep.length);
  const kept = Array.from({ length: keep.length }, (_, i) => (staying.has(i) ? i : movers.shift()!));
  kept.forEach((from, to) => from !== to && copyRow(from, to));
  let out = keep.length;
  const columns: number[] = [];
  for (const { cache: source, rows, ends, cached } of joining) {
    const stride = source.capacity ?? source.length;
    for (const [i, row] of rows.entries()) {
      const end = ends?.[i] ?? source.length;
      const n = own ? cached[i] : Math.min(length, end);
      const column = own ? n : length;
      for (const l of layers) {
        l.key.fill(0, out * rowFloats, (out + 1) * rowFloats);
        l.value.fill(0, out * rowFloats, (out + 1) * rowFloats);
      }
      for (let h = 0; h < kvHeads; h++) {
        const from = ((row * kvHeads + h) * stride + end - n) * headDim;
        const to = ((out * kvHeads + h) * capacity + column - n) * headDim;
        source.layers.forEach((l, li) => {
          layers[li].key.set(l.key.subarray(from, from + n * headDim), to);
          layers[li].value.set(l.value.subarray(from, from + n * headDim), to);
        });
      }
      columns.push(column);
      out++;
    }
  }
  const view = (a: Float32Array) => a.subarray(0, batch * rowFloats);
  const joinedLength = Math.max(length, ...columns);
  return { cache: { batch, length: joinedLength, capacity, slots, layers: layers.map((l) => ({ key: view(l.key), value: view(l.value) })) }, kept, columns };
}

/**
 * Gives a running cache `capacity` columns a row without a second set of arrays, when its arrays have room
 * (gatherRows' `columnRoom`): each row keeps its columns, and the rows move apart (or together) to the new stride,
 * one memmove of the rows in use. A regather allocates and fills new arrays, which costs several times more and is
 * what a decode step waits for when a growing batch runs out of spare columns. Every row's real tokens must end
 * before `capacity`. Undefined when the arrays are too small.
 */
export function restrideInPlace(cache: BatchCache, capacity: number, kvHeads: number, headDim: number): BatchCache | undefined {
  const { slots = cache.batch, batch } = cache;
  const old = cache.capacity ?? cache.length;
  // (Views over the wider of the two strides: a narrower one reads rows past the new end.)
  const layers = arraysFor(cache, slots, Math.max(old, capacity), kvHeads, headDim);
  if (!layers) return undefined;
  const [from, to] = [old * headDim, capacity * headDim];
  const rowHeads = batch * kvHeads;
  const move = (a: Float32Array, rh: number) => a.copyWithin(rh * to, rh * from, rh * from + Math.min(from, to));
  for (const l of layers) {
    for (const a of [l.key, l.value]) {
      // Wider: the last row-head first, each to a place at or after its own, so none is overwritten before it moves.
      if (to > from) for (let rh = rowHeads - 1; rh > 0; rh--) move(a, rh);
      else for (let rh = 1; rh < rowHeads; rh++) move(a, rh);
    }
  }
  const view = (a: Float32Array) => a.subarray(0, rowHeads * to);
  return { ...cache, capacity, layers: layers.map((l) => ({ key: view(l.key), value: view(l.value) })) };
}

/** Views of a cache's whole arrays as `slots` rows of `capacity` columns, or undefined when they are smaller. */
function arraysFor(cache: BatchCache, slots: number, capacity: number, kvHeads: number, headDim: number): LayerCache[] | undefined {
  const floats = slots * kvHeads * capacity * headDim;
  if (cache.layers.some((l) => l.key.buffer.byteLength - l.key.byteOffset < floats * 4 || l.value.buffer.byteLength - l.value.byteOffset < floats * 4)) return undefined;
  return cache.layers.map((l) => ({
    key: new Float32Array(l.key.buffer, l.key.byteOffset, floats),
    value: new Float32Array(l.value.buffer, l.value.byteOffset, floats),
  }));
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
