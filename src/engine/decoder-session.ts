import { readFile } from 'node:fs/promises';
import { withoutOutputs } from './graph-pruning.js';
import { LAST_POSITIONS_INPUT, withLastPositionLogits } from './last-position-logits.js';
import { withOutputColumns } from './output-columns.js';
import type { LoraAdapter } from './lora-adapter.js';
import { LoraFeeds } from './lora-feeds.js';
import { withLoraInputs } from './lora-graph.js';
import { UsageError } from '../shared/errors.js';
import type { ExportedModel } from './model-manifest.js';
import type { Provider } from './devices.js';
import { type ModelRunner, openSession, type OutputSpec, type ProviderProbe, type SessionOptions, Tensor } from './onnx-runtime.js';

/** One layer's cache for a batch: [batch, kv_heads, length, head_dim] each, row-major. */
export interface LayerCache {
  key: Float32Array;
  value: Float32Array;
}

/**
 * The KV cache of a batch: every row has the same `length` (shorter rows are left-padded, mask 0). Each
 * (row, head) owns `capacity` columns (default: `length`), of which the first `length` hold the cache; spare
 * columns let DecoderSession.decodeInPlace append a token without copying the cache.
 */
export interface BatchCache {
  batch: number;
  length: number;
  capacity?: number;
  /** Rows the arrays have room for (default: `batch`): see regroupInPlace. */
  slots?: number;
  layers: LayerCache[];
}

/** Each row's LoRA adapter (undefined: the base model), for a session opened with `lora` targets. */
export type RowAdapters = readonly (LoraAdapter | undefined)[];

/** Which positions' logits a pass returns: every new token's (to score text) or each row's last (to generate). */
export type LogitsPositions = 'all' | 'last';

export interface DecoderStep {
  /** [batch, logitsPositions, vocab] */
  logits: Float32Array;
  /** Positions per row in `logits`: `newTokens`, or 1 from a session opened with `logits: 'last'`. */
  logitsPositions: number;
  newTokens: number;
  cache: BatchCache;
}

/**
 * A thin typed wrapper over the exported decoder: one forward pass over new tokens given a cache.
 * Rows are left-padded: `attentionMask` covers past + new tokens per row, `positionIds` carry each
 * row's true positions, so one batch can hold sequences of different lengths.
 */
export class DecoderSession {
  readonly vocabSize: number;
  private readonly kvShape: [number, number];
  /**
   * A "fused-gqa" graph (`llmkit export --gqa`): GroupQueryAttention writes each layer's past + new keys into
   * `present.*` (there is no packed new_key_values), and for an in-place step into the cache buffer itself.
   */
  private readonly gqa: boolean;

  private constructor(
    readonly model: ExportedModel,
    private readonly runner: ModelRunner,
    readonly provider: Provider,
    readonly skipped: ProviderProbe[],
    /** Whether `logits` covers each row's last `last_positions` positions only (last-position-logits.ts). */
    private readonly lastOnly: boolean,
    /** The LoRA inputs of a session opened with `lora` targets (lora-graph.ts). */
    readonly lora?: LoraFeeds,
    /** The token each logit column stands for, where the output layer keeps only some (output-columns.ts); else column i is token i. */
    readonly outputIds?: readonly number[],
  ) {
    this.vocabSize = outputIds?.length ?? model.manifest.vocab_size;
    this.kvShape = [model.manifest.num_kv_heads, model.manifest.head_dim];
    this.gqa = model.manifest.graph === 'fused-gqa';
  }

  /** Which ONNX Runtime binding runs the passes: llmkit's own (outputs written in place) or onnxruntime-node. */
  get binding(): ModelRunner['binding'] {
    return this.runner.binding;
  }

