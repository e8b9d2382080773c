import { describe, expect, it } from 'vitest';
import { fits, groupForPrefill, planEviction, PrefillBudget, queuePosition, type WaitingRequest } from '../../src/engine/batch-plan.js';

/** The scheduler's policy on numbers alone: no model, no tensors (the scheduler's own tests run it on real weights). */

const LIMITS = { maxBatch: 8, maxTokensTotal: 10_000, prefillChunk: 256 };
const EMPTY = { rows: 0, tokens: 0 };
/** A one-row request with this prompt length and 32 new tokens at most. */
const prompt = (length: number, rows = 1): WaitingRequest => ({ prefillLength: length, tokens: (length + 32) * rows, rows });

describe('groupForPrefill', () => {
  it('groups prompts of similar length, left-padded to the longest', () => {
    expect(groupForPrefill([prompt(10), prompt(12), prompt(11)], EMPTY, LIMITS)).toEqual({ picked: [0, 1, 2], width: 12 });
  });

  it('keeps padding under a quarter of the group: a short prompt waits for the next job, a later similar one joins', () => {
    // 100 and 10 padded to 2 × 100 = 200 columns for 110 real tokens: too much padding.
    expect(groupForPrefill([prompt(100), prompt(10)], EMPTY, LIMITS)).toEqual({ picked: [0], width: 100 });
    // 100 and 90: 200 for 190 real tokens.
    expect(groupForPrefill([prompt(100), prompt(10), prompt(90)], EMPTY, LIMITS)).toEqual({ picked: [0, 2], width: 100 });
  });

  it('fits a job into one prefill budget of padded columns, but always takes the head', () => {
    expect(groupForPrefill([prompt(100), prompt(100), prompt(100)], EMPTY, LIMITS).picked).toEqual([0, 1]);
    expect(groupForPrefill([prompt(600), prompt(600)], EMPTY, LIMITS)).toEqual({ picked: [0], width: 600 });
  });

  it('takes only what fits the free rows and the token limit, and never lets a later request overtake a head that does not fit', () => {
    const limits = { ...LIMITS, maxBatch: 4, maxTokensTotal: 500 };
    expect(groupForPrefill([prompt(10, 2), prompt(10)], { rows: 3, tokens: 0 }, limits).picked).toEqual([]);
    expect(groupForPrefill([prompt(10), prompt(10, 2), prompt(10)], { rows: 2, tokens: 0 }, limits).picked).toEqual([0, 2]);
    expect(groupForPrefill([prompt(100), prompt(10)], { rows: 0, tokens: 400 }, limits).picked).toEqual([]);
    // A later request over the token limit is passed over; the one after it still joins.
    expect(groupForPrefill([prompt(10), prompt(20), prompt(12)], { rows: 0, tokens: 410 }, limits).picked).toEqual([0, 2]);
    expect(fits(prompt(10), { rows: 0, tokens: 458 }, limits)).toBe(true);
    expect(fits(prompt(10), { rows: 0, tokens: 459 }, limits)).toBe(false);
  });
});

/** Columns each pass takes over `steps` steps, for jobs of the given rows × width, one after another. */
function passes(chunk: number, decoding: boolean, jobs: { rows: number; width: number }[], steps: number): number[][] {
  const left = jobs.map((j) => j.width);
  const out: number[][] = [];
  for (let step = 0; step < steps; step++) {
    const budget = new PrefillBudget(chunk, decoding);
    const taken: number[] = [];
    for (let j = left.findIndex((w) => w > 0); j >= 0; j = left.findIndex((w) => w > 0)) {
      const columns = budget.take(left[j], jobs[j].rows);
      if (!columns) break;
      left[j] -= columns;
      taken.push(columns);
    }
    out.push(taken);
  }
  return out;
}

