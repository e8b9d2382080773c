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

/** What a row's draw on the device needs (src/engine/fixed-cache/device-sampler.ts): its filters and the uniform number this sampler drew. */
export interface DeviceDraw {
  temperature: number;
  topK: number;
  topP: number;
  uniform: number;
}

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
    return this.chosen(this.greedy ? argmax(logits) : drawFrom(this.distribution(logits), this.random.next()));
  }

  /**
   * The token to emit where a draft proposed `draft`: speculative decoding's rejection rule. The draft is
   * accepted with probability min(1, p(draft) / q(draft)), else a token is drawn from max(0, p - q)
   * renormalized, so what is emitted follows p, the distribution `sample` draws from (Leviathan et al.,
   * 2023). `draftProbability` is q; without it the draft is one-hot (prompt lookup, a greedy draft model),
   * and the rule comes down to drawing from p and comparing. Greedy requests keep the argmax, so their
   * output is the same token for token as without a draft.
   */
  verify(logits: Float32Array, draft: number, draftProbability?: (token: number) => number): number {
    this.applyPenalties(logits);
    if (this.greedy) return this.chosen(argmax(logits));
    const p = this.distribution(logits);
    const q = draftProbability ?? ((t: number) => (t === draft ? 1 : 0));
    const pDraft = probabilityOf(p, draft);
    if (pDraft > 0 && this.random.next() * q(draft) < pDraft) return this.chosen(draft);
    const residual = { tokens: p.tokens, weights: p.weights.map((w, j) => Math.max(0, w / p.total - q(p.tokens ? p.tokens[j] : j))), total: 0 };
    residual.total = residual.weights.reduce((a, w) => a + w, 0);
    // p ≤ q everywhere means p = q, where the draft is always accepted: only rounding gets here.
    return this.chosen(drawFrom(residual.total > 0 ? residual : p, this.random.next()));
  }

  /**
   * How the device picks this row's next token: `greedy` (its argmax), or a draw with this sampler's next uniform
   * number, as `sample` would make it; undefined when penalties need the logits on the host, or when the device
   * does not draw (`draws` false) and this row is not greedy. Call `record` with the token the device chose.
   */
  deviceChoice(draws = true): DeviceDraw | 'greedy' | undefined {
    const { repetitionPenalty, frequencyPenalty, presencePenalty, temperature, topK, topP } = this.params;
    if (repetitionPenalty !== 1 || frequencyPenalty !== 0 || presencePenalty !== 0) return undefined;
    if (!draws && !this.greedy) return undefined;
    return this.greedy ? 'greedy' : { temperature, topK, topP, uniform: this.random.next() };
  }

  /** The token a draw of `deviceChoice` picks, chosen on the host from the row's logits (where the device sampler failed). */
  drawOnHost(logits: Float32Array, draw: DeviceDraw): number {
    return drawFrom(this.distribution(logits), draw.uniform);
  }

  /** Counts a token chosen on the device, as `sample` counts its own. */
  record(token: number): number {
    return this.chosen(token);
  }

  private get greedy(): boolean {
    return this.params.temperature === 0 || this.params.topK === 1;
  }

  private chosen(token: number): number {
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

  /** What a sampled request draws from after temperature, top-k and top-p: the kept candidates' weights. */
  private distribution(logits: Float32Array): Distribution {
    const { temperature: t, topP, topK } = this.params;
    const v = logits.length;
    const k = topK > 0 ? Math.min(topK, v) : v;
    const max = logits[argmax(logits)];
    if (k === v && topP >= 1) return wholeVocabulary(logits, max, t);
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
      return { tokens: top.subarray(0, kept), weights: weights.subarray(0, kept), total: cumulative };
    }
  }
}

/** Candidate tokens (null: the whole vocabulary, by index) with unnormalized weights summing to `total`. */
interface Distribution {
  tokens: Int32Array | null;
  weights: Float64Array;
  total: number;
}

/** Temperature sampling over the whole vocabulary: no candidate set, so no ordering at all. */
function wholeVocabulary(logits: Float32Array, max: number, temperature: number): Distribution {
  const weights = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += weights[i] = Math.exp((logits[i] - max) / temperature);
  return { tokens: null, weights, total };
}

/** The candidate `u` (uniform in [0, 1)) falls on. */
function drawFrom(d: Distribution, u: number): number {
  let r = u * d.total;
  let last = 0;
  for (let j = 0; j < d.weights.length; j++) {
    if (d.weights[j] === 0) continue;
    last = j;
    r -= d.weights[j];
    if (r < 0) break;
  }
  // Rounding can leave r ≥ 0 after the last weight: the last candidate that has one.
  return d.tokens ? d.tokens[last] : last;
}

function probabilityOf(d: Distribution, token: number): number {
  if (!d.tokens) return d.weights[token] / d.total;
  const j = d.tokens.indexOf(token);
  return j < 0 ? 0 : d.weights[j] / d.total;
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
