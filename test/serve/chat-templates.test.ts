import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelTokenizer } from '../../src/engine/tokenizer.js';
import { tempDir } from '../helpers/cli.js';
import { exportedFamilyModel, exportedTinyModel } from '../helpers/models.js';
import { postJson, startTestServer, type TestServer } from '../helpers/server.js';

/** The tiny export with a chat template that uses a Jinja filter transformers.js lacks. */
function exportWithUnrenderableTemplate(from: string): string {
  const dir = join(tempDir('llmkit-serve-template-'), 'bad-template');
  cpSync(from, dir, { recursive: true });
  const file = join(dir, 'tokenizer_config.json');
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), chat_template: "{% for m in messages %}{{ m['content'] | shout }}{% endfor %}" }));
  return dir;
}

describe('chat templates in serve', () => {
  let server: TestServer;
  let qwen3: string;
  const messages = [{ role: 'user', content: 'Hello' }];

  beforeAll(async () => {
    qwen3 = await exportedFamilyModel('qwen3');
    const bad = exportWithUnrenderableTemplate(await exportedTinyModel());
    server = await startTestServer({ models: [`qwen3=${qwen3}`, `bad=${bad}`] });
  }, 300_000);
  afterAll(() => server.drain());

  it("renders Qwen3 without thinking by default and with it on chat_template_kwargs.enable_thinking (vLLM's field)", async () => {
    const tokenizer = await ModelTokenizer.load(qwen3);
    const usage = async (extra: Record<string, unknown>) => {
      const r = await postJson(`${server.url}/v1/chat/completions`, { model: 'qwen3', messages, max_tokens: 1, ...extra });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return (r.body.usage as { prompt_tokens: number }).prompt_tokens;
    };
    expect(await usage({})).toBe(tokenizer.encodeChat(messages).length);
    expect(await usage({ chat_template_kwargs: { enable_thinking: false } })).toBe(tokenizer.encodeChat(messages).length);
    // <think>\n\n</think>\n\n is 4 tokens of Qwen3's vocabulary, left out when thinking is on.
    expect(await usage({ chat_template_kwargs: { enable_thinking: true } })).toBe(tokenizer.encodeChat(messages).length - 4);
    const unknown = await postJson(`${server.url}/v1/chat/completions`, { model: 'qwen3', messages, chat_template_kwargs: { reasoning: 'high' } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toMatchObject({ param: 'chat_template_kwargs.reasoning', code: 'unknown_parameter' });
  });

  it('answers chat for a template transformers.js cannot render with a 400 that says why; completions still work', async () => {
    const r = await postJson(`${server.url}/v1/chat/completions`, { model: 'bad', messages, max_tokens: 2 });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ type: 'invalid_request_error', param: 'messages', code: 'chat_template_unsupported' });
    expect(r.body.error!.message).toMatch(/^model bad: the chat template of .*bad-template cannot be rendered by transformers\.js \(Unknown StringValue filter: shout\): use \/v1\/completions$/);
    const completion = await postJson(`${server.url}/v1/completions`, { model: 'bad', prompt: 'Hello', max_tokens: 2 });
    expect(completion.status).toBe(200);
  });
});
