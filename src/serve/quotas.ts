import type { ApiKey } from './auth.js';
import { ApiError } from './openai/errors.js';

export interface QuotaLimits {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

const WINDOW_MS = 60_000;

interface Usage {
  at: number;
  requests: number;
  tokens: number;
}

/**
 * Per-key requests and tokens per minute over a sliding one-minute window. A request is checked
 * before it is queued (its prompt tokens count at once, its output tokens when it ends); over a
 * limit it gets 429 with the seconds after which it would pass.
 */
export class QuotaTracker {
  private readonly usage = new Map<string, Usage[]>();

  constructor(
    private readonly defaults: QuotaLimits = {},
    private readonly now: () => number = Date.now,
  ) {}

  /** Throws 429 if one more request with `promptTokens` would go over the key's limits. */
  check(key: ApiKey, promptTokens: number): void {
    const rpm = key.requestsPerMinute ?? this.defaults.requestsPerMinute;
    const tpm = key.tokensPerMinute ?? this.defaults.tokensPerMinute;
    if (!rpm && !tpm) return;
    const events = this.window(key.name);
    const now = this.now();
    if (rpm) {
      const requests = events.reduce((n, e) => n + e.requests, 0);
      if (requests >= rpm) {
        // Wait until enough of the oldest requests leave the window.
        throw this.tooMany(`requests per minute (${rpm})`, key, this.waitUntil(events, (e) => e.requests, requests + 1 - rpm, now));
      }
    }
    if (tpm) {
      const tokens = events.reduce((n, e) => n + e.tokens, 0);
      if (tokens + promptTokens > tpm) {
        const wait = promptTokens > tpm ? WINDOW_MS : this.waitUntil(events, (e) => e.tokens, tokens + promptTokens - tpm, now);
        throw this.tooMany(`tokens per minute (${tpm}; this request has ${promptTokens} prompt tokens)`, key, wait);
      }
    }
  }

  /** Counts a request that was queued, or the tokens it generated (requests = 0). */
  record(key: ApiKey, tokens: number, requests = 1): void {
    const events = this.window(key.name);
    events.push({ at: this.now(), requests, tokens });
    this.usage.set(key.name, events);
  }

  private window(name: string): Usage[] {
    const since = this.now() - WINDOW_MS;
    return (this.usage.get(name) ?? []).filter((e) => e.at > since);
  }

  /** Milliseconds until the oldest events holding `excess` units have left the window. */
  private waitUntil(events: Usage[], units: (e: Usage) => number, excess: number, now: number): number {
    let freed = 0;
    for (const e of events) {
      freed += units(e);
      if (freed >= excess) return e.at + WINDOW_MS - now;
    }
    return WINDOW_MS;
  }

  private tooMany(what: string, key: ApiKey, waitMs: number): ApiError {
    const seconds = Math.max(1, Math.ceil(waitMs / 1000));
    return new ApiError(429, `Rate limit reached for ${key.name} on ${what}: try again in ${seconds}s`, 'rate_limit_exceeded', null, { 'Retry-After': String(seconds) });
  }
}
