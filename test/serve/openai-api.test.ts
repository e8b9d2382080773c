import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalEngine } from '../../src/engine/local-engine.js';
import { exportedTinyModel } from '../helpers/models.js';
import { metric, startTestServer, type TestServer } from '../helpers/server.js';

const ask = (content: string) => [{ role: 'user' as const, content }];

/**
 * The real server with the tiny model, driven by the official `openai` client: answers must be the
 * engine's own greedy output, also when requests of different lengths share the batch.
 */
describe('the OpenAI-compatible API', () => {
  let server: TestServer;
  let client: OpenAI;
  let engine: LocalEngine;

  beforeAll(async () => {
    server = await startTestServer();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    engine = await LocalEngine.open(await exportedTinyModel(), { device: 'cpu' });
  });
  afterAll(async () => {
    await server.drain();
    await engine.close();
  });

  const direct = async (content: string, maxTokens: number) => (await engine.complete({ promptIds: engine.tokenizer.encodeChat(ask(content)), maxTokens })).text;

  it('answers a chat completion with the engine’s greedy output and usage', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages: ask('What is the capital of Zarnovia?'), max_tokens: 24, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe('tiny');
    expect(r.choices[0].message.role).toBe('assistant');
    expect(r.choices[0].message.content).toBe(await direct('What is the capital of Zarnovia?', 24));
    expect(r.usage).toEqual({ prompt_tokens: expect.any(Number), completion_tokens: r.usage!.completion_tokens, total_tokens: r.usage!.prompt_tokens + r.usage!.completion_tokens });
    expect(['stop', 'length']).toContain(r.choices[0].finish_reason);
  });

  it('streams a chat completion as server-sent events that add up to the same text, with usage last', async () => {
    const stream = await client.chat.completions.create({ model: 'tiny', messages: ask('Tell me about rivers.'), max_tokens: 20, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const chunks = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.at(-2)!.choices[0].finish_reason).toMatch(/stop|length/);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage!.completion_tokens).toBeGreaterThan(0);
    expect(text).toBe(await direct('Tell me about rivers.', 20));
  });

  it('serves legacy completions, streamed and not', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 12, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(r.object).toBe('text_completion');
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage!.completion_tokens).toBe(12);
    const expected = (await engine.complete({ promptIds: engine.tokenizer.encode('Once upon a time'), maxTokens: 12, ignoreEos: true })).text;
    expect(r.choices[0].text).toBe(expected);
    let streamed = '';
    for await (const chunk of await client.completions.create({
      model: 'tiny',
      prompt: 'Once upon a time',
      max_tokens: 12,
      ignore_eos: true,
      stream: true,
    } as OpenAI.CompletionCreateParamsStreaming)) {
      streamed += chunk.choices[0]?.text ?? '';
    }
    expect(streamed).toBe(expected);
  });

  it('stops at a stop string without sending it', async () => {
    const full = await direct('Name a sea.', 30);
    const stop = full.slice(8, 11);
    const r = await client.chat.completions.create({ model: 'tiny', messages: ask('Name a sea.'), max_tokens: 30, stop: [stop] });
    expect(r.choices[0].message.content).toBe(full.slice(0, full.indexOf(stop)));
    expect(r.choices[0].finish_reason).toBe('stop');
  });

  it('reproduces a sampled answer with the same seed', async () => {
    const params = { model: 'tiny', messages: ask('Say something.'), max_tokens: 20, temperature: 1, top_p: 0.9, seed: 7 };
    const [a, b] = await Promise.all([client.chat.completions.create(params), client.chat.completions.create(params)]);
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
  });

  it('answers concurrent requests of different lengths each with its own greedy output', async () => {
    const prompts = [
      'Hi',
      'Describe a mountain village in spring, with its paths, its goats, its bakery and the fountain.',
      'Why?',
      'List three rivers and say where each one meets the sea, and which towns stand at its mouth.',
      'Ok',
    ];
    const steps = () => metric(server.url, 'llmkit_decode_batch_size_count{model="tiny"}');
    const singleRowSteps = () => metric(server.url, 'llmkit_decode_batch_size_bucket{model="tiny",le="1"}');
    const [stepsBefore, singleBefore] = [await steps(), await singleRowSteps()];
    const answers = await Promise.all(
      prompts.map((p, i) => client.chat.completions.create({ model: 'tiny', messages: ask(p), max_tokens: 10 + 7 * i, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming)),
    );
    // Some decode steps advanced several of them together.
    expect((await steps()) - stepsBefore).toBeGreaterThan((await singleRowSteps()) - singleBefore);
    for (const [i, p] of prompts.entries()) {
      expect(answers[i].choices[0].message.content, p).toBe((await engine.complete({ promptIds: engine.tokenizer.encodeChat(ask(p)), maxTokens: 10 + 7 * i, ignoreEos: true })).text);
    }
  });

  it('finishes a short request before a long one that started first', async () => {
    const order: string[] = [];
    const long = await client.chat.completions.create({ model: 'tiny', messages: ask('Go on and on.'), max_tokens: 400, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming);
    const iterator = long[Symbol.asyncIterator]();
    await iterator.next();
    await iterator.next();
    const short = client.chat.completions.create({ model: 'tiny', messages: ask('Short.'), max_tokens: 5 }).then(() => order.push('short'));
    for (let r = await iterator.next(); !r.done; r = await iterator.next());
    order.push('long');
    await short;
    expect(order).toEqual(['short', 'long']);
  });

  it('cancels the generation of a client that disconnects mid-stream (visible in /metrics)', async () => {
    const series = 'llmkit_generations_total{model="tiny",finish_reason="cancelled"}';
    const before = await metric(server.url, series);
    const controller = new AbortController();
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: ask('Keep talking.'), max_tokens: 450, ignore_eos: true, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    let cancelled = before;
    for (let i = 0; i < 100 && cancelled === before; i++) {
      await new Promise((r) => setTimeout(r, 20));
      cancelled = await metric(server.url, series);
    }
    expect(cancelled).toBe(before + 1);
    expect(await metric(server.url, 'llmkit_running_batch_size{model="tiny"}')).toBe(0);
  });

  it('lists its models, with context length and device', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['tiny']);
    expect(models.data[0]).toMatchObject({ object: 'model', owned_by: 'llmkit', context_length: 512, device: 'cpu' });
    expect((await client.models.retrieve('tiny')).id).toBe('tiny');
  });

  it('answers health, readiness and Prometheus metrics, and logs one line per request', async () => {
    expect(await (await fetch(`${server.url}/health`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${server.url}/ready`)).status).toBe(200);
    const res = await fetch(`${server.url}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    for (const name of [
      'llmkit_requests_total',
      'llmkit_prompt_tokens_total',
      'llmkit_completion_tokens_total',
      'llmkit_queue_depth',
      'llmkit_running_batch_size',
      'llmkit_time_to_first_token_seconds_bucket',
      'llmkit_inter_token_latency_seconds_bucket',
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/llmkit_requests_total\{route="\/v1\/chat\/completions",status="200"\} \d+/);
    const before = server.log.length;
    await client.chat.completions.create({ model: 'tiny', messages: ask('One line.'), max_tokens: 3 });
    expect(server.log.slice(before)).toEqual([
      expect.stringMatching(/"POST \/v1\/chat\/completions" 200 \d+ms key=anonymous model=tiny transport=json prompt_tokens=\d+ completion_tokens=\d+ finish=(stop|length)$/),
    ]);
  });
});
