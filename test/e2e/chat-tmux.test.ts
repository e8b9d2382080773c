import { execa } from 'execa';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';
import { startServe, type ServeProcess } from './llmkit-serve.js';

const haveTmux = spawnSync('tmux', ['-V']).status === 0;
// CI installs tmux (.ci/run); only a developer machine without it may skip this test.
const skip = !haveTmux && !process.env.CI;
if (skip) console.warn('test/e2e/chat-tmux.test.ts skipped: tmux is not installed (apt-get install tmux); CI installs it and runs this test');

const QUESTION = 'What is the capital of France?';
const STATUS = /story · cpu · temp 0 top_p 0\.95 · \d+\.\d tok\/s · ttft \d+ ms · ctx \d+\/1024/;

/**
 * `llmkit chat` in a real terminal (tmux) against a real `llmkit serve` with the 100m preset (random weights): type a
 * question, see the streamed answer and the stats, cancel a long reply with Esc, quit with exit code 0.
 */
describe.skipIf(skip)('llmkit chat in a terminal, against llmkit serve', () => {
  let serve: ServeProcess;
  const dir = tempDir('llmkit-chat-tmux-');
  const socket = join(dir, 'tmux.sock');
  const exitFile = join(dir, 'exit-code');
  const tmux = (...args: string[]) => execa('tmux', ['-S', socket, ...args]);
  const pane = async () => (await tmux('capture-pane', '-p', '-t', 'chat', '-S', '-')).stdout;
  async function waitForPane(check: (text: string) => boolean, what: string, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await pane();
      if (check(text)) return text;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the pane shows:\n${text}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  /** ink reads Enter only on its own: text and Enter go in separate send-keys. */
  async function send(text: string): Promise<void> {
    await tmux('send-keys', '-t', 'chat', '-l', text);
    await tmux('send-keys', '-t', 'chat', 'Enter');
  }

  beforeAll(async () => {
    if (!haveTmux) throw new Error('tmux is not installed, and CI must run this test: .ci/run installs it with apt-get');
    // The 100m preset (random weights, 1,024-token context): on a quiet machine the tiny one streams its 400-token
    // reply faster than Esc reaches the chat, so there would be nothing left to cancel.
    serve = await startServe(await exportedTinyModel('100m'), 'story');
    // ink draws only the last frame when it believes it runs in CI, so the chat gets a plain terminal environment.
    const chat = `env -u CI -u CONTINUOUS_INTEGRATION node bin/llmkit.js chat --url ${serve.apiUrl} --temperature 0 --max-tokens 24; echo $? > ${exitFile}`;
    await tmux('new-session', '-d', '-s', 'chat', '-x', '110', '-y', '40', '-c', process.cwd(), chat);
  });

  afterAll(async () => {
    await tmux('kill-server').catch(() => undefined);
    await serve?.stop();
  });

  it('streams the answer to a question and shows the stats line', async () => {
    await waitForPane((t) => t.includes('llmkit chat · story on cpu'), 'the welcome line');
    await send(QUESTION);
    const shown = await waitForPane((t) => STATUS.test(t) && !t.includes('generating'), 'the answer and the stats line');
    expect(shown).toContain(`› ${QUESTION}`);
    // The same request straight to the server (greedy, so the same text): its words must be on screen, in order.
    const expected = await new OpenAI({ baseURL: serve.apiUrl, apiKey: 'none' }).chat.completions.create({
      model: 'story',
      messages: [{ role: 'user', content: QUESTION }],
      temperature: 0,
      top_p: 0.95,
      max_tokens: 24,
    });
    // The random model's greedy reply (" 4 4 4 …") must be on screen whole; the pane wraps at spaces.
    const reply = (expected.choices[0].message.content ?? '').replace(/\s+/g, ' ').trim();
    expect(reply.length).toBeGreaterThan(0);
    const answer = shown.slice(shown.indexOf(QUESTION) + QUESTION.length).replace(/\s+/g, ' ');
    expect(answer).toContain(reply);
  });

  it('cancels a long reply with Esc and stays usable', async () => {
    await send('/max 400');
    await waitForPane((t) => t.includes('at most 400 new tokens per reply'), 'the /max notice');
    await send('Tell me a long story.');
    // Greedy decoding of the random model runs to the token limit: wait until the reply has streamed a few tokens
    // (the status bar's tok/s needs two), then cancel it.
    await waitForPane((t) => t.includes('generating · Esc cancels') && /Tell me a long story\.\n.{20,}/.test(t), 'the long reply to start');
    await tmux('send-keys', '-t', 'chat', 'Escape');
    const after = await waitForPane((t) => t.includes('(cancelled)') && !t.includes('generating'), 'the cancelled note');
    // The server sends no usage for a cancelled stream, so the context used is unknown (ctx -/1024).
    expect(after).toMatch(/story · cpu · temp 0 top_p 0\.95 · \d+\.\d tok\/s · ttft \d+ ms · ctx -\/1024/);
    await send('/stats');
    await waitForPane((t) => /last reply: \d+ tokens · .* · cancelled/.test(t), 'the stats of the cancelled reply');
  });

  it('quits on Ctrl-C at an empty prompt with exit code 0', async () => {
    await tmux('send-keys', '-t', 'chat', 'C-c');
    const deadline = Date.now() + 15_000;
    while (!existsSync(exitFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(exitFile, 'utf8').trim()).toBe('0');
  });
});
