// llmkit's engine on several exports of one model (e.g. `llmkit export --fused` against `--gqa`), each a
// long-lived test/bench/peers/llmkit-runner.js (DecoderSession + GenerationScheduler, as `serve` runs them),
// visited in turn every round so a burst of other work on a shared machine hits all of them. Prints per
// export and workload (batch 1, batch N) the median decode tok/s (per row, after its first token), prefill
// tok/s and aggregate tok/s with their ranges over rounds, each round's ratio to the first export, and whether
// the greedy tokens agree with the first export's.
// Usage, in the repo root after `npm run build`:
//   node test/bench/graphs.js <folder>[@onnxruntime-node] <folder>... [--rounds 8] [--threads 2] [--prompt 256] [--new 128] [--batch 8]
import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const folders = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const [rounds, threads, promptLength, newTokens, batch] = ['rounds', 'threads', 'prompt', 'new', 'batch'].map((name, i) => Number(flag(name, ['8', '2', '256', '128', '8'][i])));
if (folders.length < 2) {
  console.error('usage: node test/bench/graphs.js <folder> <folder>... [--rounds 8] [--threads 2] [--prompt 256] [--new 128] [--batch 8]');
  process.exit(2);
}

const runner = new URL('peers/llmkit-runner.js', import.meta.url).pathname;
// `folder@onnxruntime-node` runs that export on onnxruntime-node instead of llmkit's own binding (LLMKIT_NATIVE=0).
const contenders = folders.map((spec) => {
  const [folder, binding] = spec.split('@');
  const env = binding === 'onnxruntime-node' ? { ...process.env, LLMKIT_NATIVE: '0' } : process.env;
  const child = spawn('node', [runner, folder, String(threads)], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    name: basename(folder) + (binding ? `@${binding}` : ''),
    async run(request) {
      child.stdin.write(JSON.stringify(request) + '\n');
      const { value, done } = await lines.next();
      if (done) throw new Error(`${folder}: runner exited`);
      return JSON.parse(value);
    },
    close: () => child.stdin.end(),
  };
});

// The same token ids for every export (a fixed linear congruential generator).
let seed = 12345;
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const prompts = Array.from({ length: batch }, () => Array.from({ length: promptLength }, () => 3 + Math.floor(random() * 700)));
const workloads = [
  { name: 'batch 1', prompts: prompts.slice(0, 1) },
  { name: `batch ${batch}`, prompts },
];

const results = new Map(); // `${workload}|${contender}` -> [{decode, prefill, total, tokens}]
for (const c of contenders) await c.run({ prompts: prompts.slice(0, 1), newTokens: 8 }); // warm-up
for (let round = 0; round < rounds; round++) {
  for (const w of workloads) {
    for (const c of contenders) {
      const out = await c.run({ prompts: w.prompts, newTokens });
      const key = `${w.name}|${c.name}`;
      results.set(key, [
        ...(results.get(key) ?? []),
        {
          decode: out.decodeTokPerS.reduce((a, b) => a + b, 0) / out.decodeTokPerS.length,
          prefill: (1000 * promptLength * w.prompts.length) / out.prefillMs,
          total: out.totalTokPerS,
          tokens: JSON.stringify(out.tokens),
        },
      ]);
    }
  }
  process.stderr.write(`round ${round + 1}/${rounds} done\n`);
}
for (const c of contenders) c.close();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const range = (xs) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
const figure = (xs) => `${median(xs).toFixed(0)} (${range(xs)})`;
const ratios = (xs, base) => {
  const r = xs.map((x, i) => x / base[i]);
  return `${median(r).toFixed(2)}× (${Math.min(...r).toFixed(2)}–${Math.max(...r).toFixed(2)})`;
};
console.log(`${rounds} rounds, ${threads} threads, ${promptLength}-token prompts, ${newTokens} greedy tokens; ratios: each export ÷ ${contenders[0].name}, round by round`);
console.log('| workload | export | decode tok/s (per row) | prefill tok/s | aggregate tok/s | decode ratio | aggregate ratio | same tokens |');
console.log('|---|---|---|---|---|---|---|---|');
for (const w of workloads) {
  const base = results.get(`${w.name}|${contenders[0].name}`);
  for (const c of contenders) {
    const rows = results.get(`${w.name}|${c.name}`);
    const pick = (field, of = rows) => of.map((r) => r[field]);
    const same = rows.filter((r, i) => r.tokens === base[i].tokens).length;
    const first = c === contenders[0];
    console.log(
      `| ${w.name} | ${c.name} | ${figure(pick('decode'))} | ${figure(pick('prefill'))} | ${figure(pick('total'))} | ${first ? '' : ratios(pick('decode'), pick('decode', base))} | ${first ? '' : ratios(pick('total'), pick('total', base))} | ${first ? '' : `${same}/${rows.length}`} |`,
    );
  }
}
