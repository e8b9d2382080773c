import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalEngine } from '../../src/engine/local-engine.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const ask = (content: string) => [{ role: 'user' as const, content }];

/** Makes the engine's next decode step wait for the returned release (a step stuck in ONNX Runtime until then). */
function hangNextDecode(engine: LocalEngine): () => void {
  const decoder = engine.decoder;
  const original = decoder.decodeInPlace;
  let release!: () => void;
  const until = new Promise<void>((r) => (release = r));
  decoder.decodeInPlace = (...args) => {
    decoder.decodeInPlace = original;
    return until.then(() => original.apply(decoder, args));
  };
  return release;
}

/** Reads a stream through the SDK until it ends or throws; returns the text and the error (if any). */
async function readStream(stream: AsyncIterable<OpenAI.ChatCompletionChunk>, onFirst?: () => void) {
  let text = '';
  try {
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta.content ?? '';
      if (piece && !text) onFirst?.();
      text += piece;
    }
    return { text, error: undefined };
  } catch (e) {
    return { text, error: e as OpenAI.APIError };
  }
}

/**
 * The watchdog on the real server (tiny model, openai client): a decode step that hangs fails its streams with an
 * error event the SDK raises (503 code engine_unavailable), /ready is 503 until a step completes, the log says
 * so, and the next request is answered. SIGTERM's drain ends at its deadline even with the engine stuck.
 */
describe('watchdog on the server', () => {
  let server: TestServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startTestServer({ stepTimeoutMs: 500 });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => server?.drain());

  it('fails the streams of a stuck decode step with an error event, turns /ready to 503 until a step completes, and serves the next request', async () => {
    const engine = server.models[0].engine as LocalEngine;
    let release: (() => void) | undefined;
    const streams = await Promise.all(
      [1, 2, 3].map((seed) =>
        client.chat.completions.create({ model: 'tiny', messages: ask(`stuck ${seed}`), max_tokens: 200, ignore_eos: true, stream: true, seed } as OpenAI.ChatCompletionCreateParamsStreaming),
      ),
    );
    const results = await Promise.all(streams.map((s) => readStream(s, () => (release ??= hangNextDecode(engine)))));
    // Mid-stream: the status line and the role chunk are out (and some text), so the error comes as an event.
    expect(results.map((r) => r.text).join('').length).toBeGreaterThan(0);
    for (const { error } of results) {
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect(error!.code).toBe('engine_unavailable');
      expect(error!.message).toMatch(/^the decode step did not return within 0.5 s: the server's watchdog ended this request; try again shortly$/);
    }
    expect(engine.scheduler.batchSize).toBe(0);
    const ready = await fetch(`${server.url}/ready`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { reason: string }).reason).toMatch(/^tiny: the decode step did not return within 0.5 s at /);
    expect(server.log).toContain('watchdog: model tiny: the decode step did not return within 0.5 s; 3 requests failed, /ready is 503 until a step completes');

    const next = await client.chat.completions.create({ model: 'tiny', messages: ask('after'), max_tokens: 8, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(next.usage!.completion_tokens).toBe(8);
    expect((await fetch(`${server.url}/ready`)).status).toBe(200);
    expect(server.log).toContain('watchdog: model tiny recovered (a prefill pass completed); /ready is 200 again');
    release!();
  });

  it('drains on a deadline: a stream held by a stuck engine is cut off and the drain returns', async () => {
    const stuck = await startTestServer({ stepTimeoutMs: 60_000, drainTimeoutMs: 300 });
    const engine = stuck.models[0].engine as LocalEngine;
    const sdk = new OpenAI({ baseURL: `${stuck.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    let release: (() => void) | undefined;
    let drained: Promise<Awaited<ReturnType<TestServer['drain']>>> | undefined;
    const stream = await sdk.chat.completions.create({ model: 'tiny', messages: ask('held'), max_tokens: 200, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming);
    const read = readStream(stream, () => {
      release = hangNextDecode(engine);
      drained = stuck.drain();
    });
    const { error } = await read;
    expect(error).toBeDefined();
    expect(await drained).toEqual({ cutOff: 1, modelsLeftBusy: 1 });
    release!();
  });
});
