import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Random } from '../../src/engine/random.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Schemas tried (LLMKIT_SCHEMA_FUZZ raises it for a long run; docs/serve.md has the long run's count), each with SEEDS seeds. */
const SCHEMAS = Number(process.env.LLMKIT_SCHEMA_FUZZ ?? 25);
const SEEDS = 4;

/** A random schema from the subset the grammar enforces (docs/serve.md), up to `depth` levels of objects and arrays. */
function randomSchema(r: Random, depth: number): Record<string, unknown> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r.next() * xs.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(r.next() * (hi - lo + 1));
  const decimal = () => Math.round((r.next() * 20 - 10) * 10 ** int(0, 3)) / 10 ** int(0, 3);
  const kinds = depth > 0 ? ['object', 'array', 'string', 'integer', 'number', 'boolean', 'enum', 'anyOf', 'null'] : ['string', 'integer', 'number', 'boolean', 'enum'];
  switch (pick(kinds)) {
    case 'object': {
      const names = ['a', 'b', 'c', 'd'].slice(0, int(1, 3));
      const properties = Object.fromEntries(names.map((n) => [n, randomSchema(r, depth - 1)]));
      return { type: 'object', properties, required: names.filter(() => r.next() < 0.7), additionalProperties: false };
    }
    case 'array': {
      const min = int(0, 2);
      return { type: 'array', items: randomSchema(r, depth - 1), minItems: min, maxItems: min + int(0, 2) };
    }
    case 'string': {
      if (r.next() < 0.3) return { type: 'string', pattern: pick(['^[a-z]{1,5}$', '^[A-Z][a-z]{0,4}$', '^[0-9]{2,3}-[0-9]{2}$']) };
      const max = int(1, 12);
      return { type: 'string', minLength: int(0, max), maxLength: max };
    }
    case 'integer':
    case 'number': {
      const type = r.next() < 0.5 ? 'integer' : 'number';
      const [lo, hi] = [decimal(), decimal()].sort((x, y) => x - y);
      const schema: Record<string, unknown> = { type };
      if (r.next() < 0.8) schema[r.next() < 0.7 ? 'minimum' : 'exclusiveMinimum'] = type === 'integer' ? Math.floor(lo) : lo;
      if (r.next() < 0.8) schema[r.next() < 0.7 ? 'maximum' : 'exclusiveMaximum'] = type === 'integer' ? Math.floor(hi) + 2 : hi + 0.5;
      return schema;
    }
    case 'enum':
      return { enum: ['red', 'green', 'blue', 7, null].slice(0, int(1, 5)) };
    case 'anyOf':
      return { anyOf: [randomSchema(r, 0), randomSchema(r, 0)] };
    case 'null':
      return { type: 'null' };
    default:
      return { type: 'boolean' };
  }
}

/**
 * Property: every answer sampled at temperature 1 under a schema from the supported subset validates against it
 * (tiny model, random weights: only the grammar makes answers valid). Answers cut by max_tokens are counted apart.
 */
describe('random schemas from the supported subset', () => {
  let server: TestServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startTestServer();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => server?.drain());

  it(`${SCHEMAS} schemas × ${SEEDS} seeds at temperature 1: every answer that ends validates`, async () => {
    const ajv = new Ajv({ strict: false });
    const failures: string[] = [];
    let valid = 0;
    let cut = 0;
    for (let i = 0; i < SCHEMAS; i++) {
      const schema = { type: 'object', properties: { v: randomSchema(new Random(i), 3) }, required: ['v'], additionalProperties: false };
      const validate = ajv.compile(schema);
      await Promise.all(
        Array.from({ length: SEEDS }, async (_, seed) => {
          try {
            const r = await client.chat.completions.create({
              model: 'tiny',
              messages: [{ role: 'user', content: `Value ${i}` }],
              max_tokens: 200,
              temperature: 1,
              seed,
              response_format: { type: 'json_schema', json_schema: { name: 'v', schema, strict: true } },
            });
            const { content } = r.choices[0].message;
            if (r.choices[0].finish_reason === 'length') cut++;
            else if (validate(JSON.parse(content!))) valid++;
            else failures.push(`${JSON.stringify(schema)} seed ${seed}: ${content}`);
          } catch (e) {
            failures.push(`${JSON.stringify(schema)} seed ${seed}: ${(e as Error).message}`);
          }
        }),
      );
    }
    console.log(`schema fuzz: ${SCHEMAS} schemas, ${valid} valid, ${cut} cut by max_tokens, ${failures.length} failed`);
    expect(failures).toEqual([]);
    expect(valid).toBeGreaterThan(SCHEMAS * SEEDS * 0.8);
  }, 600_000);
});
