import type { ExportedModel } from './model-manifest.js';
import { openSession, Tensor, type Device, type InferenceSession, type Provider, type ProviderProbe } from './onnx-runtime.js';

/** One layer's cache for a batch: [batch, kv_heads, length, head_dim] each, row-major. */
export interface LayerCache {
  key: Float32Array;
  value: Float32Array;
}

/** The KV cache of a batch: every row has the same `length` (shorter rows are left-padded, mask 0). */
export interface BatchCache {
  batch: number;
  length: number;
  layers: LayerCache[];
}

export interface DecoderStep {
  /** [batch, newTokens, vocab] */
  logits: Float32Array;
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

  private constructor(
    readonly model: ExportedModel,
    private readonly session: InferenceSession,
    readonly provider: Provider,
    readonly skipped: ProviderProbe[],
  ) {
    this.vocabSize = model.manifest.vocab_size;
    this.kvShape = [model.manifest.num_kv_heads, model.manifest.head_dim];
  }

  static async open(model: ExportedModel, opts: { device?: Device; threads?: number } = {}): Promise<DecoderSession> {
    const { session, provider, skipped } = await openSession(model.onnxPath, opts);
    return new DecoderSession(model, session, provider, skipped);
  }

  emptyCache(batch: number): BatchCache {
    return {
      batch,
      length: 0,
      layers: Array.from({ length: this.model.manifest.num_layers }, () => ({ key: new Float32Array(0), value: new Float32Array(0) })),
    };
  }

  /** Floats per cached token per row and layer, for one of key or value. */
  get kvStride(): number {
    return this.kvShape[0] * this.kvShape[1];
  }

  async forward(inputIds: BigInt64Array, attentionMask: BigInt64Array, positionIds: BigInt64Array, cache: BatchCache): Promise<DecoderStep> {
    const batch = cache.batch;
    const newTokens = inputIds.length / batch;
    const [kvHeads, headDim] = this.kvShape;
    const feeds: Record<string, Tensor> = {
      input_ids: new Tensor('int64', inputIds, [batch, newTokens]),
      attention_mask: new Tensor('int64', attentionMask, [batch, cache.length + newTokens]),
      position_ids: new Tensor('int64', positionIds, [batch, newTokens]),
    };
    cache.layers.forEach((layer, i) => {
      feeds[`past_key_values.${i}.key`] = new Tensor('float32', layer.key, [batch, kvHeads, cache.length, headDim]);
      feeds[`past_key_values.${i}.value`] = new Tensor('float32', layer.value, [batch, kvHeads, cache.length, headDim]);
    });
    const out = await this.session.run(feeds);
    const layers = cache.layers.map((_, i) => ({
      key: out[`present.${i}.key`].data as Float32Array,
      value: out[`present.${i}.value`].data as Float32Array,
    }));
    return { logits: out.logits.data as Float32Array, newTokens, cache: { batch, length: cache.length + newTokens, layers } };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
