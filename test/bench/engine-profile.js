// What one forward pass of an exported model costs on a provider: the median time of `session.run` over
// fixed inputs and, with --profile, ONNX Runtime's own profile of it summed by provider and operator
// (how many kernels a step runs, and which ones run on the CPU beside a GPU provider). Opens the model as
// the engine does (without `present.*`) and fetches what the engine fetches; a "fused-gqa" graph (`export --gqa`)
// as the engine's in-place step runs it: `present.*` bound to the past's buffers, one spare column each. Needs only dist/ and
// onnxruntime-node, so it runs on the GPU machine too (test/bench/device/pack.sh bundles it).
//
// Usage, in the repo root after `npm run build`:
//   node test/bench/engine-profile.js <exported-model-folder> [--device cpu|webgpu] [--batch 1] [--past 100]
//        [--new 1] [--runs 60] [--level all] [--ep '{"name":"webgpu","validationMode":"disabled"}']
//        [--fetch logits,new_key_values] [--profile <folder>]
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { withoutOutputs } from '../../dist/engine/graph-pruning.js';
import { loadExportedModel } from '../../dist/engine/model-manifest.js';
import { modelArgs } from './model-args.js';

const { folder, flag } = modelArgs('node test/bench/engine-profile.js <exported-model-folder> [--device cpu] [--batch 1] [--past 100] [--new 1] [--runs 60] [--profile <folder>]');
const device = flag('device', 'cpu');
const [batch, past, fresh, runs] = ['batch', 'past', 'new', 'runs'].map((name, i) => Number(flag(name, ['1', '100', '1', '60'][i])));
const profileDir = flag('profile');
const { manifest: m, onnxPath } = loadExportedModel(folder);

const gqa = m.graph === 'fused-gqa';
const bytes = readFileSync(onnxPath);
const session = await ort.InferenceSession.create(gqa ? bytes : withoutOutputs(bytes, (n) => n.startsWith('present.')), {
  executionProviders: [flag('ep') ? JSON.parse(flag('ep')) : device],
  graphOptimizationLevel: flag('level', 'all'),
  enableProfiling: Boolean(profileDir),
  profileFilePrefix: profileDir && join(profileDir, `profile-${device}-b${batch}-n${fresh}`),
  extra: { session: { model_external_initializers_file_folder_path: dirname(onnxPath) } },
});
const int64 = (length, at) =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from({ length: batch * length }, (_, i) => at(i % length)),
    [batch, length],
  );
const feeds = { input_ids: int64(fresh, () => 5n), attention_mask: int64(past + fresh, () => 1n), position_ids: int64(fresh, (i) => BigInt(past + i)) };
const kvShape = [batch, m.num_kv_heads, past + (gqa ? fresh : 0), m.head_dim];
for (let i = 0; i < m.num_layers; i++) {
  for (const part of ['key', 'value']) feeds[`past_key_values.${i}.${part}`] = new ort.Tensor('float32', new Float32Array(kvShape.reduce((a, b) => a * b)).fill(0.01), kvShape);
}
const bound = Object.fromEntries(
  Object.entries(feeds)
    .filter(([name]) => name.startsWith('past_key_values.'))
    .map(([name, t]) => [name.replace('past_key_values', 'present'), t]),
);
const fetches = gqa && !flag('fetch') ? { logits: null, ...bound } : flag('fetch', 'logits,new_key_values').split(',');
const warmup = 5;
for (let i = 0; i < warmup; i++) await session.run(feeds, fetches);
const times = [];
for (let i = 0; i < runs; i++) {
  const started = performance.now();
  await session.run(feeds, fetches);
  times.push(performance.now() - started);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`${device} batch ${batch}, ${fresh} new + ${past} cached tokens: session.run median ${median(times).toFixed(2)} ms over ${runs} runs`);
if (profileDir) {
  session.endProfiling();
  const file = readdirSync(profileDir)
    .filter((f) => f.startsWith(`profile-${device}-b${batch}-n${fresh}`))
    .sort()
    .at(-1);
  const kernels = JSON.parse(readFileSync(join(profileDir, file), 'utf8')).filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
  const totals = new Map();
  for (const e of kernels) {
    const key = `${e.args.provider} ${e.args.op_name}`;
    const t = totals.get(key) ?? { ms: 0, count: 0 };
    totals.set(key, { ms: t.ms + e.dur / 1000, count: t.count + 1 });
  }
  const passes = warmup + runs;
  console.log(`${kernels.length / passes} kernels a pass (${join(profileDir, file)})`);
  for (const [key, t] of [...totals].sort((a, b) => b[1].ms - a[1].ms)) console.log(`  ${key.padEnd(56)} ${(t.ms / passes).toFixed(3)} ms  ${t.count / passes} kernels`);
}
await session.release();
