import type { ApiKey } from './auth.js';
import { DAY, MINUTE, type CounterStore } from './counter-store.js';
import { ApiError } from '../openai/errors.js';
import type { Feature } from './features.js';
import type { Limits } from './limits.js';
import type { QuotaPolicy } from './quota-file.js';
import type { ServerMetrics } from '../server-metrics.js';

/** What happens to requests while the shared counter store (Redis) is unreachable. */
export const REDIS_DOWN_POLICIES = ['open', 'closed'] as const;
export type RedisDownPolicy = (typeof REDIS_DOWN_POLICIES)[number];

/** Seconds a client is asked to wait when the quota store is away and the policy is `closed`. */
const STORE_DOWN_RETRY_AFTER_S = 5;

export type QuotaLevel = 'key' | 'account' | 'model' | 'feature';

/** What a request is checked against. */
export interface RequestFacts {
  key: ApiKey;
  model: { id: string; name: string };
  features: readonly Feature[];
  promptTokens: number;
}

/** A request let through: its generated tokens are counted when it ends. */
export interface Admission {
  finish(completionTokens: number): Promise<void>;
  /** Gives back what admitting it took (the engine refused it: the queue was full). */
  refund(): Promise<void>;
}

interface Subject {
  level: QuotaLevel;
  name: string;
  limits: Limits;
  /** Key and account counters are kept without limits too, for /v1/usage. */
  always: boolean;
}

const RULES = [
  { field: 'rpm', what: 'requests per minute', unit: 'requests', window: MINUTE },
  { field: 'tpm', what: 'tokens per minute', unit: 'tokens', window: MINUTE },
  { field: 'tpd', what: 'tokens per day', unit: 'tokens', window: DAY },
] as const;

/**
 * Multi-level quotas: a request is checked against its key, the key's account, its model (by name and by
 * name@version) and each feature it uses, for requests and tokens per minute and tokens per day, in one
 * atomic take from the counter store. Prompt tokens count at once, generated tokens when the request ends.
 * Refusals name the level and the limit (429 with Retry-After; 403 for a feature denied to the key).
 */
export class QuotaTracker {
  constructor(
    private readonly policy: QuotaPolicy,
    private readonly store: CounterStore,
    private readonly opts: { redisDown: RedisDownPolicy; metrics?: ServerMetrics; now?: () => number },
  ) {}

  /** Prompts longer than this use the `long_context` feature. */
  get longContextTokens(): number {
    return this.policy.longContextTokens;
  }

  /** Throws 403 when the key or its account may not use one of the features. */
  allowFeatures(key: ApiKey, features: readonly Feature[]): void {
    const account = key.account ? this.policy.accounts.get(key.account) : undefined;
    for (const feature of features) {
      const by = key.deny?.includes(feature) ? `key ${key.name}` : account?.deny.includes(feature) ? `account ${key.account}` : undefined;
      if (by) throw new ApiError(403, `Feature ${feature} is not allowed for ${by} by the quota file`, 'feature_not_allowed');
    }
  }

  async admit(facts: RequestFacts): Promise<Admission> {
    const { key } = facts;
    this.allowFeatures(key, facts.features);
    const subjects = this.subjects(facts);
    const counters = subjects.flatMap((s) =>
      RULES.map((r) => ({
        subject: s,
        rule: r,
        take: { id: `${s.level}:${s.name}:${r.unit}`, window: r.window, limit: s.limits[r.field] ?? 0, amount: r.unit === 'requests' ? 1 : facts.promptTokens },
      })),
    );
    const taken = await this.guard(() =>
      this.store.take(
        counters.map((c) => c.take),
        this.now(),
      ),
    );
    if (taken?.refused !== undefined) {
      const { subject, rule, take } = counters[taken.refused];
      this.opts.metrics?.quotaRefusals.inc({ level: subject.level });
      const seconds = Math.max(1, Math.ceil(taken.waitMs / 1000));
      const over = rule.unit === 'tokens' && take.amount > take.limit ? `; this request alone has ${take.amount} prompt tokens` : '';
      throw new ApiError(429, `Rate limit reached for ${subject.level} ${subject.name} on ${rule.what} (limit ${take.limit}${over}): try again in ${seconds}s`, 'rate_limit_exceeded', null, {
        'Retry-After': String(seconds),
        'X-Llmkit-Quota-Level': subject.level,
      });
    }
    this.count(key, 1, facts.promptTokens);
    return {
      finish: async (completionTokens) => {
        if (!completionTokens) return;
        this.count(key, 0, completionTokens);
        const tokens = counters.filter((c) => c.rule.unit === 'tokens').map((c) => ({ ...c.take, limit: 0, amount: completionTokens }));
        await this.guard(() => this.store.take(tokens, this.now()), 'open');
      },
      refund: async () => {
        await this.guard(
          () =>
            this.store.take(
              counters.map((c) => ({ ...c.take, limit: 0, amount: -c.take.amount })),
              this.now(),
            ),
          'open',
        );
      },
    };
  }

