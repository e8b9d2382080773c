import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NgramDrafter } from '../../src/engine/drafter.js';
import { LocalEngine } from '../../src/engine/local-engine.js';
import { GenerationScheduler } from '../../src/engine/generation-scheduler.js';
import { GREEDY } from '../../src/engine/sampling.js';
import { exportedSmollm2 } from '../helpers/real-model.js';

const COPYING = JSON.parse(readFileSync('test/bench/speculative-prompts.json', 'utf8')) as string[];
const PROSE = ['Write a short poem about the sea.', 'Why is the sky blue? Answer in two sentences.', 'Give three tips for sleeping better.', 'What is a prime number?'];

describe('speculative decoding on SmolLM2-135M-Instruct (--draft ngram)', () => {
  let engine: LocalEngine;
  beforeAll(async () => {
    engine = await LocalEngine.open(await exportedSmollm2(), { device: 'cpu', prefixCacheMb: 0 });
  }, 600_000);
  afterAll(() => engine.close());

  /** Every prompt at once (rows with and without drafts share batches), greedy, up to 48 tokens each. */
  const answers = (scheduler: GenerationScheduler, prompts: string[]) =>
    Promise.all(
      prompts.map(
        (content) =>
          new Promise<number[]>((resolve, reject) => {
            const tokens: number[] = [];
            scheduler.submit({
              promptIds: engine.tokenizer.encodeChat([{ role: 'user', content }]),
              maxTokens: 48,
              sampling: GREEDY,
              stopTokenIds: engine.model.manifest.eos_token_ids,
              sink: { token: (id) => (tokens.push(id), false), end: (end) => (end.error ? reject(end.error) : resolve(tokens)) },
            });
          }),
      ),
    );

  it('answers copy-from-prompt and prose prompts token for token as without a draft, accepting most drafts on the copying ones', async () => {
    const prompts = [...COPYING, ...PROSE];
    const plain = await answers(new GenerationScheduler(engine.decoder, engine.scheduler.limits), prompts);
    const drafted = new GenerationScheduler(engine.decoder, engine.scheduler.limits, undefined, undefined, new NgramDrafter());
    expect(await answers(drafted, prompts)).toEqual(plain);
    // The copying answers repeat the prompt: most drafts are right, and a pass yields several tokens.
    const { proposed, accepted, passes } = drafted.drafts;
    expect(accepted / proposed).toBeGreaterThan(0.5);
    expect((accepted + passes) / passes).toBeGreaterThan(2);
    expect(engine.tokenizer.decode(plain[0])).toContain('Tickets cost twelve dollars');
  }, 600_000);
});
