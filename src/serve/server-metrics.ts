import type { GenerationEnd } from '../engine/streamer.js';
import { Counter, Gauge, Histogram, Registry } from './prometheus.js';
import type { ServedModel } from './model-registry.js';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64];

/** What `GET /metrics` shows: requests by status, tokens, queue and batch, first-token and inter-token latency. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = this.registry.add(new Counter('llmkit_requests_total', 'HTTP and WebSocket requests by route and status code'));
  readonly generations = this.registry.add(new Counter('llmkit_generations_total', 'generations by model and finish reason (cancelled: the client went away or cancelled)'));
  readonly promptTokens = this.registry.add(new Counter('llmkit_prompt_tokens_total', 'prompt tokens processed'));
  readonly completionTokens = this.registry.add(new Counter('llmkit_completion_tokens_total', 'tokens generated'));
  readonly timeToFirstToken = this.registry.add(new Histogram('llmkit_time_to_first_token_seconds', 'from queueing to the first token', LATENCY_BUCKETS));
  readonly interTokenLatency = this.registry.add(new Histogram('llmkit_inter_token_latency_seconds', 'between consecutive tokens of one generation', LATENCY_BUCKETS));
  readonly keyRequests = this.registry.add(new Counter('llmkit_key_requests_total', 'requests admitted by the quotas, by API key name and account'));
  readonly keyTokens = this.registry.add(new Counter('llmkit_key_tokens_total', 'prompt + generated tokens counted against the quotas, by API key name and account'));
  readonly accountRequests = this.registry.add(new Counter('llmkit_account_requests_total', 'requests admitted by the quotas, by account (all of its keys)'));
  readonly accountTokens = this.registry.add(new Counter('llmkit_account_tokens_total', 'prompt + generated tokens counted against the quotas, by account (all of its keys)'));
  readonly quotaRefusals = this.registry.add(new Counter('llmkit_quota_refusals_total', 'requests refused with 429, by the quota level that refused them'));
  readonly quotaStoreErrors = this.registry.add(
    new Counter('llmkit_quota_store_errors_total', 'quota checks that could not reach the counter store (Redis); --redis-down says what happened to the request'),
  );
  readonly cacheRequests = this.registry.add(new Counter('llmkit_cache_requests_total', 'cacheable (deterministic) requests, by model and result: hit or miss'));
  readonly decodeBatch = this.registry.add(new Histogram('llmkit_decode_batch_size', 'rows advanced by each decode step', BATCH_BUCKETS));

  /** `models` is read at scrape time, so the metrics can exist before the models are loaded. */
  constructor(models: () => readonly ServedModel[]) {
    const perModel = (read: (m: ServedModel) => number) => () => models().map((m) => ({ labels: { model: m.id }, value: read(m) }));
    this.registry.add(
      new Gauge(
        'llmkit_queue_depth',
        'requests waiting for a batch row',
        perModel((m) => m.engine.scheduler.queueDepth),
      ),
    );
    this.registry.add(
      new Gauge(
        'llmkit_running_batch_size',
        'requests being prefilled or decoded',
        perModel((m) => m.engine.scheduler.batchSize),
      ),
    );
    const drafting = () => models().filter((m) => m.engine.scheduler.speculation);
    const perDraftingModel = (read: (d: { proposed: number; accepted: number }) => number) => () => drafting().map((m) => ({ labels: { model: m.id }, value: read(m.engine.scheduler.speculation!) }));
    this.registry.add(
      new Gauge(
        'llmkit_draft_tokens',
        'tokens drafted for verification since start (speculative decoding, --draft)',
        perDraftingModel((d) => d.proposed),
      ),
    );
    this.registry.add(
      new Gauge(
        'llmkit_draft_accepted_tokens',
        'drafted tokens the target accepted since start (--draft)',
        perDraftingModel((d) => d.accepted),
      ),
    );
    this.registry.add(
      new Gauge(
        'llmkit_draft_acceptance_rate',
        'accepted ÷ drafted tokens since start (--draft)',
        perDraftingModel((d) => (d.proposed ? d.accepted / d.proposed : 0)),
      ),
    );
  }

  recordGeneration(model: string, end: GenerationEnd): void {
    this.generations.inc({ model, finish_reason: end.reason });
    this.promptTokens.inc({ model }, end.promptTokens);
    this.completionTokens.inc({ model }, end.completionTokens);
    if (end.timeToFirstTokenMs !== undefined) this.timeToFirstToken.observe(end.timeToFirstTokenMs / 1000, { model });
    for (const gap of end.interTokenMs) this.interTokenLatency.observe(gap / 1000, { model });
  }
}
