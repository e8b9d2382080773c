import { afterEach, describe, expect, it, vi } from 'vitest';
import { EngineRejection } from '../../src/engine/engine-contract.js';
import type { ApiKey } from '../../src/serve/access/auth.js';
import { MemoryCounterStore } from '../../src/serve/access/counter-store.js';
import { emptyPolicy } from '../../src/serve/access/quota-file.js';
import { QuotaTracker } from '../../src/serve/access/quotas.js';
import { CompletionService, type ResponseSink } from '../../src/serve/completions.js';
import { ModelRegistry } from '../../src/serve/model-registry.js';
import type { ApiError } from '../../src/serve/openai/errors.js';
import { RequestPreparer } from '../../src/serve/prepared-request.js';
import { ResponseCache } from '../../src/serve/response-cache.js';
import { ServerMetrics } from '../../src/serve/server-metrics.js';
import { FakeEngine } from '../helpers/fake-engine.js';

/**
 * The request handler above a fake engine (test/helpers/fake-engine.ts): what `prepare` derives from a body,
 * and admit → replay or generate → respond, with the real quotas, cache, metrics and OpenAI output.
 */

const KEY: ApiKey = { key: 'sk-test-1234', name: 'team', account: 'acme' };
const CHAT = { model: 'm', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 8 };

async function setup(opts: { cache?: boolean; contextLength?: number } = {}) {
  const engine = new FakeEngine(['Hel', 'lo', ' world'], { contextLength: opts.contextLength });
  const models = await ModelRegistry.open([{ name: 'm', path: '/nonexistent' }], { openEngine: async () => engine });
  const metrics = new ServerMetrics(() => models.models);
  const quotas = new QuotaTracker(emptyPolicy(), new MemoryCounterStore(), { redisDown: 'open', metrics });
  const cache = opts.cache ? new ResponseCache({ maxEntries: 8, metrics }) : undefined;
  const service = new CompletionService({ models, quotas, metrics, cache });
  const preparer = new RequestPreparer({ models, longContextTokens: quotas.longContextTokens, cache });
  return { engine, models, quotas, service, preparer };
}

/** Everything a handler sent, with the response ids blanked (each response has its own). */
function recordingSink() {
  const sent: { chunks: object[]; complete?: object; cache?: string } = { chunks: [] };
  const blank = (o: object) =>
    JSON.parse(
      JSON.stringify(o)
        .replace(/"id":"(chatcmpl|cmpl)-[0-9a-f]+"/g, '"id":"ID"')
        .replace(/"created":\d+/g, '"created":0'),
    );
  const sink: ResponseSink = {
    chunk: (c) => sent.chunks.push(blank(c)),
    complete: (r) => (sent.complete = blank(r)),
    cacheStatus: (s) => (sent.cache = s),
  };
  return { sink, sent };
}

async function usage(quotas: QuotaTracker) {
  const report = (await quotas.usage(KEY, [KEY])) as { keys: { rpm: { used: number }; tpm: { used: number } }[] };
  return { requests: report.keys[0].rpm.used, tokens: report.keys[0].tpm.used };
}

