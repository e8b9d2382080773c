import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession, type BatchCache } from '../../src/engine/decoder-session.js';
import type { EngineRejection } from '../../src/engine/engine-contract.js';
import type { SchedulerLimits } from '../../src/engine/admission.js';
import { GenerationScheduler } from '../../src/engine/generation-scheduler.js';
import { gatherRows, regroupInPlace, restrideInPlace } from '../../src/engine/kv-cache.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { PrefixCache } from '../../src/engine/prefix-cache.js';
import { Random } from '../../src/engine/random.js';
import { argmax, GREEDY, type SamplingParams } from '../../src/engine/sampling.js';
import { exportedTinyModel } from '../helpers/models.js';
import { collector } from '../helpers/token-sink.js';

const prompt = (length: number, seed: number) => {
  const random = new Random(seed);
  return Array.from({ length }, () => 4 + Math.floor(random.next() * 700));
};

// Serving opens its decoder with logits: 'last' (the output layer at each row's last position only). The
// fused-gqa graph runs its in-place steps and batched prefill chunks differently (decoder-session.ts).
describe.each([
  ['all', 'traced'],
  ['last', 'traced'],
  ['last', 'fused-gqa'],
] as const)('continuous batching (logits: %s, %s graph)', (logits, graph) => {
  let decoder: DecoderSession;
  const limits: SchedulerLimits = { maxBatch: 8, maxQueue: 16, maxTokensTotal: 8 * 512, prefillChunk: 256 };

  beforeAll(async () => {
    decoder = await DecoderSession.open(loadExportedModel(await exportedTinyModel('tiny', 0, graph)), { device: 'cpu', logits });
  });
  afterAll(() => decoder.release());

  /** The reference: one sequence, no scheduler, no padding: prefill then argmax decode. */
  async function greedyAlone(ids: number[], n: number): Promise<number[]> {
    const out: number[] = [];
    let step = await decoder.forward(
      BigInt64Array.from(ids, BigInt),
      new BigInt64Array(ids.length).fill(1n),
      BigInt64Array.from(ids, (_, i) => BigInt(i)),
      decoder.emptyCache(1),
    );
    const vocab = decoder.vocabSize;
    for (;;) {
      out.push(argmax(step.logits.subarray(step.logits.length - vocab)));
      if (out.length === n) return out;
      const length = step.cache.length;
      step = await decoder.forward(BigInt64Array.of(BigInt(out.at(-1)!)), new BigInt64Array(length + 1).fill(1n), BigInt64Array.of(BigInt(length)), step.cache);
    }
  }

  const submit = (scheduler: GenerationScheduler, promptIds: number[], maxTokens: number, extra: { sampling?: SamplingParams; signal?: AbortSignal; onToken?: (t: number[]) => void } = {}) => {
    const c = collector(extra.onToken);
    scheduler.submit({ promptIds, maxTokens, sampling: extra.sampling ?? GREEDY, stopTokenIds: [], sink: c.sink, signal: extra.signal });
    return c;
  };

  it('lets requests of different lengths join and leave between steps, each getting its solo greedy tokens', async () => {
    const batchSizes: number[] = [];
    const scheduler = new GenerationScheduler(decoder, limits, (rows) => batchSizes.push(rows));
    const cases = [
      [3, 12],
      [40, 30],
      [9, 20],
      [100, 6],
      [1, 25],
      [17, 15],
    ].map(([length, maxTokens], i) => ({ ids: prompt(length, i + 1), maxTokens }));
    const first = cases.slice(0, 2).map((c) => submit(scheduler, c.ids, c.maxTokens));
    // Newcomers arrive while the first two are decoding.
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => first[1].tokens.length >= 5 && (clearInterval(poll), resolve()), 1);
    });
    const later = cases.slice(2).map((c) => submit(scheduler, c.ids, c.maxTokens));
    const runs = [...first, ...later];
    const ends = await Promise.all(runs.map((r) => r.done));
    for (const [i, c] of cases.entries()) {
      expect(ends[i].reason).toBe('length');
      expect(runs[i].tokens, `request ${i}`).toEqual(await greedyAlone(c.ids, c.maxTokens));
    }
    expect(Math.max(...batchSizes)).toBeGreaterThan(2);
    expect(scheduler.batchSize).toBe(0);
    // Rows that fit the running cache joined and left without a copy of the rows beside them.
    expect(scheduler.cacheChanges.inPlace).toBeGreaterThanOrEqual(2);
  });

  it('keeps a running batch in its first arrays while rows grow past the spare columns and new rows keep joining', async () => {
    const scheduler = new GenerationScheduler(decoder, { ...limits, maxBatch: 3 });
    // Nine requests for three rows: each joins when one finishes, and the longest grow 70 columns past their prompt.
    const cases = [70, 25, 40, 60, 15, 70, 30, 45, 20].map((maxTokens, i) => ({ ids: prompt(6 + ((i * 5) % 11), 40 + i), maxTokens }));
    const runs = cases.map((c) => submit(scheduler, c.ids, c.maxTokens));
    await Promise.all(runs.map((r) => r.done));
    for (const [i, c] of cases.entries()) expect(runs[i].tokens, `request ${i}`).toEqual(await greedyAlone(c.ids, c.maxTokens));
    // One copy, the first gather: a wider cache is a new stride in the same arrays, and joining rows go into free
    // slots (the rows here grow 80 columns, past the 32 spare ones the first gather gives). On a "fused-gqa" graph
    // every row decodes at one column, so joining rows drift right and the room runs out once.
    expect(scheduler.cacheChanges.copies).toBe(graph === 'traced' ? 1 : 2);
    expect(scheduler.cacheChanges.inPlace).toBeGreaterThanOrEqual(8);
  });

  it('prefills a long prompt in chunks under the budget, with the same tokens', async () => {
    const scheduler = new GenerationScheduler(decoder, { ...limits, prefillChunk: 16 });
    const long = prompt(70, 11);
    const short = prompt(5, 12);
    const [a, b] = [submit(scheduler, long, 10), submit(scheduler, short, 10)];
    await Promise.all([a.done, b.done]);
    expect(a.tokens).toEqual(await greedyAlone(long, 10));
    expect(b.tokens).toEqual(await greedyAlone(short, 10));
  });

  it('does not make a short request wait for a long one', async () => {
    const scheduler = new GenerationScheduler(decoder, limits);
    const finished: string[] = [];
    let startShort!: () => void;
    const longStarted = new Promise<void>((r) => (startShort = r));
    const long = submit(scheduler, prompt(20, 3), 300, { onToken: (t) => t.length === 2 && startShort() });
    void long.done.then(() => finished.push('long'));
    await longStarted;
    const short = submit(scheduler, prompt(8, 4), 5);
    void short.done.then(() => finished.push('short'));
    await Promise.all([long.done, short.done]);
    expect(finished).toEqual(['short', 'long']);
  });

  /** A decoder that logs each pass: `prefill <rows>x<columns>` or `decode <rows>`. */
  function logged(events: string[]): DecoderSession {
    const wrapped = Object.create(decoder) as DecoderSession;
    wrapped.forward = (ids, mask, positions, cache, ...rest) => {
      events.push(`prefill ${cache.batch}x${ids.length / cache.batch}`);
      return decoder.forward(ids, mask, positions, cache, ...rest);
    };
    wrapped.decodeInPlace = (ids, mask, positions, cache, ...rest) => {
      events.push(`decode ${ids.length}`);
      return decoder.decodeInPlace(ids, mask, positions, cache, ...rest);
    };
    return wrapped;
  }

  it('gives a decoding stream one step between the chunks of a long prompt admitted beside it', async () => {
    const events: string[] = [];
    const scheduler = new GenerationScheduler(logged(events), { ...limits, prefillChunk: 16 });
    const shortIds = prompt(5, 31);
    const longIds = prompt(70, 32);
    let admitted = -1;
    let startLong!: () => void;
    const decoding = new Promise<void>((r) => (startLong = r));
    const short = submit(scheduler, shortIds, 40, { onToken: (t) => t.length === 3 && startLong() });
    await decoding;
    admitted = events.length;
    const long = submit(scheduler, longIds, 10);
    await Promise.all([short.done, long.done]);
    expect(short.tokens).toEqual(await greedyAlone(shortIds, 40));
    expect(long.tokens).toEqual(await greedyAlone(longIds, 10));
    // 70 prompt tokens in chunks of at most 16 columns, each followed by one decode step of the short stream.
    const during = events.slice(admitted, events.lastIndexOf('prefill 1x6') + 2);
    expect(during).toEqual(['prefill 1x16', 'decode 1', 'prefill 1x16', 'decode 1', 'prefill 1x16', 'decode 1', 'prefill 1x16', 'decode 1', 'prefill 1x6', 'decode 2']);
  });

  it('prefills requests sent together before the first decode step, and stragglers within the admission gap too', async () => {
    const events: string[] = [];
    const scheduler = new GenerationScheduler(logged(events), { ...limits, prefillChunk: 64 });
    const cases = [30, 4, 28, 6, 50].map((length, i) => prompt(length, 40 + i));
    const runs = cases.slice(0, 4).map((ids) => submit(scheduler, ids, 8));
    // One more 3 ms later: within the 10 ms the scheduler waits for the next arrival of a burst.
    await new Promise((r) => setTimeout(r, 3));
    runs.push(submit(scheduler, cases[4], 8));
    await Promise.all(runs.map((r) => r.done));
    for (const [i, ids] of cases.entries()) expect(runs[i].tokens, `request ${i}`).toEqual(await greedyAlone(ids, 8));
    const first = events.findIndex((e) => e.startsWith('decode'));
    // Similar lengths share a pass (rows left-padded to the longest), each pass within one budget of 64 tokens.
    expect(events.slice(0, first)).toEqual(['prefill 2x30', 'prefill 2x6', 'prefill 1x50']);
    expect(events.slice(first)).toEqual(Array(7).fill('decode 5'));
  });

  it('frees a cancelled request at the next step, queued or running', async () => {
    const scheduler = new GenerationScheduler(decoder, { ...limits, maxBatch: 1 });
    const running = new AbortController();
    const queued = new AbortController();
    const a = submit(scheduler, prompt(6, 5), 400, { signal: running.signal, onToken: (t) => t.length === 3 && running.abort() });
    const b = submit(scheduler, prompt(6, 6), 400, { signal: queued.signal });
    queued.abort();
    const c = submit(scheduler, prompt(6, 7), 4);
    const [endA, endB, endC] = await Promise.all([a.done, b.done, c.done]);
    expect([endA.reason, endB.reason, endC.reason]).toEqual(['cancelled', 'cancelled', 'length']);
    expect(endA.completionTokens).toBeLessThanOrEqual(4);
    expect(endB.completionTokens).toBe(0);
  });

  it('ends at a stop token', async () => {
    const scheduler = new GenerationScheduler(decoder, limits);
    const ids = prompt(10, 8);
    const reference = await greedyAlone(ids, 6);
    const c = collector();
    scheduler.submit({ promptIds: ids, maxTokens: 50, sampling: GREEDY, stopTokenIds: [reference[3]], sink: c.sink });
    const end = await c.done;
    expect(end.reason).toBe('stop');
    expect(c.tokens).toEqual(reference.slice(0, reference.indexOf(reference[3])));
  });

  it('gives a seeded request the same tokens alone and among others', async () => {
    const scheduler = new GenerationScheduler(decoder, limits);
    const sampling = { ...GREEDY, temperature: 1, topP: 0.95, seed: 1234 };
    const ids = prompt(12, 9);
    const alone = submit(scheduler, ids, 20, { sampling });
    await alone.done;
    const neighbours = [prompt(30, 10), prompt(2, 13)].map((p) => submit(scheduler, p, 25, { sampling: { ...sampling, seed: 99 } }));
    const together = submit(scheduler, ids, 20, { sampling });
    await Promise.all([together.done, ...neighbours.map((n) => n.done)]);
    expect(together.tokens).toEqual(alone.tokens);
  });

  it('prefills an n-group once and gives each member the tokens it would get alone', async () => {
    const ids = prompt(40, 21);
    const seeds = [5, 6, 7, 8];
    const sampling = (seed: number) => ({ ...GREEDY, temperature: 1, seed });
    const singles = seeds.map((seed) => submit(new GenerationScheduler(decoder, limits), ids, 12, { sampling: sampling(seed) }));
    await Promise.all(singles.map((c) => c.done));

    // Count the prompt tokens that reach the model: the group's prompt goes through once, not four times.
    let prefilled = 0;
    const counting = Object.create(decoder) as DecoderSession;
    counting.forward = (inputIds, mask, positions, cache) => {
      prefilled += inputIds.length;
      return decoder.forward(inputIds, mask, positions, cache);
    };
    const scheduler = new GenerationScheduler(counting, limits);
    const members = seeds.map(() => collector());
    scheduler.submitGroup(seeds.map((seed, i) => ({ promptIds: ids, maxTokens: 12, sampling: sampling(seed), stopTokenIds: [], sink: members[i].sink })));
    await Promise.all(members.map((m) => m.done));
    expect(prefilled).toBe(ids.length);
    expect(members.map((m) => m.tokens)).toEqual(singles.map((c) => c.tokens));
    expect(new Set(members.map((m) => m.tokens.join())).size).toBeGreaterThan(1);
  });

  it('masks the logits through a request’s processor, prepared before each step', async () => {
    const scheduler = new GenerationScheduler(decoder, limits);
    const allowed = [17, 42, 99];
    let prepared = 0;
    const seen: number[] = [];
    const c = collector();
    scheduler.submit({
      promptIds: prompt(9, 3),
      maxTokens: 10,
      sampling: { ...GREEDY, temperature: 1, seed: 3 },
      stopTokenIds: [],
      sink: c.sink,
      processor: {
        prepare: () => void prepared++,
        apply: (row) => row.forEach((_, t) => !allowed.includes(t) && (row[t] = -Infinity)),
        accept: (t) => void seen.push(t),
      },
    });
    await c.done;
    expect(c.tokens.every((t) => allowed.includes(t))).toBe(true);
    expect(seen).toEqual(c.tokens);
    expect(prepared).toBe(10);
  });

  it('ends only the row whose processor fails (at prefill or mid-decode); the rows beside it get their solo greedy tokens', async () => {
    const scheduler = new GenerationScheduler(decoder, limits);
    const failing = (after: number) => {
      const c = collector();
      let steps = 0;
      const processor = {
        prepare: async () => {
          if (steps++ === after) throw new Error(`grammar gone at step ${after}`);
        },
        apply: () => undefined,
        accept: () => undefined,
      };
      scheduler.submit({ promptIds: prompt(7, 8 + after), maxTokens: 20, sampling: GREEDY, stopTokenIds: [], sink: c.sink, processor });
      return c;
    };
    const plainIds = prompt(6, 7);
    const plain = submit(scheduler, plainIds, 20);
    const [atPrefill, midDecode] = [failing(0), failing(5)];
    const [a, b, p] = await Promise.all([atPrefill.done, midDecode.done, plain.done]);
    expect([a.reason, a.error?.message, atPrefill.tokens.length]).toEqual(['error', 'grammar gone at step 0', 0]);
    expect([b.reason, b.error?.message, midDecode.tokens.length]).toEqual(['error', 'grammar gone at step 5', 5]);
    expect(p.reason).toBe('length');
    expect(plain.tokens).toEqual(await greedyAlone(plainIds, 20));
  });

  it('puts batch-lane requests behind interactive ones, and hands an interactive arrival a batch row at the next step', async () => {
    const events: string[] = [];
    const prefixes = new PrefixCache(64 * 2 ** 20, decoder.model.manifest.num_kv_heads, decoder.model.manifest.head_dim);
    const scheduler = new GenerationScheduler(logged(events), { ...limits, maxBatch: 4 }, undefined, prefixes);
    const lane = (promptIds: number[], maxTokens: number, batch: boolean, onToken?: (t: number[]) => void) => {
      const c = collector(onToken);
      scheduler.submit({ promptIds, maxTokens, sampling: GREEDY, stopTokenIds: [], sink: c.sink, lane: batch ? 'batch' : 'interactive' });
      return c;
    };
    const batchIds = [0, 1, 2, 3, 4, 5].map((i) => prompt(20 + i, 60 + i));
    let started!: () => void;
    const decoding = new Promise<void>((r) => (started = r));
    // Six batch lines for four rows: two wait in the batch lane.
    const batch = batchIds.map((ids, i) => lane(ids, 30, true, i === 0 ? (t) => t.length === 5 && started() : undefined));
    await decoding;
    const submittedAt = events.length;
    let firstTokenAt = -1;
    const interactiveIds = prompt(9, 70);
    const interactive = lane(interactiveIds, 6, false, (t) => t.length === 1 && (firstTokenAt = events.length));
    await Promise.all([interactive.done, ...batch.map((b) => b.done)]);
    // At most the decode step under way, then the interactive prompt's own prefill: no batch line finishes first.
    expect(events.slice(submittedAt, firstTokenAt).filter((e) => e.startsWith('decode')).length).toBeLessThanOrEqual(1);
    expect(events[firstTokenAt - 1]).toBe('prefill 1x9');
    expect(scheduler.preempted).toBeGreaterThanOrEqual(1);
    expect(scheduler.cacheChanges.inPlace).toBeGreaterThanOrEqual(1);
    // The preempted line resumed from its prompt and tokens (its keys/values from the prefix cache) and lost nothing.
    expect(prefixes.hits).toBeGreaterThanOrEqual(1);
    // ...and rejoined at a decode step, without a prefill pass of its own (one column for one row).
    expect(events.filter((e) => e === 'prefill 1x1')).toEqual([]);
    expect(interactive.tokens).toEqual(await greedyAlone(interactiveIds, 6));
    for (const [i, ids] of batchIds.entries()) expect(batch[i].tokens, `batch line ${i}`).toEqual(await greedyAlone(ids, 30));
  });

  it('hands rows to the prefix cache at the step that finishes them, so a request waiting with the same prompt starts from them', async () => {
    const events: string[] = [];
    const prefixes = new PrefixCache(64 * 2 ** 20, decoder.model.manifest.num_kv_heads, decoder.model.manifest.head_dim);
    const scheduler = new GenerationScheduler(logged(events), { ...limits, maxBatch: 2 }, undefined, prefixes);
    const ids = prompt(20, 120);
    const line = () => {
      const c = collector();
      scheduler.submit({ promptIds: ids, maxTokens: 6, sampling: GREEDY, stopTokenIds: [], sink: c.sink, lane: 'batch' });
      return c;
    };
    // Two rows; the third line waits for one and starts once they have finished.
    const runs = [line(), line(), line()];
    await Promise.all(runs.map((r) => r.done));
    expect(prefixes.hits).toBe(1);
    // ...and joins the next decode step with its prompt's last token, without a prefill pass of its own.
    expect(events.filter((e) => e.startsWith('prefill'))).toEqual(['prefill 2x20']);
    // An interactive request with the same prompt reuses it too, in a pass of its own (its first token sooner).
    runs.push(submit(scheduler, ids, 6));
    await runs[3].done;
    expect(prefixes.hits).toBe(2);
    expect(events.filter((e) => e.startsWith('prefill'))).toEqual(['prefill 2x20', 'prefill 1x1']);
    const reference = await greedyAlone(ids, 6);
    for (const r of runs) expect(r.tokens).toEqual(reference);
  });

  it('holds the next step behind batch-lane rows for an announced interactive request until it is queued', async () => {
    const events: string[] = [];
    const scheduler = new GenerationScheduler(logged(events), { ...limits, maxBatch: 4 });
    const lines = [0, 1, 2, 3].map((i) => {
      const c = collector();
      scheduler.submit({ promptIds: prompt(12, 100 + i), maxTokens: 60, sampling: GREEDY, stopTokenIds: [], sink: c.sink, lane: 'batch' });
      return c;
    });
    while (!events.includes('decode 4')) await new Promise((r) => setTimeout(r, 1));
    const announced = events.length;
    const queued = scheduler.arriving();
    // Reading and preparing a request takes a few turns of the event loop.
    for (let turn = 0; turn < 4; turn++) await new Promise((r) => setImmediate(r));
    const stepsMeanwhile = events.slice(announced).filter((e) => e.startsWith('decode')).length;
    const interactive = collector();
    scheduler.submit({ promptIds: prompt(6, 110), maxTokens: 3, sampling: GREEDY, stopTokenIds: [], sink: interactive.sink });
    queued();
    await Promise.all([interactive.done, ...lines.map((l) => l.done)]);
    // At most the step that was under way: without the hold, each turn of the loop is a step of the batch.
    expect(stepsMeanwhile).toBeLessThanOrEqual(1);
  });

  it('stops the batch-lane step under way for an interactive request, whose prefill goes next; no row loses a token', async () => {
    const events: string[] = [];
    const stepper = logged(events);
    const scheduler = new GenerationScheduler(stepper, { ...limits, maxBatch: 4 });
    const batchIds = [0, 1, 2, 3].map((i) => prompt(12 + i, 130 + i));
    const batch = batchIds.map((ids) => {
      const c = collector();
      scheduler.submit({ promptIds: ids, maxTokens: 20, sampling: GREEDY, stopTokenIds: [], sink: c.sink, lane: 'batch' });
      return c;
    });
    const interactiveIds = prompt(9, 140);
    const interactive = collector((t) => t.length === 1 && (firstToken = { at: events.length, batchTokens: batch[0].tokens.length }));
    let firstToken = { at: -1, batchTokens: -1 };
    let submitted = { at: -1, batchTokens: -1 };
    // The request arrives as the sixth step of the batch starts (its signal made, its run not begun; ort-binding.test.ts
    // stops a run in flight).
    const stepOf = stepper.decodeInPlace;
    stepper.decodeInPlace = (...args) => {
      if (events.filter((e) => e === 'decode 4').length === 5 && submitted.at < 0) {
        submitted = { at: events.length, batchTokens: batch[0].tokens.length };
        scheduler.submit({ promptIds: interactiveIds, maxTokens: 6, sampling: GREEDY, stopTokenIds: [], sink: interactive.sink });
      }
      return stepOf(...args);
    };
    await Promise.all([interactive.done, ...batch.map((b) => b.done)]);
    expect(scheduler.interrupted).toBe(1);
    // The interrupted step, then the request's own prefill, which gives its first token: no batch token in between.
    expect(events.slice(submitted.at, firstToken.at)).toEqual(['decode 4', 'prefill 1x9']);
    expect(firstToken.batchTokens).toBe(submitted.batchTokens);
    expect(interactive.tokens).toEqual(await greedyAlone(interactiveIds, 6));
    for (const [i, ids] of batchIds.entries()) expect(batch[i].tokens, `batch line ${i}`).toEqual(await greedyAlone(ids, 20));
  });

  it('sets a batch-lane prefill aside for an interactive request arriving in its pass, and resumes it where it was', async () => {
    const events: string[] = [];
    const stepper = logged(events);
    const scheduler = new GenerationScheduler(stepper, { ...limits, prefillChunk: 16 });
    const lineIds = prompt(20, 150);
    const line = collector();
    const interactiveIds = prompt(9, 151);
    const interactive = collector();
    const passOf = stepper.forward;
    // The request arrives as the line's second prefill pass (its last 4 columns) starts.
    stepper.forward = (...args) => {
      if (events.length === 1) scheduler.submit({ promptIds: interactiveIds, maxTokens: 4, sampling: GREEDY, stopTokenIds: [], sink: interactive.sink });
      return passOf(...args);
    };
    scheduler.submit({ promptIds: lineIds, maxTokens: 8, sampling: GREEDY, stopTokenIds: [], sink: line.sink, lane: 'batch' });
    await Promise.all([interactive.done, line.done]);
    expect(scheduler.interrupted).toBe(1);
    // The line's first 16 columns are kept: after the request's prefill it runs the interrupted last 4 again, not all 20.
    expect(events.filter((e) => e.startsWith('prefill'))).toEqual(['prefill 1x16', 'prefill 1x4', 'prefill 1x9', 'prefill 1x4']);
    expect(interactive.tokens).toEqual(await greedyAlone(interactiveIds, 4));
    expect(line.tokens).toEqual(await greedyAlone(lineIds, 8));
  });

  it('does not count batch-lane requests against --max-queue', () => {
    const scheduler = new GenerationScheduler(decoder, { ...limits, maxBatch: 1, maxQueue: 1 });
    const sink = collector().sink;
    for (let i = 0; i < 4; i++) scheduler.submit({ promptIds: prompt(4, 80 + i), maxTokens: 2, sampling: GREEDY, stopTokenIds: [], sink, lane: 'batch' });
    scheduler.submit({ promptIds: prompt(4, 90), maxTokens: 2, sampling: GREEDY, stopTokenIds: [], sink });
    expect(() => scheduler.submit({ promptIds: prompt(4, 91), maxTokens: 2, sampling: GREEDY, stopTokenIds: [], sink })).toThrow(/queue is full/);
    return scheduler.idle();
  });

  it('refuses what cannot run, and holds newcomers back under --max-tokens-total', async () => {
    const small = new GenerationScheduler(decoder, { ...limits, maxBatch: 1, maxQueue: 1 });
    const reject = (f: () => void) => {
      try {
        f();
      } catch (e) {
        return (e as EngineRejection).code;
      }
    };
    const a = submit(small, prompt(4, 1), 30);
    const b = submit(small, prompt(4, 2), 30);
    expect(reject(() => submit(small, prompt(4, 3), 30))).toBe('queue_full');
    expect(reject(() => submit(small, prompt(500, 3), 20))).toBe('context_length_exceeded');
    expect(reject(() => submit(small, [], 20))).toBe('empty_prompt');
    await Promise.all([a.done, b.done]);

    const rows: number[] = [];
    const tight = new GenerationScheduler(decoder, { ...limits, maxTokensTotal: 60 }, (n) => rows.push(n));
    expect(reject(() => submit(tight, prompt(10, 4), 51))).toBe('too_many_tokens');
    await Promise.all([submit(tight, prompt(10, 5), 30).done, submit(tight, prompt(10, 6), 30).done]);
    expect(Math.max(...rows)).toBe(1);
  });
});

