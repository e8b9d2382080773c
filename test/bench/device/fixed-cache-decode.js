// Greedy decoding on llmkit's own ONNX Runtime binding with the cache on the device: the graph of
// fixed-cache-graph.py, one cache buffer per layer of `capacity` columns a row, written in place by
// GroupQueryAttention (past and present bound to the same device tensor), one binding per batch-size bucket
// whose decode step ONNX Runtime captures as a CUDA graph (`enable_cuda_graph`, `gpu_graph_id` = the bucket) and
// replays, and ArgMax in the graph, so a step moves ids, positions and lengths in (a few bytes) and token ids out.
// Prefill runs on the same session outside the graphs (gpu_graph_id -1), into the rows of the bucket's cache.
// Prints one JSON line per batch size: prefill tokens/s (time to first token), decode tokens/s, the tokens.
//
//   node test/bench/device/fixed-cache-decode.js <graph.onnx> <export-folder> [--device cuda|cpu] [--graph 1|0]
//        [--batches 1,8] [--prompt 256] [--tokens 64] [--capacity 512] [--rounds 3]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NativeSession } from '../../../dist/engine/native/ort-binding.js';
import { Random } from '../../../dist/engine/random.js';

const [graphPath, folder, ...rest] = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : fallback;
};
const device = flag('device', 'cuda');
const useGraph = device === 'cuda' && flag('graph', '1') === '1';
const batches = flag('batches', '1,8').split(',').map(Number);
const promptLength = Number(flag('prompt', '256'));
const newTokens = Number(flag('tokens', '64'));
const capacity = Number(flag('capacity', '512'));
const rounds = Number(flag('rounds', '3'));
const manifest = JSON.parse(readFileSync(join(folder, 'llmkit.json'), 'utf8'));
const { num_layers: layers, num_kv_heads: kvHeads, head_dim: headDim, vocab_size: vocab } = manifest;
const cacheType = device === 'cuda' && manifest.dtype === 'float16' ? 'float16' : 'float32';

const session = NativeSession.open(graphPath, { provider: device, cuda: useGraph ? { enable_cuda_graph: '1' } : {} });
const onDevice = (type, shape) => {
  if (device === 'cuda') return session.deviceTensor(type, shape);
  const count = shape.reduce((n, d) => n * d, 1);
  const Array_ = { float32: Float32Array, float16: Uint16Array, int64: BigInt64Array, int32: Int32Array }[type];
  return session.hostTensor(new Array_(count), type, shape);
};

/** A bucket: its caches, its step inputs and outputs on the device, and the binding of its decode step. */
function makeBucket(batch, graphId) {
  const caches = Array.from({ length: layers }, () => [onDevice(cacheType, [batch, kvHeads, capacity, headDim]), onDevice(cacheType, [batch, kvHeads, capacity, headDim])]);
  const ids = onDevice('int64', [batch, 1]);
  const positions = onDevice('int64', [batch, 1]);
  const seqlens = onDevice('int32', [batch]);
  const next = onDevice('int64', [batch, 1, 1]);
  const logits = onDevice('float32', [batch, 1, vocab]);
  // total_sequence_length is a CPU input of GroupQueryAttention: the capacity, the same at every step, so a
  // captured graph stays valid; each row's own length is its seqlens_k.
  const total = session.hostTensor(Int32Array.of(capacity), 'int32', []);
  const binding = session.binding().input('input_ids', ids).input('position_ids', positions).input('seqlens_k', seqlens).input('total_sequence_length', total);
  binding.output('logits', logits).output('next_token', next);
  caches.forEach(([k, v], i) => {
    binding.input(`past_key_values.${i}.key`, k).input(`past_key_values.${i}.value`, v);
    binding.output(`present.${i}.key`, k).output(`present.${i}.value`, v);
  });
  const runConfig = device === 'cuda' ? { gpu_graph_id: String(useGraph ? graphId : -1) } : undefined;
  return { batch, caches, ids, positions, seqlens, next, logits, binding, runConfig };
}

