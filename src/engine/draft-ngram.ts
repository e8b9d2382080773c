/**
 * Prompt lookup ("--draft ngram"): the continuation of the most recent earlier occurrence of the context's
 * last n tokens, trying the longest n first. Answers that copy from the prompt (extraction, rewriting, code
 * edits) repeat long runs of it, and this finds them with no second model.
 */
export interface NgramOptions {
  /** Longest suffix looked up first. */
  maxNgram: number;
  /** Shortest suffix that counts as a match: shorter ones propose noise. */
  minNgram: number;
}

export const NGRAM_DEFAULTS: NgramOptions = { maxNgram: 4, minNgram: 2 };

/** Up to `k` tokens that followed the latest earlier match of the context's suffix; empty when there is none. */
export function proposeFromContext(context: readonly number[], k: number, opts: NgramOptions = NGRAM_DEFAULTS): number[] {
  const end = context.length;
  if (k < 1) return [];
  for (let n = Math.min(opts.maxNgram, end - 1); n >= opts.minNgram; n--) {
    const start = latestMatch(context, n);
    if (start >= 0) return context.slice(start + n, Math.min(end, start + n + k));
  }
  return [];
}

/** Where the last `n` tokens occur before their own place (the latest such start), or -1. */
function latestMatch(context: readonly number[], n: number): number {
  const end = context.length;
  const suffix = end - n;
  for (let start = suffix - 1; start >= 0; start--) {
    let j = 0;
    while (j < n && context[start + j] === context[suffix + j]) j++;
    if (j === n) return start;
  }
  return -1;
}
