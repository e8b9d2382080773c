import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metric, postJson, startTestServer, type TestServer } from '../helpers/server.js';

const chat = (extra: Record<string, unknown> = {}) => ({ model: 'tiny', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, ...extra });

/** Every refusal, through a raw HTTP client: the status, OpenAI's error shape and the parameter it names. */
describe('errors in OpenAI’s shape', () => {
  let server: TestServer;
  const dir = mkdtempSync(join(tmpdir(), 'llmkit-serve-'));

  beforeAll(async () => {
    const keys = join(dir, 'keys.txt');
    writeFileSync(keys, '# team keys\nsk-limited name=limited rpm=2\nsk-tokens name=tokens tpm=60\n');
    server = await startTestServer({ apiKeys: ['sk-open'], apiKeysFile: keys, maxBatch: 1, maxQueue: 1 });
  });
  afterAll(() => server.drain());

  const open = { Authorization: 'Bearer sk-open' };

  it('401 without a key or with a wrong one', async () => {
    for (const headers of [{}, { Authorization: 'Bearer sk-wrong' }]) {
      const r = await postJson(`${server.url}/v1/chat/completions`, chat(), headers);
      expect(r.status).toBe(401);
      expect(r.body.error).toMatchObject({ type: 'authentication_error', code: expect.stringMatching(/missing_api_key|invalid_api_key/) });
    }
    expect((await fetch(`${server.url}/v1/models`)).status).toBe(401);
  });

  it('400 naming the parameter for every bad field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ temperature: 'hot' }, 'temperature'],
      [{ temperature: 3 }, 'temperature'],
      [{ top_p: 0 }, 'top_p'],
      [{ max_tokens: 0 }, 'max_tokens'],
      [{ n: 9 }, 'n'],
      [{ stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
      [{ frobnicate: true }, 'frobnicate'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'wizard', content: 'hi' }] }, 'messages[0].role'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content'],
      [{ model: undefined }, 'model'],
      [{ logprobs: 'yes' }, 'logprobs'],
      [{ top_logprobs: 21 }, 'top_logprobs'],
      [{ response_format: { type: 'json_schema' } }, 'response_format.json_schema'],
      [{ tools: [{ type: 'retrieval' }] }, 'tools[0].type'],
    ];
    for (const [extra, param] of cases) {
      const r = await postJson(`${server.url}/v1/chat/completions`, chat(extra), open);
      expect(r.status, JSON.stringify(extra)).toBe(400);
      expect(r.body.error, JSON.stringify(extra)).toMatchObject({ type: 'invalid_request_error', param });
      expect(r.body.error!.message).toContain(param.split(/[.[]/)[0]);
    }
    const completion = await postJson(`${server.url}/v1/completions`, { model: 'tiny', prompt: [1, 2, 99999] }, open);
    expect(completion.body.error).toMatchObject({ param: 'prompt' });
    const notJson = await postJson(`${server.url}/v1/chat/completions`, '{"model": "tiny",', open);
    expect(notJson.status).toBe(400);
    expect(notJson.body.error!.code).toBe('invalid_json');
  });

  it('400 context_length_exceeded, never silent truncation', async () => {
    const long = await postJson(`${server.url}/v1/chat/completions`, chat({ messages: [{ role: 'user', content: 'word '.repeat(600) }] }), open);
    expect(long.status).toBe(400);
    expect(long.body.error).toMatchObject({ code: 'context_length_exceeded', param: 'messages' });
    expect(long.body.error!.message).toMatch(/maximum context length is 512 tokens/);
    const tooMany = await postJson(`${server.url}/v1/completions`, { model: 'tiny', prompt: 'Hello', max_tokens: 600 }, open);
    expect(tooMany.body.error).toMatchObject({ code: 'context_length_exceeded', param: 'max_tokens' });
  });

  it('404 for an unknown model, listing the ones that exist', async () => {
    const r = await postJson(`${server.url}/v1/chat/completions`, chat({ model: 'gpt-4' }), open);
    expect(r.status).toBe(404);
    expect(r.body.error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(r.body.error!.message).toContain('this server has: tiny');
    expect((await fetch(`${server.url}/v2/nothing`, { headers: open })).status).toBe(404);
    expect((await fetch(`${server.url}/v1/chat/completions`, { headers: open })).status).toBe(405);
  });

  it('429 with Retry-After over a key’s requests or tokens per minute', async () => {
    const limited = { Authorization: 'Bearer sk-limited' };
    expect((await postJson(`${server.url}/v1/chat/completions`, chat(), limited)).status).toBe(200);
    expect((await postJson(`${server.url}/v1/chat/completions`, chat(), limited)).status).toBe(200);
    const third = await postJson(`${server.url}/v1/chat/completions`, chat(), limited);
    expect(third.status).toBe(429);
    expect(third.body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    // A minute is 60 one-second buckets; a bucket counts until it has wholly left the window.
    expect(Number(third.headers.get('retry-after'))).toBeLessThanOrEqual(61);

    const tokens = { Authorization: 'Bearer sk-tokens' };
    // Each request is 12 prompt tokens + 20 generated: the second goes over 60 tokens per minute.
    expect((await postJson(`${server.url}/v1/chat/completions`, chat({ max_tokens: 20, ignore_eos: true }), tokens)).status).toBe(200);
    expect((await postJson(`${server.url}/v1/chat/completions`, chat({ max_tokens: 20, ignore_eos: true }), tokens)).status).toBe(200);
    const over = await postJson(`${server.url}/v1/chat/completions`, chat(), tokens);
    expect(over.status).toBe(429);
    expect(over.body.error!.message).toMatch(/tokens per minute/);
    expect(over.headers.get('retry-after')).toBeTruthy();
  });

  it('503 with Retry-After when the queue is full', async () => {
    // --max-batch 1 and --max-queue 1: one request runs, one waits, the third is refused at once.
    const long = chat({ max_tokens: 300, ignore_eos: true });
    const running = [postJson(`${server.url}/v1/chat/completions`, long, open), postJson(`${server.url}/v1/chat/completions`, long, open)];
    while ((await metric(server.url, 'llmkit_queue_depth{model="tiny"}')) < 1) await new Promise((r) => setTimeout(r, 5));
    const refused = await postJson(`${server.url}/v1/chat/completions`, chat(), open);
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ type: 'server_error', code: 'queue_full' });
    expect(refused.headers.get('retry-after')).toBe('1');
    expect((await Promise.all(running)).map((r) => r.status)).toEqual([200, 200]);
  });
});

