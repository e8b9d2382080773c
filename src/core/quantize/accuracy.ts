import type { DecoderSession } from '../../engine/decoder-session.js';
import { argmax } from '../../engine/sampling.js';

export interface ScoredModel {
  /** exp of the mean negative log-likelihood of the next token. */
  perplexity: number;
  /** Fraction of positions where this model's most likely next token is the reference's. */
  top1Agreement: number;
  /** Mean KL(reference ‖ this) of the next-token distributions, in nats. */
  meanKl: number;
}

export interface AccuracyComparison {
  /** Positions scored (each predicts the token after it). */
  positions: number;
  windows: number;
  window: number;
  reference: ScoredModel;
  candidate: ScoredModel;
  /** The reference's most likely next token at each position, window after window (what other scorers agree with). */
  referenceTop1: number[];
}

/** log Σ exp(logits) of one position, shifted by the max so that it cannot overflow. */
function logPartition(logits: Float32Array, offset: number, vocab: number): number {
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) max = Math.max(max, logits[offset + v]);
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[offset + v] - max);
  return max + Math.log(sum);
}

/**
 * Scores `tokens` with both decoders in consecutive windows, each a prefill from an empty cache, and
 * compares them position by position: perplexity of each, how often the candidate's top token is the
 * reference's, and the KL divergence of the candidate's next-token distribution from the reference's.
 */
export async function compareNextTokenDistributions(
  reference: DecoderSession,
  candidate: DecoderSession,
  tokens: readonly number[],
  window: number,
  onWindow: (done: number, total: number) => void = () => {},
): Promise<AccuracyComparison> {
  const vocab = reference.vocabSize;
  const windows = Math.floor(tokens.length / window);
  // Several windows per forward pass, keeping one pass's logits near 64 MB even for large vocabularies.
  const perPass = Math.max(1, Math.floor(2 ** 24 / (window * vocab)));
  let nllRef = 0;
  let nllCand = 0;
  let agree = 0;
  let kl = 0;
  let positions = 0;
  const referenceTop1: number[] = [];
  for (let first = 0; first < windows; first += perPass) {
    const batch = Math.min(perPass, windows - first);
    const ids = BigInt64Array.from(tokens.slice(first * window, (first + batch) * window), BigInt);
    const mask = new BigInt64Array(ids.length).fill(1n);
    const positionIds = BigInt64Array.from(ids, (_, i) => BigInt(i % window));
    const ref = (await reference.forward(ids, mask, positionIds, reference.emptyCache(batch))).logits;
    const cand = (await candidate.forward(ids, mask, positionIds, candidate.emptyCache(batch))).logits;
    for (let b = 0; b < batch; b++) {
      for (let p = 0; p < window - 1; p++) {
        const row = b * window + p;
        const offset = row * vocab;
        const next = Number(ids[row + 1]);
        const zRef = logPartition(ref, offset, vocab);
        const zCand = logPartition(cand, offset, vocab);
        nllRef += zRef - ref[offset + next];
        nllCand += zCand - cand[offset + next];
        const top1 = argmax(ref.subarray(offset, offset + vocab));
        referenceTop1.push(top1);
        if (top1 === argmax(cand.subarray(offset, offset + vocab))) agree += 1;
        for (let v = 0; v < vocab; v++) {
          const logRef = ref[offset + v] - zRef;
          kl += Math.exp(logRef) * (logRef - (cand[offset + v] - zCand));
        }
        positions += 1;
      }
    }
    onWindow(first + batch, windows);
  }
  return {
    positions,
    windows,
    window,
    reference: { perplexity: Math.exp(nllRef / positions), top1Agreement: 1, meanKl: 0 },
    candidate: { perplexity: Math.exp(nllCand / positions), top1Agreement: agree / positions, meanKl: kl / positions },
    referenceTop1,
  };
}
