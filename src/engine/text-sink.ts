import type { IncrementalDetokenizer } from './detokenizer.js';
import type { TokenLogprob } from './logits-processor.js';
import type { TokenSink } from './sequence.js';
import type { GenerationEnd, Streamer } from './streamer.js';
import type { StreamingTextMatcher } from './text-matcher.js';

/** Tokens → complete text → stop strings → the streamer (also used by engines that get tokens from elsewhere). */
export class TextSink implements TokenSink {
  private stopped = false;
  /** Logprobs of tokens whose text has not been sent yet. */
  private logprobs: TokenLogprob[] = [];

  constructor(
    private readonly detokenizer: IncrementalDetokenizer,
    private readonly stops: StreamingTextMatcher,
    private readonly streamer: Streamer,
  ) {}

  token(id: number, logprob?: TokenLogprob): boolean {
    if (logprob) this.logprobs.push(logprob);
    return this.emit(this.detokenizer.push(id));
  }

  end(end: GenerationEnd): void {
    // A stop token or max_tokens leaves text held back (an unfinished character, a partial stop string): send it.
    if (!this.stopped && (end.reason === 'stop' || end.reason === 'length')) {
      if (this.emit(this.detokenizer.flush())) end = { ...end, reason: 'stop' };
      else this.put(this.stops.flush());
    }
    if (end.stopLogprob) this.logprobs.push(end.stopLogprob);
    if (this.logprobs.length) this.put('');
    this.streamer.end(end);
  }

  private emit(text: string): boolean {
    if (!text) return false;
    const { text: out, match } = this.stops.push(text);
    this.put(out);
    this.stopped = match !== undefined;
    return this.stopped;
  }

  private put(text: string): void {
    if (!text && !this.logprobs.length) return;
    if (!this.logprobs.length) return this.streamer.put(text);
    this.streamer.put(text, this.logprobs);
    this.logprobs = [];
  }
}
