import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The schema of the acceptance run that found 25 of 40 answers out of range and 14 not JSON (`"s": 2)5`). */
const RANGES = {
  type: 'object',
  properties: { r: { type: 'number', minimum: 0, maximum: 5 }, s: { type: 'number', minimum: -2.5, maximum: 2.5 }, i: { type: 'integer', minimum: 0, maximum: 9 } },
  required: ['r', 's', 'i'],
  additionalProperties: false,
};

describe('constrained outputs validate (real server, tiny model with random weights: only the grammar makes them valid)', () => {
  let server: TestServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startTestServer();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => server?.drain());

  it('keeps numbers inside their bounds: 40 seeds at temperature 1, every answer JSON and in range', async () => {
    const validate = new Ajv().compile(RANGES);
    const texts = await Promise.all(
      Array.from({ length: 40 }, async (_, seed) => {
        const r = await client.chat.completions.create({
          model: 'tiny',
          messages: [{ role: 'user', content: `Numbers ${seed}` }],
          max_tokens: 60,
          temperature: 1,
          seed,
          response_format: { type: 'json_schema', json_schema: { name: 'ranges', schema: RANGES, strict: true } },
        });
        return r.choices[0].message.content!;
      }),
    );
    const invalid = texts.filter((t) => {
      try {
        return !validate(JSON.parse(t));
      } catch {
        return true;
      }
    });
    expect(invalid).toEqual([]);
    // Sampled, not one answer: the values spread over the range.
    expect(new Set(texts.map((t) => JSON.parse(t).s)).size).toBeGreaterThan(10);
  });

  it('writes valid UTF-8 in strings, so that maxLength holds after decoding: 40 seeds at temperature 1', async () => {
    const NAMES = {
      type: 'object',
      properties: { a: { type: 'string', maxLength: 16 }, b: { type: 'string', minLength: 4, maxLength: 16 } },
      required: ['a', 'b'],
      additionalProperties: false,
    };
    const validate = new Ajv().compile(NAMES);
    const answers = await Promise.all(
      Array.from({ length: 40 }, async (_, seed) => {
        const r = await client.chat.completions.create({
          model: 'tiny',
          messages: [{ role: 'user', content: `Names ${seed}` }],
          max_tokens: 80,
          temperature: 1,
          seed,
          logprobs: true,
          response_format: { type: 'json_schema', json_schema: { name: 'names', schema: NAMES, strict: true } },
        });
        const bytes = Buffer.from(r.choices[0].logprobs!.content!.flatMap((t) => t.bytes ?? []));
        return { text: r.choices[0].message.content!, bytes };
      }),
    );
    // The bytes as generated decode without replacement characters (invalid sequences would become U+FFFD).
    const invalid = answers.filter((a) => new TextDecoder('utf-8', { fatal: false }).decode(a.bytes).includes('\uFFFD'));
    expect(invalid.map((a) => a.text)).toEqual([]);
    expect(answers.filter((a) => !validate(JSON.parse(a.text))).map((a) => a.text)).toEqual([]);
    // Non-ASCII characters were written (the mask narrows bytes, it does not forbid them).
    expect(answers.some((a) => a.bytes.some((b) => b >= 0x80))).toBe(true);
  });
});