async function refusal(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    return e as ApiError;
  }
  throw new Error('expected a refusal');
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('prepare', () => {
  it('derives features and the cache key from the request as parsed, not from how the body spelled it', async () => {
    const { preparer } = await setup({ cache: true });
    const a = await preparer.prepare('chat', { ...CHAT, temperature: 0 }, KEY);
    // Same request: other key order, framing fields (stream, user) that never change the answer.
    const b = await preparer.prepare('chat', { user: 'u1', temperature: 0, max_tokens: 8, stream: true, messages: CHAT.messages, model: 'm' }, KEY);
    expect(a.promptIds).toEqual([...'Say hello'].map((c) => c.charCodeAt(0)));
    expect(a.features).toEqual([]);
    expect(b.features).toEqual(['stream']);
    expect(a.cacheKey).toMatch(/^[0-9a-f]{64}$/);
    expect(b.cacheKey).toBe(a.cacheKey);
    // Anything that changes the answer changes the key; another account never shares it.
    expect((await preparer.prepare('chat', { ...CHAT, max_tokens: 9 }, KEY)).cacheKey).not.toBe(a.cacheKey);
    expect((await preparer.prepare('chat', CHAT, { ...KEY, account: 'other' })).cacheKey).not.toBe(a.cacheKey);
    expect((await preparer.prepare('completion', { model: 'm', prompt: 'Say hello', max_tokens: 8 }, KEY)).cacheKey).not.toBe(a.cacheKey);
  });

  it('marks response_format as its own feature (not tools), and leaves several choices, logprobs and sampling without a seed out of the cache', async () => {
    const { preparer } = await setup({ cache: true });
    const json = await preparer.prepare('completion', { model: 'm', prompt: 'x', response_format: { type: 'text' } }, KEY);
    expect(json.features).toEqual([]);
    const n = await preparer.prepare('chat', { ...CHAT, n: 2, logprobs: true }, KEY, { websocket: true, forceStream: true });
    expect([n.features, n.stream, n.cacheKey]).toEqual([['stream', 'websocket', 'n', 'logprobs'], true, undefined]);
    expect((await preparer.prepare('chat', { ...CHAT, temperature: 0.7 }, KEY)).cacheKey).toBeUndefined();
    expect((await preparer.prepare('chat', { ...CHAT, temperature: 0.7, seed: 3 }, KEY)).cacheKey).toBeDefined();
  });

  it('refuses what does not fit the context, an unknown model and a bad body before anything is held', async () => {
    const { preparer } = await setup({ contextLength: 12 });
    const long = await refusal(preparer.prepare('completion', { model: 'm', prompt: 'x'.repeat(12) }, KEY));
    expect([long.status, long.code, long.param]).toEqual([400, 'context_length_exceeded', 'prompt']);
    const room = await refusal(preparer.prepare('chat', { ...CHAT, max_tokens: 4 }, KEY));
    expect([room.status, room.code, room.param, room.message]).toEqual([
      400,
      'context_length_exceeded',
      'max_tokens',
      "This model's maximum context length is 12 tokens. However, you requested 13 tokens (9 in the messages, 4 in the completion). Please reduce the length of the messages or the completion.",
    ]);
    expect((await refusal(preparer.prepare('chat', { ...CHAT, model: 'nope' }, KEY))).status).toBe(404);
    expect((await refusal(preparer.prepare('chat', { ...CHAT, temperature: 3 }, KEY))).param).toBe('temperature');
    expect((await refusal(preparer.prepare('completion', { model: 'm', prompt: [300] }, KEY))).message).toBe("Invalid 'prompt': token id 300 is outside the vocabulary (0..255)");
  });
});

