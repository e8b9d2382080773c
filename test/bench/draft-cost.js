// What a draft model's decode step costs against its target's (docs/benchmarks.md, "Speculative decoding"): batch 1,
// a 200-token context, the same number of one-token steps of each, alternating which goes first each round, in
// one process. The share is what each drafted token costs in target steps (draft-length.ts's cost model).
//   npm run build && node test/bench/draft-cost.js --model TARGET_DIR --draft DRAFT_DIR [--rounds 6] [--steps 20] [--threads 2]
import { readFileSync } from 'node:fs';
import { DecoderSession } from '../../dist/engine/decoder-session.js';
import { readDraftVocabulary } from '../../dist/engine/draft-model.js';
import { loadExportedModel } from '../../dist/engine/model-manifest.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const [rounds, steps, threads] = [Number(flag('rounds', '6')), Number(flag('steps', '20')), Number(flag('threads', '2'))];
if (!flag('model') || !flag('draft')) throw new Error('usage: node test/bench/draft-cost.js --model TARGET_DIR --draft DRAFT_DIR [...]');
// The draft as `serve --draft` opens it: its output layer cut to draft-vocab.json's tokens where it has one.
const open = (dir, outputIds) => DecoderSession.open(loadExportedModel(dir), { device: 'cpu', threads, logits: 'last', outputIds });
const [target, draft] = await Promise.all([open(flag('model')), open(flag('draft'), readDraftVocabulary(flag('draft')))]);
const context = 200;
const ids = BigInt64Array.from({ length: context }, (_, i) => BigInt(100 + ((i * 37) % 9000)));
const positions = (from, n) => BigInt64Array.from({ length: n }, (_, i) => BigInt(from + i));

/** Milliseconds a one-token step takes after the context is in the cache (the same step repeated). */
async function stepTime(session) {
  const { cache } = await session.forward(ids, new BigInt64Array(context).fill(1n), positions(0, context), session.emptyCache(1));
  const step = () => session.forward(BigInt64Array.of(42n), new BigInt64Array(context + 1).fill(1n), positions(context, 1), cache);
  await step();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await step();
  return (performance.now() - t0) / steps;
}

const shares = [];
for (let r = 0; r < rounds; r++) {
  const [first, second] = r % 2 ? [draft, target] : [target, draft];
  const times = new Map([
    [first, await stepTime(first)],
    [second, await stepTime(second)],
  ]);
  shares.push(times.get(draft) / times.get(target));
  console.error(`round ${r + 1}: target ${times.get(target).toFixed(1)} ms, draft ${times.get(draft).toFixed(1)} ms, share ${shares.at(-1).toFixed(3)}`);
}
const median = [...shares].sort((a, b) => a - b)[Math.floor(shares.length / 2)];
console.log(
  JSON.stringify({
    share: Number(median.toFixed(3)),
    outputColumns: draft.vocabSize,
    range: [Math.min(...shares), Math.max(...shares)].map((x) => Number(x.toFixed(3))),
    threads,
    load: readFileSync('/proc/loadavg', 'utf8').trim(),
  }),
);
await Promise.all([target.release(), draft.release()]);