describe('batch cache rows', () => {
  /** A cache whose value at (row, head, position, dim) encodes row and position, 0 on padding. */
  function cache(batch: number, length: number, real: number[], tag: number): BatchCache {
    const data = new Float32Array(batch * 2 * length * 3);
    for (let b = 0; b < batch; b++)
      for (let h = 0; h < 2; h++) for (let p = length - real[b]; p < length; p++) for (let d = 0; d < 3; d++) data[((b * 2 + h) * length + p) * 3 + d] = tag + b * 100 + (p - (length - real[b])) + 1;
    return { batch, length, layers: [{ key: data, value: data.map((x) => -x) }] };
  }

  it('merges rows of different lengths right-aligned and trims padding no row needs', () => {
    const running = cache(2, 6, [6, 2], 0);
    const newcomer = cache(1, 3, [3], 1000);
    const merged = gatherRows(
      [
        { cache: running, rows: [1] },
        { cache: newcomer, rows: [0] },
      ],
      3,
      2,
      3,
    );
    expect(merged.batch).toBe(2);
    expect(merged.length).toBe(3);
    const at = (b: number, h: number, p: number) => merged.layers[0].key[((b * 2 + h) * 3 + p) * 3];
    // Row 1 of the running batch had 2 real tokens: now one padding position, then its tokens.
    expect([0, 1, 2].map((p) => at(0, 1, p))).toEqual([0, 101, 102]);
    expect([0, 1, 2].map((p) => at(1, 0, p))).toEqual([1001, 1002, 1003]);
    expect(merged.layers[0].value[((1 * 2 + 0) * 3 + 2) * 3]).toBe(-1003);
  });

  it('lets rows leave and join in place: a kept row fills each hole, newcomers end at the cache length', () => {
    const running = gatherRows([{ cache: cache(4, 4, [4, 2, 3, 1], 0), rows: [0, 1, 2, 3] }], 4, 2, 3, 6, 5);
    expect([running.slots, running.capacity, running.layers[0].key.length]).toEqual([5, 6, 4 * 2 * 6 * 3]);
    const buffer = running.layers[0].key.buffer;
    const newcomers = cache(2, 3, [3, 2], 1000);
    // Rows 0 and 2 leave; row 3 takes slot 0, and both newcomers join behind the kept rows.
    const regrouped = regroupInPlace(running, [1, 3], [{ cache: newcomers, rows: [0, 1], cached: [3, 2] }], 2, 3)!;
    expect(regrouped.kept).toEqual([3, 1]);
    expect(regrouped.cache.layers[0].key.buffer).toBe(buffer);
    expect([regrouped.cache.batch, regrouped.cache.length]).toEqual([4, 4]);
    const at = (b: number, h: number, p: number) => regrouped.cache.layers[0].key[((b * 2 + h) * 6 + p) * 3];
    const row = (b: number) => [0, 1, 2, 3, 4, 5].map((p) => at(b, 1, p));
    expect(row(0)).toEqual([0, 0, 0, 301, 0, 0]);
    expect(row(1)).toEqual([0, 0, 101, 102, 0, 0]);
    expect(row(2)).toEqual([0, 1001, 1002, 1003, 0, 0]);
    expect(row(3)).toEqual([0, 0, 1101, 1102, 0, 0]);
    expect(regrouped.cache.layers[0].value[((2 * 2 + 1) * 6 + 3) * 3]).toBe(-1003);
    // No room: more rows than slots, or a newcomer longer than the cache.
    expect(regroupInPlace(running, [0, 1, 2, 3], [{ cache: newcomers, rows: [0, 1], cached: [3, 2] }], 2, 3)).toBeUndefined();
    expect(regroupInPlace(running, [0], [{ cache: cache(1, 5, [5], 0), rows: [0], cached: [5] }], 2, 3)).toBeUndefined();
  });

  it('places joining rows from column 0 when rows decode from their own columns', () => {
    const running = gatherRows([{ cache: cache(2, 4, [4, 2], 0), rows: [0, 1] }], 4, 2, 3, 6, 4);
    const newcomers = cache(2, 5, [5, 2], 1000);
    const regrouped = regroupInPlace(running, [0], [{ cache: newcomers, rows: [0, 1], cached: [5, 2] }], 2, 3, 'own')!;
    expect(regrouped.columns).toEqual([5, 2]);
    expect([regrouped.cache.batch, regrouped.cache.length]).toEqual([3, 5]);
    const row = (b: number) => [0, 1, 2, 3, 4, 5].map((p) => regrouped.cache.layers[0].key[((b * 2 + 1) * 6 + p) * 3]);
    expect(row(0)).toEqual([1, 2, 3, 4, 0, 0]);
    expect(row(1)).toEqual([1001, 1002, 1003, 1004, 1005, 0]);
    expect(row(2)).toEqual([1101, 1102, 0, 0, 0, 0]);
    // A row needs a column to decode into: 6 real tokens do not join a cache of 6 columns.
    expect(regroupInPlace(running, [0], [{ cache: cache(1, 6, [6], 0), rows: [0], cached: [6] }], 2, 3, 'own')).toBeUndefined();
  });

  it('changes a cache’s stride in its own arrays, each row keeping its columns', () => {
    const running = gatherRows([{ cache: cache(3, 4, [4, 2, 3], 0), rows: [0, 1, 2] }], 4, 2, 3, 5, 3, 9);
    const buffer = running.layers[0].key.buffer;
    const wider = restrideInPlace(running, 9, 2, 3)!;
    expect(wider.layers[0].key.buffer).toBe(buffer);
    const row = (c: BatchCache, b: number, h: number) => Array.from({ length: 4 }, (_, p) => c.layers[0].key[((b * 2 + h) * c.capacity! + p) * 3 + 2]);
    const rows = (c: BatchCache) => [0, 1, 2].flatMap((b) => [0, 1].map((h) => row(c, b, h)));
    const before = [
      [1, 2, 3, 4],
      [1, 2, 3, 4],
      [0, 0, 101, 102],
      [0, 0, 101, 102],
      [0, 201, 202, 203],
      [0, 201, 202, 203],
    ];
    expect([wider.capacity, wider.layers[0].key.length]).toEqual([9, 3 * 2 * 9 * 3]);
    expect(rows(wider)).toEqual(before);
    const narrower = restrideInPlace(wider, 4, 2, 3)!;
    expect(rows(narrower)).toEqual(before);
    expect(narrower.layers[0].value[((2 * 2 + 1) * 4 + 3) * 3]).toBe(-203);
    // More columns than the arrays hold: the caller regathers.
    expect(restrideInPlace(running, 10, 2, 3)).toBeUndefined();
  });
});