  /**
   * Opens the export without its `present.*` outputs (kept in the file for transformers.js): ONNX Runtime
   * would otherwise copy the whole cache into them at every step, fetched or not. With `logits: 'last'`,
   * passes compute the output layer for each row's last position only (last-position-logits.ts): all that
   * generating reads; scoring text needs every position, the default. A "fused-gqa" graph keeps `present.*`:
   * GroupQueryAttention writes them in any case, and they are its cache.
   */
  static async open(model: ExportedModel, opts: SessionOptions & { logits?: LogitsPositions; lora?: readonly string[]; outputIds?: readonly number[] } = {}): Promise<DecoderSession> {
    const bytes = await readFile(model.onnxPath);
    const pruned = model.manifest.graph === 'fused-gqa' ? bytes : withoutOutputs(bytes, (name) => name.startsWith('present.'));
    // Where the rewrite does not apply, passes return every position; DecoderStep.logitsPositions says which.
    const lastOnly = opts.logits === 'last' ? withLastPositionLogits(pruned) : undefined;
    // Where it does not apply (a quantized output layer), the logits keep every token.
    const columns = opts.outputIds && withOutputColumns(lastOnly ?? pruned, opts.outputIds);
    const lora = opts.lora?.length ? loraGraph(model, columns ?? lastOnly ?? pruned, opts.lora) : undefined;
    const { runner, provider, skipped } = await openSession({ bytes: lora?.bytes ?? columns ?? lastOnly ?? pruned, path: model.onnxPath }, opts);
    return new DecoderSession(model, runner, provider, skipped, lastOnly !== undefined, lora && new LoraFeeds(lora.modules), columns && opts.outputIds);
  }

  /** Whether a pass can verify several drafted tokens a row (speculative decoding): in-place steps of several tokens with logits for each. */
  get verifiesDrafts(): boolean {
    return this.lastOnly && !this.gqa;
  }

  emptyCache(batch: number): BatchCache {
    return {
      batch,
      length: 0,
      layers: Array.from({ length: this.model.manifest.num_layers }, () => ({ key: new Float32Array(0), value: new Float32Array(0) })),
    };
  }

  private paddingColumn(batch: number): BatchCache {
    const zeros = () => new Float32Array(batch * this.kvStride);
    return { batch, length: 1, layers: Array.from({ length: this.model.manifest.num_layers }, () => ({ key: zeros(), value: zeros() })) };
  }

  /** Floats per cached token per row and layer, for one of key or value. */
  get kvStride(): number {
    return this.kvShape[0] * this.kvShape[1];
  }

  /**
   * A forward pass whose cache comes back as a new, longer copy (past + new). The cache must have no spare columns.
   * Aborting `signal` may stop it with RunInterrupted (ModelRunner.run), the cache as it was.
   */
  async forward(inputIds: BigInt64Array, attentionMask: BigInt64Array, positionIds: BigInt64Array, cache: BatchCache, adapters?: RowAdapters, signal?: AbortSignal): Promise<DecoderStep> {
    if ((cache.capacity ?? cache.length) !== cache.length) throw new Error('forward() takes a cache without spare columns; use decodeInPlace');
    const { batch } = cache;
    const newTokens = inputIds.length / batch;
    if (this.gqa) return this.forwardGqa(inputIds, attentionMask, positionIds, cache, signal);
    // ONNX Runtime's WebGPU provider crashes the process on a zero-length past (attention's matmul over it), so
    // an empty cache goes in as one masked column of zeros, a left pad like any other, and stays out of the result.
    const [fed, mask] = cache.length === 0 ? [this.paddingColumn(batch), withLeadingPad(attentionMask, batch)] : [cache, attentionMask];
    const out = await this.runner.run(this.feeds(inputIds, mask, positionIds, fed, 1, adapters), this.packedOutputs(batch, newTokens), signal);
    const fresh = newKeyValues(out.new_key_values, cache.layers.length);
    const rowHeads = batch * this.kvShape[0];
    const append = (past: Float32Array, part: Float32Array) => appendColumns(past, part, rowHeads, cache.length, newTokens, this.kvShape[1]);
    const layers = cache.layers.map((layer, i) => ({ key: append(layer.key, fresh[i].key), value: append(layer.value, fresh[i].value) }));
    return { ...this.logitsOf(out.logits, batch), newTokens, cache: { batch, length: cache.length + newTokens, layers } };
  }

