// The fallback binding's CPU sessions (onnxruntime-node, as `LLMKIT_NATIVE=0` or a machine without a compiler runs
// them) with their workers sleeping (LLMKIT_CPU_SPINNING=0) against ORT's default spinning: two
// DecoderSession + GenerationScheduler engines in one process, alternating round by round (docs/benchmarks.md,
// issue 24's fifth session). Each is opened with its config entry set.
//   node test/bench/fallback-spinning.js <exported folder> [batch 1] [rounds 4] [new tokens 24]   (after npm run build)
import * as ort from 'onnxruntime-node';
const root = '../../dist/';
const { DecoderSession } = await import(root + 'engine/decoder-session.js');
const { GenerationScheduler } = await import(root + 'engine/generation-scheduler.js');
const { loadExportedModel } = await import(root + 'engine/model-manifest.js');
const { GREEDY } = await import(root + 'engine/sampling.js');
const [folder, batch = '1', rounds = '4', newTokens = '24'] = process.argv.slice(2);
const model = loadExportedModel(folder);
const create0 = ort.InferenceSession.create;
async function make(name) {
  ort.InferenceSession.create = (m, o) => create0.call(ort.InferenceSession, m, { ...o, extra: { ...o.extra, 'session.intra_op.allow_spinning': name === 'spinning' ? '1' : '0' } });
  const dec = await DecoderSession.open(model, { device: 'cpu', threads: 2, logits: 'last', binding: 'onnxruntime-node' });
  ort.InferenceSession.create = create0;
  return { name, sched: new GenerationScheduler(dec, { maxBatch: 16, maxQueue: 64, maxTokensTotal: 16 * 1024, prefillChunk: 4096 }) };
}
const prompts = Array.from({ length: Number(batch) }, (_, r) => Array.from({ length: 128 }, (_, i) => 3 + ((i * 7 + r) % 700)));
async function run(sched) {
  const times = prompts.map(() => []);
  await Promise.all(
    prompts.map(
      (promptIds, i) =>
        new Promise((resolve, reject) =>
          sched.submit({
            promptIds,
            maxTokens: Number(newTokens),
            sampling: GREEDY,
            stopTokenIds: [],
            sink: {
              token() {
                times[i].push(performance.now());
                return false;
              },
              end(e) {
                e.reason === 'error' ? reject(e.error) : resolve();
              },
            },
          }),
        ),
    ),
  );
  return times.map((t) => (1000 * (t.length - 1)) / (t.at(-1) - t[0])).reduce((a, b) => a + b) / times.length;
}
const cs = [await make('sleeping'), await make('spinning')];
for (const c of cs) await run(c.sched);
const r = { sleeping: [], spinning: [] };
for (let i = 0; i < Number(rounds); i++) for (const c of cs) r[c.name].push(await run(c.sched));
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(
  `onnxruntime-node, ${folder.split('/').pop()}, batch ${batch}: decode tok/s a row, sleeping ${med(r.sleeping).toFixed(0)} (${r.sleeping.map((x) => x.toFixed(0)).join(' ')}), spinning ${med(r.spinning).toFixed(0)} (${r.spinning.map((x) => x.toFixed(0)).join(' ')}); sleeping ÷ spinning per round ${r.sleeping.map((x, i) => (x / r.spinning[i]).toFixed(2)).join(' ')}`,
);
