import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import type { SchedulerLimits } from '../../src/engine/admission.js';
import { GenerationScheduler } from '../../src/engine/generation-scheduler.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { Random } from '../../src/engine/random.js';
import { GREEDY } from '../../src/engine/sampling.js';
import { StepTimeout, type WatchdogEvent } from '../../src/engine/step-watchdog.js';
import { exportedTinyModel } from '../helpers/models.js';
import { collector } from '../helpers/token-sink.js';

const STEP_MS = 400;
const limits: SchedulerLimits = { maxBatch: 8, maxQueue: 16, maxTokensTotal: 8 * 512, prefillChunk: 256, stepTimeoutMs: STEP_MS };

const prompt = (length: number, seed: number) => {
  const random = new Random(seed);
  return Array.from({ length }, () => 4 + Math.floor(random.next() * 700));
};

/** A promise that settles when `release` is called: a step stuck in ONNX Runtime until then. */
function stuck() {
  let release!: () => void;
  const until = new Promise<void>((r) => (release = r));
  return { until, release };
}

/**
 * The scheduler's watchdog with faults injected into the real decoder (tiny model, real ONNX Runtime): a decode
 * step that hangs, a prefill pass that hangs, a row whose client throws mid-batch, a fault in the scheduler's
 * own bookkeeping, and a loop that stops going round. Every request ends (none left waiting), the slots are
 * free, the engine says it is unavailable until a step completes, and the next request is served.
 */
