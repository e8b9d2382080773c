import type { DecoderSession } from '../../engine/decoder-session.js';
import { greedyDecode } from '../../engine/greedy.js';

export interface SpeedPlan {
  prompts: number[][];
  /** Tokens generated per prompt; the first comes from the prefill and is not a decode step. */
  newTokens: number;
  /** Every prompt runs this many times on each model. */
  rounds: number;
}

export interface DecodeSpeed {
  /** 1000 / the median cached decode step in ms: the median shrugs off other processes' bursts. */
  tokensPerSecond: number;
  /** Decode steps timed. */
  steps: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Times batch-1 greedy decoding of the same prompts on each decoder. Runs alternate between the
 * models prompt by prompt (and swap order every round) so that background load falls on all of them
 * alike; one warm-up run per model is not timed.
 */
export async function measureDecodeSpeed(decoders: DecoderSession[], plan: SpeedPlan, onRun: (done: number, total: number) => void = () => {}): Promise<DecodeSpeed[]> {
  for (const decoder of decoders) await greedyDecode(decoder, plan.prompts[0], 8);
  const steps: number[][] = decoders.map(() => []);
  const total = plan.rounds * plan.prompts.length;
  let done = 0;
  for (let round = 0; round < plan.rounds; round++) {
    for (const prompt of plan.prompts) {
      const order = decoders.map((_, i) => i);
      if (round % 2) order.reverse();
      for (const i of order) steps[i].push(...(await greedyDecode(decoders[i], prompt, plan.newTokens)).stepMs);
      onRun(++done, total);
    }
  }
  return steps.map((ms) => ({ tokensPerSecond: 1000 / median(ms), steps: ms.length }));
}
