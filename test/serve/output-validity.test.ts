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
});
