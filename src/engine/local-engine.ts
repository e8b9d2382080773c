import { DecoderSession } from './decoder-session.js';
import { FixedCacheDecoder } from './fixed-cache/fixed-cache-decoder.js';
import { FixedCacheScheduler } from './fixed-cache/fixed-cache-scheduler.js';
import { bindingStatus } from './native/ort-binding.js';
import { autoMeansCpu, providerUnavailable } from './onnx-runtime.js';
import { LoraAdapter } from './lora-adapter.js';
import { LlmkitError, UsageError } from '../shared/errors.js';
import { openDrafter } from './drafters.js';
import { maxNewTokens, type Choice, type GenerationEngine, type TextRequest } from './engine-contract.js';
import { IncrementalDetokenizer } from './detokenizer.js';
import type { SchedulerLimits } from './admission.js';
import { GenerationScheduler } from './generation-scheduler.js';
import type { WatchdogEvent } from './step-watchdog.js';
import type { GenerationRequest } from './sequence.js';
import { DEFAULT_PREFIX_CACHE_MB, PrefixCache } from './prefix-cache.js';
import { loadExportedModel, type ExportedModel } from './model-manifest.js';
import type { Device } from './devices.js';
import { GREEDY } from './sampling.js';
import { TextCollector, type GenerationEnd, type Streamer } from './streamer.js';
import { StreamingTextMatcher } from './text-matcher.js';
import { TextSink } from './text-sink.js';
import { ModelTokenizer } from './tokenizer.js';

export interface EngineOptions extends Partial<SchedulerLimits> {
  device?: Device;
  /** Intra-op threads for ONNX Runtime (default: one per physical core). */
  threads?: number;
  /** Called after each decode step with the number of rows it advanced. */
  onDecodeStep?: (rows: number) => void;
  /** Hears of a step or batch that got stuck (its requests failed) and of the recovery. */
  onWatchdog?: (event: WatchdogEvent) => void;
  /** Memory for finished requests' keys/values that later prompts starting with the same tokens reuse (0: off). */
  prefixCacheMb?: number;
  /** Speculative decoding: `ngram` (prompt lookup) or a draft model's exported folder. */
  draft?: string;
  /** Projections (q_proj, v_proj, …) that take LoRA adapters per row (lora-graph.ts); none: no adapters. */
  loraTargets?: readonly string[];
  /**
   * `fixed-cache`: the KV cache in place on the device, a CUDA graph per batch bucket (src/engine/fixed-cache/);
   * `dynamic`: DecoderSession's cache on the host; default: fixed-cache for a `--gqa` export on llmkit's own binding
   * without a draft or LoRA inputs (on CUDA a float16 one, on the CPU a float32 one: int8 and int4 included), where
   * it is the fastest graph measured; else dynamic. LLMKIT_FIXED_CACHE=0 or 1 overrides the default.
   */
  decodePath?: DecodePath;
}

export type DecodePath = 'fixed-cache' | 'dynamic';

/** Columns of a row's cache on the fixed-cache path at most: what a request's prompt and new tokens may take. */
export const FIXED_CACHE_COLUMNS = 4096;

/** The device the fixed-cache path would run on: `auto` is the CPU where nothing else can load, else it is tried as before. */
function fixedCacheDevice(device: Device | undefined): Device | undefined {
  return (device ?? 'auto') === 'auto' && autoMeansCpu() ? 'cpu' : device;
}

/** Why a model cannot take the fixed-cache path on `device`, or null when it can. */
function fixedCacheRefusal(model: ExportedModel, opts: EngineOptions): string | null {
  if (model.manifest.graph !== 'fused-gqa') return 'it needs an export with GroupQueryAttention (`llmkit export --gqa`)';
  if (opts.draft) return 'speculative decoding runs on the dynamic path';
  if (opts.loraTargets?.length) return 'LoRA adapters run on the dynamic path';
  if (opts.device !== 'cpu' && opts.device !== 'cuda') return 'it runs on --device cpu or cuda';
  // ONNX Runtime's CUDA GroupQueryAttention is fp16/bf16 only: an fp32 graph runs it on the CPU, so the cache cannot
  // be shared in place (measured on the H100: 1 of 64 greedy tokens right) and no CUDA graph can be captured.
  if (opts.device === 'cuda' && model.manifest.dtype !== 'float16') return 'on CUDA it needs a float16 export (`llmkit export --gqa --fp16`)';
  const status = bindingStatus();
  if (status.binding !== 'llmkit') return `it needs llmkit's own ONNX Runtime binding (${status.reason})`;
  return providerUnavailable(opts.device);
}