  /**
   * forward() on a "fused-gqa" graph: `present.*` is the new cache. GroupQueryAttention takes several new tokens
   * over a non-empty past only for a batch of one (ONNX Runtime 1.30: "batch_size must be 1 when
   * sequence_length > 1 and past context is given"), so such a pass (a later chunk of a batched prefill) runs
   * row by row.
   */
  private async forwardGqa(inputIds: BigInt64Array, attentionMask: BigInt64Array, positionIds: BigInt64Array, cache: BatchCache, signal?: AbortSignal): Promise<DecoderStep> {
    const { batch, length } = cache;
    const newTokens = inputIds.length / batch;
    if (batch > 1 && newTokens > 1 && length > 0) {
      const rows: DecoderStep[] = [];
      const width = length + newTokens;
      for (let b = 0; b < batch; b++) {
        const row = <T extends BigInt64Array | Float32Array>(a: T, size: number) => a.subarray(b * size, (b + 1) * size) as T;
        const rowSize = this.kvStride * length;
        const layers = cache.layers.map((l) => ({ key: row(l.key, rowSize), value: row(l.value, rowSize) }));
        rows.push(await this.forwardGqa(row(inputIds, newTokens), row(attentionMask, width), row(positionIds, newTokens), { batch: 1, length, layers }, signal));
      }
      const join = (parts: Float32Array[]) => {
        const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
        parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
        return out;
      };
      const layers = cache.layers.map((_, i) => ({ key: join(rows.map((r) => r.cache.layers[i].key)), value: join(rows.map((r) => r.cache.layers[i].value)) }));
      return { logits: join(rows.map((r) => r.logits)), logitsPositions: rows[0].logitsPositions, newTokens, cache: { batch, length: width, layers } };
    }
    const present = [batch, ...this.kvShape.slice(0, 1), length + newTokens, this.kvShape[1]];
    const outputs: Record<string, OutputSpec> = { logits: this.logitsSpec(batch, newTokens) };
    for (const name of presentNames(cache.layers.length)) outputs[name] = { dims: present };
    const out = await this.runner.run(this.feeds(inputIds, attentionMask, positionIds, cache), outputs, signal);
    const layers = cache.layers.map((_, i) => ({ key: out[`present.${i}.key`], value: out[`present.${i}.value`] }));
    return { ...this.logitsOf(out.logits, batch), newTokens, cache: { batch, length: length + newTokens, layers } };
  }

  /**
   * A decode step that writes the new keys/values into the cache's spare columns instead of copying the whole
   * cache: one new token a row, or several (speculative decoding verifies a drafted continuation in one pass,
   * and gets logits for each of its positions). `attentionMask` covers all `capacity` columns plus the new
   * tokens, 0 where a row has no token. Row b's new columns go to `ends[b]` onward (default: every row at
   * `length`), which must leave room before `capacity`; the cache is updated and returned with `length` at
   * the furthest row's end. A row that does not keep its later new columns simply ends before them: the next
   * pass masks them and writes over them. Aborting `signal` may stop it with RunInterrupted (ModelRunner.run): the rows
   * then end where they did, and anything it wrote past them is masked and written over by the next pass.
   */
  async decodeInPlace(
    inputIds: BigInt64Array,
    attentionMask: BigInt64Array,
    positionIds: BigInt64Array,
    cache: BatchCache,
    ends?: readonly number[],
    adapters?: RowAdapters,
    signal?: AbortSignal,
  ): Promise<DecoderStep> {
    const capacity = cache.capacity ?? cache.length;
    const newTokens = inputIds.length / cache.batch;
    const at = ends ?? Array.from({ length: cache.batch }, () => cache.length);
    if (at.some((end) => end + newTokens > capacity)) throw new Error('decodeInPlace needs a spare column in the cache for each new token');
    if (this.gqa) {
      if (newTokens > 1 || at.some((end) => end !== cache.length)) throw new Error('a "fused-gqa" graph decodes one token a row at the cache\'s length');
      return this.decodeInPlaceGqa(inputIds, attentionMask, positionIds, cache, signal);
    }
    if (newTokens > 1 && !this.lastOnly) throw new Error('verifying several tokens needs a decoder opened with logits: "last"');
    const out = await this.runner.run(this.feeds(inputIds, attentionMask, positionIds, cache, newTokens, adapters), this.packedOutputs(cache.batch, newTokens, newTokens), signal);
    const [kvHeads, headDim] = this.kvShape;
    const fresh = newKeyValues(out.new_key_values, cache.layers.length);
    const span = newTokens * headDim;
    // An element loop, not set(subarray()): a view object per (layer, row, head) costs 2-3x the copy (0.3 against
    // 0.13 ms a step at batch 8) and feeds the garbage collector.
    cache.layers.forEach((layer, i) => {
      const { key, value } = fresh[i];
      for (let rowHead = 0; rowHead < cache.batch * kvHeads; rowHead++) {
        const to = (rowHead * capacity + at[Math.floor(rowHead / kvHeads)]) * headDim;
        const from = rowHead * span;
        for (let j = 0; j < span; j++) {
          layer.key[to + j] = key[from + j];
          layer.value[to + j] = value[from + j];
        }
      }
    });
    return { logits: out.logits, logitsPositions: newTokens, newTokens, cache: { ...cache, length: Math.max(...at) + newTokens } };
  }

