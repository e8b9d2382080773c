import { describe, expect, it } from 'vitest';
import { Random } from '../../src/engine/random.js';
import { argmax, GREEDY, TokenSampler, topCandidates } from '../../src/engine/sampling.js';

const logitsOf = (probs: number[]) => Float32Array.from(probs, Math.log);
const draws = (params: Partial<typeof GREEDY>, logits: Float32Array, n: number) => {
  const sampler = new TokenSampler({ ...GREEDY, ...params }, []);
  return Array.from({ length: n }, () => sampler.sample(logits.slice()));
};

describe('sampling', () => {
  it('selects the top candidates in order without sorting everything', () => {
    const random = new Random(1);
    const values = Float32Array.from({ length: 5000 }, () => random.next());
    const sorted = Array.from(values.keys()).sort((a, b) => values[b] - values[a]);
    for (const m of [1, 7, 64, 5000]) expect(Array.from(topCandidates(values, m))).toEqual(sorted.slice(0, m));
    expect(argmax(values)).toBe(sorted[0]);
  });

  it('is greedy at temperature 0, with top_k 1, and with a tiny top_p', () => {
    const logits = logitsOf([0.1, 0.2, 0.4, 0.3]);
    expect(draws({}, logits, 3)).toEqual([2, 2, 2]);
    expect(draws({ temperature: 1, topK: 1, seed: 3 }, logits, 3)).toEqual([2, 2, 2]);
    expect(draws({ temperature: 1, topP: 0.01, seed: 3 }, logits, 3)).toEqual([2, 2, 2]);
  });

  it('reproduces a seed and follows the distribution', () => {
    const logits = logitsOf([0.5, 0.25, 0.125, 0.125]);
    const a = draws({ temperature: 1, seed: 42 }, logits, 4000);
    expect(draws({ temperature: 1, seed: 42 }, logits, 4000)).toEqual(a);
    expect(draws({ temperature: 1, seed: 43 }, logits, 50)).not.toEqual(a.slice(0, 50));
    const share = (t: number) => a.filter((x) => x === t).length / a.length;
    expect(share(0)).toBeCloseTo(0.5, 1);
    expect(share(1)).toBeCloseTo(0.25, 1);
  });

  it('keeps only the nucleus with top_p and the k best with top_k', () => {
    const logits = logitsOf([0.5, 0.3, 0.1, 0.05, 0.05]);
    expect(new Set(draws({ temperature: 1, topP: 0.75, seed: 1 }, logits, 500))).toEqual(new Set([0, 1]));
    expect(new Set(draws({ temperature: 1, topK: 3, seed: 1 }, logits, 500))).toEqual(new Set([0, 1, 2]));
    // A vocabulary wider than the first candidate set: the nucleus grows until it holds top_p of the mass.
    const flat = new Float32Array(1000);
    expect(new Set(draws({ temperature: 1, topP: 0.5, seed: 1 }, flat, 600)).size).toBeGreaterThan(200);
  });

  it('applies repetition, frequency and presence penalties', () => {
    const logits = Float32Array.from([2, 1.9, 0]);
    // Token 0 is in the prompt: a repetition penalty of 2 halves it below token 1.
    expect(new TokenSampler({ ...GREEDY, repetitionPenalty: 2 }, [0]).sample(logits.slice())).toBe(1);
    // Frequency/presence count output tokens only: the second pick avoids the first.
    for (const penalty of [{ frequencyPenalty: 0.5 }, { presencePenalty: 0.5 }]) {
      const sampler = new TokenSampler({ ...GREEDY, ...penalty }, []);
      expect([sampler.sample(logits.slice()), sampler.sample(logits.slice())]).toEqual([0, 1]);
    }
  });
});
