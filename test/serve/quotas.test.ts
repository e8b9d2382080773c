import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/serve/openai/errors.js';
import { QuotaTracker } from '../../src/serve/quotas.js';

function refusal(f: () => void): ApiError | undefined {
  try {
    f();
  } catch (e) {
    return e as ApiError;
  }
}

describe('per-key quotas over a sliding minute', () => {
  it('refuses the request over the limit until the oldest one leaves the window', () => {
    let now = 0;
    const quotas = new QuotaTracker({ requestsPerMinute: 2 }, () => now);
    const key = { key: 'k', name: 'team' };
    for (const t of [0, 10_000]) {
      now = t;
      quotas.check(key, 5);
      quotas.record(key, 5);
    }
    now = 30_000;
    const e = refusal(() => quotas.check(key, 5))!;
    expect(e.status).toBe(429);
    expect(e.headers['Retry-After']).toBe('30');
    now = 60_001;
    expect(refusal(() => quotas.check(key, 5))).toBeUndefined();
  });

  it('counts prompt and generated tokens, with a per-key limit over the default', () => {
    let now = 0;
    const quotas = new QuotaTracker({ tokensPerMinute: 1000 }, () => now);
    const key = { key: 'k', name: 'small', tokensPerMinute: 100 };
    quotas.record(key, 40);
    now = 5_000;
    quotas.record(key, 40, 0);
    expect(refusal(() => quotas.check(key, 10))).toBeUndefined();
    const e = refusal(() => quotas.check(key, 30))!;
    expect(e.message).toMatch(/tokens per minute \(100/);
    // 10 tokens over: the first event (40 tokens, at t=0) must leave, at t=60 s.
    expect(e.headers['Retry-After']).toBe('55');
    expect(refusal(() => quotas.check({ key: 'other', name: 'other' }, 500))).toBeUndefined();
  });
});