  /**
   * decodeInPlace() on a "fused-gqa" graph: each layer's `present` is bound to the cache buffer its past is read
   * from, so GroupQueryAttention writes the new keys into column `length` itself (it attends to columns up to
   * its `seqlens_k`, the mask's width - 1): the mask goes in as the cache's `length` columns and the new token's.
   */
  private async decodeInPlaceGqa(inputIds: BigInt64Array, attentionMask: BigInt64Array, positionIds: BigInt64Array, cache: BatchCache, signal?: AbortSignal): Promise<DecoderStep> {
    const { batch, length } = cache;
    const capacity = cache.capacity ?? length;
    const mask = new BigInt64Array(batch * (length + 1));
    for (let b = 0; b < batch; b++) {
      mask.set(attentionMask.subarray(b * (capacity + 1), b * (capacity + 1) + length), b * (length + 1));
      mask[b * (length + 1) + length] = attentionMask[(b + 1) * (capacity + 1) - 1];
    }
    const feeds = this.feeds(inputIds, mask, positionIds, cache);
    const outputs: Record<string, OutputSpec> = { logits: this.logitsSpec(batch, 1) };
    const dims = [batch, this.kvShape[0], capacity, this.kvShape[1]];
    cache.layers.forEach((layer, i) => {
      outputs[`present.${i}.key`] = { dims, into: layer.key };
      outputs[`present.${i}.value`] = { dims, into: layer.value };
    });
    const out = await this.runner.run(feeds, outputs, signal);
    return { logits: out.logits, logitsPositions: 1, newTokens: 1, cache: { ...cache, length: length + 1 } };
  }

  private logitsOf(logits: Float32Array, batch: number): Pick<DecoderStep, 'logits' | 'logitsPositions'> {
    return { logits, logitsPositions: logits.length / (batch * this.vocabSize) };
  }

  /** `logits` of a pass over `newTokens` a row: every position's, or the last `lastPositions` of a graph that computes only those. */
  private logitsSpec(batch: number, newTokens: number, lastPositions = 1): OutputSpec {
    return { dims: [batch, this.lastOnly ? lastPositions : newTokens, this.vocabSize] };
  }

  /** logits and the packed new_key_values [2 x layers x batch, kv_heads, new, head_dim] of a graph that is not fused-gqa. */
  private packedOutputs(batch: number, newTokens: number, lastPositions = 1): Record<string, OutputSpec> {
    const layers = this.model.manifest.num_layers;
    return { logits: this.logitsSpec(batch, newTokens, lastPositions), new_key_values: { dims: [2 * layers * batch, this.kvShape[0], newTokens, this.kvShape[1]] } };
  }

