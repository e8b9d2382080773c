import { readFileSync } from 'node:fs';
import type { DecoderSession } from '../../engine/decoder-session.js';
import { openDrafter } from '../../engine/drafters.js';
import { LocalEngine } from '../../engine/local-engine.js';
import { GenerationScheduler } from '../../engine/generation-scheduler.js';
import { GREEDY } from '../../engine/sampling.js';
import type { Device } from '../../engine/devices.js';

export interface SpeculationBenchOptions {
  /** The target's exported folder. */
  model: string;
  /** `ngram` or a draft model's exported folder. */
  draft: string;
  /** Chat messages (the model's template applied) or token ids. */
  prompts: readonly (string | readonly number[])[];
  rounds: number;
  threads: number;
  maxTokens: number;
  /** Where both run (default cpu). */
  device?: Device;
  /** Called after each prompt of the first round with the plain run's text (to show what the prompts make). */
  onAnswer?: (index: number, text: string) => void;
  onRound?: (round: number, speedup: number) => void;
}

export interface SpeculationBenchResult {
  model: string;
  draft: string;
  threads: number;
  /** The provider the target ran on. */
  device: string;
  prompts: number;
  rounds: number;
  maxTokens: number;
  meanNewTokens: number;
  /** Median over runs of batch-1 decode speed (tokens after the first ÷ time from the first token to the last). */
  plainTokensPerSecond: number;
  draftedTokensPerSecond: number;
  /** Median over rounds of a round's geometric-mean per-prompt ratio, and the rounds' range. */
  speedup: number;
  speedupRange: [number, number];
  /** Drafted tokens the target accepted; null when the scheduler drafted none (a draft too costly to pay, see DraftLength). */
  acceptance: number | null;
  /** Tokens a verification pass yields on average (accepted drafts + the target's own); null as acceptance. */
  tokensPerPass: number | null;
  /** Greedy output with the draft equals the output without, prompt for prompt. */
  identicalOutputs: boolean;
  /** /proc/loadavg when it ended: how busy the machine was. */
  load: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Speculative decoding against plain decoding on one target, in one process and one decoder session: each
 * round runs every prompt without the draft and with it (alternating which goes first), so a burst of other work
 * on a shared machine hits both. Batch 1, greedy; the outputs must be identical.
 */
export async function measureSpeculation(opts: SpeculationBenchOptions): Promise<SpeculationBenchResult> {
  const device = opts.device ?? 'cpu';
  const engine = await LocalEngine.open(opts.model, { device, threads: opts.threads, prefixCacheMb: 0, decodePath: 'dynamic' });
  const decoder = engine.decoder as DecoderSession;
  const drafter = await openDrafter(opts.draft, decoder, { device, threads: opts.threads });
  try {
    const plain = new GenerationScheduler(decoder, engine.scheduler.limits);
    const drafted = new GenerationScheduler(decoder, engine.scheduler.limits, undefined, undefined, drafter);
    const inputs = opts.prompts.map((p) => (typeof p === 'string' ? engine.tokenizer.encodeChat([{ role: 'user', content: p }]) : p));
    const run = (scheduler: GenerationScheduler, promptIds: readonly number[]) =>
      new Promise<{ tokens: number[]; tokensPerSecond: number }>((resolve, reject) => {
        const tokens: number[] = [];
        const times: number[] = [];
        scheduler.submit({
          promptIds,
          maxTokens: opts.maxTokens,
          sampling: GREEDY,
          stopTokenIds: engine.model.manifest.eos_token_ids,
          sink: {
            token: (id) => (tokens.push(id), times.push(performance.now()), false),
            end: (end) => (end.error ? reject(end.error) : resolve({ tokens, tokensPerSecond: tokens.length > 1 ? ((tokens.length - 1) * 1000) / (times.at(-1)! - times[0]) : NaN })),
          },
        });
      });
    const ratios: number[] = [];
    const speeds = { plain: [] as number[], drafted: [] as number[] };
    let mismatches = 0;
    let tokens = 0;
    for (let round = 0; round < opts.rounds; round++) {
      const logs: number[] = [];
      for (const [i, ids] of inputs.entries()) {
        const order = (round + i) % 2 ? (['drafted', 'plain'] as const) : (['plain', 'drafted'] as const);
        const out: Record<string, { tokens: number[]; tokensPerSecond: number }> = {};
        for (const which of order) out[which] = await run(which === 'plain' ? plain : drafted, ids);
        if (out.plain.tokens.join() !== out.drafted.tokens.join()) mismatches++;
        if (round === 0) opts.onAnswer?.(i, engine.tokenizer.decode(out.plain.tokens));
        tokens += out.plain.tokens.length;
        speeds.plain.push(out.plain.tokensPerSecond);
        speeds.drafted.push(out.drafted.tokensPerSecond);
        logs.push(Math.log(out.drafted.tokensPerSecond / out.plain.tokensPerSecond));
      }
      ratios.push(Math.exp(logs.reduce((a, b) => a + b, 0) / logs.length));
      opts.onRound?.(round, ratios.at(-1)!);
    }
    const { proposed, accepted, passes } = drafted.drafts;
    return {
      model: opts.model,
      draft: opts.draft,
      threads: opts.threads,
      device: engine.device,
      prompts: inputs.length,
      rounds: opts.rounds,
      maxTokens: opts.maxTokens,
      meanNewTokens: tokens / (opts.rounds * inputs.length),
      plainTokensPerSecond: median(speeds.plain),
      draftedTokensPerSecond: median(speeds.drafted),
      speedup: median(ratios),
      speedupRange: [Math.min(...ratios), Math.max(...ratios)],
      acceptance: proposed ? accepted / proposed : null,
      tokensPerPass: passes ? (accepted + passes) / passes : null,
      identicalOutputs: mismatches === 0,
      load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    };
  } finally {
    await engine.close();
    await drafter.release();
  }
}
