import type { TokenLogprob } from './logits-processor.js';

/** Why a generation ended: OpenAI's reasons, plus `cancelled` (the caller went away) and `error`. */
export type FinishReason = 'stop' | 'length' | 'content_filter' | 'cancelled' | 'error';

export interface GenerationEnd {
  reason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** Milliseconds from submission to the first sampled token (queueing and prefill included). */
  timeToFirstTokenMs?: number;
  /** Milliseconds between consecutive sampled tokens. */
  interTokenMs: number[];
  error?: Error;
  /**
   * The stop token's log-probability when the request asked for logprobs and ended on one (EOS): it counts in
   * completionTokens, so it is the last logprobs entry, as vLLM gives it.
   */
  stopLogprob?: TokenLogprob;
}

/**
 * Where generated text goes: `put` with each piece of complete text (never a broken character, never
 * a stop string), then `end` exactly once. The server, the chat UI, the benchmarks and tests share it.
 * When the request asked for logprobs, each put carries those of the tokens whose text it completes.
 */
export interface Streamer {
  put(text: string, logprobs?: TokenLogprob[]): void;
  end(end: GenerationEnd): void;
}

/** A streamer that keeps the whole text, for callers that want the answer at the end. */
export class TextCollector implements Streamer {
  text = '';
  readonly logprobs: TokenLogprob[] = [];
  readonly done: Promise<GenerationEnd>;
  private resolve!: (end: GenerationEnd) => void;

  constructor() {
    this.done = new Promise((resolve) => (this.resolve = resolve));
  }

  put(text: string, logprobs?: TokenLogprob[]): void {
    this.text += text;
    if (logprobs) this.logprobs.push(...logprobs);
  }

  end(end: GenerationEnd): void {
    this.resolve(end);
  }
}
