// Greedy requests straight into a scheduler (GenerationScheduler or FixedCacheScheduler), for the engine benches.
import { GREEDY } from '../../dist/engine/sampling.js';

/** Submits each prompt for `maxTokens` greedy tokens; resolves with each one's tokens and end (its timings). */
export function generate(scheduler, prompts, maxTokens) {
  return Promise.all(
    prompts.map(
      (promptIds) =>
        new Promise((resolve) => {
          const out = [];
          scheduler.submit({ promptIds, maxTokens, sampling: GREEDY, stopTokenIds: [], sink: { token: (t) => (out.push(t), false), end: (end) => resolve({ tokens: out, end }) } });
        }),
    ),
  );
}
