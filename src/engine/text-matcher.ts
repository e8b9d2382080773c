export interface MatchResult {
  /** Text that can go out: everything before the match, or everything that cannot start a needle. */
  text: string;
  /** The needle found, if one was; the text after it stays buffered for the next push. */
  match?: string;
}

/**
 * Finds needles (stop strings, blocked words) in text that arrives in chunks, across chunk
 * boundaries: text is held back while its tail could still be the start of a needle, and the needle
 * itself is never released.
 */
export class StreamingTextMatcher {
  private pending = '';
  private readonly needles: string[];
  private readonly longest: number;

  constructor(
    needles: readonly string[],
    private readonly ignoreCase = false,
  ) {
    this.needles = needles.filter((n) => n.length > 0).map((n) => this.fold(n));
    this.longest = Math.max(0, ...this.needles.map((n) => n.length));
  }

  /** Adds text and returns what can be released. After a match, call push('') to go on past it. */
  push(text: string): MatchResult {
    this.pending += text;
    if (!this.needles.length) return this.take(this.pending.length);
    const haystack = this.fold(this.pending);
    let first = -1;
    let found = '';
    for (const needle of this.needles) {
      const at = haystack.indexOf(needle);
      if (at >= 0 && (first < 0 || at < first || (at === first && needle.length > found.length))) {
        first = at;
        found = needle;
      }
    }
    if (first >= 0) {
      const result = { text: this.pending.slice(0, first), match: this.pending.slice(first, first + found.length) };
      this.pending = this.pending.slice(first + found.length);
      return result;
    }
    return this.take(this.pending.length - this.heldBack(haystack));
  }

  /** The text still held back (no needle can complete any more). */
  flush(): string {
    return this.take(this.pending.length).text;
  }

  /** Length of the longest tail of `haystack` that is the start of some needle. */
  private heldBack(haystack: string): number {
    for (let n = Math.min(this.longest - 1, haystack.length); n > 0; n--) {
      const tail = haystack.slice(haystack.length - n);
      if (this.needles.some((needle) => needle.startsWith(tail))) return n;
    }
    return 0;
  }

  private take(n: number): MatchResult {
    const text = this.pending.slice(0, n);
    this.pending = this.pending.slice(n);
    return { text };
  }

  /** Case folding that keeps string lengths, so positions in the folded text are positions in the original. */
  private fold(text: string): string {
    if (!this.ignoreCase) return text;
    let out = '';
    for (const ch of text) {
      const lower = ch.toLowerCase();
      out += lower.length === ch.length ? lower : ch;
    }
    return out;
  }
}
