import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportedTinyModel } from '../helpers/models.js';
import { postJson, startTestServer, type TestServer } from '../helpers/server.js';
import { toolTemplateModel } from '../helpers/tool-models.js';

const PLACE = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 12 }, size: { type: 'integer', minimum: 0, maximum: 99 }, wet: { type: 'boolean' } },
  required: ['name', 'size', 'wet'],
  additionalProperties: false,
};
const WEATHER = { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['city', 'days'], additionalProperties: false };
const TOOLS: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', description: 'Weather forecast', parameters: WEATHER } }];

/** Objects nested `levels` deep: {a: {a: … {type: string}}} (XGrammar 0.1.27 overflows its stack from 54 levels). */
function nestedSchema(levels: number): object {
  let schema: object = { type: 'string' };
  for (let i = 0; i < levels; i++) schema = { type: 'object', properties: { a: schema }, required: ['a'] };
  return schema;
}

/** Arrays of arrays `levels` deep. */
function nestedArrays(levels: number): object {
  let schema: object = { type: 'string' };
  for (let i = 0; i < levels; i++) schema = { type: 'array', items: schema };
  return schema;
}

const ask = (content: string) => [{ role: 'user' as const, content }];
const schemaFormat = (schema: object, name = 'x') => ({ type: 'json_schema' as const, json_schema: { name, schema, strict: true } });

/**
 * Hostile schemas against the real server (tiny model, and a tiny model with Qwen3's tool template): they
 * get one-line 400s, while generations already running under other grammars, a plain request in the
 * same batch, and later schemas, JSON mode and tool calls all go on.
 */
describe('grammar isolation', () => {
  let server: TestServer;
  let client: OpenAI;
  const validPlace = new Ajv().compile(PLACE);
  const validWeather = new Ajv().compile(WEATHER);

  beforeAll(async () => {
    server = await startTestServer({ models: [`tiny=${await exportedTinyModel()}`, `qwen=${await toolTemplateModel('qwen3')}`] });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => server?.drain());

  /** A stream that has produced its first token; resolves with its whole text when it ends. */
  async function inFlight(params: OpenAI.ChatCompletionCreateParamsStreaming): Promise<{ text: Promise<string> }> {
    const stream = await client.chat.completions.create(params);
    const it = stream[Symbol.asyncIterator]();
    let text = '';
    for (;;) {
      const { value } = await it.next();
      text += value?.choices[0]?.delta.content ?? '';
      if (text) break;
    }
    const rest = (async () => {
      for (let r = await it.next(); !r.done; r = await it.next()) text += r.value.choices[0]?.delta.content ?? '';
      return text;
    })();
    return { text: rest };
  }

  it('refuses a 100-level schema and an uncompilable one with one-line 400s, losing nothing in flight; schemas, JSON mode and tools still work', async () => {
    // Running when the hostile schemas come: a schema, JSON mode and a plain request in one batch (long: ignore_eos).
    const long = { max_tokens: 120, temperature: 1, stream: true as const };
    const running = await Promise.all([
      inFlight({ model: 'tiny', messages: ask('place 1'), response_format: schemaFormat(PLACE), seed: 1, ...long }),
      inFlight({ model: 'tiny', messages: ask('json 2'), response_format: { type: 'json_object' }, seed: 2, ...long }),
      inFlight({ model: 'tiny', messages: ask('plain 3'), seed: 3, ignore_eos: true, ...long } as OpenAI.ChatCompletionCreateParamsStreaming),
    ]);

    const deep = await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny', messages: ask('x'), response_format: schemaFormat(nestedSchema(100)) });
    expect(deep.status).toBe(400);
    expect(deep.body.error!.param).toBe('response_format.json_schema.schema');
    expect(deep.body.error!.message).toBe('Invalid schema: it nests 201 levels of objects and arrays; this server compiles at most 64');
    // Within the limits, but XGrammar aborts on it (a missing $ref; in 0.1.27 the next call into the module after
    // a second one never returned): refused each time, in one line.
    for (let i = 0; i < 3; i++) {
      const missing = await postJson(`${server.url}/v1/chat/completions`, {
        model: 'tiny',
        messages: ask('x'),
        response_format: schemaFormat({ type: 'object', properties: { [`p${i}`]: { $ref: '#/$defs/missing' } } }),
      });
      expect([missing.status, missing.body.error!.message.split('\n').length]).toEqual([400, 1]);
      expect(missing.body.error!.message).toContain('Cannot find field $defs');
    }
    const deepTool = await postJson(`${server.url}/v1/chat/completions`, {
      model: 'qwen',
      messages: ask('x'),
      // Arrays of arrays (one level each, where objects take two): deep schemas of objects do not fit the prompt.
      tools: [{ type: 'function', function: { name: 'deep', parameters: { type: 'object', properties: { a: nestedArrays(80) } } } }],
      tool_choice: 'required',
    });
    expect([deepTool.status, deepTool.body.error!.param], deepTool.body.error!.message).toEqual([400, 'tools']);
    expect(deepTool.body.error!.message).toContain('this server compiles at most 64');

    // Nothing in flight was lost.
    const [place, json, plain] = await Promise.all(running.map((r) => r.text));
    expect(validPlace(JSON.parse(place))).toBe(true);
    expect(JSON.parse(json)).toBeTypeOf('object');
    expect(plain.length).toBeGreaterThan(0);

    // Later requests: the same schema, a schema never seen, JSON mode, a forced tool call; several of each.
    const NEW = { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 9 } }, required: ['n'], additionalProperties: false };
    const later = await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const sampling = { temperature: 1, seed: 10 + i, max_tokens: 100 };
        const [a, b, c, d] = await Promise.all([
          client.chat.completions.create({ model: 'tiny', messages: ask(`p ${i}`), response_format: schemaFormat(PLACE), ...sampling }),
          client.chat.completions.create({ model: 'tiny', messages: ask(`n ${i}`), response_format: schemaFormat(NEW, 'n'), ...sampling }),
          client.chat.completions.create({ model: 'tiny', messages: ask(`j ${i}`), response_format: { type: 'json_object' }, ...sampling }),
          client.chat.completions.create({ model: 'qwen', messages: ask(`w ${i}`), tools: TOOLS, tool_choice: 'required', ...sampling }),
        ]);
        return { place: a.choices[0].message.content!, n: b.choices[0].message.content!, json: c.choices[0].message.content!, call: d.choices[0].message.tool_calls![0] };
      }),
    );
    for (const r of later) {
      expect(validPlace(JSON.parse(r.place))).toBe(true);
      expect(JSON.parse(r.n).n).toBeLessThanOrEqual(9);
      expect(JSON.parse(r.json)).toBeTypeOf('object');
      expect(r.call.type === 'function' && validWeather(JSON.parse(r.call.function.arguments))).toBe(true);
    }
  });
});