  /** What the caller's key and account used in the current windows; an admin key sees every key and account. */
  async usage(caller: ApiKey, keys: readonly ApiKey[]): Promise<object> {
    const admin = this.policy.adminKeys.has(caller.name);
    const shown = admin ? keys : [caller];
    const accounts = admin ? [...this.policy.accounts.keys()] : caller.account ? [caller.account] : [];
    const report = async (level: QuotaLevel, name: string, limits: Limits) => {
      const used = await this.guard(
        () =>
          this.store.read(
            RULES.map((r) => ({ id: `${level}:${name}:${r.unit}`, window: r.window })),
            this.now(),
          ),
        'open',
      );
      return Object.fromEntries(RULES.map((r, i) => [r.field, { used: used?.[i] ?? null, limit: limits[r.field] ?? null }]));
    };
    return {
      object: 'usage',
      windows: { rpm: 'last 60 s', tpm: 'last 60 s', tpd: 'last 24 h' },
      keys: await Promise.all(shown.map(async (k) => ({ name: k.name, account: k.account ?? null, ...(await report('key', k.name, this.keyLimits(k))) }))),
      accounts: await Promise.all(accounts.map(async (a) => ({ name: a, ...(await report('account', a, this.policy.accounts.get(a)?.limits ?? {})) }))),
    };
  }

  private subjects({ key, model, features }: RequestFacts): Subject[] {
    const subjects: Subject[] = [{ level: 'key', name: key.name, limits: this.keyLimits(key), always: true }];
    if (key.account) subjects.push({ level: 'account', name: key.account, limits: this.policy.accounts.get(key.account)?.limits ?? {}, always: true });
    for (const name of new Set([model.name, model.id])) subjects.push({ level: 'model', name, limits: this.policy.models.get(name) ?? {}, always: false });
    for (const f of features) subjects.push({ level: 'feature', name: f, limits: this.policy.features.get(f) ?? {}, always: false });
    return subjects.filter((s) => s.always || Object.keys(s.limits).length);
  }

  private keyLimits(key: ApiKey): Limits {
    return { ...this.policy.defaults, ...key.limits };
  }

  private count(key: ApiKey, requests: number, tokens: number): void {
    const m = this.opts.metrics;
    if (!m) return;
    const labels = { key: key.name, account: key.account ?? '' };
    if (requests) m.keyRequests.inc(labels, requests);
    m.keyTokens.inc(labels, tokens);
    if (!key.account) return;
    if (requests) m.accountRequests.inc({ account: key.account }, requests);
    m.accountTokens.inc({ account: key.account }, tokens);
  }

  /**
   * Runs a store operation; if the store is unreachable, `open` goes on without it (undefined) and `closed`
   * refuses with 503. What happens after admission (counting generated tokens, a refund, a usage report)
   * never refuses: the answer is already given.
   */
  private async guard<T>(op: () => Promise<T>, policy: RedisDownPolicy = this.opts.redisDown): Promise<T | undefined> {
    try {
      return await op();
    } catch (e) {
      this.opts.metrics?.quotaStoreErrors.inc();
      if (policy === 'open') return undefined;
      throw new ApiError(503, `The quota store is unreachable (${(e as Error).message}) and this server refuses requests until it is back (--redis-down closed)`, 'quota_store_unavailable', null, {
        'Retry-After': String(STORE_DOWN_RETRY_AFTER_S),
      });
    }
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}
