import type { TokenLogprob } from '../engine/logits-processor.js';
import type { GenerationEnd, Streamer } from '../engine/streamer.js';
import type { ToolSpec } from '../engine/tokenizer.js';
import { parseToolCalls, streamableLength, type ToolFormat } from './openai/tools.js';
import { chunk, type ChoiceResult, type Endpoint, type ResponseMeta } from './openai/translate.js';

/** Tools a reply may call, and how the model writes a call. */
export interface ToolParsing {
  format: ToolFormat;
  specs: ToolSpec[];
}

/**
 * One choice of a response: collects its text and logprobs and, when streaming, sends them as chunks
 * tagged with the choice's index. With tools, text that may be the start of a call is held back until
 * the reply is complete; the calls are then parsed and sent as `tool_calls` deltas.
 */
export class ChoiceOutput implements Streamer {
  text = '';
  readonly done: Promise<GenerationEnd>;
  private readonly logprobs: TokenLogprob[] = [];
  /** Characters of `text` already streamed, and how many logprob entries went with them. */
  private sentText = 0;
  private sentLogprobs = 0;
  private resolve!: (end: GenerationEnd) => void;

  constructor(
    private readonly index: number,
    private readonly stream: { endpoint: Endpoint; meta: ResponseMeta; includeUsage: boolean; send: (chunk: object) => void } | undefined,
    private readonly tools: ToolParsing | undefined,
    private readonly wantLogprobs: boolean,
  ) {
    this.done = new Promise((resolve) => (this.resolve = resolve));
  }

  put(text: string, logprobs?: TokenLogprob[]): void {
    this.text += text;
    if (logprobs) this.logprobs.push(...logprobs);
    if (this.stream) this.flush(this.tools ? streamableLength(this.tools.format, this.text) : this.text.length);
  }

  end(end: GenerationEnd): void {
    this.resolve(end);
  }

  /** The finished choice; when streaming, also sends what was held back and the closing chunk. */
  result(end: GenerationEnd): ChoiceResult {
    const parsed = this.tools && end.reason !== 'error' ? parseToolCalls(this.tools.format, this.text, this.tools.specs) : undefined;
    const toolCalls = parsed?.calls.length ? parsed.calls : undefined;
    if (this.stream && end.reason !== 'cancelled' && end.reason !== 'error') {
      if (!toolCalls) this.flush(this.text.length);
      else if (this.sentLogprobs < this.logprobs.length) this.send({ logprobs: this.logprobs.slice(this.sentLogprobs) });
      const { endpoint, meta, includeUsage, send } = this.stream;
      if (toolCalls) send(chunk(endpoint, meta, { index: this.index, toolCalls }, includeUsage));
      send(chunk(endpoint, meta, { index: this.index, finish: end.reason, toolCalls }, includeUsage));
    }
    const text = toolCalls ? parsed!.content : this.text;
    return { text, end, logprobs: this.wantLogprobs ? this.logprobs : undefined, toolCalls };
  }

  /** Streams text up to `upTo` with the logprobs received so far. */
  private flush(upTo: number): void {
    const hasLogprobs = this.sentLogprobs < this.logprobs.length;
    if (upTo <= this.sentText && !(hasLogprobs && upTo === this.text.length)) return;
    const logprobs = this.logprobs.slice(this.sentLogprobs);
    this.send({ text: this.text.slice(this.sentText, upTo), logprobs: this.wantLogprobs ? logprobs : undefined, offset: this.sentText });
    this.sentText = upTo;
    this.sentLogprobs = this.logprobs.length;
  }

  private send(piece: { text?: string; logprobs?: TokenLogprob[]; offset?: number }): void {
    const { endpoint, meta, includeUsage, send } = this.stream!;
    send(chunk(endpoint, meta, { index: this.index, text: piece.text ?? '', logprobs: piece.logprobs, offset: piece.offset }, includeUsage));
  }
}
