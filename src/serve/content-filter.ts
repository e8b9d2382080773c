import { existsSync, readFileSync } from 'node:fs';
import { UsageError } from '../shared/errors.js';
import type { GenerationEnd, Streamer } from '../engine/streamer.js';
import type { TokenLogprob } from '../engine/logits-processor.js';
import { StreamingTextMatcher } from '../engine/text-matcher.js';
import { ApiError } from './openai/errors.js';

export const FILTER_MODES = ['reject', 'redact'] as const;
export type FilterMode = (typeof FILTER_MODES)[number];

/**
 * A content-filter hook: it sees every prompt before it is queued and every piece of generated text
 * before it is sent.
 */
export interface ContentFilter {
  /** Returns the prompt text to use, or throws a 400 `content_filter` error. */
  checkInput(text: string, param: string): string;
  /** Wraps a response's streamer; `stop` ends the generation (its end then says `content_filter`). */
  wrapOutput(streamer: Streamer, stop: () => void): Streamer;
}

export const REDACTED = '[redacted]';

/**
 * A blocklist (one word or phrase a line, `#` comments, matched ignoring case). `reject` refuses
 * such prompts and ends a generation before a blocked phrase goes out (finish_reason
 * `content_filter`); `redact` replaces the phrase with [redacted] in both.
 */
export class BlocklistFilter implements ContentFilter {
  private constructor(
    private readonly terms: string[],
    private readonly mode: FilterMode,
  ) {}

  static load(file: string, mode: FilterMode): BlocklistFilter {
    if (!existsSync(file)) throw new UsageError(`--blocklist ${file} does not exist`, 'pass a text file with one blocked word or phrase a line');
    const terms = readFileSync(file, 'utf8')
      .split('\n')
      .map((line) => line.replace(/#.*/, '').trim())
      .filter(Boolean);
    return new BlocklistFilter(terms, mode);
  }

  checkInput(text: string, param: string): string {
    const matcher = new StreamingTextMatcher(this.terms, true);
    let out = '';
    for (let r = matcher.push(text); ; r = matcher.push('')) {
      out += r.text;
      if (!r.match) break;
      if (this.mode === 'reject') throw new ApiError(400, `'${param}' contains blocked content`, 'content_filter', param);
      out += REDACTED;
    }
    return out + matcher.flush();
  }

  wrapOutput(streamer: Streamer, stop: () => void): Streamer {
    const matcher = new StreamingTextMatcher(this.terms, true);
    let blocked = false;
    // Logprobs travel with the first piece of text their put releases.
    let logprobs: TokenLogprob[] | undefined;
    const emit = (text: string) => {
      if (!text && !logprobs) return;
      streamer.put(text, logprobs);
      logprobs = undefined;
    };
    return {
      put: (text, tokenLogprobs) => {
        if (blocked) return;
        if (tokenLogprobs) logprobs = [...(logprobs ?? []), ...tokenLogprobs];
        for (let r = matcher.push(text); ; r = matcher.push('')) {
          emit(r.text);
          if (!r.match) return;
          if (this.mode === 'redact') emit(REDACTED);
          else {
            blocked = true;
            stop();
            return;
          }
        }
      },
      end: (end: GenerationEnd) => {
        if (blocked) return streamer.end({ ...end, reason: 'content_filter' });
        if (end.reason === 'stop' || end.reason === 'length') emit(matcher.flush());
        streamer.end(end);
      },
    };
  }
}
