import type { DecoderSession } from './decoder-session.js';
import { argmax } from './sampling.js';

export interface GreedyRun {
  /** The new tokens, always `maxNewTokens` of them (EOS does not stop it, so runs are comparable). */
  tokens: number[];
  /** The prompt's forward pass, which also yields the first new token. */
  prefillMs: number;
  /** One entry per cached decode step: the tokens after the first. */
  stepMs: number[];
}

/**
 * Batch-1 greedy decoding with the KV cache, timed step by step: what `llmkit quantize` measures
 * decode speed with. Serving uses the engine's scheduler; this stays minimal on purpose.
 */
export async function greedyDecode(decoder: DecoderSession, promptIds: readonly number[], maxNewTokens: number): Promise<GreedyRun> {
  const vocab = decoder.vocabSize;
  const n = promptIds.length;
  let started = performance.now();
  let step = await decoder.forward(
    BigInt64Array.from(promptIds, BigInt),
    new BigInt64Array(n).fill(1n),
    BigInt64Array.from(promptIds, (_, i) => BigInt(i)),
    decoder.emptyCache(1),
  );
  const prefillMs = performance.now() - started;
  const tokens = [argmax(step.logits.subarray((step.logitsPositions - 1) * vocab, step.logitsPositions * vocab))];
  const stepMs: number[] = [];
  while (tokens.length < maxNewTokens) {
    const position = n + tokens.length - 1;
    started = performance.now();
    step = await decoder.forward(BigInt64Array.of(BigInt(tokens[tokens.length - 1])), new BigInt64Array(position + 1).fill(1n), BigInt64Array.of(BigInt(position)), step.cache);
    stepMs.push(performance.now() - started);
    tokens.push(argmax(step.logits));
  }
  return { tokens, prefillMs, stepMs };
}