  /** The inputs of one pass; the past is each layer's whole buffer (spare columns included), passed without a copy. */
  private feeds(inputIds: BigInt64Array, attentionMask: BigInt64Array, positionIds: BigInt64Array, cache: BatchCache, lastPositions = 1, adapters?: RowAdapters): Record<string, Tensor> {
    const { batch } = cache;
    const columns = cache.capacity ?? cache.length;
    const newTokens = inputIds.length / batch;
    const [kvHeads, headDim] = this.kvShape;
    const feeds: Record<string, Tensor> = {
      input_ids: new Tensor('int64', inputIds, [batch, newTokens]),
      attention_mask: new Tensor('int64', attentionMask, [batch, attentionMask.length / batch]),
      position_ids: new Tensor('int64', positionIds, [batch, newTokens]),
    };
    if (this.lastOnly) feeds[LAST_POSITIONS_INPUT] = new Tensor('int64', BigInt64Array.of(BigInt(lastPositions)), [1]);
    if (this.lora) Object.assign(feeds, this.lora.feeds(adapters ?? new Array<undefined>(batch)));
    cache.layers.forEach((layer, i) => {
      feeds[`past_key_values.${i}.key`] = new Tensor('float32', layer.key, [batch, kvHeads, columns, headDim]);
      feeds[`past_key_values.${i}.value`] = new Tensor('float32', layer.value, [batch, kvHeads, columns, headDim]);
    });
    return feeds;
  }

  async release(): Promise<void> {
    await this.runner.release();
  }
}

/** The export rewritten with LoRA inputs on its `targets` projections; refuses graphs it cannot adapt. */
function loraGraph(model: ExportedModel, bytes: Uint8Array, targets: readonly string[]) {
  const hint = 'serve LoRA adapters over an fp32 export made without --gqa (llmkit export MODEL), or merge them: llmkit lora merge';
  if (model.manifest.graph === 'fused-gqa') throw new UsageError(`${model.dir} is a --gqa export, whose attention cannot take LoRA inputs per row`, hint);
  if (model.manifest.dtype !== 'float32') throw new UsageError(`${model.dir} computes in ${model.manifest.dtype}; LoRA inputs are served over float32 exports`, hint);
  const lora = withLoraInputs(bytes, targets);
  const found = new Set(lora?.modules.map((m) => m.target));
  const missing = targets.filter((t) => !found.has(t));
  if (!lora || missing.length) throw new UsageError(`${model.dir} has no ${missing.join(', ')} projections (nodes named /layers.N/…/<target>/MatMul) to adapt`, hint);
  return lora;
}

function presentNames(layers: number): string[] {
  return Array.from({ length: layers }, (_, i) => [`present.${i}.key`, `present.${i}.value`]).flat();
}

/** Each layer's part of the packed `new_key_values` output [2 x layers x batch, kv_heads, new, head_dim], as views. */
function newKeyValues(data: Float32Array, layers: number): LayerCache[] {
  const size = data.length / (2 * layers);
  const part = (i: number) => data.subarray(i * size, (i + 1) * size);
  return Array.from({ length: layers }, (_, i) => ({ key: part(2 * i), value: part(2 * i + 1) }));
}

/** Each (row, head)'s `pastLength` columns of `past` followed by its `newLength` columns of `fresh`: [rowHeads, past + new, headDim]. */
function appendColumns(past: Float32Array, fresh: Float32Array, rowHeads: number, pastLength: number, newLength: number, headDim: number): Float32Array {
  if (pastLength === 0) return fresh;
  const width = (pastLength + newLength) * headDim;
  const out = new Float32Array(rowHeads * width);
  for (let r = 0; r < rowHeads; r++) {
    out.set(past.subarray(r * pastLength * headDim, (r + 1) * pastLength * headDim), r * width);
    out.set(fresh.subarray(r * newLength * headDim, (r + 1) * newLength * headDim), r * width + pastLength * headDim);
  }
  return out;
}

/** The mask with a 0 before each row's columns. */
function withLeadingPad(mask: BigInt64Array, batch: number): BigInt64Array {
  const width = mask.length / batch;
  const out = new BigInt64Array(batch * (width + 1));
  for (let b = 0; b < batch; b++) out.set(mask.subarray(b * width, (b + 1) * width), b * (width + 1) + 1);
  return out;
}
