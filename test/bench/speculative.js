// Speculative decoding against plain decoding (docs/benchmarks.md, "Speculative decoding"): one target model, one
// process, one decoder session; each round runs every prompt without the draft and with it, alternating, so a burst
// of other work on a shared machine hits both (src/core/bench/speculation.ts). Batch 1, greedy; the outputs must be
// identical (checked). Decode speed: tokens after the first ÷ time from the first token to the last.
//   npm run build && node test/bench/speculative.js --model DIR --draft ngram|DRAFT_DIR [--rounds 3] [--threads 2]
//        [--new 128] [--prompts test/bench/speculative-prompts.json] [--show] [--device cpu|cuda|webgpu]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const here = new URL('.', import.meta.url).pathname;
const { measureSpeculation } = await import(join(here, '..', '..', 'dist', 'core', 'bench', 'speculation.js'));

const result = await measureSpeculation({
  model: flag('model'),
  draft: flag('draft', 'ngram'),
  prompts: JSON.parse(readFileSync(flag('prompts', join(here, 'speculative-prompts.json')), 'utf8')),
  rounds: Number(flag('rounds', '3')),
  threads: Number(flag('threads', '2')),
  device: flag('device', 'cpu'),
  maxTokens: Number(flag('new', '128')),
  onAnswer: args.includes('--show') ? (i, text) => console.error(`--- ${i}: ${JSON.stringify(text)}`) : undefined,
  onRound: (round, speedup) => console.error(`round ${round + 1}: ${speedup.toFixed(2)}x`),
});
console.log(JSON.stringify(result, null, 2));
process.exit(result.identicalOutputs ? 0 : 1);