/** Which decode path an engine takes (see EngineOptions.decodePath); throws when fixed-cache is asked for and cannot run. */
export function chooseDecodePath(model: ExportedModel, engineOpts: EngineOptions): DecodePath {
  const opts = { ...engineOpts, device: fixedCacheDevice(engineOpts.device) };
  const env = process.env.LLMKIT_FIXED_CACHE;
  const wanted = opts.decodePath ?? (env === '1' ? 'fixed-cache' : env === '0' ? 'dynamic' : undefined);
  if (wanted === 'dynamic') return 'dynamic';
  const refusal = fixedCacheRefusal(model, opts);
  if (wanted === 'fixed-cache' && refusal) throw new LlmkitError(`the fixed-cache decode path cannot run: ${refusal}`, 'leave the decode path to llmkit (LLMKIT_FIXED_CACHE unset)');
  // On the CPU a float16 export's cache would be float16 too: not measured there, and no prefix reuse for it.
  const fastest = opts.device === 'cuda' || (opts.device === 'cpu' && model.manifest.dtype === 'float32');
  return wanted === 'fixed-cache' || (!refusal && fastest) ? 'fixed-cache' : 'dynamic';
}

export const DEFAULT_LIMITS: Omit<SchedulerLimits, 'maxTokensTotal'> = { maxBatch: 16, maxQueue: 256, prefillChunk: 256 };

/**
 * One loaded model: the decoder session, its tokenizer and the scheduler that batches its requests.
 * `serve`, `chat`, `bench` and tests all generate through it.
 */
export class LocalEngine implements GenerationEngine {
  private constructor(
    readonly model: ExportedModel,
    readonly decoder: DecoderSession | FixedCacheDecoder,
    readonly tokenizer: ModelTokenizer,
    readonly scheduler: GenerationScheduler | FixedCacheScheduler,
  ) {}

  static async open(dir: string, opts: EngineOptions = {}): Promise<LocalEngine> {
    const model = loadExportedModel(dir);
    const tokenizer = await ModelTokenizer.load(model.dir);
    const limits: SchedulerLimits = {
      maxBatch: opts.maxBatch ?? DEFAULT_LIMITS.maxBatch,
      maxQueue: opts.maxQueue ?? DEFAULT_LIMITS.maxQueue,
      prefillChunk: opts.prefillChunk ?? DEFAULT_LIMITS.prefillChunk,
      maxTokensTotal: opts.maxTokensTotal ?? (opts.maxBatch ?? DEFAULT_LIMITS.maxBatch) * model.manifest.max_position_embeddings,
      stepTimeoutMs: opts.stepTimeoutMs,
    };
    const prefixMb = opts.prefixCacheMb ?? DEFAULT_PREFIX_CACHE_MB;
    const prefixes = prefixMb > 0 ? new PrefixCache(prefixMb * 2 ** 20, model.manifest.num_kv_heads, model.manifest.head_dim) : undefined;
    if (chooseDecodePath(model, opts) === 'fixed-cache') {
      const capacity = Math.min(model.manifest.max_position_embeddings, FIXED_CACHE_COLUMNS);
      const fixed = await FixedCacheDecoder.open(model, {
        provider: fixedCacheDevice(opts.device) as 'cpu' | 'cuda',
        threads: opts.threads,
        rows: limits.maxBatch,
        capacity,
        cudaGraphs: process.env.LLMKIT_CUDA_GRAPH !== '0',
      });
      // The prefix cache holds float32 keys/values: a float16 cache (CUDA) runs without prefix reuse.
      const scheduler = new FixedCacheScheduler(fixed, limits, opts.onDecodeStep, opts.onWatchdog, fixed.kvType === 'float32' ? prefixes : undefined);
      return new LocalEngine(model, fixed, tokenizer, scheduler);
    }
    const decoder = await DecoderSession.open(model, { device: opts.device, threads: opts.threads, logits: 'last', lora: opts.loraTargets });
    let drafter;
    try {
      drafter = opts.draft ? await openDrafter(opts.draft, decoder, { device: opts.device, threads: opts.threads }) : undefined;
    } catch (e) {
      await decoder.release();
      throw e;
    }
    return new LocalEngine(model, decoder, tokenizer, new GenerationScheduler(decoder, limits, opts.onDecodeStep, prefixes, drafter, opts.onWatchdog));
  }

