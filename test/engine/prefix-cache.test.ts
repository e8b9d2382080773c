import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession, type BatchCache } from '../../src/engine/decoder-session.js';
import type { SchedulerLimits } from '../../src/engine/admission.js';
import { GenerationScheduler } from '../../src/engine/generation-scheduler.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { MIN_REUSED_TOKENS, PrefixCache } from '../../src/engine/prefix-cache.js';
import { Random } from '../../src/engine/random.js';
import { GREEDY } from '../../src/engine/sampling.js';
import type { GenerationEnd } from '../../src/engine/streamer.js';
import { exportedTinyModel } from '../helpers/models.js';

const tokens = (length: number, seed: number) => {
  const random = new Random(seed);
  return Array.from({ length }, () => 4 + Math.floor(random.next() * 700));
};

/** A one-row cache whose every float is its position (so a copy shows which positions it took). */
function positionsCache(length: number, kvHeads = 2, headDim = 3): BatchCache {
  const data = () => Float32Array.from({ length: kvHeads * length * headDim }, (_, i) => Math.floor(i / headDim) % length);
  return { batch: 1, length, layers: [{ key: data(), value: data() }] };
}

describe('prefix cache', () => {
  it('finds the longest stored prefix, leaves one token to prefill, and copies only those positions', () => {
    const cache = new PrefixCache(1 << 20, 2, 3);
    const a = tokens(40, 1);
    cache.store(a, positionsCache(40));
    cache.store(tokens(30, 2), positionsCache(30));
    expect(cache.lookup(tokens(50, 3))).toBeUndefined();
    expect(cache.lookup([...a.slice(0, MIN_REUSED_TOKENS - 1), 1, 2, 3])).toBeUndefined();
    const hit = cache.lookup([...a.slice(0, 25), 9, 9])!;
    expect(hit.length).toBe(25);
    expect(hit.cache.length).toBe(25);
    // Head 0 then head 1, each positions 0..24.
    expect(Array.from(hit.cache.layers[0].key.filter((_, i) => i % 3 === 0))).toEqual([...Array(25).keys(), ...Array(25).keys()]);
    // The same prompt again: all but its last token.
    expect(cache.lookup(a)!.length).toBe(39);
    expect(cache.reusedTokens).toBe(25 + 39);
  });

  it('stays under its byte bound, dropping the least recently used entry', () => {
    const bytesOf40 = 2 * 2 * 40 * 3 * 4;
    const cache = new PrefixCache(2 * bytesOf40, 2, 3);
    const [a, b, c] = [tokens(40, 1), tokens(40, 2), tokens(40, 3)];
    cache.store(a, positionsCache(40));
    cache.store(b, positionsCache(40));
    expect(cache.lookup(a)).toBeDefined(); // a is now the most recent
    cache.store(c, positionsCache(40));
    expect(cache.lookup(b)).toBeUndefined();
    expect(cache.lookup(a)).toBeDefined();
    expect(cache.lookup(c)).toBeDefined();
  });
});

describe.each(['traced', 'fused-gqa'] as const)('prefix reuse in the scheduler (tiny model, %s graph)', (graph) => {
  let decoder: DecoderSession;
  const limits: SchedulerLimits = { maxBatch: 8, maxQueue: 16, maxTokensTotal: 8 * 512, prefillChunk: 64 };
  beforeAll(async () => {
    decoder = await DecoderSession.open(loadExportedModel(await exportedTinyModel('tiny', 0, graph)), { device: 'cpu', logits: 'last' });
  });
  afterAll(() => decoder.release());

  const generate = (scheduler: GenerationScheduler, promptIds: number[], maxTokens: number) =>
    new Promise<number[]>((resolve) => {
      const out: number[] = [];
      scheduler.submit({
        promptIds,
        maxTokens,
        sampling: GREEDY,
        stopTokenIds: [],
        sink: { token: (id) => (out.push(id), false), end: (_: GenerationEnd) => resolve(out) },
      });
    });

  /** Two 10-turn chats interleaved (a 120-token system prompt, 8-token user turns, 8-token answers), each turn resending the conversation. */
  async function chats(scheduler: GenerationScheduler): Promise<number[][]> {
    const system = tokens(120, 7);
    const conversations = [[...system], [...system, ...tokens(5, 8)]];
    const answers: number[][] = [];
    for (let turn = 0; turn < 10; turn++) {
      const prompts = conversations.map((c, i) => [...c, ...tokens(8, 100 * turn + i)]);
      const outs = await Promise.all(prompts.map((p) => generate(scheduler, p, 8)));
      outs.forEach((out, i) => (conversations[i] = [...prompts[i], ...out]));
      answers.push(...outs);
    }
    return answers;
  }

  it('gives the same greedy tokens with reuse as without, and reuses the conversation so far at every later turn', async () => {
    const prefixes = new PrefixCache(64 << 20, decoder.model.manifest.num_kv_heads, decoder.model.manifest.head_dim);
    const withReuse = await chats(new GenerationScheduler(decoder, limits, undefined, prefixes));
    const without = await chats(new GenerationScheduler(decoder, limits));
    expect(withReuse).toEqual(without);
    expect(withReuse.flat().length).toBe(20 * 8);
    // Turns 2..10 of both chats hit: each reuses at least the system prompt and the previous turn's prompt.
    expect(prefixes.hits).toBeGreaterThanOrEqual(18);
    expect(prefixes.reusedTokens).toBeGreaterThan(18 * 120);
  });
});
