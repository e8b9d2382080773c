import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BatchCache } from '../decoder-session.js';
import { withFloat32Scales } from '../float32-scales.js';
import type { ModelManifest, ExportedModel } from '../model-manifest.js';
import type { ElementType, HostArray, NativeBinding, NativeSession, NativeTensor } from '../native/ort-binding.js';
import { NativeSession as Session } from '../native/ort-binding.js';
import type { ProviderProbe } from '../onnx-runtime.js';
import type { DeviceDraw } from '../sampling.js';
import { type CacheType, fixedCacheGraph, NEXT_TOKEN_OUTPUT, SEQLENS_INPUT, TOTAL_LENGTH_INPUT } from './fixed-cache-graph.js';
import { DeviceSampler } from './device-sampler.js';

export interface FixedCacheOptions {
  provider: 'cpu' | 'cuda';
  threads?: number;
  /** Cache rows: the largest batch bucket (rounded up to a power of two). */
  rows: number;
  /** Columns of each row's cache: its prompt and every token it generates. */
  capacity: number;
  /** CUDA: capture each bucket's decode step as a CUDA graph and replay it (default on). */
  cudaGraphs?: boolean;
  /** ONNX Runtime session config entries over the binding's defaults (test/bench/peers.js measures them). */
  sessionConfig?: Record<string, string>;
}

/** The smallest power of two that holds `rows`: the batch buckets are 1, 2, 4, 8, 16, … */
export function bucketFor(rows: number): number {
  let bucket = 1;
  while (bucket < rows) bucket *= 2;
  return bucket;
}

/**
 * One decode step's inputs per slot of a bucket: the token fed, and its position, which is also the row's cached
 * tokens (`seqlens_k`: the column its keys are written to): rows start at column 0 of their own cache row.
 */
export interface StepFeeds {
  ids: BigInt64Array;
  positions: BigInt64Array;
}

/** A batch bucket: its view of the cache, its step's inputs and outputs in device memory, the binding its CUDA graph replays. */
interface Bucket {
  size: number;
  /** input_ids then position_ids (= seqlens_k), one int64 buffer: one host-to-device copy a step. */
  tokenInputs: NativeTensor;
  tokenArray: BigInt64Array;
  next: NativeTensor;
  logits: NativeTensor;
  binding: NativeBinding;
  runConfig?: Record<string, string>;
  tokens: BigInt64Array;
}