/** Prefill of `rows` prompts of one length into rows `first`.. of the bucket's cache (one pass, outside the graphs). */
async function prefill(bucket, prompts) {
  const batch = prompts.length;
  const length = prompts[0].length;
  const binding = session.binding();
  binding.input('input_ids', session.hostTensor(BigInt64Array.from(prompts.flat().map(BigInt)), 'int64', [batch, length]));
  binding.input('position_ids', session.hostTensor(BigInt64Array.from(prompts.flatMap((p) => p.map((_, i) => BigInt(i)))), 'int64', [batch, length]));
  binding.input('seqlens_k', session.hostTensor(new Int32Array(batch).fill(length - 1), 'int32', [batch]));
  binding.input('total_sequence_length', session.hostTensor(Int32Array.of(length), 'int32', []));
  const next = new BigInt64Array(batch);
  binding.output('next_token', session.hostTensor(next, 'int64', [batch, 1, 1]));
  binding.output('logits', onDevice('float32', [batch, 1, vocab]));
  bucket.caches.forEach(([k, v], i) => {
    const kv = [k.view(0, [batch, kvHeads, capacity, headDim]), v.view(0, [batch, kvHeads, capacity, headDim])];
    binding.input(`past_key_values.${i}.key`, kv[0]).input(`past_key_values.${i}.value`, kv[1]);
    binding.output(`present.${i}.key`, kv[0]).output(`present.${i}.value`, kv[1]);
  });
  await binding.run(device === 'cuda' ? { gpu_graph_id: '-1' } : undefined);
  return Array.from(next, Number);
}

/** Greedy decode of `steps` tokens after the first, for every row of the bucket; rows have `lengths` tokens cached. */
async function decode(bucket, first, lengths, steps) {
  const tokens = first.map((t) => [t]);
  const ids = BigInt64Array.from(first.map(BigInt));
  const positions = BigInt64Array.from(lengths.map(BigInt));
  const seqlens = Int32Array.from(lengths);
  const next = new BigInt64Array(bucket.batch);
  for (let s = 0; s < steps; s++) {
    bucket.ids.write(ids);
    bucket.positions.write(positions);
    bucket.seqlens.write(seqlens);
    await bucket.binding.run(bucket.runConfig);
    bucket.next.read(next);
    for (let b = 0; b < bucket.batch; b++) {
      tokens[b].push(Number(next[b]));
      ids[b] = next[b];
      positions[b] += 1n;
      seqlens[b] += 1;
    }
  }
  return tokens;
}

const prompt = (length, seed) => {
  const random = new Random(seed);
  return Array.from({ length }, () => 4 + Math.floor(random.next() * (vocab - 4)));
};

const buckets = new Map(batches.map((b, i) => [b, makeBucket(b, i + 1)]));
for (const [batch, bucket] of buckets) {
  // Warm-up: ONNX Runtime runs a bucket's step twice before it captures the graph.
  const first = await prefill(
    bucket,
    Array.from({ length: batch }, (_, b) => prompt(16, 900 + b)),
  );
  await decode(bucket, first, new Array(batch).fill(16), 4);
}
for (let round = 0; round < rounds; round++) {
  for (const [batch, bucket] of buckets) {
    const prompts = Array.from({ length: batch }, (_, b) => prompt(promptLength, 100 * round + b));
    let started = performance.now();
    const first = await prefill(bucket, prompts);
    const prefillMs = performance.now() - started;
    started = performance.now();
    const tokens = await decode(bucket, first, new Array(batch).fill(promptLength), newTokens - 1);
    const decodeMs = performance.now() - started;
    const result = {
      round,
      device,
      graph: useGraph,
      batch,
      prefillTokPerS: (batch * promptLength * 1000) / prefillMs,
      timeToFirstTokenMs: prefillMs,
      decodeTokPerS: (batch * (newTokens - 1) * 1000) / decodeMs,
      tokens,
    };
    console.log(JSON.stringify(result));
  }
}
