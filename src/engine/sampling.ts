import { Random } from './random.js';

/** How the next token is chosen. The defaults (GREEDY) pick the most likely token. */
export interface SamplingParams {
  /** 0 picks the most likely token; higher flattens the distribution. */
  temperature: number;
  /** Nucleus sampling: keep the most likely tokens whose probabilities add up to this (1 = off). */
  topP: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK: number;
  /** Hugging Face style, over prompt and output: divides positive logits, multiplies negative ones (1 = off). */
  repetitionPenalty: number;
  /** OpenAI style, over the output: subtracts count × penalty from a token's logit (0 = off). */
  frequencyPenalty: number;
  /** OpenAI style, over the output: subtracts the penalty once a token has appeared (0 = off). */
  presencePenalty: number;
  /** Same seed, same request → same output, whatever else runs in the batch. */
  seed?: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topP: 1, topK: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 };

/** Candidates looked at first for top-p without top-k; grown ×4 in the rare case their mass falls short. */
const FIRST_CANDIDATES = 64;

/**
 * Chooses one request's tokens: penalties, then greedy or temperature/top-k/top-p sampling.
 * Twin: `Sampler` in src/workers/python/llmkit_worker/assets/triton_generate.py ports it for Triton's engine;
 * change both, test/serve/triton.test.ts compares seeded answers.
 */
export class TokenSampler {
  private readonly random: Random;
  /** Output tokens and how often each appeared (frequency/presence penalties). */
  private readonly counts = new Map<number, number>();
  /** Prompt and output tokens (repetition penalty); only kept when that penalty is on. */
  private readonly seen?: Set<number>;

  constructor(
    private readonly params: SamplingParams,
    promptIds: readonly number[],
  ) {
    this.random = new Random(params.seed ?? Math.floor(Math.random() * 2 ** 32));
    if (params.repetitionPenalty !== 1) this.seen = new Set(promptIds);
  }

  /**
   * Picks the next token from one row of logits. The penalties, then `mask` (a grammar's forbidden
   * tokens), are applied to `logits` in place, so afterwards it holds what the choice was made from.
   */
  sample(logits: Float32Array, mask?: (logits: Float32Array) => void): number {
    this.applyPenalties(logits);
    mask?.(logits);
    const { temperature, topK } = this.params;
    const token = temperature === 0 || topK === 1 ? argmax(logits) : this.draw(logits);
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
    this.seen?.add(token);
    return token;
  }

  private applyPenalties(logits: Float32Array): void {
    const { repetitionPenalty: rep, frequencyPenalty: freq, presencePenalty: presence } = this.params;
    if (this.seen) {
      for (const t of this.seen) logits[t] = logits[t] > 0 ? logits[t] / rep : logits[t] * rep;
    }
    if (freq !== 0 || presence !== 0) {
      for (const [t, n] of this.counts) logits[t] -= n * freq + presence;
    }
  }

  private draw(logits: Float32Array): number {
    const { temperature: t, topP, topK } = this.params;
    const v = logits.length;
    const k = topK > 0 ? Math.min(topK, v) : v;
    const max = logits[argmax(logits)];
    if (k === v && topP >= 1) return this.drawFromAll(logits, max);
    // top-p's total is the mass of the top-k set when top-k is on, else of the whole vocabulary.
    let fullMass = 0;
    if (k === v) for (let i = 0; i < v; i++) fullMass += Math.exp((logits[i] - max) / t);
    for (let m = k < v ? k : Math.min(v, FIRST_CANDIDATES); ; m = Math.min(v, m * 4)) {
      const top = topCandidates(logits, m);
      const weights = new Float64Array(m);
      let mass = 0;
      for (let j = 0; j < m; j++) mass += weights[j] = Math.exp((logits[top[j]] - max) / t);
      const target = topP * (k < v ? mass : fullMass);
      let kept = 0;
      let cumulative = 0;
      while (kept < m && cumulative < target) cumulative += weights[kept++];
      if (cumulative < target && m < k) continue;
      let r = this.random.next() * cumulative;
      for (let j = 0; j < kept; j++) {
        r -= weights[j];
        if (r < 0) return top[j];
      }
      return top[kept - 1];
    }
  }

  /** Temperature sampling over the whole vocabulary: no candidate set, so no ordering at all. */
  private drawFromAll(logits: Float32Array, max: number): number {
    const t = this.params.temperature;
    const weights = new Float64Array(logits.length);
    let total = 0;
    for (let i = 0; i < logits.length; i++) total += weights[i] = Math.exp((logits[i] - max) / t);
    let r = this.random.next() * total;
    for (let i = 0; i < logits.length; i++) {
      r -= weights[i];
      if (r < 0) return i;
    }
    return argmax(logits);
  }
}

export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * The indices of the m largest values, largest first: a size-m min-heap over one pass, so the cost
 * is O(V log m) at worst and close to O(V) in practice, never a sort of the whole vocabulary.
 */
export function topCandidates(values: Float32Array, m: number): Int32Array {
  const heap = new Int32Array(m);
  let size = 0;
  const less = (a: number, b: number) => values[a] < values[b] || (values[a] === values[b] && a > b);
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < size && less(heap[l], heap[smallest])) smallest = l;
      if (r < size && less(heap[r], heap[smallest])) smallest = r;
      if (smallest === i) return;
      [heap[i], heap[smallest]] = [heap[smallest], heap[i]];
      i = smallest;
    }
  };
  for (let idx = 0; idx < values.length; idx++) {
    if (size < m) {
      let i = size++;
      heap[i] = idx;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!less(heap[i], heap[parent])) break;
        [heap[i], heap[parent]] = [heap[parent], heap[i]];
        i = parent;
      }
    } else if (less(heap[0], idx)) {
      heap[0] = idx;
      siftDown(0);
    }
  }
  // Popping the min-heap yields ascending order; fill from the back for largest first.
  const sorted = new Int32Array(size);
  for (let out = size - 1; out >= 0; out--) {
    sorted[out] = heap[0];
    heap[0] = heap[--size];
    siftDown(0);
  }
  return sorted;
}
