import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServe, type ServeProcess } from '../e2e/llmkit-serve.js';
import { tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';
import { redisUnavailable, startRedis, type RedisServer } from '../helpers/redis.js';
import { metric, postJson } from '../helpers/server.js';

const QUOTAS = `
accounts:
  acme:
    limits: { rpm: 15 }
    keys:
      - { name: acme-a, key: sk-acme-a-0001, limits: { rpm: 10 } }
      - { name: acme-b, key: sk-acme-b-0002, deny: [stream] }
  solo:
    keys:
      - { name: solo, key: sk-solo-0003 }
models:
  tiny@2: { rpm: 3 }
admin_keys: [solo]
`;

const unavailable = redisUnavailable();
if (unavailable) console.log(`skipping the Redis quota tests: ${unavailable}`);

describe.skipIf(unavailable)('two llmkit serve replicas sharing one redis-server', () => {
  let redis: RedisServer;
  let model: string;
  let args: string[];
  // A refuses while Redis is away (--redis-down closed); B serves without quotas (open).
  let a: ServeProcess;
  let b: ServeProcess;
  const closed = () => ['--redis-down', 'closed'];

  beforeAll(async () => {
    redis = await startRedis();
    model = await exportedTinyModel();
    const file = join(tempDir(), 'quotas.yaml');
    writeFileSync(file, QUOTAS);
    args = [`tiny@2=${model}`, '--quota-file', file, '--redis', redis.url];
    [a, b] = await Promise.all([startServe(model, 'tiny@1', [...args, ...closed()]), startServe(model, 'tiny@1', args)]);
  });
  afterAll(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  const ask = (server: ServeProcess, key: string, extra: Record<string, unknown> = {}) =>
    postJson(`${server.apiUrl}/chat/completions`, { model: 'tiny@1', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, ...extra }, { Authorization: `Bearer ${key}` });

  it('enforces key, account, model and feature limits across both replicas, and the counts outlive a restart and a Redis outage', async () => {
    // Key level: rpm 10 in total, whichever replica answers.
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await ask(i % 2 ? b : a, 'sk-acme-a-0001')).status);
    expect(statuses).toEqual([...Array(10).fill(200), 429, 429]);
    const keyRefusal = await ask(b, 'sk-acme-a-0001');
    expect(keyRefusal.status).toBe(429);
    expect(keyRefusal.body.error!.message).toMatch(/^Rate limit reached for key acme-a on requests per minute \(limit 10\): try again in \d+s$/);
    expect(keyRefusal.body.error!.code).toBe('rate_limit_exceeded');
    expect(Number(keyRefusal.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(keyRefusal.headers.get('x-llmkit-quota-level')).toBe('key');
    const perReplica = await Promise.all([a, b].map((s) => metric(s.apiUrl.replace(/\/v1$/, ''), 'llmkit_key_requests_total{key="acme-a",account="acme"}')));
    expect(perReplica[0] + perReplica[1]).toBe(10);

    // Account level: acme's rpm 15 caps its two keys together (acme-a took 10).
    const accountStatuses: number[] = [];
    for (let i = 0; i < 6; i++) accountStatuses.push((await ask(i % 2 ? a : b, 'sk-acme-b-0002')).status);
    expect(accountStatuses).toEqual([200, 200, 200, 200, 200, 429]);
    const accountRefusal = await ask(a, 'sk-acme-b-0002');
    expect(accountRefusal.body.error!.message).toMatch(/^Rate limit reached for account acme on requests per minute \(limit 15\)/);

    // Feature: streaming is denied to acme-b, whatever its rate.
    const stream = await ask(a, 'sk-acme-b-0002', { stream: true });
    expect(stream.status).toBe(403);
    expect(stream.body.error).toMatchObject({ code: 'feature_not_allowed', message: 'Feature stream is not allowed for key acme-b by the quota file' });

    // Model level: tiny@2 takes 3 requests a minute from everyone together; tiny@1 is not limited.
    const modelStatuses: number[] = [];
    for (let i = 0; i < 4; i++) modelStatuses.push((await ask(i % 2 ? a : b, 'sk-solo-0003', { model: 'tiny@2' })).status);
    expect(modelStatuses).toEqual([200, 200, 200, 429]);
    const modelRefusal = await ask(a, 'sk-solo-0003', { model: 'tiny@2' });
    expect(modelRefusal.body.error!.message).toMatch(/^Rate limit reached for model tiny@2 on requests per minute \(limit 3\)/);
    expect((await ask(a, 'sk-solo-0003')).status).toBe(200);

    // A restarted replica sees the same counts.
    await b.stop();
    b = await startServe(model, 'tiny@1', args);
    expect((await ask(b, 'sk-acme-a-0001')).status).toBe(429);
    const usage = await fetch(`${b.apiUrl}/usage`, { headers: { Authorization: 'Bearer sk-acme-a-0001' } });
    const report = (await usage.json()) as { keys: { name: string; rpm: { used: number; limit: number } }[]; accounts: { name: string; rpm: { used: number; limit: number } }[] };
    expect(report.keys).toEqual([expect.objectContaining({ name: 'acme-a', rpm: { used: 10, limit: 10 } })]);
    expect(report.accounts).toEqual([expect.objectContaining({ name: 'acme', rpm: { used: 15, limit: 15 } })]);
    const admin = (await (await fetch(`${b.apiUrl}/usage`, { headers: { Authorization: 'Bearer sk-solo-0003' } })).json()) as typeof report;
    expect(admin.keys.map((k) => k.name).sort()).toEqual(['acme-a', 'acme-b', 'solo']);
    expect((await fetch(`${b.apiUrl}/usage`)).status).toBe(401);

    // Redis goes away: A (closed) refuses with 503, B (open) keeps serving; both say so once in their log.
    await redis.stop();
    const down = await ask(a, 'sk-solo-0003');
    expect(down.status).toBe(503);
    expect(down.body.error!.code).toBe('quota_store_unavailable');
    expect(down.headers.get('retry-after')).toBe('5');
    expect((await ask(b, 'sk-acme-a-0001')).status).toBe(200);
    expect(a.stderr()).toMatch(/redis redis:\/\/127\.0\.0\.1:\d+: unreachable/);

    // Redis is back (with its data): A serves again and the key's window still holds.
    await redis.start();
    let back = 503;
    for (let i = 0; i < 100 && back === 503; i++) {
      back = (await ask(a, 'sk-solo-0003')).status;
      if (back === 503) await new Promise((r) => setTimeout(r, 100));
    }
    expect(back).toBe(200);
    expect((await ask(a, 'sk-acme-a-0001')).status).toBe(429);
    expect(a.stderr()).toMatch(/: back; quotas and cache are shared again/);
  });
});
