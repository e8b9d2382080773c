import { DecoderSession } from './decoder-session.js';
import { LoraAdapter } from './lora-adapter.js';
import { UsageError } from '../shared/errors.js';
import { openDrafter } from './drafters.js';
import { maxNewTokens, type Choice, type GenerationEngine, type TextRequest } from './engine-contract.js';
import { IncrementalDetokenizer } from './detokenizer.js';
import { GenerationScheduler, type SchedulerLimits } from './generation-scheduler.js';
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
}

export const DEFAULT_LIMITS: Omit<SchedulerLimits, 'maxTokensTotal'> = { maxBatch: 16, maxQueue: 256, prefillChunk: 256 };

/**
 * One loaded model: the decoder session, its tokenizer and the scheduler that batches its requests.
 * `serve`, `chat`, `bench` and tests all generate through it.
 */
export class LocalEngine implements GenerationEngine {
  private constructor(
    readonly model: ExportedModel,
    readonly decoder: DecoderSession,
    readonly tokenizer: ModelTokenizer,
    readonly scheduler: GenerationScheduler,
  ) {}

  static async open(dir: string, opts: EngineOptions = {}): Promise<LocalEngine> {
    const model = loadExportedModel(dir);
    const tokenizer = await ModelTokenizer.load(model.dir);
    const decoder = await DecoderSession.open(model, { device: opts.device, threads: opts.threads, logits: 'last', lora: opts.loraTargets });
    const limits: SchedulerLimits = {
      maxBatch: opts.maxBatch ?? DEFAULT_LIMITS.maxBatch,
      maxQueue: opts.maxQueue ?? DEFAULT_LIMITS.maxQueue,
      prefillChunk: opts.prefillChunk ?? DEFAULT_LIMITS.prefillChunk,
      maxTokensTotal: opts.maxTokensTotal ?? (opts.maxBatch ?? DEFAULT_LIMITS.maxBatch) * model.manifest.max_position_embeddings,
      stepTimeoutMs: opts.stepTimeoutMs,
    };
    const prefixMb = opts.prefixCacheMb ?? DEFAULT_PREFIX_CACHE_MB;
    const prefixes = prefixMb > 0 ? new PrefixCache(prefixMb * 2 ** 20, model.manifest.num_kv_heads, model.manifest.head_dim) : undefined;
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
