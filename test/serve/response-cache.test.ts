import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResponseCache } from '../../src/serve/response-cache.js';
import { ServerMetrics } from '../../src/serve/server-metrics.js';
import { tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';
import { redisUnavailable, startRedis, type RedisServer } from '../helpers/redis.js';
import { metric, postJson, startTestServer, type TestServer } from '../helpers/server.js';

const QUOTAS = `
accounts:
  acme: { keys: [ { name: acme-1, key: sk-acme-1111 }, { name: acme-2, key: sk-acme-2222 } ] }
  other: { keys: [ { name: other, key: sk-other-3333 } ] }
`;

function quotaFile(): string {
  const path = join(tempDir(), 'quotas.yaml');
  writeFileSync(path, QUOTAS);
  return path;
}

const base = {
  model: 'tiny@1',
  messages: [
    { role: 'system', content: 'You answer in one line.' },
    { role: 'user', content: 'Name a colour' },
  ],
  max_tokens: 12,
  temperature: 0,
};

async function ask(server: TestServer, body: object, key = 'sk-acme-1111') {
  const r = await postJson(`${server.url}/v1/chat/completions`, body, { Authorization: `Bearer ${key}` });
  const choices = r.body.choices as { message: { content: string } }[] | undefined;
  return { status: r.status, cache: r.headers.get('x-llmkit-cache'), text: choices?.[0].message.content, body: r.body };
}

/** The streamed text and how many content chunks carried it. */
async function askStream(server: TestServer, body: object) {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer sk-acme-1111' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const events = (await res.text())
    .split('\n\n')
    .filter((e) => e.startsWith('data: {'))
    .map((e) => JSON.parse(e.slice(6)) as { choices: { delta: { content?: string }; finish_reason: string | null }[] });
  const pieces = events.map((e) => e.choices[0]?.delta.content).filter((c) => c);
  return { cache: res.headers.get('x-llmkit-cache'), text: pieces.join(''), chunks: pieces.length, finish: events.at(-1)!.choices[0].finish_reason };
}

describe('the in-memory cache', () => {
  it('keeps at most --cache-entries answers, dropping the least recently used, and never keeps an answer that did not end by itself', async () => {
    const cache = new ResponseCache({ maxEntries: 2, metrics: new ServerMetrics(() => []) });
    const answer = (text: string, reason: 'stop' | 'cancelled' = 'stop') => ({ pieces: [text], reason, promptTokens: 1, completionTokens: 1 });
    await cache.set('a', answer('A'));
    await cache.set('b', answer('B'));
    expect((await cache.get('a'))?.pieces).toEqual(['A']);
    await cache.set('c', answer('C'));
    expect(await cache.get('b')).toBeUndefined();
    expect((await cache.get('a'))?.pieces).toEqual(['A']);
    expect((await cache.get('c'))?.pieces).toEqual(['C']);
    await cache.set('d', answer('D', 'cancelled'));
    expect(await cache.get('d')).toBeUndefined();
  });
});

describe('response cache in memory (--cache)', () => {
  let server: TestServer;
  beforeAll(async () => {
    const model = await exportedTinyModel();
    server = await startTestServer({ models: [`tiny@1=${model}`, `tiny@2=${model}`], quotaFile: quotaFile(), cache: true, cacheEntries: 16 });
  });
  afterAll(() => server.drain());

  it('answers a repeated greedy request from the cache, the same text, and misses on every output-changing field', async () => {
    const first = await ask(server, base);
    const second = await ask(server, base);
    expect([first.status, first.cache, second.status, second.cache]).toEqual([200, 'miss', 200, 'hit']);
    expect(second.text).toBe(first.text);
    expect(second.body.usage).toEqual(first.body.usage);
    expect(second.body.id).not.toBe(first.body.id);
    expect(await metric(server.url, 'llmkit_cache_requests_total{model="tiny@1",result="hit"}')).toBe(1);

    const variants = [
      { ...base, messages: [{ role: 'system', content: 'You answer in two lines.' }, base.messages[1]] },
      { ...base, messages: [base.messages[0], { role: 'user', content: 'Name a color' }] },
      { ...base, model: 'tiny@2' },
      { ...base, max_tokens: 11 },
      { ...base, stop: ['x'] },
      { ...base, temperature: 0.7, seed: 1 },
      { ...base, temperature: 0.7, seed: 2 },
      { ...base, frequency_penalty: 0.5 },
    ];
    for (const v of variants) expect((await ask(server, v)).cache).toBe('miss');
    // Another key of the same account shares the entry; another account never does.
    expect((await ask(server, base, 'sk-acme-2222')).cache).toBe('hit');
    expect((await ask(server, base, 'sk-other-3333')).cache).toBe('miss');
    // Sampled without a seed: not deterministic, not cached (no header).
    expect((await ask(server, { ...base, temperature: 0.7 })).cache).toBeNull();
    expect(await metric(server.url, 'llmkit_cache_requests_total{model="tiny@1",result="hit"}')).toBe(2);
    // Per model: tiny@2 was asked once (a miss), none of its lookups hit.
    expect(await metric(server.url, 'llmkit_cache_requests_total{model="tiny@2",result="miss"}')).toBe(1);
    expect(await metric(server.url, 'llmkit_cache_requests_total{model="tiny@2",result="hit"}')).toBe(0);
  });

  it('streams an answer served from the cache, chunk by chunk, like the generated one', async () => {
    const body = { ...base, max_tokens: 20 };
    const first = await askStream(server, body);
    const second = await askStream(server, body);
    expect([first.cache, second.cache]).toEqual(['miss', 'hit']);
    expect(second.text).toBe(first.text);
    expect(second.chunks).toBe(first.chunks);
    expect(second.chunks).toBeGreaterThan(1);
    expect(second.finish).toBe(first.finish);
    // A non-streamed request for the same answer is a hit too: framing is not part of the key.
    expect((await ask(server, body)).text).toBe(first.text);
  });
});

const unavailable = redisUnavailable();
if (unavailable) console.log(`skipping the Redis cache test: ${unavailable}`);

describe.skipIf(unavailable)('response cache in Redis (--cache --redis)', () => {
  let redis: RedisServer;
  let servers: TestServer[];
  beforeAll(async () => {
    redis = await startRedis();
    const model = await exportedTinyModel();
    const file = quotaFile();
    servers = [];
    for (let i = 0; i < 2; i++) servers.push(await startTestServer({ models: [`tiny@1=${model}`], quotaFile: file, cache: true, redis: redis.url }));
  });
  afterAll(async () => {
    await Promise.allSettled(servers.map((s) => s.drain()));
    await redis.stop();
  });

  it('shares entries between replicas, and generates as usual while Redis is away', async () => {
    const first = await ask(servers[0], base);
    const second = await ask(servers[1], base);
    expect([first.cache, second.cache]).toEqual(['miss', 'hit']);
    expect(second.text).toBe(first.text);
    await redis.stop();
    const away = await ask(servers[1], base);
    expect([away.status, away.cache, away.text]).toEqual([200, 'miss', first.text]);
    await redis.start();
  });
});
