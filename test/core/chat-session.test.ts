import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChatBackendError } from '../../src/core/chat/backend.js';
import { ChatSession } from '../../src/core/chat/session.js';
import { runSlashCommand } from '../../src/core/chat/slash-commands.js';
import { tempDir } from '../helpers/cli.js';
import { ScriptedBackend, type ScriptedReply } from '../tui/scripted-backend.js';

const rateLimited = (retryAfterS?: number) => ({ error: new ChatBackendError('rate_limited', 'rate limited (429)', undefined, retryAfterS) });

function session(script: ScriptedReply[], system: string | null = null) {
  return new ChatSession(new ScriptedBackend(script), { system });
}

async function send(s: ChatSession, text: string, signal = new AbortController().signal, onText?: (pieces: string[]) => void) {
  const pieces: string[] = [];
  const waits: number[] = [];
  const result = await s.send(text, { text: (p) => (pieces.push(p), onText?.(pieces)), waiting: (seconds) => waits.push(seconds) }, signal);
  return { result, pieces, waits };
}

describe('a chat session', () => {
  it('sends the system prompt and the turns so far, and keeps each finished turn', async () => {
    const s = session([{ pieces: ['one'] }, { pieces: ['t', 'wo'] }], 'Be brief.');
    await send(s, 'first');
    const { result, pieces } = await send(s, 'second');
    expect(pieces).toEqual(['t', 'wo']);
    expect(result).toMatchObject({ reply: 'two', stats: { finishReason: 'stop', completionTokens: 2 } });
    expect((s.backend as ScriptedBackend).requests[1].messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'first' },
      { role: 'assistant', content: 'one' },
      { role: 'user', content: 'second' },
    ]);
    expect(s.totals).toMatchObject({ replies: 2, completionTokens: 3 });
  });

  it('measures time to first token, tokens/s and the context used', async () => {
    // The backend reports fixed timings: the session's arithmetic is under test, not the machine's timers.
    const s = session([
      { pieces: ['a', 'b', 'c', 'd', 'e'], timings: { timeToFirstTokenMs: 120, interTokenMs: [20, 30, 10, 20] } },
      { pieces: ['f', 'g'], timings: { timeToFirstTokenMs: 40, interTokenMs: [120] } },
    ]);
    const { result } = await send(s, 'count to five');
    if ('error' in result) throw result.error;
    expect(result.stats.timeToFirstTokenMs).toBe(120);
    // Four tokens after the first in 80 ms: 50 tok/s.
    expect(result.stats.tokensPerS).toBe(50);
    expect(result.stats.contextUsed).toBe(3 + 5);
    const second = (await send(s, 'and two more')).result;
    if ('error' in second) throw second.error;
    expect(second.stats.tokensPerS).toBeCloseTo(1000 / 120, 10);
    // The totals weigh replies by their tokens: 5 tokens in 200 ms.
    expect(s.totals).toMatchObject({ replies: 2, completionTokens: 7, decodeTokens: 5, decodeMs: 200 });
  });

  it('leaves the history as it was when a reply fails, so the message can be sent again', async () => {
    const error = new ChatBackendError('unreachable', 'cannot reach the server');
    const s = session([{ error }, { pieces: ['ok'] }]);
    expect((await send(s, 'hello')).result).toEqual({ error });
    expect(s.history).toEqual([]);
    await send(s, 'hello');
    expect(s.history).toHaveLength(2);
  });

  it('keeps what a cancelled reply streamed, and drops a turn cancelled before any text', async () => {
    const s = session([
      { pieces: ['never '], delayMs: 1000 },
      { pieces: ['la '], delayMs: 10, endless: true },
    ]);
    const early = new AbortController();
    setTimeout(() => early.abort(), 50);
    expect((await send(s, 'quick', early.signal)).result).toMatchObject({ reply: '', stats: { finishReason: 'cancelled' } });
    expect(s.history).toEqual([]);
    const late = new AbortController();
    const { result } = await send(s, 'sing', late.signal, (pieces) => pieces.length === 3 && late.abort());
    expect(result).toMatchObject({ reply: 'la la la ', stats: { finishReason: 'cancelled', completionTokens: 3 } });
    expect(s.history[1].content).toBe('la la la ');
  });

  it('waits Retry-After on a 429 and tries again, up to three times, then reports it', async () => {
    const s = session([rateLimited(0.05), rateLimited(), { pieces: ['finally'] }]);
    const { result, waits } = await send(s, 'hi');
    expect(waits).toEqual([0.05, 1]);
    expect(result).toMatchObject({ reply: 'finally' });
    const stubborn = session([rateLimited(0.01), rateLimited(0.01), rateLimited(0.01), rateLimited(0.01), { pieces: ['unreached'] }]);
    const gaveUp = await send(stubborn, 'hi');
    expect(gaveUp.waits).toHaveLength(3);
    expect(gaveUp.result).toMatchObject({ error: { kind: 'rate_limited' } });
  });

  it('stops waiting for a rate limit when cancelled', async () => {
    const s = session([rateLimited(30), { pieces: ['unreached'] }]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = Date.now();
    const { result } = await send(s, 'hi', controller.signal);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result).toMatchObject({ reply: '', stats: { finishReason: 'cancelled' } });
  });
});

describe('chat transcripts', () => {
  it('round-trip the conversation, the system prompt and the settings through /save and /load', async () => {
    const file = join(tempDir(), 'nested', 'talk.json');
    const s = session([{ pieces: ['four'] }], 'Answer with a number.');
    await runSlashCommand(s, { name: 'temp', value: 0 });
    await runSlashCommand(s, { name: 'seed', value: 3 });
    await send(s, '2+2?');
    expect(await runSlashCommand(s, { name: 'save', file })).toMatchObject({ kind: 'notice', text: `saved 2 messages to ${file}` });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ format: 'llmkit-chat-transcript', version: 1, model: 'scripted', settings: { temperature: 0, seed: 3 } });

    const other = session([]);
    const loaded = await runSlashCommand(other, { name: 'load', file });
    expect(loaded).toMatchObject({
      kind: 'notice',
      restored: [
        { role: 'user', content: '2+2?' },
        { role: 'assistant', content: 'four' },
      ],
    });
    expect(other.system).toBe('Answer with a number.');
    expect(other.settings).toEqual({ temperature: 0, topP: 0.95, maxTokens: 512, seed: 3 });
  });

  it('refuse a file that is not a transcript, naming the file and the field', async () => {
    const dir = tempDir();
    const bad = join(dir, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify({
        format: 'llmkit-chat-transcript',
        version: 1,
        model: 'm',
        savedAt: '',
        system: null,
        settings: { temperature: 0, topP: 1, maxTokens: 1, seed: null },
        messages: [{ role: 'robot', content: 'x' }],
      }),
    );
    const notJson = join(dir, 'notes.txt');
    writeFileSync(notJson, 'hello');
    const s = session([]);
    expect(await runSlashCommand(s, { name: 'load', file: bad })).toMatchObject({ kind: 'error', error: { message: expect.stringContaining(`${bad}: messages.0.role:`) } });
    expect(await runSlashCommand(s, { name: 'load', file: notJson })).toMatchObject({ kind: 'error', error: { message: `${notJson} is not JSON`, hint: 'pass a file written by /save' } });
  });
});
