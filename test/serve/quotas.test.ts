import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/shared/errors.js';
import { MemoryCounterStore } from '../../src/serve/access/counter-store.js';
import type { ApiError } from '../../src/serve/openai/errors.js';
import { emptyPolicy, loadQuotaFile } from '../../src/serve/access/quota-file.js';
import { requestFeatures } from '../../src/serve/access/features.js';
import { QuotaTracker, type RequestFacts } from '../../src/serve/access/quotas.js';
import { ChatRequestSchema, parseRequest } from '../../src/serve/openai/schemas.js';
import { fromChatRequest } from '../../src/serve/openai/translate.js';
import { runCliInProcess, tempDir } from '../helpers/cli.js';

async function refusal(p: Promise<unknown>): Promise<ApiError | undefined> {
  try {
    await p;
  } catch (e) {
    return e as ApiError;
  }
}

const facts = (key: RequestFacts['key'], promptTokens = 5, features: RequestFacts['features'] = []): RequestFacts => ({ key, model: { id: 'm@1', name: 'm' }, features, promptTokens });

const TOOL = { type: 'function', function: { name: 'f', parameters: { type: 'object' } } };
const chat = (body: object) => fromChatRequest(parseRequest(ChatRequestSchema, { model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body }));

describe('quotas over sliding windows (in memory)', () => {
  it('refuses the request over the limit until the oldest one leaves the window', async () => {
    let now = 0;
    const quotas = new QuotaTracker(emptyPolicy({ rpm: 2 }), new MemoryCounterStore(), { redisDown: 'open', now: () => now });
    const key = { key: 'k', name: 'team' };
    for (const t of [0, 10_000]) {
      now = t;
      await quotas.admit(facts(key));
    }
    now = 30_000;
    const e = (await refusal(quotas.admit(facts(key))))!;
    expect(e.status).toBe(429);
    expect(e.message).toBe('Rate limit reached for key team on requests per minute (limit 2): try again in 31s');
    expect(e.headers['Retry-After']).toBe('31');
    now = 61_000;
    expect(await refusal(quotas.admit(facts(key)))).toBeUndefined();
    // A request the engine refused (queue full) gives its place back.
    now = 200_000;
    await (await quotas.admit(facts(key))).refund();
    expect(await refusal(quotas.admit(facts(key)))).toBeUndefined();
    expect(await refusal(quotas.admit(facts(key)))).toBeUndefined();
    expect(await refusal(quotas.admit(facts(key)))).toBeDefined();
  });

  it('counts prompt tokens at once and generated tokens at the end, with a per-key limit over the default', async () => {
    let now = 0;
    const quotas = new QuotaTracker(emptyPolicy({ tpm: 1000 }), new MemoryCounterStore(), { redisDown: 'open', now: () => now });
    const key = { key: 'k', name: 'small', limits: { tpm: 100 } };
    const first = await quotas.admit(facts(key, 40));
    now = 5_000;
    await first.finish(40);
    expect(await refusal(quotas.admit(facts(key, 10)))).toBeUndefined();
    const e = (await refusal(quotas.admit(facts(key, 20))))!;
    expect(e.message).toMatch(/key small on tokens per minute \(limit 100\)/);
    // 10 tokens over: the bucket of t=0 (40 tokens) must leave, at t=61 s.
    expect(e.headers['Retry-After']).toBe('56');
    expect(await refusal(quotas.admit(facts({ key: 'other', name: 'other' }, 500)))).toBeUndefined();
  });

  it('checks every level and takes from none when one refuses; tokens per day; denied features', async () => {
    const policy = emptyPolicy();
    policy.accounts.set('acme', { limits: { rpm: 3 }, deny: ['websocket'] });
    policy.models.set('m', { tpd: 50 });
    policy.features.set('stream', { rpm: 1 });
    const quotas = new QuotaTracker(policy, new MemoryCounterStore(), { redisDown: 'open', now: () => 0 });
    const [x, y] = [
      { key: 'x', name: 'x', account: 'acme' },
      { key: 'y', name: 'y', account: 'acme', deny: ['n' as const] },
    ];
    await quotas.admit(facts(x, 5, ['stream']));
    expect((await refusal(quotas.admit(facts(y, 5, ['stream']))))!.message).toMatch(/^Rate limit reached for feature stream on requests per minute \(limit 1\)/);
    // The refused request took nothing from the account: two more fit.
    await quotas.admit(facts(y));
    await quotas.admit(facts(x));
    expect((await refusal(quotas.admit(facts(y))))!.message).toMatch(/account acme on requests per minute \(limit 3\)/);
    expect((await refusal(quotas.admit(facts({ key: 'z', name: 'z' }, 40))))!.message).toMatch(/^Rate limit reached for model m on tokens per day \(limit 50\)/);
    const denied = (await refusal(quotas.admit(facts(x, 5, ['websocket']))))!;
    expect([denied.status, denied.message]).toEqual([403, 'Feature websocket is not allowed for account acme by the quota file']);
    expect((await refusal(quotas.admit(facts(y, 5, ['n']))))!.message).toBe('Feature n is not allowed for key y by the quota file');
  });

  it('reads the features a request uses from the parsed request', () => {
    const opts = { stream: true, websocket: true, promptTokens: 9, longContextTokens: 8 };
    expect(requestFeatures(chat({ n: 2, tools: [TOOL], response_format: { type: 'json_object' }, logprobs: true }), opts)).toEqual([
      'stream',
      'websocket',
      'n',
      'tools',
      'response_format',
      'logprobs',
      'long_context',
    ]);
    const none = { stream: false, websocket: false, promptTokens: 8, longContextTokens: 8 };
    expect(requestFeatures(chat({ n: 1, logprobs: false, response_format: null }), none)).toEqual([]);
    expect(requestFeatures(chat({ top_logprobs: 0, logprobs: true }), none)).toEqual(['logprobs']);
  });

  it('deny: [tools] refuses tools but not response_format, and deny: [response_format] the reverse', async () => {
    const quotas = new QuotaTracker(emptyPolicy(), new MemoryCounterStore(), { redisDown: 'open', now: () => 0 });
    const noTools = { key: 'a', name: 'no-tools', deny: ['tools' as const] };
    const noFormat = { key: 'b', name: 'no-format', deny: ['response_format' as const] };
    const features = (body: object) => requestFeatures(chat(body), { stream: false, websocket: false, promptTokens: 5, longContextTokens: 8 });
    const json = features({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } } });
    const tools = features({ tools: [TOOL] });
    await quotas.admit(facts(noTools, 5, json));
    expect((await refusal(quotas.admit(facts(noTools, 5, tools))))!.message).toBe('Feature tools is not allowed for key no-tools by the quota file');
    await quotas.admit(facts(noFormat, 5, tools));
    expect((await refusal(quotas.admit(facts(noFormat, 5, json))))!.message).toBe('Feature response_format is not allowed for key no-format by the quota file');
  });
});

