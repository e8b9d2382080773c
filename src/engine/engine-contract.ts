/**
 * The contract of every engine (llmkit's own, local-engine.ts, and Triton's, src/engine/triton/): what a request is,
 * how a refusal looks, what the server calls. Both import it; it imports neither.
 */
import type { LogitsProcessor } from './logits-processor.js';
import type { LoraAdapter } from './lora-adapter.js';
import type { ModelTokenizer } from './tokenizer.js';
import type { ExportedModel } from './model-manifest.js';
import type { SamplingParams } from './sampling.js';
import type { Streamer } from './streamer.js';

/** A generation request in tokens in, text out. */
export interface TextRequest {
  promptIds: readonly number[];
  /** Default: whatever is left of the context after the prompt. */
  maxTokens?: number;
  sampling?: Partial<SamplingParams>;
  /** Strings that end the generation; they are not part of the output. */
  stop?: readonly string[];
  /** Keep going past EOS (benchmarks: every request generates exactly maxTokens). */
  ignoreEos?: boolean;
  signal?: AbortSignal;
  /** Report each token's log-probability with this many alternatives (0: the token's own only). */
  logprobs?: number;
  /** `batch`: behind interactive requests, in the capacity they leave (batch jobs). */
  lane?: Lane;
  /** A LoRA adapter over the engine's model (engines opened with LoRA inputs); none: the model itself. */
  adapter?: LoraAdapter;
}

/** One of several completions of a request (`generateChoices`). */
export interface Choice {
  streamer: Streamer;
  /** This choice's grammar constraint, if any. */
  processor?: LogitsProcessor;
  /** This choice's seed (else the request's). */
  seed?: number;
}

/** Interactive requests go first; batch-lane ones fill the capacity they leave. */
export type Lane = 'interactive' | 'batch';

export type RejectionCode = 'queue_full' | 'context_length_exceeded' | 'too_many_tokens' | 'empty_prompt' | 'unavailable' | 'unsupported';

/** A request an engine refuses (llmkit's scheduler up front, a remote engine at any time); the server maps the code to an HTTP status. */
export class EngineRejection extends Error {
  constructor(
    readonly code: RejectionCode,
    message: string,
  ) {
    super(message);
    this.name = 'EngineRejection';
  }
}

/** `maxTokens`, or else whatever the context leaves after the prompt. */
export function maxNewTokens(request: Pick<TextRequest, 'promptIds' | 'maxTokens'>, contextLength: number): number {
  return request.maxTokens ?? Math.max(1, contextLength - request.promptIds.length);
}

/** What no engine runs, checked the same way by both: an empty prompt, or one that with its new tokens overflows the context. */
export function checkFits(prompt: number, maxTokens: number, contextLength: number): void {
  if (prompt === 0) throw new EngineRejection('empty_prompt', 'the prompt is empty');
  if (prompt + maxTokens > contextLength) {
    throw new EngineRejection(
      'context_length_exceeded',
      `this model's maximum context length is ${contextLength} tokens, but ${prompt + maxTokens} were requested (${prompt} in the prompt, ${maxTokens} to generate)`,
    );
  }
}

/**
 * What the server needs from whatever generates: llmkit's own engine (ONNX Runtime in this process) or a remote
 * one (Triton Inference Server, src/engine/triton/). Tokenizing stays on llmkit's side in both, so context checks,
 * quotas and token counts do not depend on where the tokens are computed.
 */
export interface GenerationEngine {
  readonly model: ExportedModel;
  readonly tokenizer: ModelTokenizer;
  readonly contextLength: number;
  /** Where generation runs, for /v1/models and the startup line: an ONNX Runtime provider, or `triton`. */
  readonly device: string;
  /** Devices tried and passed over, with why. */
  readonly deviceNotes: readonly string[];
  /** For the queue and batch gauges of /metrics, and speculative decoding's acceptance where it drafts. */
  readonly scheduler: { readonly queueDepth: number; readonly batchSize: number; readonly speculation?: { readonly proposed: number; readonly accepted: number } };
  /** Queues a request; text goes to the streamer as it is generated. Throws EngineRejection when refused. */
  generate(request: TextRequest, streamer: Streamer): void;
  /** Several completions of one prompt (OpenAI's `n`), each with its own streamer, seed and constraint. */
  generateChoices(request: TextRequest, choices: readonly Choice[]): void;
  /** Announces an interactive request on its way (see GenerationScheduler.arriving); call the result once it is queued. */
  arriving?(): () => void;
  /** Null when requests can be taken, else why not (/ready answers 503 with it). */
  unavailable(): Promise<string | null>;
  close(): Promise<void>;
}
