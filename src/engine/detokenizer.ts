/** Turns token ids into text, special tokens left out. */
export interface TokenDecoder {
  decode(ids: readonly number[]): string;
}

/** Tokens of the prompt decoded with the output, so that the first output token gets its spacing right. */
const CONTEXT_TOKENS = 5;

/**
 * Incremental detokenisation: text is released only when the decoded tail no longer ends in an
 * incomplete character (U+FFFD), so a multi-byte character split over tokens is never emitted broken.
 * The tail is decoded together with a few earlier tokens because tokenizers (SentencePiece's leading
 * space, byte-level merges) decode a token differently at the start of a string than after others.
 */
export class IncrementalDetokenizer {
  private readonly ids: number[];
  /** ids[prefix, read) is already released text, kept as context. */
  private prefix: number;
  private read: number;

  constructor(
    private readonly decoder: TokenDecoder,
    promptIds: readonly number[],
  ) {
    // A token that decodes to nothing (a special token: the chat template's end of the prompt) ends the text
    // before it: the answer starts a new string, as when the model's own code decodes the answer alone. Without
    // this, SentencePiece's word-start space of the answer's first token (Phi-3, Gemma) stays as a leading space.
    const context = promptIds.slice(-CONTEXT_TOKENS);
    this.ids = context.slice(context.findLastIndex((id) => decoder.decode([id]) === '') + 1);
    this.prefix = 0;
    this.read = this.ids.length;
  }

  /** Adds one token; returns the text it completes ('' while a character is still incomplete). */
  push(id: number): string {
    this.ids.push(id);
    return this.release(false);
  }

  /** The text still held back at the end of generation (an incomplete character stays as U+FFFD). */
  flush(): string {
    return this.release(true);
  }

  private release(final: boolean): string {
    const before = this.text(this.ids.slice(this.prefix, this.read));
    const after = this.text(this.ids.slice(this.prefix));
    if (after.length <= before.length || (!final && after.endsWith('\uFFFD'))) return '';
    // Keep the token window short: drop ids that are no longer needed as context.
    const start = this.read;
    this.read = this.ids.length;
    this.prefix = Math.max(this.prefix, start - CONTEXT_TOKENS);
    if (this.prefix > 64) {
      this.ids.splice(0, this.prefix);
      this.read -= this.prefix;
      this.prefix = 0;
    }
    return after.slice(before.length);
  }

  /** transformers.js refuses to decode no tokens, which an answer right after a special token starts with. */
  private text(ids: number[]): string {
    return ids.length ? this.decoder.decode(ids) : '';
  }
}
