import { describe, expect, it } from 'vitest';
import { bestLength, DRAFT_LENGTH_DEFAULTS, DraftLength } from '../../src/engine/draft-length.js';
import { proposeFromContext } from '../../src/engine/draft-ngram.js';
import { Random } from '../../src/engine/random.js';
import { GREEDY, TokenSampler, type SamplingParams } from '../../src/engine/sampling.js';

const logitsOf = (probs: number[]) => Float32Array.from(probs, Math.log);

/** Pearson's chi-square of observed counts against expected probabilities. */
function chiSquare(counts: number[], probs: number[]): number {
  const n = counts.reduce((a, b) => a + b, 0);
  return counts.reduce((x, c, i) => (probs[i] > 0 ? x + (c - n * probs[i]) ** 2 / (n * probs[i]) : x + (c > 0 ? Infinity : 0)), 0);
}

/** Emits `n` tokens through verify() with drafts drawn from q (or always `fixed`); returns counts and acceptances. */
function verifyMany(params: Partial<SamplingParams>, p: number[], q: number[] | undefined, fixed: number, n: number) {
  const sampler = new TokenSampler({ ...GREEDY, temperature: 1, seed: 7, ...params }, []);
  const drafts = new Random(11);
  const counts = p.map(() => 0);
  let accepted = 0;
  for (let i = 0; i < n; i++) {
    let draft = fixed;
    if (q) for (let u = drafts.next(), j = 0; j < q.length; j++) if ((u -= q[j]) < 0 || j === q.length - 1) (draft = j), (j = q.length);
    const token = sampler.verify(logitsOf(p), draft, q && ((t) => q[t]));
    counts[token]++;
    if (token === draft) accepted++;
  }
  return { counts, acceptance: accepted / n };
}

// df = 4: chi-square above 18.47 has probability 0.001 when the emitted tokens follow p.
const CRITICAL_DF4 = 18.47;

describe('n-gram proposals (prompt lookup)', () => {
  it('proposes what followed the latest earlier match of the longest suffix', () => {
    const context = [1, 2, 3, 4, 5, 9, 2, 3, 4, 6, 7, 8, 2, 3, 4];
    // "2 3 4" occurs at 1 and 6; the latest (6) is followed by 6 7 8.
    expect(proposeFromContext(context, 3)).toEqual([6, 7, 8]);
    expect(proposeFromContext(context, 10)).toEqual([6, 7, 8, 2, 3, 4]);
    expect(proposeFromContext(context, 0)).toEqual([]);
  });

  it('falls back to shorter suffixes, never below the minimum', () => {
    expect(proposeFromContext([5, 6, 7, 1, 6, 7], 2)).toEqual([1, 6]);
    expect(proposeFromContext([5, 6, 7, 1, 2, 7], 2)).toEqual([]);
    expect(proposeFromContext([5, 6, 7, 1, 2, 7], 2, { maxNgram: 3, minNgram: 1 })).toEqual([1, 2]);
    expect(proposeFromContext([3], 4)).toEqual([]);
  });

  it('continues a run of one repeated token', () => {
    expect(proposeFromContext([8, 8, 8, 8], 3)).toEqual([8]);
  });
});

describe('verification (the rejection rule)', () => {
  const p = [0.4, 0.3, 0.15, 0.1, 0.05];

  it('keeps the argmax for greedy requests, whatever the draft', () => {
    const sampler = new TokenSampler(GREEDY, []);
    expect([0, 1, 4].map((d) => sampler.verify(logitsOf(p), d))).toEqual([0, 0, 0]);
  });

  it('emits tokens that follow the target distribution with a one-hot draft, accepting it with probability p(draft)', () => {
    const { counts, acceptance } = verifyMany({}, p, undefined, 2, 20_000);
    expect(chiSquare(counts, p)).toBeLessThan(CRITICAL_DF4);
    expect(acceptance).toBeCloseTo(0.15, 1);
  });

  it('emits tokens that follow the target distribution with a sampled draft q, accepting Σ min(p, q) of them', () => {
    const q = [0.1, 0.1, 0.2, 0.3, 0.3];
    const { counts, acceptance } = verifyMany({}, p, q, -1, 20_000);
    expect(chiSquare(counts, p)).toBeLessThan(CRITICAL_DF4);
    const overlap = p.reduce((a, pi, i) => a + Math.min(pi, q[i]), 0);
    expect(Math.abs(acceptance - overlap)).toBeLessThan(0.02);
    // The test can fail: accepting every draft gives q's distribution, far from p.
    expect(
      chiSquare(
        q.map((x) => x * 20_000),
        p,
      ),
    ).toBeGreaterThan(CRITICAL_DF4 * 100);
  });

  it('follows temperature and top-k as sample() does', () => {
    const params = { temperature: 0.5, topK: 3 };
    const scaled = p.slice(0, 3).map((x) => x ** 2);
    const target = [...scaled.map((x) => x / scaled.reduce((a, b) => a + b)), 0, 0];
    const { counts } = verifyMany(params, p, [0.2, 0.2, 0.2, 0.2, 0.2], -1, 20_000);
    expect(counts[3] + counts[4]).toBe(0);
    expect(chiSquare(counts.slice(0, 3), target.slice(0, 3))).toBeLessThan(13.82); // df = 2, p = 0.001
  });
});

describe('adaptive draft length', () => {
  it('drafts more as drafts are accepted and fewer as they are rejected', () => {
    const length = new DraftLength();
    const start = length.k;
    for (let i = 0; i < 10; i++) length.record(length.k, length.k);
    expect(length.k).toBe(DRAFT_LENGTH_DEFAULTS.maxK);
    for (let i = 0; i < 10; i++) length.record(length.k, 0);
    expect(length.k).toBe(1);
    expect(start).toBeGreaterThan(1);
    expect(length.proposed).toBeGreaterThan(length.accepted);
  });

  it('picks the k with the most tokens per unit of cost', () => {
    expect(bestLength(0.9, { ...DRAFT_LENGTH_DEFAULTS, costPerToken: 0.05 })).toBe(8);
    expect(bestLength(0.3, DRAFT_LENGTH_DEFAULTS)).toBeLessThanOrEqual(2);
    expect(bestLength(0.9, { ...DRAFT_LENGTH_DEFAULTS, costPerToken: 1 })).toBe(1);
  });
});
