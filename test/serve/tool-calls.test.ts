import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestServer, type TestServer } from '../helpers/server.js';
import { toolTemplateModel } from '../helpers/tool-models.js';
import { exportedTinyModel } from '../helpers/models.js';

const WEATHER = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['city', 'unit', 'days'],
  additionalProperties: false,
};
const TIME = { type: 'object', properties: { zone: { enum: ['UTC', 'CET', 'PST'] } }, required: ['zone'], additionalProperties: false };
const TOOLS: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather forecast for a city', parameters: WEATHER } },
  { type: 'function', function: { name: 'get_time', description: 'Current time in a zone', parameters: TIME } },
];
const ask = (content: string) => [{ role: 'user' as const, content }];

/**
 * Tool calling on the tiny model (random weights) wearing Qwen3's chat template (Hermes `<tool_call>`)
 * and a Llama 3.1 JSON-call template: under `required` or a named function the grammar alone makes the
 * call well-formed, so the parsed arguments must validate against the function's schema every time.
 */
describe('tool calling', () => {
  let server: TestServer;
  let client: OpenAI;
  const validators = { get_weather: new Ajv().compile(WEATHER), get_time: new Ajv().compile(TIME) };

  beforeAll(async () => {
    server = await startTestServer({
      models: [
        `tiny=${await exportedTinyModel()}`,
        `qwen=${await toolTemplateModel('qwen3')}`,
        `llama=${await toolTemplateModel('llama3_1-json')}`,
        `llama3=${await toolTemplateModel('llama3-plain')}`,
      ],
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.drain();
  });

  const checkCall = (call: OpenAI.ChatCompletionMessageToolCall, name?: string) => {
    expect(call.type).toBe('function');
    if (call.type !== 'function') return;
    if (name) expect(call.function.name).toBe(name);
    const validate = validators[call.function.name as keyof typeof validators];
    expect(validate).toBeDefined();
    expect(validate(JSON.parse(call.function.arguments))).toBe(true);
    expect(call.id).toMatch(/^call_/);
  };

  for (const model of ['qwen', 'llama']) {
    it(`${model}: tool_choice required gives a parsed call with schema-valid arguments, 20 of 20`, async () => {
      const rs = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          client.chat.completions.create({ model, messages: ask(`What should I wear in city ${i}?`), tools: TOOLS, tool_choice: 'required', max_tokens: 200, temperature: i % 2 ? 1 : 0, seed: i }),
        ),
      );
      for (const r of rs) {
        expect(r.choices[0].finish_reason).toBe('tool_calls');
        expect(r.choices[0].message.tool_calls).toHaveLength(1);
        checkCall(r.choices[0].message.tool_calls![0]);
      }
      expect(new Set(rs.map((r) => (r.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall).function.name)).size).toBeGreaterThanOrEqual(1);
    });

    it(`${model}: a named tool_choice calls that function, streamed as a tool_calls delta`, async () => {
      const stream = await client.chat.completions.create({
        model,
        messages: ask('Time?'),
        tools: TOOLS,
        tool_choice: { type: 'function', function: { name: 'get_time' } },
        max_tokens: 100,
        stream: true,
      });
      const deltas: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
      let finish: string | null = null;
      let content = '';
      for await (const c of stream) {
        deltas.push(...(c.choices[0]?.delta.tool_calls ?? []));
        content += c.choices[0]?.delta.content ?? '';
        finish = c.choices[0]?.finish_reason ?? finish;
      }
      expect(finish).toBe('tool_calls');
      expect(content).toBe('');
      expect(deltas).toHaveLength(1);
      expect(deltas[0].index).toBe(0);
      checkCall({ id: deltas[0].id!, type: 'function', function: { name: deltas[0].function!.name!, arguments: deltas[0].function!.arguments! } }, 'get_time');
    });
  }

  it('takes the tool result back (role tool) through the JS SDK: call, result, final answer', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = ask('Weather in Oslo for 3 days?');
    const first = await client.chat.completions.create({ model: 'qwen', messages, tools: TOOLS, tool_choice: 'required', max_tokens: 200 });
    const call = first.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    checkCall(call);
    messages.push(first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ forecast: 'rain', high: 9 }) });
    const second = await client.chat.completions.create({
      model: 'qwen',
      messages,
      tools: TOOLS,
      tool_choice: 'none',
      max_tokens: 20,
      ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(second.choices[0].finish_reason).toBe('length');
    expect(second.choices[0].message.tool_calls).toBeUndefined();
    expect(typeof second.choices[0].message.content).toBe('string');
    // The call and its result are in the prompt: the call's arguments and the result's text add tokens.
    expect(second.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens + call.function.arguments.length / 4);
  });

  it('refuses tools with a 400 for a template without tool support, and an unknown named function', async () => {
    for (const model of ['tiny', 'llama3']) {
      const r = await postJson(`${server.url}/v1/chat/completions`, { model, messages: ask('x'), tools: TOOLS });
      expect([r.status, r.body.error!.param, r.body.error!.code]).toEqual([400, 'tools', 'tools_not_supported']);
    }
    const unknown = await postJson(`${server.url}/v1/chat/completions`, { model: 'qwen', messages: ask('x'), tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } });
    expect([unknown.status, unknown.body.error!.param]).toEqual([400, 'tool_choice']);
    const toolTurn = await postJson(`${server.url}/v1/chat/completions`, { model: 'qwen', messages: [{ role: 'tool', content: 'x' }] });
    expect([toolTurn.status, toolTurn.body.error!.param]).toEqual([400, 'messages[0].tool_call_id']);
  });
});
