import type { TokenLogprob } from './logits-processor.js';
import { topCandidates } from './sampling.js';

/**
 * Log-probabilities of one row of logits as the sampler saw them: after the penalties and any grammar
 * mask, before temperature, top-k and top-p (OpenAI's logprobs do not move with temperature either).
 * Masked tokens have logprob -Infinity and never appear among the alternatives.
 */
export function tokenLogprob(logits: Float32Array, id: number, top: number): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  const alternatives = top > 0 ? Array.from(topCandidates(logits, top)).filter((t) => logits[t] > -Infinity) : [];
  return { id, logprob: logits[id] - logZ, top: alternatives.map((t) => ({ id: t, logprob: logits[t] - logZ })) };
}
