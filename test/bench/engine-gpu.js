// Greedy decode of one exported model on the CPU and on WebGPU, in one process, through llmkit's
// engine (DecoderSession + GenerationScheduler): checks that both providers produce the same tokens
// and prints prefill and decode tokens/s for each. Needs only dist/ and onnxruntime-node (no tokenizer:
// prompts are fixed token ids), so it runs on the GPU machine with Node carried there.
//
// Usage, in the repo root after `npm run build`:
//   node test/bench/engine-gpu.js <exported-model-folder> [--devices cpu,webgpu] [--prompt 256] [--tokens 64] [--batch 8] [--logits last]
//        [--path dynamic|fixed-cache]
// --logits all computes the output layer at every prompt position, as the engine did before 2026-11-29.
// --path fixed-cache: the engine's fixed-cache decode path (a --gqa export; FixedCacheDecoder + FixedCacheScheduler).
import { DecoderSession } from '../../dist/engine/decoder-session.js';
import { FixedCacheDecoder } from '../../dist/engine/fixed-cache/fixed-cache-decoder.js';
import { FixedCacheScheduler } from '../../dist/engine/fixed-cache/fixed-cache-scheduler.js';
import { GenerationScheduler } from '../../dist/engine/generation-scheduler.js';
import { loadExportedModel } from '../../dist/engine/model-manifest.js';
import { Random } from '../../dist/engine/random.js';
import { modelArgs } from './model-args.js';
import { generate } from './greedy-requests.js';

const { folder, flag } = modelArgs('node test/bench/engine-gpu.js <exported-model-folder> [--devices cpu,webgpu] [--prompt 256] [--tokens 64] [--batch 8] [--logits last]');
const devices = flag('devices', 'cpu,webgpu').split(',');
const promptLength = Number(flag('prompt', '256'));
const tokens = Number(flag('tokens', '64'));
const batch = Number(flag('batch', '8'));
const logits = flag('logits', 'last');
const path = flag('path', 'dynamic');
const model = loadExportedModel(folder);
const vocab = model.manifest.vocab_size;
const ids = (length, seed) => {
  const random = new Random(seed);
  return Array.from({ length }, () => 4 + Math.floor(random.next() * (vocab - 4)));
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const results = [];
for (const device of devices) {
  const limits = { maxBatch: batch, maxQueue: batch, maxTokensTotal: batch * model.manifest.max_position_embeddings, prefillChunk: promptLength * batch };
  const fixed = path === 'fixed-cache';
  const capacity = Math.min(model.manifest.max_position_embeddings, 4096);
  const decoder = fixed ? await FixedCacheDecoder.open(model, { provider: device, rows: batch, capacity }) : await DecoderSession.open(model, { device, logits });
  const scheduler = fixed ? new FixedCacheScheduler(decoder, limits) : new GenerationScheduler(decoder, limits);
  await generate(scheduler, [ids(promptLength, 1)], 4); // warm-up: kernels compiled, buffers allocated
  // Prefill: a lone request with one new token; its time to first token is the prefill.
  const prefills = [];
  for (let i = 0; i < 3; i++) prefills.push((await generate(scheduler, [ids(promptLength, 2 + i)], 1))[0].end.timeToFirstTokenMs);
  const [single] = await generate(scheduler, [ids(16, 7)], tokens);
  const started = performance.now();
  const batched = await generate(
    scheduler,
    Array.from({ length: batch }, (_, b) => ids(16 + 8 * b, 20 + b)),
    tokens,
  );
  const batchMs = performance.now() - started;
  // Logits of one prefill, to see how close the providers are when tokens differ.
  const probe = ids(32, 99);
  const step = fixed
    ? { logits: (await decoder.prefill(0, probe, 0, { logits: true })).logits }
    : await decoder.forward(
        BigInt64Array.from(probe, BigInt),
        new BigInt64Array(probe.length).fill(1n),
        BigInt64Array.from(probe, (_, i) => BigInt(i)),
        decoder.emptyCache(1),
      );
  results.push({
    device,
    path,
    provider: decoder.provider,
    skipped: decoder.skipped,
    prefillTokensPerSecond: (promptLength / median(prefills)) * 1000,
    decodeTokensPerSecond: ((tokens - 1) / single.end.interTokenMs.reduce((a, b) => a + b, 0)) * 1000,
    batchDecodeTokensPerSecond: ((batch * tokens) / batchMs) * 1000,
    tokens: single.tokens,
    batchTokens: batched.map((r) => r.tokens),
    lastLogits: step.logits.slice(step.logits.length - vocab),
  });
  await decoder.release();
}

console.log(`${model.dir}: ${model.manifest.num_layers} layers, hidden ${model.manifest.hidden_size}, vocab ${vocab}, ${model.manifest.precision}; logits: ${logits}`);
for (const r of results) {
  console.log(
    `${r.device.padEnd(7)} provider ${r.provider}: prefill ${r.prefillTokensPerSecond.toFixed(0)} tokens/s (${promptLength}-token prompt), decode ${r.decodeTokensPerSecond.toFixed(1)} tokens/s (batch 1), ${r.batchDecodeTokensPerSecond.toFixed(1)} tokens/s (batch ${batch})` +
      (r.skipped.length ? `; skipped ${r.skipped.map((s) => `${s.provider}: ${s.reason}`).join('; ')}` : ''),
  );
}
if (results.length === 2) {
  const [ra, rb] = results;
  const [a, b] = devices;
  const firstDiff = (x, y) => x.findIndex((t, i) => t !== y[i]);
  const same = firstDiff(ra.tokens, rb.tokens) < 0;
  const batchSame = ra.batchTokens.every((row, i) => firstDiff(row, rb.batchTokens[i]) < 0);
  const logitDiff = ra.lastLogits.reduce((m, v, i) => Math.max(m, Math.abs(v - rb.lastLogits[i])), 0);
  console.log(
    `greedy tokens ${a} vs ${b}: batch 1 ${same ? 'identical' : `differ from token ${firstDiff(ra.tokens, rb.tokens)}`} (${tokens} tokens); batch ${batch} ${batchSame ? 'identical' : 'differ'}; max |Δlogit| after a 32-token prefill ${logitDiff.toExponential(2)}`,
  );
  console.log(
    `${b} vs ${a}: prefill ×${(rb.prefillTokensPerSecond / ra.prefillTokensPerSecond).toFixed(2)}, decode ×${(rb.decodeTokensPerSecond / ra.decodeTokensPerSecond).toFixed(2)} (batch 1), ×${(rb.batchDecodeTokensPerSecond / ra.batchDecodeTokensPerSecond).toFixed(2)} (batch ${batch})`,
  );
  process.exitCode = same && batchSame ? 0 : 1;
}
console.log(JSON.stringify(results.map((r) => ({ ...r, lastLogits: undefined, batchTokens: undefined }))));