describe('CompletionService.handle', () => {
  it('answers from the engine, then replays the cached answer through the same output: the same body, the same chunks', async () => {
    const { service, engine, quotas } = await setup({ cache: true });
    const miss = recordingSink();
    const summary = await service.handle('chat', CHAT, KEY, new AbortController().signal, miss.sink);
    expect(summary).toMatchObject({ model: 'm', stream: false, cache: 'miss', end: { reason: 'stop', promptTokens: 9, completionTokens: 3 } });
    expect(miss.sent.complete).toMatchObject({
      object: 'chat.completion',
      choices: [{ message: { content: 'Hello world' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 9, completion_tokens: 3 },
    });
    const hit = recordingSink();
    expect((await service.handle('chat', CHAT, KEY, new AbortController().signal, hit.sink)).cache).toBe('hit');
    expect([hit.sent.cache, hit.sent.complete]).toEqual(['hit', miss.sent.complete]);
    expect(engine.requests).toHaveLength(1);

    const body = { ...CHAT, max_tokens: 7, stream: true, stream_options: { include_usage: true } };
    const streamed = [recordingSink(), recordingSink()];
    for (const s of streamed) await service.handle('chat', body, KEY, new AbortController().signal, s.sink);
    expect(streamed.map((s) => s.sent.cache)).toEqual(['miss', 'hit']);
    const deltas = streamed[0].sent.chunks.map((c) => (c as { choices: { delta?: object; finish_reason: string | null }[] }).choices[0] ?? 'usage');
    expect(deltas).toEqual([
      { index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
      { index: 0, delta: { content: 'Hel' }, logprobs: null, finish_reason: null },
      { index: 0, delta: { content: 'lo' }, logprobs: null, finish_reason: null },
      { index: 0, delta: { content: ' world' }, logprobs: null, finish_reason: null },
      { index: 0, delta: {}, logprobs: null, finish_reason: 'stop' },
      'usage',
    ]);
    expect(streamed[1].sent.chunks).toEqual(streamed[0].sent.chunks);
    // Four requests, each 9 prompt + 3 generated tokens, cached or not.
    expect(await usage(quotas)).toEqual({ requests: 4, tokens: 48 });
  });

  it('decodes n choices with seeds seed + i and streams each under its index', async () => {
    const { service, engine } = await setup();
    const { sink, sent } = recordingSink();
    await service.handle('completion', { model: 'm', prompt: 'Hi', n: 3, seed: 10, stream: true }, KEY, new AbortController().signal, sink);
    expect(engine.requests[0].choices.map((c) => c.seed)).toEqual([10, 11, 12]);
    const texts = [0, 1, 2].map((i) =>
      sent.chunks
        .map((c) => (c as { choices: { index: number; text: string }[] }).choices[0])
        .filter((c) => c.index === i)
        .map((c) => c.text)
        .join(''),
    );
    expect(texts).toEqual(['Hello world', 'Hello world', 'Hello world']);
  });

  it('announces an interactive request to the engine until it is queued or refused (any transport); batch lines never', async () => {
    const { engine, service } = await setup();
    const { sink } = recordingSink();
    const handled = service.handle('chat', { ...CHAT, stream: true }, KEY, new AbortController().signal, sink, { websocket: true, forceStream: true });
    expect(engine.arrivals).toBe(1);
    await handled;
    await service.handle('chat', CHAT, KEY, new AbortController().signal, sink, { lane: 'batch' });
    expect(await refusal(service.handle('chat', { ...CHAT, model: 'nope' }, KEY, new AbortController().signal, sink))).toMatchObject({ status: 404 });
    // Announced while prepared, released once in the queue: the count is 1 at the first submit, 0 for the batch line.
    expect(engine.arrivalsAtSubmit).toEqual([1, 0]);
    expect(engine.arrivals).toBe(0);
  });

  it('gives back what admission took when the engine refuses, as a 503 with Retry-After; disposes every prepared request once', async () => {
    const { service, engine, quotas } = await setup();
    const disposed: number[] = [];
    const prepare = RequestPreparer.prototype.prepare;
    vi.spyOn(RequestPreparer.prototype, 'prepare').mockImplementation(async function (this: RequestPreparer, ...args) {
      const request = await prepare.apply(this, args);
      const index = disposed.push(0) - 1;
      const dispose = request.dispose;
      request.dispose = () => {
        disposed[index]++;
        dispose();
      };
      return request;
    });
    engine.refuse = new EngineRejection('queue_full', 'the queue holds 256 requests');
    const full = await refusal(service.handle('chat', CHAT, KEY, new AbortController().signal, recordingSink().sink));
    expect([full.status, full.code, full.headers]).toEqual([503, 'queue_full', { 'Retry-After': '1' }]);
    expect(await usage(quotas)).toEqual({ requests: 0, tokens: 0 });
    engine.refuse = undefined;
    await service.handle('chat', CHAT, KEY, new AbortController().signal, recordingSink().sink);
    expect(await usage(quotas)).toEqual({ requests: 1, tokens: 12 });
    expect(disposed).toEqual([1, 1]);
  });
});
