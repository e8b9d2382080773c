import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { LocalEngine } from '../../src/engine/local-engine.js';
import { exportedTinyModel } from '../helpers/models.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface Message {
  type: string;
  id: string | null;
  chunk?: { object: string; choices: { delta: { content?: string }; finish_reason: string | null }[] };
  finish_reason?: string;
  status?: number;
  error?: { code: string; param: string | null };
}

/** A WebSocket client that keeps every message and resolves when a request is done or failed. */
async function connect(url: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(url.replace('http', 'ws') + '/v1/ws', { headers });
  const messages: Message[] = [];
  const waiters: { id: string; resolve: (m: Message) => void }[] = [];
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString()) as Message;
    messages.push(m);
    if (m.type === 'done' || m.type === 'error') waiters.filter((w) => w.id === m.id).forEach((w) => w.resolve(m));
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return {
    ws,
    messages,
    send: (m: object) => ws.send(JSON.stringify(m)),
    finished: (id: string) => new Promise<Message>((resolve) => waiters.push({ id, resolve })),
    text: (id: string) =>
      messages
        .filter((m) => m.id === id && m.type === 'chunk')
        .map((m) => m.chunk!.choices[0]?.delta.content ?? '')
        .join(''),
  };
}

const body = (content: string, extra: object = {}) => ({ model: 'tiny', messages: [{ role: 'user', content }], ...extra });

describe('streaming over WebSocket', () => {
  let server: TestServer;
  let engine: LocalEngine;
  beforeAll(async () => {
    server = await startTestServer({ apiKeys: ['sk-ws'] });
    engine = await LocalEngine.open(await exportedTinyModel(), { device: 'cpu' });
  });
  afterAll(async () => {
    await server.drain();
    await engine.close();
  });

  it('streams several requests on one connection, each with the same chunks and text as SSE', async () => {
    const client = await connect(server.url, { Authorization: 'Bearer sk-ws' });
    client.send({ type: 'chat.completions', id: 'a', body: body('Hello there', { max_tokens: 15 }) });
    client.send({ type: 'chat.completions', id: 'b', body: body('A longer question about the sea and its tides', { max_tokens: 25 }) });
    const [a, b] = await Promise.all([client.finished('a'), client.finished('b')]);
    expect([a.type, b.type]).toEqual(['done', 'done']);
    for (const [id, content, n] of [
      ['a', 'Hello there', 15],
      ['b', 'A longer question about the sea and its tides', 25],
    ] as const) {
      expect(client.text(id)).toBe((await engine.complete({ promptIds: engine.tokenizer.encodeChat([{ role: 'user', content }]), maxTokens: n })).text);
    }
    const chunks = client.messages.filter((m) => m.id === 'a' && m.type === 'chunk');
    expect(chunks[0].chunk!.object).toBe('chat.completion.chunk');
    expect(chunks.at(-1)!.chunk!.choices[0].finish_reason).toMatch(/stop|length/);
    client.ws.close();
  });

  it('cancels a request on a cancel message and keeps the connection for the next', async () => {
    const client = await connect(`${server.url}`, { Authorization: 'Bearer sk-ws' });
    client.send({ type: 'chat.completions', id: 'long', body: body('Go on', { max_tokens: 450, ignore_eos: true }) });
    while (!client.messages.some((m) => m.id === 'long' && m.chunk?.choices[0]?.delta.content)) await new Promise((r) => setTimeout(r, 2));
    client.send({ type: 'cancel', id: 'long' });
    const done = await client.finished('long');
    expect(done).toMatchObject({ type: 'done', finish_reason: 'cancelled' });
    expect(client.messages.filter((m) => m.id === 'long' && m.type === 'chunk').length).toBeLessThan(100);
    client.send({ type: 'completions', id: 'next', body: { model: 'tiny', prompt: 'Hi', max_tokens: 3 } });
    expect((await client.finished('next')).type).toBe('done');
    client.ws.close();
  });

  it('answers bad messages with errors in OpenAI’s shape, and refuses a connection without a key', async () => {
    const client = await connect(server.url, { Authorization: 'Bearer sk-ws' });
    client.send({ type: 'chat.completions', id: 'bad', body: body('x', { temperature: -1 }) });
    expect(await client.finished('bad')).toMatchObject({ type: 'error', status: 400, error: { param: 'temperature' } });
    client.send({ type: 'chat.completions', id: 'gone', body: body('x', { model: 'nope' }) });
    expect(await client.finished('gone')).toMatchObject({ status: 404, error: { code: 'model_not_found' } });
    for (const raw of ['5', 'null', '{"type": "chat.completions"}']) client.ws.send(raw);
    client.send({ type: 'completions', id: 'after', body: { model: 'tiny', prompt: 'Hi', max_tokens: 2 } });
    expect((await client.finished('after')).type).toBe('done');
    expect(client.messages.filter((m) => m.type === 'error' && m.id === null).map((m) => m.error!.code)).toEqual(['invalid_json', 'invalid_json', 'invalid_value']);
    client.ws.close();
    const refused = new WebSocket(server.url.replace('http', 'ws') + '/v1/ws');
    const status = await new Promise<number>((resolve) => refused.on('unexpected-response', (_req, res) => resolve(res.statusCode!)));
    expect(status).toBe(401);
  });
});