const ARRAYS: Record<ElementType, new (n: number) => HostArray> = {
  float32: Float32Array,
  float16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

/**
 * The decode path with the KV cache in place on the device (llmkit's own binding; issue 24): one cache buffer per
 * layer of `rows` × `capacity` columns, each slot (a row) owned by one sequence while it runs, written in place by
 * GroupQueryAttention (past and present are the same tensor). A decode step runs the smallest bucket (1, 2, 4, …)
 * that holds every live slot, over a view of the cache's first rows, with only token ids, positions and lengths
 * written to the device and token ids read back; on CUDA each bucket's step is captured once as a CUDA graph
 * (`gpu_graph_id`) and replayed. A prefill runs one row outside the graphs, into that slot's own cache row, so
 * rows join and leave between steps without copying any cache.
 */
export class FixedCacheDecoder {
  readonly vocabSize: number;
  readonly skipped: ProviderProbe[] = [];
  /** No LoRA inputs on this path (LocalEngine keeps adapters on the dynamic one). */
  readonly lora = undefined;
  private readonly buckets = new Map<number, Bucket>();
  /** By `first:count` rows: the binding of a prefill over them, and where it writes their next tokens. */
  private readonly prefillBindings = new Map<string, { binding: NativeBinding; tokens: BigInt64Array }>();
  /** Where a prefill's logits go unless the caller reads them, one row per row of the widest pass so far. */
  private prefillLogits: NativeTensor;
  private readonly rowElements: number;
  private sampler?: DeviceSampler;
  private samplerError?: string;

  private constructor(
    readonly model: ExportedModel,
    private readonly session: NativeSession,
    readonly provider: 'cpu' | 'cuda',
    readonly rows: number,
    readonly capacity: number,
    private readonly cacheType: CacheType,
    private readonly caches: readonly [NativeTensor, NativeTensor][],
    private readonly cudaGraphs: boolean,
    private readonly threads?: number,
  ) {
    this.vocabSize = model.manifest.vocab_size;
    this.rowElements = model.manifest.num_kv_heads * capacity * model.manifest.head_dim;
    this.prefillLogits = deviceBuffer(session, provider, 'float32', [1, 1, this.vocabSize]);
  }

  static async open(model: ExportedModel, opts: FixedCacheOptions): Promise<FixedCacheDecoder> {
    const file = await readFile(model.onnxPath);
    // fp16 block scales (int4's default) compute in fp16 between Casts: the CPU's slow path (float32-scales.ts).
    const { bytes, cacheType } = fixedCacheGraph(opts.provider === 'cpu' ? withFloat32Scales(file).bytes : file);
    const open = (graphs: boolean) =>
      Session.open(bytes, {
        provider: opts.provider,
        threads: opts.threads,
        cuda: graphs ? { enable_cuda_graph: '1' } : {},
        config: { ...opts.sessionConfig, 'session.model_external_initializers_file_folder_path': dirname(model.onnxPath) },
      });
    let cudaGraphs = opts.provider === 'cuda' && opts.cudaGraphs !== false;
    let session: NativeSession;
    const skipped: ProviderProbe[] = [];
    try {
      session = open(cudaGraphs);
    } catch (e) {
      // ONNX Runtime captures only a graph whose every node runs on CUDA: an fp32 export leaves some on the CPU.
      if (!cudaGraphs || !/CUDA ?Graph|graph capture/i.test((e as Error).message)) throw e;
      cudaGraphs = false;
      session = open(false);
      skipped.push({ provider: 'cuda', loaded: true, reason: `decode steps run without CUDA graphs: ${(e as Error).message}` });
    }
    const rows = bucketFor(opts.rows);
    const shape = cacheShape(model.manifest, rows, opts.capacity);
    const allocate = () => deviceBuffer(session, opts.provider, cacheType, shape);
    const caches = Array.from({ length: model.manifest.num_layers }, (): [NativeTensor, NativeTensor] => [allocate(), allocate()]);
    const decoder = new FixedCacheDecoder(model, session, opts.provider, rows, opts.capacity, cacheType, caches, cudaGraphs, opts.threads);
    decoder.skipped.push(...skipped);
    if (cudaGraphs) await decoder.captureGraphs();
    return decoder;
  }

  /**
   * Captures every bucket's CUDA graph while the model opens (ONNX Runtime captures a graph at its third run), so
   * no request waits for a capture when its rows first fill a larger bucket. The steps write column 0 of free rows,
   * which a row's prefill overwrites.
   */
  private async captureGraphs(): Promise<void> {
    for (let size = 1; size <= this.rows; size *= 2) {
      const feeds: StepFeeds = { ids: new BigInt64Array(size), positions: new BigInt64Array(size) };
      for (let run = 0; run < 3; run++) await this.step(size, feeds);
    }
  }

  /** Which ONNX Runtime binding runs the passes: always llmkit's own (it alone binds outputs in place). */
  get binding(): 'llmkit' {
    return 'llmkit';
  }

  /**
   * Runs tokens `start ..` of a sequence (a prompt, or a chunk of it) through `slot`'s cache row, which holds its
   * first `start` tokens: a pass of batch 1 outside the CUDA graphs. Returns the last position's argmax, chosen on
   * the device, and where `logits` is asked for, that position's logits (read back to the host: a grammar, a
   * sampled or penalised first token); otherwise they stay on the device.
   */
  async prefill(slot: number, ids: readonly number[], start: number, opts: { logits: boolean }): Promise<{ token: number; logits?: Float32Array }> {
    const { tokens, logits } = await this.prefillRows(slot, [ids], start, opts);
    return { token: tokens[0], logits };
  }

  /**
   * `prefill` for rows `first ..` at once, one sequence of one length each, all from column `start`: one pass over
   * their cache rows (`logits`: rows × vocabulary, row by row). ONNX Runtime's CPU GroupQueryAttention takes several
   * rows of several tokens only without past context, so a pass of more than one row starts at column 0.
   */
  async prefillRows(first: number, rows: readonly (readonly number[])[], start: number, opts: { logits: boolean }): Promise<{ tokens: number[]; logits?: Float32Array }> {
    const [count, n] = [rows.length, rows[0].length];
    if (start + n > this.capacity) throw new Error(`a row holds ${this.capacity} tokens; this one would need ${start + n}`);
    if (count > 1 && (start > 0 || rows.some((ids) => ids.length !== n))) throw new Error('a pass of several rows prefills prompts of one length from column 0');
    const { binding, tokens } = this.prefillBinding(first, count);
    const host = (array: HostArray, type: ElementType, shape: number[]) => this.session.hostTensor(array, type, shape);
    binding.input('input_ids', host(BigInt64Array.from(rows.flat(), BigInt), 'int64', [count, n]));
    binding.input(
      'position_ids',
      host(
        BigInt64Array.from({ length: count * n }, (_, i) => BigInt(start + (i % n))),
        'int64',
        [count, n],
      ),
    );
    binding.input(SEQLENS_INPUT, host(new BigInt64Array(count).fill(BigInt(start + n - 1)), 'int64', [count]));
    binding.input(TOTAL_LENGTH_INPUT, host(Int32Array.of(start + n), 'int32', []));
    const logits = opts.logits ? new Float32Array(count * this.vocabSize) : undefined;
    binding.output('logits', logits ? host(logits, 'float32', [count, 1, this.vocabSize]) : this.deviceLogits(count));
    await binding.run(this.provider === 'cuda' ? { gpu_graph_id: '-1' } : undefined);
    return { tokens: Array.from(tokens, Number), logits };
  }

  /** A prefill's binding over rows `first .. first + count - 1`: their cache rows and next-token output bound once (a hundred binds fewer a pass). */
  private prefillBinding(first: number, count: number): { binding: NativeBinding; tokens: BigInt64Array } {
    const key = `${first}:${count}`;
    const known = this.prefillBindings.get(key);
    if (known) return known;
    const made = { binding: this.session.binding(), tokens: new BigInt64Array(count) };
    made.binding.output(NEXT_TOKEN_OUTPUT, this.session.hostTensor(made.tokens, 'int64', [count, 1, 1]));
    this.bindCache(made.binding, first, count);
    this.prefillBindings.set(key, made);
    return made;
  }

  /** Device memory for `count` rows of logits nobody reads back (the widest pass's, viewed for fewer rows). */
  private deviceLogits(count: number): NativeTensor {
    if (this.prefillLogits.shape[0] < count) this.prefillLogits = deviceBuffer(this.session, this.provider, 'float32', [count, 1, this.vocabSize]);
    return this.prefillLogits.view(0, [count, 1, this.vocabSize]);
  }

  /**
   * One decode step over slots 0 .. bucket - 1: each reads its token, position and cached length from `feeds`
   * (a slot nobody decodes still runs: it writes one column its owner overwrites or never reads). Returns each
   * slot's next token: its argmax, or where `draws[slot]` is given, a draw from its temperature/top-k/top-p
   * distribution made on the device (device-sampler.ts); `drawn` false when the device sampler could not run
   * (those slots' tokens are then the caller's to draw on the host).
   */
  async step(bucketSize: number, feeds: StepFeeds, draws?: readonly (DeviceDraw | undefined)[]): Promise<{ tokens: BigInt64Array; drawn: boolean }> {
    const bucket = this.bucket(bucketSize);
    bucket.tokenArray.set(feeds.ids);
    bucket.tokenArray.set(feeds.positions, bucketSize);
    bucket.tokenInputs.write(bucket.tokenArray);
    await bucket.binding.run(bucket.runConfig);
    bucket.next.read(bucket.tokens);
    if (!draws?.some((d) => d)) return { tokens: bucket.tokens, drawn: true };
    if (this.samplerError) return { tokens: bucket.tokens, drawn: false };
    try {
      this.sampler ??= DeviceSampler.open(this.provider, this.threads);
      const sampled = await this.sampler.draw(bucket.logits, bucketSize, this.vocabSize, draws);
      draws.forEach((d, slot) => {
        if (d) bucket.tokens[slot] = sampled[slot];
      });
      return { tokens: bucket.tokens, drawn: true };
    } catch (e) {
      // The draws still happen, on the host from each row's logits (TokenSampler.drawOnHost), from now on.
      this.samplerError = (e as Error).message;
      this.skipped.push({ provider: this.provider, loaded: true, reason: `top-k/top-p sampling runs on the host: ${this.samplerError}` });
      return { tokens: bucket.tokens, drawn: false };
    }
  }

  /** Whether temperature/top-k/top-p draws run on the device (until the device sampler fails once). */
  get samplesOnDevice(): boolean {
    return this.samplerError === undefined;
  }

  /** A slot's logits from the bucket's last step: for rows whose token is chosen on the host (a grammar, logprobs, penalties). */
  logitsOf(bucketSize: number, slot: number): Float32Array {
    const row = new Float32Array(this.vocabSize);
    this.bucket(bucketSize).logits.read(row, slot * this.vocabSize * 4);
    return row;
  }

  private bucket(size: number): Bucket {
    const known = this.buckets.get(size);
    if (known) return known;
    if (size > this.rows) throw new Error(`bucket ${size} is larger than the cache's ${this.rows} rows`);
    const buffer = (type: ElementType, shape: number[]) => deviceBuffer(this.session, this.provider, type, shape);
    const tokenInputs = buffer('int64', [2 * size]);
    const bucket: Bucket = {
      size,
      tokenInputs,
      tokenArray: new BigInt64Array(2 * size),
      next: buffer('int64', [size, 1, 1]),
      logits: buffer('float32', [size, 1, this.vocabSize]),
      binding: this.session.binding(),
      tokens: new BigInt64Array(size),
    };
    // The cache's width, at every step: a captured graph stays valid; each row's own length is its seqlens_k.
    bucket.binding.input(TOTAL_LENGTH_INPUT, this.session.hostTensor(Int32Array.of(this.capacity), 'int32', []));
    bucket.binding
      .input('input_ids', tokenInputs.view(0, [size, 1]))
      .input('position_ids', tokenInputs.view(size, [size, 1]))
      .input(SEQLENS_INPUT, tokenInputs.view(size, [size]));
    bucket.binding.output('logits', bucket.logits).output(NEXT_TOKEN_OUTPUT, bucket.next);
    this.bindCache(bucket.binding, 0, size);
    // Graph ids from 1: a bucket's graph is captured at its first runs and replayed after.
    if (this.provider === 'cuda') bucket.runConfig = { gpu_graph_id: this.cudaGraphs ? String(Math.log2(size) + 1) : '-1' };
    this.buckets.set(size, bucket);
    return bucket;
  }

  /** Binds `count` cache rows from `first` on as every layer's past and present: one buffer, written in place. */
  private bindCache(binding: NativeBinding, first: number, count: number): void {
    const shape = cacheShape(this.model.manifest, count, this.capacity);
    this.caches.forEach(([key, value], i) => {
      const k = key.view(first * this.rowElements, shape);
      const v = value.view(first * this.rowElements, shape);
      binding.input(`past_key_values.${i}.key`, k).input(`past_key_values.${i}.value`, v);
      binding.output(`present.${i}.key`, k).output(`present.${i}.value`, v);
    });
  }

  /**
   * The first `length` columns of a slot's cache row, copied out as a one-row cache without spare columns (what
   * PrefixCache keeps). A float32 cache only: the prefix cache holds float32 keys and values.
   */
  readRow(slot: number, length: number): BatchCache {
    return { batch: 1, length, layers: this.caches.map(([key, value]) => ({ key: this.copyRow(key, slot, length), value: this.copyRow(value, slot, length) })) };
  }

  /** Writes a one-row cache (readRow's shape) into the first columns of a slot's cache row. */
  writeRow(slot: number, cache: BatchCache): void {
    this.caches.forEach(([key, value], i) => {
      this.copyRow(key, slot, cache.length, cache.layers[i].key);
      this.copyRow(value, slot, cache.length, cache.layers[i].value);
    });
  }

  /** Copies `length` columns of each head of a slot's row out of `tensor` (into a new array), or from `from` into it. */
  private copyRow(tensor: NativeTensor, slot: number, length: number, from?: Float32Array): Float32Array {
    if (this.cacheType !== 'float32') throw new Error(`a ${this.cacheType} cache row cannot be copied as float32`);
    const { num_kv_heads: heads, head_dim: dim } = this.model.manifest;
    const rows = from ?? new Float32Array(heads * length * dim);
    for (let h = 0; h < heads; h++) {
      const part = rows.subarray(h * length * dim, (h + 1) * length * dim);
      const at = (slot * this.rowElements + h * this.capacity * dim) * 4;
      if (from) tensor.write(part, at);
      else tensor.read(part, at);
    }
    return rows;
  }

  /** The element type of the cache (float16 for a float16 export on any device). */
  get kvType(): CacheType {
    return this.cacheType;
  }

  async release(): Promise<void> {
    this.sampler?.release();
    this.session.release();
  }
}

function cacheShape(manifest: ModelManifest, rows: number, capacity: number): number[] {
  return [rows, manifest.num_kv_heads, capacity, manifest.head_dim];
}

/** A tensor in the session's device memory (CUDA), or over a host array of its own (CPU). */
export function deviceBuffer(session: NativeSession, provider: 'cpu' | 'cuda', type: ElementType, shape: readonly number[]): NativeTensor {
  if (provider === 'cuda') return session.deviceTensor(type, shape);
  return session.hostTensor(new ARRAYS[type](shape.reduce((n, d) => n * d, 1)), type, shape);
}