describe('the content filter', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llmkit-filter-'));
  const blocklist = join(dir, 'blocklist.txt');

  it('rejects a prompt with a blocked phrase, and ends the answer before one (finish_reason content_filter)', async () => {
    writeFileSync(blocklist, '# words we never serve\nforbidden fruit\n');
    const server = await startTestServer({ blocklist, filterMode: 'reject' });
    try {
      const r = await postJson(`${server.url}/v1/chat/completions`, chat({ messages: [{ role: 'user', content: 'Tell me of the Forbidden Fruit' }] }));
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'content_filter', param: 'messages[0].content' });
      // Learn what the model says, then block a phrase of its answer.
      const free = (await postJson(`${server.url}/v1/completions`, { model: 'tiny', prompt: 'The sea', max_tokens: 30, ignore_eos: true })).body as { choices: { text: string }[] };
      const text = free.choices[0].text;
      const word = text.match(/[a-z]{4,}/i)![0];
      writeFileSync(blocklist, word + '\n');
      const strict = await startTestServer({ blocklist, filterMode: 'reject' });
      const redacting = await startTestServer({ blocklist, filterMode: 'redact' });
      try {
        const stopped = (await postJson(`${strict.url}/v1/completions`, { model: 'tiny', prompt: 'The sea', max_tokens: 30, ignore_eos: true })).body as {
          choices: { text: string; finish_reason: string }[];
        };
        expect(stopped.choices[0]).toMatchObject({ text: text.slice(0, text.toLowerCase().indexOf(word.toLowerCase())), finish_reason: 'content_filter' });
        const redacted = (await postJson(`${redacting.url}/v1/completions`, { model: 'tiny', prompt: 'The sea', max_tokens: 30, ignore_eos: true })).body as { choices: { text: string }[] };
        expect(redacted.choices[0].text).toContain('[redacted]');
        expect(redacted.choices[0].text.toLowerCase()).not.toContain(word.toLowerCase());
      } finally {
        await Promise.all([strict.drain(), redacting.drain()]);
      }
    } finally {
      await server.drain();
    }
  });
});
