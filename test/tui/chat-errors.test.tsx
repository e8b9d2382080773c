import { cleanup, render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import { RemoteChatBackend } from '../../src/core/chat/remote-backend.js';
import { ChatSession } from '../../src/core/chat/session.js';
import { ChatApp } from '../../src/tui/chat-app.js';
import { screen, submit, waitForScreen } from './ink-helpers.js';
import { startScriptedServer, unusedUrl, type ScriptedAnswer } from './scripted-openai-server.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  cleanup();
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** The real RemoteChatBackend (openai client) against a server that answers from a script. */
async function chatWith(script: ScriptedAnswer[]) {
  const server = await startScriptedServer(script);
  closers.push(server.close);
  const backend = new RemoteChatBackend({ url: server.url });
  await backend.connect();
  return { app: render(<ChatApp session={new ChatSession(backend)} />), server };
}

const unauthorized: ScriptedAnswer = { status: 401, error: { message: 'Incorrect API key provided', type: 'authentication_error', code: 'invalid_api_key' } };

describe('errors in the chat app', () => {
  it('learns the model and its context window from /v1/models', async () => {
    const { app } = await chatWith([]);
    expect(screen(app)).toContain('scripted-model · 127.0.0.1:');
    expect(screen(app)).toContain('ctx -/64');
  });

  it('shows a refused API key inline with the flag that fixes it, and stays usable', async () => {
    const { app } = await chatWith([unauthorized, { stream: ['welcome back'] }]);
    await submit(app, 'hi');
    const shown = await waitForScreen(app, (s) => s.includes('refused the API key'), 'the 401');
    expect(shown).toContain('(401: Incorrect API key provided)');
    expect(shown).toContain('restart with --api-key KEY (or set LLMKIT_API_KEY)');
    await submit(app, 'hi again');
    await waitForScreen(app, (s) => s.includes('welcome back'), 'the next reply');
  });

  it('waits for Retry-After on a 429, says so, then gets the reply', async () => {
    const { app, server } = await chatWith([
      { status: 429, error: { message: 'Rate limit reached', type: 'rate_limit_error', code: 'rate_limit_exceeded' }, headers: { 'retry-after': '1' } },
      { stream: ['after ', 'the wait'], usage: { prompt_tokens: 9, completion_tokens: 2 } },
    ]);
    const started = Date.now();
    await submit(app, 'hi');
    const waiting = await waitForScreen(app, (s) => s.includes('waiting 1 s (Retry-After)'), 'the wait notice');
    expect(waiting).toContain('rate limited by http://127.0.0.1');
    expect(waiting).toContain('rate limited: waiting 1 s · Esc cancels');
    const done = await waitForScreen(app, (s) => s.includes('after the wait') && !s.includes('Esc cancels ·'), 'the reply after the wait');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(done).toContain('ctx 11/64');
    expect(server.requests).toHaveLength(2);
  });

  it('offers /clear when the conversation no longer fits, and /clear recovers', async () => {
    const { app, server } = await chatWith([
      { status: 400, error: { message: "This model's maximum context length is 64 tokens", type: 'invalid_request_error', code: 'context_length_exceeded' } },
      { stream: ['fresh start'] },
    ]);
    await submit(app, 'a long question');
    const shown = await waitForScreen(app, (s) => s.includes("no longer fits the model's context"), 'the context error');
    expect(shown).toContain('/clear starts a new conversation');
    await submit(app, '/clear');
    await submit(app, 'short');
    await waitForScreen(app, (s) => s.includes('fresh start'), 'the reply after /clear');
    expect((server.requests[1] as { messages: unknown[] }).messages).toEqual([{ role: 'user', content: 'short' }]);
  });

  it('says when the server cannot be reached, and how to fix it', async () => {
    const backend = new RemoteChatBackend({ url: await unusedUrl(), model: 'x' });
    await backend.connect();
    const app = render(<ChatApp session={new ChatSession(backend)} />);
    await submit(app, 'anyone there?');
    const shown = await waitForScreen(app, (s) => s.includes('cannot reach'), 'the connection error');
    expect(shown).toMatch(/✗ cannot reach http:\/\/127\.0\.0\.1:\d+\/v1 \(ECONNREFUSED\)/);
    expect(shown).toContain('start the server (`llmkit serve MODEL`) or check --url');
  });
});
