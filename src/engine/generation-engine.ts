import type { Choice, TextRequest } from './engine.js';
import type { ModelTokenizer } from './tokenizer.js';
import type { ExportedModel } from './model-manifest.js';
import type { Streamer } from './streamer.js';

/**
 * What the server needs from whatever generates: llmkit's own engine (ONNX Runtime in this process) or a remote
 * one (Triton Inference Server, src/serve/triton/). Tokenizing stays on llmkit's side in both, so context checks,
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
  /** Null when requests can be taken, else why not (/ready answers 503 with it). */
  unavailable(): Promise<string | null>;
  close(): Promise<void>;
}