describe('--quota-file', () => {
  const write = (text: string, name = 'quotas.yaml') => {
    const path = join(tempDir(), name);
    writeFileSync(path, text);
    return path;
  };
  const error = (text: string, name?: string) => {
    try {
      loadQuotaFile(write(text, name));
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      return (e as Error).message.replace(/^--quota-file [^:\s]+/, 'FILE');
    }
    throw new Error('loaded');
  };

  it('loads accounts, keys, models and features from YAML or JSON', () => {
    const { policy, keys } = loadQuotaFile(
      write(`defaults: { rpm: 60 }
accounts:
  acme:
    limits: { tpd: 1000 }
    keys:
      - { name: acme-web, key: sk-acme-web-1, limits: { rpm: 10 }, deny: [stream] }
models: { "qwen@2": { rpm: 5 } }
features: { websocket: { tpm: 100 } }
long_context_tokens: 1024
admin_keys: [acme-web]
`),
    );
    expect(keys).toEqual([{ key: 'sk-acme-web-1', name: 'acme-web', account: 'acme', limits: { rpm: 10 }, deny: ['stream'] }]);
    expect(policy.defaults).toEqual({ rpm: 60 });
    expect(policy.accounts.get('acme')).toEqual({ limits: { tpd: 1000 }, deny: [] });
    expect(policy.models.get('qwen@2')).toEqual({ rpm: 5 });
    expect(policy.features.get('websocket')).toEqual({ tpm: 100 });
    expect([policy.longContextTokens, [...policy.adminKeys]]).toEqual([1024, ['acme-web']]);
    expect(loadQuotaFile(write('{"accounts": {"a": {"keys": [{"name": "k", "key": "sk-12345678"}]}}}', 'q.json')).keys[0].account).toBe('a');
  });

  it('names the line and the field of each mistake', () => {
    expect(error('accounts:\n  acme:\n    keys:\n      - name: a\n        key: sk-acme-1\n        limits: { rpm: -3 }\n')).toBe(
      'FILE:6 at accounts.acme.keys.0.limits.rpm: Too small: expected number to be >0',
    );
    expect(error('models:\n  m: { rpn: 3 }\n')).toMatch(/^FILE:2 at models\.m: Unrecognized key: "rpn"/);
    expect(error('features:\n  streaming: { rpm: 1 }\n')).toBe('FILE:2 at features: Unrecognized key: "streaming"');
    expect(error('accounts:\n  a:\n    keys: [ { name: k, key: short } ]\n')).toMatch(/^FILE:3 at accounts\.a\.keys\.0\.key: keys are at least 8 characters/);
    expect(error('defaults: { rpm: 1\n')).toMatch(/^FILE:\d: /);
    expect(error('accounts:\n  a: { keys: [ { name: k, key: sk-12345678 } ] }\n  b: { keys: [ { name: k, key: sk-87654321 } ] }\n')).toBe('FILE: key name k appears twice');
    expect(error('admin_keys: [nobody]\n')).toBe('FILE: admin_keys names nobody, which is not a key of any account');
  });
});

describe('llmkit serve refuses bad quota and Redis flags before loading anything', () => {
  it.each([
    [['--quota-file', 'QUOTAS'], /^error: --quota-file \S+quotas\.yaml:3 at accounts\.a\.keys: Too small: expected array to have >=1 items; see the quota file format in docs\/serve\.md$/m],
    [['--redis-down', 'maybe'], /^error: --redis-down must be one of open, closed \(got maybe\)$/m],
    [['--redis', 'localhost:6379'], /^error: --redis localhost:6379 is not a Redis URL; pass redis:\/\/HOST:PORT/m],
    [['--redis', 'redis://127.0.0.1:1'], /^error: cannot reach Redis at redis:\/\/127\.0\.0\.1:1: /m],
  ])('%s', async (flags, message) => {
    const quotas = join(tempDir(), 'quotas.yaml');
    writeFileSync(quotas, 'accounts:\n  a:\n    keys: []\n');
    const r = await runCliInProcess(['serve', './no-model-needed', '--port', '0', ...flags.map((f) => (f === 'QUOTAS' ? quotas : f))]);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(message);
    expect(String(r.stderr)).not.toMatch(/\n\s+at /);
  });
});