  get contextLength(): number {
    return this.scheduler.contextLength;
  }

  get device(): string {
    return this.decoder.provider;
  }

  /** The decode path this engine runs (see EngineOptions.decodePath). */
  get decodePath(): DecodePath {
    return this.decoder instanceof FixedCacheDecoder ? 'fixed-cache' : 'dynamic';
  }

  get deviceNotes(): string[] {
    return this.decoder.skipped.map((s) => `${s.provider}: ${s.reason}`);
  }

  /** In this process: ready once loaded, unless a step got stuck and none has completed since (see StepWatchdog). */
  async unavailable(): Promise<string | null> {
    return this.scheduler.watchdog.unavailable;
  }

  /** Queues a request; text goes to the streamer as it is generated. Throws EngineRejection when refused. */
  generate(request: TextRequest, streamer: Streamer): void {
    this.generateChoices(request, [{ streamer }]);
  }

  arriving(): () => void {
    return this.scheduler.arriving();
  }

  /** Queues several completions of one prompt (OpenAI's `n`), prefilled once and decoded side by side. */
  generateChoices(request: TextRequest, choices: readonly Choice[]): void {
    const maxTokens = maxNewTokens(request, this.contextLength);
    const group = choices.map(
      (choice): GenerationRequest => ({
        promptIds: request.promptIds,
        maxTokens,
        sampling: { ...GREEDY, ...request.sampling, ...(choice.seed !== undefined ? { seed: choice.seed } : {}) },
        stopTokenIds: request.ignoreEos ? [] : this.model.manifest.eos_token_ids,
        sink: new TextSink(new IncrementalDetokenizer(this.tokenizer, request.promptIds), new StreamingTextMatcher(request.stop ?? []), choice.streamer),
        signal: request.signal,
        processor: choice.processor,
        logprobs: request.logprobs,
        lane: request.lane,
        adapter: request.adapter,
      }),
    );
    this.scheduler.submitGroup(group);
  }

  /** Reads a PEFT adapter for this engine's LoRA inputs; throws a one-line UsageError when it cannot serve it. */
  async loadAdapter(path: string, name: string): Promise<LoraAdapter> {
    const lora = this.decoder.lora;
    if (!lora) throw new UsageError(`${this.model.dir} was opened without LoRA inputs, so adapter ${name} cannot be served on it`, 'start the server with --adapter or --lora-targets');
    const adapter = await LoraAdapter.load(path);
    lora.check(adapter, name, `restart the server with --lora-targets ${[...new Set([...lora.modules.map((m) => m.target), ...adapter.targets])].sort().join(',')}`);
    return adapter;
  }

  /** Generates and waits for the whole text. */
  async complete(request: TextRequest): Promise<{ text: string; end: GenerationEnd }> {
    const collector = new TextCollector();
    this.generate(request, collector);
    const end = await collector.done;
    return { text: collector.text, end };
  }

  /** Waits for running requests to finish, then frees the session (not under a step the watchdog gave up on: the process's exit frees it). */
  async close(): Promise<void> {
    await this.scheduler.idle();
    if (this.scheduler.watchdog.abandonedSteps) return;
    await this.scheduler.drafter?.release();
    await this.decoder.release();
  }
}
