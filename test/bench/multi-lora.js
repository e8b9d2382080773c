// Multi-LoRA serving against a merged model (docs/benchmarks.md, "Multi-LoRA"): one process, one base export.
// Contenders, in alternating rounds so that other load on a shared machine falls on all alike:
//   merged  the export without LoRA inputs: the cost of serving one merged fine-tune (a merged export is the same
//           graph with other weight values, so it runs the same kernels at the same speed);
//   mixed   the export with LoRA inputs, a batch of 8 rows with 8 different adapters;
//   one     the same, all 8 rows with one adapter.
// Each round submits 8 requests together (greedy, EOS ignored, --new tokens each); tokens/s = tokens ÷ wall time.
// Also: memory per added adapter (its weights as served; a batch's tables hold one more copy of each adapter in it).
// Adapters: random PEFT adapters of the HF folder (test/helpers/lora_adapter.py), written once under --work.
//   npm run build && node test/bench/multi-lora.js --model EXPORT_DIR --hf HF_DIR [--work /tmp/llmkit-lora-bench]
//        [--adapters 8] [--rank 16] [--targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]
//        [--rounds 5] [--new 64] [--threads 2]
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { BENCH_PROMPTS } from '../../dist/core/bench/run.js';
import { LocalEngine } from '../../dist/engine/local-engine.js';
import { requirePythonEnv } from '../../dist/workers/python-env.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const model = flag('model');
const hf = flag('hf');
const work = flag('work', '/tmp/llmkit-lora-bench');
const count = Number(flag('adapters', '8'));
const rank = Number(flag('rank', '16'));
const targets = flag('targets', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj').split(',');
const rounds = Number(flag('rounds', '5'));
const maxTokens = Number(flag('new', '64'));
const threads = Number(flag('threads', '2'));
if (!model || !hf) throw new Error('usage: node test/bench/multi-lora.js --model EXPORT_DIR --hf HF_DIR [...]');

const { python } = await requirePythonEnv();
const folders = [];
for (let i = 0; i < count; i++) {
  const out = join(work, `adapter-r${rank}-${targets.length}t-${i}`);
  if (!existsSync(join(out, 'adapter_model.safetensors'))) await execa(python, ['test/helpers/lora_adapter.py', hf, out, String(100 + i), String(rank), targets.join(',')], { stdin: 'ignore' });
  folders.push(out);
}

const opts = { device: 'cpu', threads, maxBatch: 8, prefixCacheMb: 0 };
const merged = await LocalEngine.open(model, opts);
const lora = await LocalEngine.open(model, { ...opts, loraTargets: targets });
const adapters = [];
for (const [i, f] of folders.entries()) adapters.push(await lora.loadAdapter(f, `a${i}`));

const tokenize = (text) => lora.tokenizer.encode(text);
const prompts = BENCH_PROMPTS.slice(0, 8).map(tokenize);
async function wave(engine, rowAdapter) {
  const t0 = performance.now();
  const done = await Promise.all(prompts.map((promptIds, i) => engine.complete({ promptIds, maxTokens, ignoreEos: true, adapter: rowAdapter(i) })));
  const tokens = done.reduce((n, d) => n + d.end.completionTokens, 0);
  return tokens / ((performance.now() - t0) / 1000);
}
const contenders = {
  merged: () => wave(merged, () => undefined),
  mixed: () => wave(lora, (i) => adapters[i % adapters.length]),
  one: () => wave(lora, () => adapters[0]),
};
const seen = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
await contenders.merged(); // warm-up
for (let r = 0; r < rounds; r++) {
  const order = r % 2 ? Object.keys(contenders).reverse() : Object.keys(contenders);
  for (const k of order) seen[k].push(await contenders[k]());
  console.error(`round ${r + 1}: ${order.map((k) => `${k} ${seen[k].at(-1).toFixed(1)}`).join(', ')} tok/s`);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ratios = (a, b) => seen[a].map((x, i) => x / seen[b][i]);
const range = (xs) => [Math.min(...xs), Math.max(...xs)].map((x) => Number(x.toFixed(3)));
console.log(
  JSON.stringify(
    {
      model,
      adapters: count,
      rank,
      targets,
      threads,
      newTokens: maxTokens,
      tokensPerSecond: Object.fromEntries(Object.entries(seen).map(([k, xs]) => [k, Number(median(xs).toFixed(2))])),
      mixedOverMerged: { median: Number(median(ratios('mixed', 'merged')).toFixed(3)), range: range(ratios('mixed', 'merged')) },
      mixedOverOneAdapter: { median: Number(median(ratios('mixed', 'one')).toFixed(3)), range: range(ratios('mixed', 'one')) },
      adapterWeightsBytes: adapters[0].bytes,
    },
    null,
    2,
  ),
);
await Promise.all([merged.close(), lora.close()]);
