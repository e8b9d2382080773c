import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface Chunk {
  object?: string;
  choices?: { delta: { content?: string }; finish_reason: string | null }[];
  error?: { code: string; message: string };
}

/**
 * The seed's client: open the socket, send one plain OpenAI request (no id, no envelope), read messages
 * until one has a finish_reason, printing each delta's content.
 */
async function seedClient(url: string, request: object): Promise<{ text: string; messages: Chunk[] }> {
  const ws = new WebSocket(url, { headers: { Authorization: 'Bearer sk-plain' } });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const messages: Chunk[] = [];
  let text = '';
  await new Promise<void>((resolve) => {
    ws.on('message', (data) => {
      const response = JSON.parse(data.toString()) as Chunk;
      messages.push(response);
      if (response.error) return resolve();
      if (response.choices && response.choices[0].finish_reason) return resolve();
      text += response.choices![0].delta.content ?? '';
    });
    ws.send(JSON.stringify(request));
  });
  ws.close();
  return { text, messages };
}

describe('WebSocket with plain OpenAI requests (no id), as clients written for OpenAI send them', () => {
  let server: TestServer;
  let client: OpenAI;
  beforeAll(async () => {
    server = await startTestServer({ apiKeys: ['sk-plain'] });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-plain', maxRetries: 0 });
  });
  afterAll(() => server.drain());

  const request = {
    model: 'tiny',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Explain the tides' },
    ],
    max_tokens: 24,
    temperature: 0,
    stream: true,
  };

  it.each(['/v1/chat/completions', '/v1/ws'])('streams on ws://HOST%s until finish_reason, the same text as the REST answer', async (path) => {
    const rest = await client.chat.completions.create({ ...request, stream: false });
    const ws = await seedClient(server.url.replace('http', 'ws') + path, request);
    expect(ws.text.length).toBeGreaterThan(0);
    expect(ws.text).toBe(rest.choices[0].message.content);
    expect(ws.messages.length).toBeGreaterThan(3);
    expect(ws.messages.every((m) => m.object === 'chat.completion.chunk')).toBe(true);
    expect(ws.messages.at(-1)!.choices![0].finish_reason).toBe(rest.choices[0].finish_reason);
  });

  it('answers a bad plain request with a bare OpenAI error object', async () => {
    const ws = await seedClient(server.url.replace('http', 'ws') + '/v1/chat/completions', { ...request, model: 'nope' });
    expect(ws.messages).toEqual([{ error: expect.objectContaining({ code: 'model_not_found', param: 'model' }) }]);
  });
});