describe('step watchdog', () => {
  let decoder: DecoderSession;
  beforeAll(async () => {
    decoder = await DecoderSession.open(loadExportedModel(await exportedTinyModel()), { device: 'cpu', logits: 'last' });
  });
  afterAll(() => decoder.release());

  /** The real decoder, whose next decode step (or prefill pass) waits for `hang` before it runs. */
  function faulty(hang: { decode?: Promise<void>; prefill?: Promise<void> }): DecoderSession {
    const wrapped = Object.create(decoder) as DecoderSession;
    wrapped.decodeInPlace = (...args) => {
      const held = hang.decode;
      hang.decode = undefined;
      return held ? held.then(() => decoder.decodeInPlace(...args)) : decoder.decodeInPlace(...args);
    };
    wrapped.forward = (...args) => {
      const held = hang.prefill;
      hang.prefill = undefined;
      return held ? held.then(() => decoder.forward(...args)) : decoder.forward(...args);
    };
    return wrapped;
  }

  const submit = (scheduler: GenerationScheduler, seed: number, maxTokens = 40, onToken?: (t: number[]) => void) => {
    const c = collector(onToken);
    scheduler.submit({ promptIds: prompt(6, seed), maxTokens, sampling: GREEDY, stopTokenIds: [], sink: c.sink });
    return c;
  };

  it('fails every row of a decode step that does not return, frees their slots, is unavailable until a step completes, then serves', async () => {
    const events: WatchdogEvent[] = [];
    const hang: { decode?: Promise<void> } = {};
    const scheduler = new GenerationScheduler(faulty(hang), limits, undefined, undefined, undefined, (e) => events.push(e));
    const held = stuck();
    const rows = [1, 2, 3].map((seed) => submit(scheduler, seed, 40, (t) => t.length === 3 && seed === 1 && (hang.decode ??= held.until)));
    const started = performance.now();
    const ends = await Promise.all(rows.map((r) => r.done));
    const waitedMs = performance.now() - started;
    for (const end of ends) {
      expect(end.reason).toBe('error');
      expect(end.error).toBeInstanceOf(StepTimeout);
      expect(end.error!.message).toBe(`the decode step did not return within ${STEP_MS / 1000} s: the server's watchdog ended this request; try again shortly`);
    }
    expect(waitedMs).toBeGreaterThanOrEqual(STEP_MS);
    expect(scheduler.batchSize).toBe(0);
    expect(scheduler.watchdog.unavailable).toMatch(/^the decode step did not return within 0.4 s at .*; waiting for a step to complete$/);
    expect(scheduler.watchdog.abandonedSteps).toBe(1);
    expect(events).toEqual([{ kind: 'stuck', message: 'the decode step did not return within 0.4 s', failed: 3 }]);

    // While the abandoned step is still out, a new request is served (a new cache) and the engine is ready again.
    const next = submit(scheduler, 4, 10);
    expect((await next.done).reason).toBe('length');
    expect(next.tokens).toHaveLength(10);
    expect(scheduler.watchdog.unavailable).toBeNull();
    expect(events[1]).toEqual({ kind: 'recovered', message: 'a prefill pass completed' });
    held.release();
    await new Promise((r) => setTimeout(r, 50));
    expect(scheduler.watchdog.abandonedSteps).toBe(0);
  });

  it('fails the rows of a prefill pass that does not return, and recovers when the abandoned pass returns', async () => {
    const events: WatchdogEvent[] = [];
    const held = stuck();
    const hang = { prefill: held.until as Promise<void> | undefined };
    const scheduler = new GenerationScheduler(faulty(hang), limits, undefined, undefined, undefined, (e) => events.push(e));
    const rows = [5, 6].map((seed) => submit(scheduler, seed));
    const ends = await Promise.all(rows.map((r) => r.done));
    expect(ends.map((e) => [e.reason, e.error?.message.split(':')[0]])).toEqual([
      ['error', 'the prefill pass did not return within 0.4 s'],
      ['error', 'the prefill pass did not return within 0.4 s'],
    ]);
    expect(scheduler.watchdog.unavailable).not.toBeNull();
    held.release();
    await new Promise((r) => setTimeout(r, 50));
    expect(scheduler.watchdog.unavailable).toBeNull();
    expect(events.map((e) => e.kind)).toEqual(['stuck', 'recovered']);
    expect(events[1].message).toBe('the abandoned step returned');
  });

  it('ends only the row whose client throws mid-batch; the others finish', async () => {
    const scheduler = new GenerationScheduler(decoder, limits);
    const rows = [7, 8, 9].map((seed) =>
      submit(scheduler, seed, 20, (t) => {
        if (seed === 8 && t.length === 4) throw new Error('the client stream broke');
      }),
    );
    const ends = await Promise.all(rows.map((r) => r.done));
    expect(ends.map((e) => e.reason)).toEqual(['length', 'error', 'length']);
    expect(ends[1].error!.message).toBe('the client stream broke');
    expect(rows.map((r) => r.tokens.length)).toEqual([20, 4, 20]);
    expect(scheduler.watchdog.unavailable).toBeNull();
  });

  it('fails every request on a fault outside any one row, reports it, and serves the next request', async () => {
    const events: WatchdogEvent[] = [];
    const scheduler = new GenerationScheduler(decoder, limits, undefined, undefined, undefined, (e) => events.push(e));
    const internals = scheduler as unknown as { rebuild: () => void };
    const rebuild = internals.rebuild.bind(scheduler);
    let steps = 0;
    internals.rebuild = () => {
      if (++steps === 5) throw new Error('bookkeeping fault');
      rebuild();
    };
    const rows = [10, 11].map((seed) => submit(scheduler, seed));
    const ends = await Promise.all(rows.map((r) => r.done));
    expect(ends.map((e) => [e.reason, e.error?.message])).toEqual([
      ['error', 'bookkeeping fault'],
      ['error', 'bookkeeping fault'],
    ]);
    expect(events).toEqual([{ kind: 'failed', message: 'bookkeeping fault', failed: 2 }]);
    const next = submit(scheduler, 12, 10);
    expect((await next.done).reason).toBe('length');
    expect(scheduler.batchSize).toBe(0);
  });

  it('fails what waits behind a loop that stops going round (outside any step) after twice the step limit', async () => {
    const events: WatchdogEvent[] = [];
    const scheduler = new GenerationScheduler(decoder, limits, undefined, undefined, undefined, (e) => events.push(e));
    const internals = scheduler as unknown as { prefill: () => Promise<void> };
    const held = stuck();
    internals.prefill = () => held.until;
    const rows = [13, 14].map((seed) => submit(scheduler, seed));
    const ends = await Promise.all(rows.map((r) => r.done));
    for (const end of ends) expect(end.error?.message).toMatch(/^the batch made no progress for \d+ s: the server's watchdog ended this request/);
    expect(events[0]).toMatchObject({ kind: 'stuck', failed: 2 });
    expect(scheduler.watchdog.unavailable).toMatch(/^the batch made no progress/);
    held.release();
  });
});
