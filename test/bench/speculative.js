// Speculative decoding against plain decoding (docs/benchmarks.md, "Speculative decoding"): one target model, one
// process, the same decoder session; each round runs every prompt without a draft and with it, alternating, so a
// burst of other work on a shared machine hits both. Batch 1, greedy; the outputs must be identical (checked).
// Decode speed is tokens after the first ÷ time from the first token to the last (prefill is the same work in both).
//   node test/bench/speculative.js --model DIR --draft ngram|DRAFT_DIR [--rounds 3] [--threads 2] [--new 128]
//        [--prompts test/bench/speculative-prompts.json] [--show]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const here = new URL('.', import.meta.url).pathname;
const dist = join(here, '..', '..', 'dist', 'engine');
const { Engine } = await import(join(dist, 'engine.js'));
const { GenerationScheduler } = await import(join(dist, 'generation-scheduler.js'));
const { openDrafter } = await import(join(dist, 'drafters.js'));
const { GREEDY } = await import(join(dist, 'sampling.js'));

const model = flag('model');
const draft = flag('draft', 'ngram');
const rounds = Number(flag('rounds', '3'));
const threads = Number(flag('threads', '2'));
const maxTokens = Number(flag('new', '128'));
const prompts = JSON.parse(readFileSync(flag('prompts', join(here, 'speculative-prompts.json')), 'utf8'));

const engine = await Engine.open(model, { device: 'cpu', threads, prefixCacheMb: 0 });
const limits = engine.scheduler.limits;
const drafter = await openDrafter(draft, engine.decoder, { device: 'cpu', threads });
const plain = new GenerationScheduler(engine.decoder, limits);
const drafted = new GenerationScheduler(engine.decoder, limits, undefined, undefined, drafter);
const inputs = prompts.map((p) => engine.tokenizer.encodeChat([{ role: 'user', content: p }]));

/** One greedy generation: its tokens and decode speed (tokens after the first per second of decoding). */
function run(scheduler, promptIds) {
  return new Promise((resolve, reject) => {
    const tokens = [];
    const times = [];
    scheduler.submit({
      promptIds,
      maxTokens,
      sampling: GREEDY,
      stopTokenIds: engine.model.manifest.eos_token_ids,
      sink: {
        token: (id) => (tokens.push(id), times.push(performance.now()), false),
        end: (end) => (end.error ? reject(end.error) : resolve({ tokens, tokPerS: tokens.length > 1 ? ((tokens.length - 1) * 1000) / (times.at(-1) - times[0]) : NaN })),
      },
    });
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ratios = [];
const speeds = { plain: [], drafted: [] };
let mismatches = 0;
let tokens = 0;
for (let round = 0; round < rounds; round++) {
  const roundRatios = [];
  for (const [i, ids] of inputs.entries()) {
    // Alternate which goes first, so neither always runs right after the other's warm-up.
    const order = (round + i) % 2 ? ['drafted', 'plain'] : ['plain', 'drafted'];
    const out = {};
    for (const which of order) out[which] = await run(which === 'plain' ? plain : drafted, ids);
    if (out.plain.tokens.join() !== out.drafted.tokens.join()) mismatches++;
    if (round === 0 && args.includes('--show')) console.error(`--- ${i}: ${JSON.stringify(engine.tokenizer.decode(out.plain.tokens))}`);
    tokens += out.plain.tokens.length;
    speeds.plain.push(out.plain.tokPerS);
    speeds.drafted.push(out.drafted.tokPerS);
    roundRatios.push(out.drafted.tokPerS / out.plain.tokPerS);
  }
  // A round's ratio: total decode speed over the prompt set, as a geometric mean of the per-prompt ratios.
  ratios.push(Math.exp(roundRatios.reduce((a, r) => a + Math.log(r), 0) / roundRatios.length));
  console.error(`round ${round + 1}: ${ratios.at(-1).toFixed(2)}x`);
}
const { proposed, accepted, passes } = drafted.drafts;
const result = {
  model,
  draft,
  threads,
  prompts: inputs.length,
  rounds,
  maxTokens,
  meanNewTokens: tokens / (rounds * inputs.length),
  plainTokPerS: median(speeds.plain),
  draftedTokPerS: median(speeds.drafted),
  speedup: median(ratios),
  speedupRange: [Math.min(...ratios), Math.max(...ratios)],
  acceptance: proposed ? accepted / proposed : 0,
  tokensPerVerifyPass: passes ? (accepted + passes) / passes : 0,
  identicalOutputs: mismatches === 0,
  load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
};
console.log(JSON.stringify(result, null, 2));
await engine.close();
await drafter.release();
process.exit(mismatches ? 1 : 0);
