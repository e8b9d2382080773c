import { Redis } from 'ioredis';
import { UsageError } from '../../shared/errors.js';
import type { CounterStore, CounterTake, TakeResult, Window } from './counter-store.js';

/** Every key llmkit writes starts with this, so one Redis can hold other data too. */
const PREFIX = 'llmkit:';

/** How long a command may wait for Redis before the request goes on under the --redis-down policy. */
const COMMAND_TIMEOUT_MS = 1_000;
const RECONNECT_MS = 1_000;

/**
 * One connection to Redis for the whole server (quotas and the response cache). Commands fail at once
 * while Redis is away (no offline queue): the caller applies the --redis-down policy. The link says
 * once when Redis goes away and once when it is back, and keeps reconnecting every second.
 */
export class RedisLink {
  private down = false;
  private closing = false;

  private constructor(
    readonly client: Redis,
    readonly url: string,
  ) {}

  static async connect(url: string, log: (line: string) => void): Promise<RedisLink> {
    if (!/^rediss?:\/\//.test(url)) throw new UsageError(`--redis ${url} is not a Redis URL`, 'pass redis://HOST:PORT (or rediss:// for TLS)');
    const client = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
      retryStrategy: () => RECONNECT_MS,
    });
    const link = new RedisLink(client, url);
    client.on('error', (e: Error) => link.wentDown(e.message, log));
    client.on('close', () => link.wentDown('connection closed', log));
    client.on('ready', () => {
      if (link.down) log(`redis ${url}: back; quotas and cache are shared again`);
      link.down = false;
    });
    try {
      await client.connect();
    } catch (e) {
      client.disconnect();
      throw new UsageError(`cannot reach Redis at ${url}: ${(e as Error).message}`, 'start redis-server or fix --redis');
    }
    return link;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.client.disconnect();
  }

  private wentDown(why: string, log: (line: string) => void): void {
    if (this.down || this.closing) return;
    this.down = true;
    log(`redis ${this.url}: unreachable (${why}); requests follow --redis-down until it is back`);
  }
}

/**
 * Checks every counter, then adds to all of them or to none, in one script: Redis runs it atomically,
 * so replicas never both take the last unit. Each counter is a hash of bucket index → amount.
 * KEYS: the counters; ARGV: now, then per counter window ms, bucket ms, limit (0: none), amount.
 * Returns {0, 0} when taken, or {index (1-based), wait ms} of the first counter that refused.
 */
const TAKE_SCRIPT = `
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local window, bucket, limit, amount = tonumber(ARGV[i*4-2]), tonumber(ARGV[i*4-1]), tonumber(ARGV[i*4]), tonumber(ARGV[i*4+1])
  local fields = redis.call('HGETALL', KEYS[i])
  local live, total = {}, 0
  for j = 1, #fields, 2 do
    local b = tonumber(fields[j])
    if (b + 1) * bucket > now - window then
      total = total + tonumber(fields[j+1])
      live[#live+1] = {b, tonumber(fields[j+1])}
    else
      redis.call('HDEL', KEYS[i], fields[j])
    end
  end
  if limit > 0 and total + amount > limit then
    local wait = window
    if amount <= limit then
      table.sort(live, function(x, y) return x[1] < y[1] end)
      local freed = 0
      for _, e in ipairs(live) do
        freed = freed + e[2]
        if freed >= total + amount - limit then wait = (e[1] + 1) * bucket + window - now break end
      end
    end
    return {i, wait}
  end
end
for i = 1, #KEYS do
  local window, bucket, amount = tonumber(ARGV[i*4-2]), tonumber(ARGV[i*4-1]), tonumber(ARGV[i*4+1])
  redis.call('HINCRBY', KEYS[i], math.floor(now / bucket), amount)
  redis.call('PEXPIRE', KEYS[i], window + bucket)
end
return {0, 0}
`;

/** Sums the buckets of each counter still in its window. ARGV: now, then per counter window ms, bucket ms. */
const READ_SCRIPT = `
local now, out = tonumber(ARGV[1]), {}
for i = 1, #KEYS do
  local window, bucket = tonumber(ARGV[i*2]), tonumber(ARGV[i*2+1])
  local fields, total = redis.call('HGETALL', KEYS[i]), 0
  for j = 1, #fields, 2 do
    if (tonumber(fields[j]) + 1) * bucket > now - window then total = total + tonumber(fields[j+1]) end
  end
  out[i] = total
end
return out
`;

type ScriptClient = Redis & {
  llmkitTake(...args: (string | number)[]): Promise<[number, number]>;
  llmkitRead(...args: (string | number)[]): Promise<number[]>;
};

const counterKey = (id: string, w: Window) => `${PREFIX}quota:${id}:${w.name}`;

/** The quota counters in Redis, shared by every replica and kept across restarts. */
export class RedisCounterStore implements CounterStore {
  private readonly client: ScriptClient;

  constructor(link: RedisLink) {
    link.client.defineCommand('llmkitTake', { lua: TAKE_SCRIPT });
    link.client.defineCommand('llmkitRead', { lua: READ_SCRIPT });
    this.client = link.client as ScriptClient;
  }

  async take(counters: readonly CounterTake[], now: number): Promise<TakeResult> {
    const keys = counters.map((c) => counterKey(c.id, c.window));
    const args = counters.flatMap((c) => [c.window.ms, c.window.bucketMs, c.limit, c.amount]);
    const [index, wait] = await this.client.llmkitTake(keys.length, ...keys, now, ...args);
    return index === 0 ? { refused: undefined } : { refused: index - 1, waitMs: wait };
  }

  async read(counters: readonly Pick<CounterTake, 'id' | 'window'>[], now: number): Promise<number[]> {
    const keys = counters.map((c) => counterKey(c.id, c.window));
    return this.client.llmkitRead(keys.length, ...keys, now, ...counters.flatMap((c) => [c.window.ms, c.window.bucketMs]));
  }

  async close(): Promise<void> {}
}

/** Cached responses in Redis (the response cache's shared tier), expiring after `ttlSeconds`. */
export class RedisValueStore {
  constructor(
    private readonly link: RedisLink,
    private readonly ttlSeconds: number,
  ) {}

  async get(key: string): Promise<string | null> {
    return this.link.client.get(`${PREFIX}cache:${key}`);
  }

  async set(key: string, value: string): Promise<void> {
    await this.link.client.set(`${PREFIX}cache:${key}`, value, 'EX', this.ttlSeconds);
  }
}
