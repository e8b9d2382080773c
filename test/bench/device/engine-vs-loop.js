// Where the engine's fixed-cache path loses against the bare loop of fixed-cache-decode.js (issue 24: on an H100
// the engine decoded batch 1 at 306-319 tok/s and prefilled 3.9k tok/s where the loop ran 644-677 and ~33k).
// For each cache capacity (columns a row), one process times the same greedy work three ways on the engine's own
// graph (fixed-cache-graph.ts): the decoder's passes called directly (FixedCacheDecoder.prefill/step), the
// scheduler (FixedCacheScheduler: what serve runs), and inside both, the time spent in the binding's run, its
// host-to-device writes and device-to-host reads, so what is left is the host's bookkeeping between passes.
//
//   node test/bench/device/engine-vs-loop.js <gqa-export> [--device cuda|cpu] [--capacity 512,4096] [--prompt 256]
//        [--tokens 64] [--batch 8]
import { FixedCacheDecoder } from '../../../dist/engine/fixed-cache/fixed-cache-decoder.js';
import { FixedCacheScheduler } from '../../../dist/engine/fixed-cache/fixed-cache-scheduler.js';
import { loadExportedModel } from '../../../dist/engine/model-manifest.js';
import { NativeBinding, NativeTensor } from '../../../dist/engine/native/ort-binding.js';
import { Random } from '../../../dist/engine/random.js';
import { modelArgs } from '../model-args.js';
import { generate } from '../greedy-requests.js';

const { folder, flag } = modelArgs('node test/bench/device/engine-vs-loop.js <gqa-export> [--device cuda] [--capacity 512,4096]');
const device = flag('device', 'cuda');
const capacities = flag('capacity', '512,4096').split(',').map(Number);
const promptLength = Number(flag('prompt', '256'));
const tokens = Number(flag('tokens', '64'));
const batch = Number(flag('batch', '8'));
const model = loadExportedModel(folder);
const vocab = model.manifest.vocab_size;

// Time inside the binding, accumulated: wrapped here so the engine's code runs unchanged.
const spent = { run: 0, write: 0, read: 0, runs: 0 };
const timed = (proto, name, key) => {
  const original = proto[name];
  proto[name] = function (...args) {
    const started = performance.now();
    const result = original.apply(this, args);
    if (result instanceof Promise) return result.finally(() => ((spent[key] += performance.now() - started), key === 'run' && spent.runs++));
    spent[key] += performance.now() - started;
    return result;
  };
};
timed(NativeBinding.prototype, 'run', 'run');
timed(NativeTensor.prototype, 'write', 'write');
timed(NativeTensor.prototype, 'read', 'read');
const snapshot = () => ({ ...spent });
const since = (before, ms) => {
  const d = Object.fromEntries(Object.keys(spent).map((k) => [k, spent[k] - before[k]]));
  return { ms: +ms.toFixed(2), runs: d.runs, runMs: +d.run.toFixed(2), writeMs: +d.write.toFixed(2), readMs: +d.read.toFixed(2), otherMs: +(ms - d.run - d.write - d.read).toFixed(2) };
};

const ids = (length, seed) => {
  const random = new Random(seed);
  return Array.from({ length }, () => 4 + Math.floor(random.next() * (vocab - 4)));
};

/** The decoder's own passes: prefill each row, then greedy steps over all rows (the loop of fixed-cache-decode.js). */
async function direct(decoder, rows) {
  let before = snapshot();
  let started = performance.now();
  const first = [];
  for (let r = 0; r < rows; r++) first.push((await decoder.prefill(r, ids(promptLength, 10 + r), 0, { logits: false })).token);
  const prefill = since(before, performance.now() - started);
  const feeds = { ids: BigInt64Array.from(first, BigInt), positions: new BigInt64Array(rows).fill(BigInt(promptLength)) };
  before = snapshot();
  started = performance.now();
  for (let s = 1; s < tokens; s++) {
    const { tokens: next } = await decoder.step(rows, feeds);
    feeds.ids.set(next);
    for (let r = 0; r < rows; r++) feeds.positions[r] += 1n;
  }
  const decode = since(before, performance.now() - started);
  return {
    rows,
    prefill: { ...prefill, tokPerS: Math.round((rows * promptLength * 1000) / prefill.ms) },
    decode: { ...decode, tokPerS: Math.round((rows * (tokens - 1) * 1000) / decode.ms), perStepMs: +(decode.ms / (tokens - 1)).toFixed(3) },
  };
}

/** The same work through the scheduler: one request's time to first token and decode, then `rows` together. */
async function scheduled(scheduler, rows) {
  let before = snapshot();
  let started = performance.now();
  const [single] = await generate(scheduler, [ids(promptLength, 10)], tokens);
  const one = since(before, performance.now() - started);
  before = snapshot();
  started = performance.now();
  await generate(
    scheduler,
    Array.from({ length: rows }, (_, r) => ids(promptLength, 10 + r)),
    tokens,
  );
  const many = since(before, performance.now() - started);
  const decodeMs = single.end.interTokenMs.reduce((a, b) => a + b, 0);
  return {
    timeToFirstTokenMs: +single.end.timeToFirstTokenMs.toFixed(2),
    decodeTokPerS: Math.round(((tokens - 1) * 1000) / decodeMs),
    single: one,
    batch: { ...many, rows, tokPerS: Math.round((rows * tokens * 1000) / many.ms) },
  };
}

for (const capacity of capacities) {
  const decoder = await FixedCacheDecoder.open(model, { provider: device, rows: batch, capacity, cudaGraphs: process.env.LLMKIT_CUDA_GRAPH !== '0' });
  const limits = { maxBatch: batch, maxQueue: batch, maxTokensTotal: batch * capacity, prefillChunk: promptLength * batch };
  const scheduler = new FixedCacheScheduler(decoder, limits);
  await direct(decoder, 1); // warm-up: kernels, buffers, each bucket's graph captured
  await direct(decoder, batch);
  await scheduled(scheduler, batch);
  for (let round = 0; round < 2; round++) {
    console.log(JSON.stringify({ capacity, round, how: 'decoder', b1: await direct(decoder, 1), [`b${batch}`]: await direct(decoder, batch) }));
    console.log(JSON.stringify({ capacity, round, how: 'scheduler', ...(await scheduled(scheduler, batch)) }));
  }
  await decoder.release();
}
