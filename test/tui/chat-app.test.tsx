import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import { ChatBackendError } from '../../src/core/chat/backend.js';
import { ChatSession } from '../../src/core/chat/session.js';
import { ChatApp } from '../../src/tui/chat-app.js';
import { tempDir } from '../helpers/cli.js';
import { KEYS, press, screen, submit, type, waitForScreen } from './ink-helpers.js';
import { ScriptedBackend, type ScriptedReply } from './scripted-backend.js';

function chat(script: ScriptedReply[], opts: { system?: string } = {}) {
  const backend = new ScriptedBackend(script);
  const session = new ChatSession(backend, { system: opts.system ?? null });
  const app = render(<ChatApp session={session} />);
  return { app, backend, session };
}

/** The prompt's (last) line, just above the status line; ink trims trailing blanks, the cursor cell included. */
const promptLine = (text: string) => text.split('\n').at(-2)!.trimEnd();

afterEach(() => cleanup());

describe('the chat app', () => {
  it('shows what is typed, sends it on Enter and streams the reply piece by piece', async () => {
    const { app, backend } = chat([{ pieces: ['Paris ', 'is ', 'the ', 'capital.'], delayMs: 150 }]);
    await type(app, 'What is the capital of France?');
    expect(screen(app)).toContain('› What is the capital of France?');
    await press(app, KEYS.enter);
    const partial = await waitForScreen(app, (s) => s.includes('Paris'), 'the first piece');
    expect(partial).not.toContain('capital.');
    expect(partial).toContain('generating · Esc cancels');
    const done = await waitForScreen(app, (s) => s.includes('Paris is the capital.') && !s.includes('generating'), 'the whole reply');
    expect(done).toMatch(/\d+\.\d tok\/s · ttft \d+ ms · ctx \d+\/512/);
    expect(backend.requests[0].messages).toEqual([{ role: 'user', content: 'What is the capital of France?' }]);
  });

  it('cancels a reply with Esc and with Ctrl-C, and keeps going', async () => {
    const { app, session } = chat([{ pieces: ['blah '], delayMs: 20, endless: true }, { pieces: ['more '], delayMs: 20, endless: true }, { pieces: ['short answer'] }]);
    await submit(app, 'tell me a long story');
    await waitForScreen(app, (s) => s.includes('blah blah'), 'the endless reply');
    await press(app, KEYS.escape);
    await waitForScreen(app, (s) => s.includes('(cancelled)') && !s.includes('generating'), 'the cancelled note');
    await submit(app, 'another one');
    await waitForScreen(app, (s) => s.includes('more more'), 'the second endless reply');
    await press(app, KEYS.ctrlC);
    await waitForScreen(app, (s) => s.split('(cancelled)').length === 3, 'the second cancel');
    await submit(app, 'and now?');
    await waitForScreen(app, (s) => s.includes('short answer'), 'a reply after two cancels');
    // A cancelled reply stays in the conversation with what was streamed.
    expect(session.history.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    expect(session.history[1].content).toMatch(/^(blah )+$/);
  });

  it('quits on Ctrl-C with an empty prompt; Ctrl-C with text only clears it', async () => {
    const { app } = chat([]);
    await type(app, 'half a thought');
    await press(app, KEYS.ctrlC);
    expect(promptLine(screen(app))).toBe('›');
    await press(app, KEYS.ctrlC);
    // The app has exited: input no longer reaches it.
    await type(app, 'typed after quitting');
    expect(screen(app)).not.toContain('typed after quitting');
  });

  it('quits on Ctrl-D and on /exit', async () => {
    for (const quit of [async (app: ReturnType<typeof chat>['app']) => press(app, KEYS.ctrlD), async (app: ReturnType<typeof chat>['app']) => submit(app, '/exit')]) {
      const { app } = chat([]);
      await quit(app);
      await type(app, 'still here?');
      expect(screen(app)).not.toContain('still here?');
      app.unmount();
    }
  });

  it('takes multi-line input: a trailing backslash or Alt+Enter starts a new line, Enter sends all of it', async () => {
    const { app, backend } = chat([{ pieces: ['ok'] }]);
    await type(app, 'first line\\');
    await press(app, KEYS.enter);
    await type(app, 'second line');
    await press(app, KEYS.altEnter);
    await type(app, 'third line');
    const editing = screen(app);
    expect(editing).toContain('› first line\n  second line\n  third line');
    expect(backend.requests).toHaveLength(0);
    await press(app, KEYS.enter);
    await waitForScreen(app, (s) => s.includes('ok'), 'the reply');
    expect(backend.requests[0].messages.at(-1)!.content).toBe('first line\nsecond line\nthird line');
  });

  it('sends keys that arrive in one chunk with their Enter, and keeps the line breaks of a bracketed paste', async () => {
    const { app, backend } = chat([{ pieces: ['first'] }, { pieces: ['second'] }]);
    await type(app, 'typed ahead\r');
    await waitForScreen(app, (s) => s.includes('first') && !s.includes('generating'), 'the reply to the typed-ahead line');
    await type(app, '\x1b[200~pasted 1\r\npasted 2\x1b[201~');
    expect(screen(app)).toContain('› pasted 1\n  pasted 2');
    expect(backend.requests).toHaveLength(1);
    await press(app, KEYS.enter);
    await waitForScreen(app, (s) => s.includes('second'), 'the reply to the paste');
    expect(backend.requests.map((r) => r.messages.at(-1)!.content)).toEqual(['typed ahead', 'pasted 1\npasted 2']);
  });

  it('recalls earlier inputs with Up and Down, and gives back the unsent one', async () => {
    const { app } = chat([{ pieces: ['one'] }, { pieces: ['two'] }]);
    await submit(app, 'first question');
    await waitForScreen(app, (s) => s.includes('one') && !s.includes('generating'), 'reply one');
    await submit(app, 'second question');
    await waitForScreen(app, (s) => s.includes('two') && !s.includes('generating'), 'reply two');
    await type(app, 'draft');
    await press(app, KEYS.up);
    expect(promptLine(screen(app))).toBe('› second question');
    await press(app, KEYS.up);
    expect(promptLine(screen(app))).toBe('› first question');
    await press(app, KEYS.down);
    await press(app, KEYS.down);
    expect(promptLine(screen(app))).toBe('› draft');
  });

  it('runs slash commands: /help, /temp, /top_p, /system, /seed, /max, /model, /stats, /clear, unknown ones', async () => {
    const { app, backend, session } = chat([{ pieces: ['a ', 'reply'] }, { pieces: ['b reply'] }]);
    await submit(app, '/help');
    const help = await waitForScreen(app, (s) => s.includes('/save FILE'), 'the help');
    for (const command of ['/clear', '/system', '/temp', '/top_p', '/max', '/seed', '/model', '/load FILE', '/stats', '/exit']) expect(help).toContain(command);
    expect(help).toContain('Esc or Ctrl-C cancels a reply');
    await submit(app, '/temp 0.2');
    await submit(app, '/top_p 0.5');
    await waitForScreen(app, (s) => s.includes('temp 0.2 top_p 0.5'), 'the status line with the new sampling');
    await submit(app, '/system You answer in one word.');
    await submit(app, '/seed 42');
    await submit(app, '/max 64');
    await submit(app, 'hi');
    await waitForScreen(app, (s) => s.includes('a reply') && !s.includes('generating'), 'the reply');
    expect(backend.requests[0].messages[0]).toEqual({ role: 'system', content: 'You answer in one word.' });
    expect(backend.requests[0].settings).toEqual({ temperature: 0.2, topP: 0.5, maxTokens: 64, seed: 42 });
    await submit(app, '/stats');
    await waitForScreen(app, (s) => /last reply: 2 tokens · \d+\.\d tok\/s · ttft \d+ ms · ctx \d+\/512 · stop/.test(s), 'the stats');
    await submit(app, '/model');
    await waitForScreen(app, (s) => s.includes('available: scripted, other'), 'the model list');
    await submit(app, '/model other');
    await waitForScreen(app, (s) => s.includes('now talking to other') && s.includes('other · test'), 'the switch');
    await submit(app, '/clear');
    await waitForScreen(app, (s) => s.includes('— conversation cleared (the system prompt stays) —'), 'the clear notice');
    expect(session.history).toEqual([]);
    await submit(app, '/temp hot');
    await waitForScreen(app, (s) => s.includes('/temp takes a number ≥ 0 and ≤ 2 (got hot)'), 'the bad value');
    await submit(app, '/frobnicate');
    await waitForScreen(app, (s) => s.includes('unknown command /frobnicate'), 'the unknown command');
    await submit(app, '//frobnicate is sent as text');
    await waitForScreen(app, (s) => s.includes('b reply'), 'the second reply');
    expect(backend.requests[1].messages.at(-1)!.content).toBe('/frobnicate is sent as text');
  });

  it('saves the conversation with /save and continues it with /load', async () => {
    const dir = tempDir();
    const file = join(dir, 'talk.json');
    const first = chat([{ pieces: ['It is 4.'] }], { system: 'Be brief.' });
    await submit(first.app, 'What is 2+2?');
    await waitForScreen(first.app, (s) => s.includes('It is 4.') && !s.includes('generating'), 'the reply');
    await submit(first.app, `/save ${file}`);
    await waitForScreen(first.app, (s) => s.includes(`saved 2 messages to ${file}`), 'the save notice');
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    expect(saved).toMatchObject({
      format: 'llmkit-chat-transcript',
      system: 'Be brief.',
      messages: [
        { role: 'user', content: 'What is 2+2?' },
        { role: 'assistant', content: 'It is 4.' },
      ],
    });
    first.app.unmount();

    const second = chat([{ pieces: ['Still 4.'] }]);
    await submit(second.app, `/load ${file}`);
    const loaded = await waitForScreen(second.app, (s) => s.includes('loaded 2 messages'), 'the load notice');
    expect(loaded).toContain('› What is 2+2?');
    await submit(second.app, 'And now?');
    await waitForScreen(second.app, (s) => s.includes('Still 4.'), 'the reply');
    expect(second.backend.requests[0].messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: 'It is 4.' },
      { role: 'user', content: 'And now?' },
    ]);
    await submit(second.app, `/load ${join(dir, 'missing.json')}`);
    await waitForScreen(second.app, (s) => s.includes('cannot read') && s.includes('ENOENT') && s.includes('pass a file written by /save'), 'the load error');
  });

  it('shows a failed reply inline with its hint, and the next message still works', async () => {
    const { app, session } = chat([
      { error: new ChatBackendError('context_too_long', "the conversation no longer fits the model's context", '/clear starts a new conversation') },
      { pieces: ['fine again'] },
    ]);
    await submit(app, 'a very long question');
    const failed = await waitForScreen(app, (s) => s.includes('✗ the conversation no longer fits'), 'the error');
    expect(failed).toContain('/clear starts a new conversation');
    expect(session.history).toEqual([]);
    await submit(app, 'shorter');
    await waitForScreen(app, (s) => s.includes('fine again'), 'the reply after the error');
  });

  it('says when a reply stopped at the token limit', async () => {
    const { app } = chat([{ pieces: ['cut'], finish: 'length' }]);
    await submit(app, 'go on');
    await waitForScreen(app, (s) => s.includes('(stopped at 512 tokens: /max raises the limit)'), 'the length note');
  });
});
