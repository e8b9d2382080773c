import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { exportedTinyModel } from '../helpers/models.js';
import { postJson, startTestServer, type TestServer } from '../helpers/server.js';
import { toolTemplateModel } from '../helpers/tool-models.js';

/** The follow-ups both SDKs make: a parse() result sent back as history, and tool_choice without tools. */
describe('SDK follow-ups', () => {
  let server: TestServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startTestServer({ models: [`tiny=${await exportedTinyModel()}`, `qwen=${await toolTemplateModel('qwen3')}`] });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => server?.drain());

  it('takes a parse() result message (parsed, refusal, annotations) back as the next turn', async () => {
    const Place = z.object({ name: z.string().max(8), size: z.number().int().min(0).max(9) });
    const first = await client.chat.completions.parse({ model: 'tiny', messages: [{ role: 'user', content: 'A place?' }], max_tokens: 60, response_format: zodResponseFormat(Place, 'place') });
    const message = first.choices[0].message;
    expect(message.parsed).not.toBeNull();
    const next = await client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'A place?' }, { ...message, annotations: [] } as OpenAI.ChatCompletionMessageParam, { role: 'user', content: 'Another?' }],
      max_tokens: 5,
    });
    expect(next.choices[0].message.role).toBe('assistant');
  });

  it('takes a parsed tool call (parsed_arguments) back with its result', async () => {
    const Weather = z.object({ city: z.string().max(12), days: z.number().int().min(1).max(7) });
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Weather?' }];
    const first = await client.chat.completions.parse({ model: 'qwen', messages, tools: [zodFunction({ name: 'get_weather', parameters: Weather })], tool_choice: 'required', max_tokens: 80 });
    const message = first.choices[0].message;
    const call = message.tool_calls[0];
    expect(call.type === 'function' && call.function.parsed_arguments).toBeTruthy();
    const next = await client.chat.completions.create({
      model: 'qwen',
      messages: [...messages, message as OpenAI.ChatCompletionMessageParam, { role: 'tool', tool_call_id: call.id, content: 'sunny' }],
      tools: [zodFunction({ name: 'get_weather', parameters: Weather })],
      max_tokens: 5,
    });
    expect(next.choices[0].message.role).toBe('assistant');
  });

  it("refuses tool_choice 'required' or a named function without tools, as OpenAI does", async () => {
    for (const toolChoice of ['required', { type: 'function', function: { name: 'f' } }]) {
      const r = await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'x' }], tool_choice: toolChoice });
      expect([r.status, r.body.error!.param, r.body.error!.message]).toEqual([400, 'tool_choice', "Invalid 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."]);
    }
    const auto = await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'x' }], tool_choice: 'auto', max_tokens: 2 });
    expect(auto.status).toBe(200);
  });
});