describe('PrefillBudget', () => {
  it('while rows decode, prefills one budget of tokens between two decode steps', () => {
    expect(passes(256, true, [{ rows: 1, width: 600 }], 4)).toEqual([[256], [256], [88], []]);
    // Four rows share the budget: 64 columns each a step.
    expect(passes(256, true, [{ rows: 4, width: 100 }], 3)).toEqual([[64], [36], []]);
    // Two jobs in one step share it too: the second gets what the first left, by its rows.
    expect(
      passes(
        256,
        true,
        [
          { rows: 1, width: 100 },
          { rows: 2, width: 200 },
        ],
        3,
      ),
    ).toEqual([[100, 78], [122], []]);
  });

  it('with nothing decoding, gives every pass a whole budget: a burst is prefilled before the first decode step', () => {
    expect(passes(256, false, [{ rows: 1, width: 600 }], 1)).toEqual([[256, 256, 88]]);
    expect(
      passes(
        256,
        false,
        [
          { rows: 4, width: 100 },
          { rows: 1, width: 30 },
        ],
        1,
      ),
    ).toEqual([[64, 36, 30]]);
  });

  it('gives a job with more rows than the budget has tokens one column a step', () => {
    expect(passes(8, true, [{ rows: 12, width: 3 }], 4)).toEqual([[1], [1], [1], []]);
  });
});

describe('queuePosition', () => {
  it('puts interactive requests before the batch lane, and a preempted batch row first in its lane', () => {
    const queue = [false, false, true, true];
    expect(queuePosition(queue, false)).toBe(2);
    expect(queuePosition(queue, true)).toBe(4);
    expect(queuePosition(queue, true, true)).toBe(2);
    expect(queuePosition([false], false)).toBe(1);
    expect(queuePosition([], true, true)).toBe(0);
  });
});

describe('planEviction', () => {
  const limits = { maxBatch: 4, maxTokensTotal: 1000 };
  const row = (tokens: number, preemptible = true, live = true) => ({ tokens, preemptible, live });

  it('evicts nothing when the head fits', () => {
    expect(planEviction({ rows: 1, tokens: 100 }, { rows: 3, tokens: 300 }, limits, undefined, [row(100), row(100), row(100)])).toBeUndefined();
  });

  it('takes a batch-lane job first, then batch-lane rows from the last to join, skipping interactive and finished ones', () => {
    const running = [row(100), row(100, false), row(100), row(100, true, false)];
    expect(planEviction({ rows: 1, tokens: 100 }, { rows: 4, tokens: 400 }, limits, undefined, running)).toEqual({ job: false, running: [2] });
    expect(planEviction({ rows: 2, tokens: 100 }, { rows: 4, tokens: 400 }, limits, undefined, running)).toEqual({ job: false, running: [2, 0] });
    expect(planEviction({ rows: 1, tokens: 100 }, { rows: 4, tokens: 400 }, limits, [row(50)], running)).toEqual({ job: true, running: [] });
    // A job with an interactive row stays.
    expect(planEviction({ rows: 1, tokens: 100 }, { rows: 4, tokens: 400 }, limits, [row(50), row(50, false)], running)).toEqual({ job: false, running: [2] });
  });

  it('makes room for tokens as for rows, and evicts nothing when even every candidate would not make room', () => {
    const running = [row(300), row(300), row(300, false)];
    expect(planEviction({ rows: 1, tokens: 500 }, { rows: 3, tokens: 900 }, limits, undefined, running)).toEqual({ job: false, running: [1, 0] });
    expect(planEviction({ rows: 1, tokens: 800 }, { rows: 3, tokens: 900 }, limits, undefined, running)).toBeUndefined();
    expect(planEviction({ rows: 3, tokens: 10 }, { rows: 3, tokens: 900 }, limits, undefined, running)).toEqual({ job: false, running: [1, 0] });
    expect(planEviction({ rows: 4, tokens: 10 }, { rows: 3, tokens: 900 }, limits, undefined, running)).toBeUndefined();
  });
});
