import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { postJson, startTestServer, type TestServer } from '../helpers/server.js';

/** Nested on purpose: objects in objects, arrays, enums, integers and numbers with bounds, required fields. */
const SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'integer', minimum: 0, maximum: 9999 },
    kind: { enum: ['river', 'sea', 'lake'] },
    depth: { type: 'number', minimum: 0, maximum: 1000 },
    place: {
      type: 'object',
      properties: {
        name: { type: 'string', maxLength: 12 },
        tags: { type: 'array', items: { type: 'string', maxLength: 6 }, maxItems: 3 },
      },
      required: ['name', 'tags'],
      additionalProperties: false,
    },
    ok: { type: 'boolean' },
  },
  required: ['id', 'kind', 'depth', 'place', 'ok'],
  additionalProperties: false,
};

const ask = (content: string) => [{ role: 'user' as const, content }];

/**
 * Structured outputs, logprobs and n on the real server with the tiny model. Its weights are random, so
 * only the grammar can make its output valid JSON: every answer is checked with ajv.
 */
describe('structured outputs, logprobs and n', () => {
  let server: TestServer;
  let client: OpenAI;
  const validate = new Ajv({ strict: false }).compile(SCHEMA);

  beforeAll(async () => {
    server = await startTestServer();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => server?.drain());

  it('makes 100 greedy and sampled answers (chat and completions, streamed and not) valid against a nested JSON Schema', async () => {
    const responseFormat = { type: 'json_schema' as const, json_schema: { name: 'place', schema: SCHEMA, strict: true } };
    const one = async (i: number): Promise<{ text: string; finish: string | null }> => {
      const sampling = i % 2 ? { temperature: 1, top_p: 0.95, seed: i } : { temperature: 0 };
      const stream = i % 4 >= 2;
      if (i % 5 === 4) {
        // Legacy completions take response_format too (as vLLM's do).
        const body = { model: 'tiny', prompt: `Record ${i}:`, max_tokens: 300, response_format: responseFormat, stream, ...sampling } as unknown as OpenAI.CompletionCreateParamsNonStreaming;
        if (!stream) {
          const r = await client.completions.create(body);
          return { text: r.choices[0].text, finish: r.choices[0].finish_reason };
        }
        let text = '';
        let finish: string | null = null;
        for await (const c of await client.completions.create({ ...body, stream: true } as unknown as OpenAI.CompletionCreateParamsStreaming)) {
          text += c.choices[0]?.text ?? '';
          finish = c.choices[0]?.finish_reason ?? finish;
        }
        return { text, finish };
      }
      const params = { model: 'tiny', messages: ask(`Describe place number ${i}.`), max_tokens: 300, response_format: responseFormat, ...sampling };
      if (!stream) {
        const r = await client.chat.completions.create(params);
        return { text: r.choices[0].message.content ?? '', finish: r.choices[0].finish_reason };
      }
      let text = '';
      let finish: string | null = null;
      for await (const c of await client.chat.completions.create({ ...params, stream: true })) {
        text += c.choices[0]?.delta.content ?? '';
        finish = c.choices[0]?.finish_reason ?? finish;
      }
      return { text, finish };
    };
    const results: { text: string; finish: string | null }[] = [];
    for (let round = 0; round < 10; round++) results.push(...(await Promise.all(Array.from({ length: 10 }, (_, j) => one(round * 10 + j)))));
    const invalid = results.filter((r) => {
      try {
        return !validate(JSON.parse(r.text));
      } catch {
        return true;
      }
    });
    expect(invalid).toEqual([]);
    expect(results.every((r) => r.finish === 'stop')).toBe(true);
    // The constraint shapes the answers, it does not pick one: the sampled answers differ.
    expect(new Set(results.filter((_, i) => i % 2).map((r) => r.text)).size).toBeGreaterThan(25);
  });

  it('answers json_object with an object that parses, every time, even when the tokens run short (greedy and sampled)', async () => {
    const answers = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const sampling = i % 3 ? { temperature: 1, seed: i } : { temperature: 0 };
        // Random weights sampled inside a string rarely close it: only the constraint's closing keeps these in budget.
        const maxTokens = [40, 120, 300][i % 3];
        const r = await client.chat.completions.create({ model: 'tiny', messages: ask(`Give me JSON ${i}`), max_tokens: maxTokens, response_format: { type: 'json_object' }, ...sampling });
        return { text: r.choices[0].message.content!, finish: r.choices[0].finish_reason, tokens: r.usage!.completion_tokens };
      }),
    );
    for (const a of answers) {
      expect(a.finish).toBe('stop');
      expect(JSON.parse(a.text)).toBeTypeOf('object');
    }
    // Some answers were long enough that closing mattered.
    expect(answers.some((a) => a.tokens >= 30)).toBe(true);
  });

  it('returns parsed objects through the JS SDK’s chat.completions.parse with a zod schema', async () => {
    const River = z.object({ name: z.string().max(10), length_km: z.number().int().min(1).max(7000), countries: z.array(z.enum(['FR', 'DE', 'NL'])).max(3) });
    const r = await client.chat.completions.parse({ model: 'tiny', messages: ask('Describe a river.'), max_tokens: 200, response_format: zodResponseFormat(River, 'river') });
    const parsed = r.choices[0].message.parsed!;
    expect(River.parse(parsed)).toEqual(parsed);
    expect(parsed.length_km).toBeGreaterThanOrEqual(1);
  });

  it('refuses a schema the grammar engine cannot compile, and response_format on a bad type, with a 400', async () => {
    const bad = await postJson(`${server.url}/v1/chat/completions`, {
      model: 'tiny',
      messages: ask('x'),
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { $ref: '#/$defs/missing' } } } } },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error!.param).toBe('response_format.json_schema.schema');
    expect(bad.body.error!.message).toContain('Cannot find field $defs');
    // The grammar engine keeps working after a schema it refused.
    const after = await client.chat.completions.create({ model: 'tiny', messages: ask('x'), max_tokens: 100, response_format: { type: 'json_object' } });
    expect(JSON.parse(after.choices[0].message.content!)).toBeTypeOf('object');
    const type = await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny', messages: ask('x'), response_format: { type: 'yaml' } });
    expect(type.status).toBe(400);
    expect(type.body.error!.param).toBe('response_format.type');
    const many = await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny', messages: ask('x'), n: 9 });
    expect([many.status, many.body.error!.param]).toEqual([400, 'n']);
    const top = await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny', messages: ask('x'), logprobs: true, top_logprobs: 21 });
    expect([top.status, top.body.error!.param]).toEqual([400, 'top_logprobs']);
  });

  // The grammar allows only EOS once the object is closed: the answer ends on the stop token, which counts in
  // completion_tokens and so is the last logprobs entry (vLLM's choice), in a response and in a stream.
  it('reports the final EOS token in logprobs.content, one entry per completion token', async () => {
    const params = {
      model: 'tiny',
      messages: ask('Flag?'),
      max_tokens: 40,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      response_format: {
        type: 'json_schema' as const,
        json_schema: { name: 'flag', schema: { type: 'object', properties: { a: { type: 'boolean' } }, required: ['a'], additionalProperties: false }, strict: true },
      },
    };
    const { engine } = server.models[0];
    const stops = engine.model.manifest.eos_token_ids.map((id) => engine.tokenizer.tokenText(id));
    const r = await client.chat.completions.create(params);
    const content = r.choices[0].logprobs!.content!;
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(content).toHaveLength(r.usage!.completion_tokens);
    expect(stops).toContain(content.at(-1)!.token);
    expect(content.at(-1)!.logprob).toBeLessThanOrEqual(0);
    expect(
      content
        .slice(0, -1)
        .map((t) => t.token)
        .join(''),
    ).toBe(r.choices[0].message.content);

    const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    const streamed: OpenAI.ChatCompletionTokenLogprob[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
      usage = chunk.usage ?? usage;
    }
    expect(streamed).toEqual(content);
    expect(usage!.completion_tokens).toBe(streamed.length);
  });

  it('reports logprobs that match a log-softmax of the engine’s own logits within 1e-4', async () => {
    const messages = ask('Where do rivers go?');
    const r = await client.chat.completions.create({
      model: 'tiny',
      messages,
      max_tokens: 8,
      temperature: 0,
      logprobs: true,
      top_logprobs: 5,
      ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const content = r.choices[0].logprobs!.content!;
    expect(content).toHaveLength(8);
    // The served model's own engine: its decoder, run outside the scheduler on the whole text so far.
    const { engine } = server.models[0];
    const ids = engine.tokenizer.encodeChat(messages);
    const { decoder } = engine;
    for (const entry of content) {
      const step = await decoder.forward(
        BigInt64Array.from(ids, BigInt),
        new BigInt64Array(ids.length).fill(1n),
        BigInt64Array.from(ids, (_, i) => BigInt(i)),
        decoder.emptyCache(1),
      );
      const vocab = decoder.vocabSize;
      const logits = step.logits.subarray(step.logits.length - vocab);
      const max = Math.max(...logits);
      const logZ = max + Math.log(logits.reduce((s, x) => s + Math.exp(x - max), 0));
      const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
      expect(entry.logprob).toBeLessThanOrEqual(0);
      expect(Math.abs(entry.logprob - (logits[order[0]] - logZ))).toBeLessThan(1e-4);
      expect(entry.top_logprobs.map((t) => t.logprob)).toHaveLength(5);
      entry.top_logprobs.forEach((t, k) => expect(Math.abs(t.logprob - (logits[order[k]] - logZ))).toBeLessThan(1e-4));
      expect(entry.top_logprobs.reduce((s, t) => s + Math.exp(t.logprob), 0)).toBeLessThanOrEqual(1);
      ids.push(order[0]);
    }
    // The tokens' bytes spell the reply (byte-level tokens may hold part of a character).
    expect(Buffer.from(content.flatMap((t) => t.bytes!)).toString('utf8')).toBe(r.choices[0].message.content);
    const total = content.reduce((s, t) => s + t.logprob, 0);
    expect(total).toBeLessThan(0);

    const legacy = await client.completions.create({ model: 'tiny', prompt: 'Rivers', max_tokens: 5, logprobs: 3, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
    const lp = legacy.choices[0].logprobs!;
    expect(lp.token_logprobs).toHaveLength(5);
    expect(lp.tokens!.join('')).toBe(legacy.choices[0].text);
    lp.top_logprobs!.forEach((top, k) => expect(Math.max(...Object.values(top))).toBeCloseTo(lp.token_logprobs![k], 5));
  });

  it('gives n = 4 seeded choices that are reproducible and equal to four single requests seeded seed..seed+3', async () => {
    const params = { model: 'tiny', messages: ask('Say something.'), max_tokens: 16, temperature: 1, seed: 11, n: 4 };
    const [a, b] = await Promise.all([client.chat.completions.create(params), client.chat.completions.create(params)]);
    const texts = a.choices.map((c) => c.message.content);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(b.choices.map((c) => c.message.content)).toEqual(texts);
    expect(new Set(texts).size).toBeGreaterThan(1);
    const singles = await Promise.all([0, 1, 2, 3].map((i) => client.chat.completions.create({ ...params, n: 1, seed: 11 + i })));
    expect(singles.map((s) => s.choices[0].message.content)).toEqual(texts);
    // The prompt counts once; completion tokens add up over the choices.
    expect(a.usage!.prompt_tokens).toBe(singles[0].usage!.prompt_tokens);
    expect(a.usage!.completion_tokens).toBe(singles.reduce((n, s) => n + s.usage!.completion_tokens, 0));

    const streamed = new Map<number, string>();
    for await (const c of await client.chat.completions.create({ ...params, stream: true })) {
      for (const choice of c.choices) streamed.set(choice.index, (streamed.get(choice.index) ?? '') + (choice.delta.content ?? ''));
    }
    expect([0, 1, 2, 3].map((i) => streamed.get(i))).toEqual(texts);
  });
});
