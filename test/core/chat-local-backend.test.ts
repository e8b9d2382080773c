import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalChatBackend } from '../../src/core/chat/local-backend.js';
import { ChatSession } from '../../src/core/chat/session.js';
import { exportedTinyModel } from '../helpers/models.js';

/** The in-process backend over the real engine and the tiny model (512 tokens of context). */
describe('the local chat backend', () => {
  let backend: LocalChatBackend;
  beforeAll(async () => {
    backend = await LocalChatBackend.open(await exportedTinyModel(), { device: 'cpu' });
  });
  afterAll(() => backend?.close());

  const ignore = { text: () => undefined, waiting: () => undefined };

  it('describes the model, its device and context window', () => {
    expect(backend.info).toMatchObject({ device: 'cpu', contextWindow: 512 });
    expect(backend.info.model).toMatch(/^tiny-seed0-/);
  });

  it('shortens a reply to what is left of the context, and refuses a prompt that fills it', async () => {
    const session = new ChatSession(backend, { settings: { temperature: 0, maxTokens: 5000 } });
    const result = await session.send('hello', ignore, new AbortController().signal);
    if ('error' in result) throw result.error;
    expect(result.stats).toMatchObject({ finishReason: 'length', contextUsed: 512 });
    const tooLong = await new ChatSession(backend).send('word '.repeat(600), ignore, new AbortController().signal);
    expect(tooLong).toMatchObject({ error: { kind: 'context_too_long', hint: '/clear starts a new conversation' } });
  });

  it('cancels a reply mid-stream and keeps what came', async () => {
    const session = new ChatSession(backend, { settings: { temperature: 0, maxTokens: 400 } });
    const controller = new AbortController();
    let pieces = 0;
    const result = await session.send('Tell me a long story.', { text: () => ++pieces === 5 && controller.abort(), waiting: () => undefined }, controller.signal);
    if ('error' in result) throw result.error;
    expect(result.stats.finishReason).toBe('cancelled');
    expect(result.stats.completionTokens).toBeLessThan(20);
    expect(result.stats.promptTokens).toBeGreaterThan(0);
    expect(session.history[1].content).toBe(result.reply);
  });
});
