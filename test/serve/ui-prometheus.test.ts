import { describe, expect, it } from 'vitest';
import { bucketDelta, buckets, parseMetrics, quantile, total } from '../../src/serve/ui/prometheus.js';
import { ServerMetrics } from '../../src/serve/server-metrics.js';

/** The dashboard's reading of /metrics, checked against the server's own registry. */
describe('the dashboard reads /metrics', () => {
  const metrics = new ServerMetrics(() => []);
  for (const ms of [3, 7, 12, 40, 80, 90, 200, 600]) metrics.timeToFirstToken.observe(ms / 1000, { model: 'a' });
  metrics.completionTokens.inc({ model: 'a' }, 120);
  metrics.completionTokens.inc({ model: 'b' }, 30);
  metrics.cacheRequests.inc({ result: 'hit' }, 3);
  const samples = parseMetrics(metrics.registry.render());

  it('sums counters by label', () => {
    expect(total(samples, 'llmkit_completion_tokens_total', { model: 'a' })).toBe(120);
    expect(total(samples, 'llmkit_completion_tokens_total')).toBe(150);
    expect(total(samples, 'llmkit_cache_requests_total', { result: 'hit' })).toBe(3);
  });

  it('interpolates quantiles within buckets as Prometheus does', () => {
    const b = buckets(samples, 'llmkit_time_to_first_token_seconds', { model: 'a' });
    expect(b.at(-1)).toEqual([Number.POSITIVE_INFINITY, 8]);
    // rank 4 of 8 falls in (0.025, 0.05] holding 1 of its 1 observations → its upper bound.
    expect(quantile(0.5, b)).toBeCloseTo(0.05, 6);
    // rank 7.6 falls in (0.5, 1] (7 before it, 1 in it) → 0.5 + 0.5 × 0.6.
    expect(quantile(0.95, b)).toBeCloseTo(0.8, 6);
    expect(
      quantile(0.5, [
        [1, 0],
        [Number.POSITIVE_INFINITY, 0],
      ]),
    ).toBeNull();
    expect(bucketDelta(b, b).every(([, c]) => c === 0)).toBe(true);
  });
});
