import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import { leftPaddedMask } from '../../src/engine/kv-cache.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { onnxruntimeLibDir } from '../../src/engine/cuda-libraries.js';
import { bindingStatus, NativeSession } from '../../src/engine/native/ort-binding.js';
import { RunInterrupted } from '../../src/engine/onnx-runtime.js';
import { packageRoot } from '../../src/shared/paths.js';
import { tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';

const probeModel = join(packageRoot, 'src', 'engine', 'assets', 'probe.onnx');
const ids = (xs: number[]) => BigInt64Array.from(xs.map(BigInt));

/** The largest |a - b| over two arrays of the same length. */
function maxDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

it('is built and in use here (CI builds it with the system g++ during npm ci)', () => {
  expect(bindingStatus()).toMatchObject({ binding: 'llmkit', apiVersion: 23 });
});

/**
 * The same session inputs through both bindings: a prefill of two left-padded rows, then decode steps that write
 * into spare columns of the cache (for fused-gqa, GroupQueryAttention writes the cache buffer itself).
 */
describe.each([
  ['tiny', 'traced'],
  ['tiny', 'fused'],
  ['tiny', 'fused-gqa'],
  ['100m', 'traced'],
  ['100m', 'fused'],
  ['100m', 'fused-gqa'],
] as const)('the %s model (%s graph): llmkit binding vs onnxruntime-node', (preset, graph) => {
  const decoders: Record<'llmkit' | 'onnxruntime-node', DecoderSession> = {} as never;
  beforeAll(async () => {
    const model = loadExportedModel(await exportedTinyModel(preset, 0, graph));
    for (const binding of ['llmkit', 'onnxruntime-node'] as const) decoders[binding] = await DecoderSession.open(model, { device: 'cpu', threads: 2, binding });
  }, 600_000);
  afterAll(async () => {
    for (const d of Object.values(decoders)) await d.release();
  });

  async function trace(decoder: DecoderSession): Promise<{ logits: Float32Array[]; cache: Float32Array }> {
    const rows = [
      [5, 17, 42, 99, 7],
      [61, 4, 250],
    ];
    const width = 5;
    const mask = leftPaddedMask([0, 0], 0, width);
    rows.forEach((r, b) => mask.fill(0n, b * width, b * width + width - r.length));
    const input = ids(rows.flatMap((r) => [...new Array(width - r.length).fill(0), ...r]));
    const positions = ids(rows.flatMap((r) => [...new Array(width - r.length).fill(0), ...r.map((_, i) => i)]));
    const prefill = await decoder.forward(input, mask, positions, decoder.emptyCache(2));
    const logits = [prefill.logits.slice()];
    const capacity = width + 3;
    let cache = { ...prefill.cache, capacity, layers: prefill.cache.layers.map((l) => ({ key: widen(l.key, capacity), value: widen(l.value, capacity) })) };
    for (let step = 0; step < 3; step++) {
      const stepMask = leftPaddedMask(
        rows.map((r) => r.length + step),
        cache.length,
        1,
        capacity,
      );
      const out = await decoder.decodeInPlace(ids([11 + step, 12 + step]), stepMask, ids(rows.map((r) => r.length + step)), cache);
      logits.push(out.logits.slice());
      cache = out.cache;
    }
    return { logits, cache: cache.layers[0].key };

    function widen(a: Float32Array, columns: number): Float32Array {
      const headDim = decoder.model.manifest.head_dim;
      const rowHeads = a.length / (width * headDim);
      const out = new Float32Array(rowHeads * columns * headDim);
      for (let r = 0; r < rowHeads; r++) out.set(a.subarray(r * width * headDim, (r + 1) * width * headDim), r * columns * headDim);
      return out;
    }
  }

  it('gives the same logits and the same cache', async () => {
    const ours = await trace(decoders.llmkit);
    const theirs = await trace(decoders['onnxruntime-node']);
    expect(decoders.llmkit.binding).toBe('llmkit');
    expect(decoders['onnxruntime-node'].binding).toBe('onnxruntime-node');
    ours.logits.forEach((l, i) => expect(maxDifference(l, theirs.logits[i])).toBe(0));
    expect(maxDifference(ours.cache, theirs.cache)).toBe(0);
    expect(ours.logits.every((l) => l.some((x) => x !== 0))).toBe(true);
  });
});

describe('the binding itself', () => {
  it('writes a bound output into the caller’s buffer, not a copy', async () => {
    const session = NativeSession.open(probeModel, { provider: 'cpu', threads: 1 });
    const x = Float32Array.from([1, 2, 3, 4]);
    const y = new Float32Array(4).fill(-1);
    const binding = session
      .binding()
      .input('x', session.hostTensor(x, 'float32', [1, 4]))
      .output('y', session.hostTensor(y, 'float32', [1, 4]));
    await binding.run();
    expect(Array.from(y)).toEqual([2, 4, 6, 8]);
    x.set([10, 20, 30, 40]); // the input too is read from the array itself at each run
    await binding.run();
    expect(Array.from(y)).toEqual([20, 40, 60, 80]);
    session.release();
  });

  it('keeps RSS flat over 5,000 decode-sized runs', async () => {
    const session = NativeSession.open(probeModel, { provider: 'cpu', threads: 1 });
    // Each run binds fresh tensors over fresh 1 MB arrays, as a decode step binds its feeds: a tensor or reference
    // that outlived its run would keep its array alive, 5 GB over the loop.
    const runOnce = async () => {
      const x = new Float32Array(1 << 18).fill(1);
      const y = new Float32Array(4);
      await session
        .binding()
        .input('x', session.hostTensor(x, 'float32', [1, 4]))
        .output('y', session.hostTensor(y, 'float32', [1, 4]))
        .run();
      return y[0];
    };
    for (let i = 0; i < 500; i++) await runOnce();
    const before = process.memoryUsage().rss;
    let sum = 0;
    for (let i = 0; i < 5000; i++) sum += await runOnce();
    const grown = process.memoryUsage().rss - before;
    expect(sum).toBe(10_000);
    expect(grown).toBeLessThan(200 * 2 ** 20);
    session.release();
  }, 120_000);

  it('keeps the event loop answering while a long run is in flight', async () => {
    const decoder = await DecoderSession.open(loadExportedModel(await exportedTinyModel('100m', 0, 'fused')), { device: 'cpu', threads: 1 });
    const tokens = 384;
    const lateness: number[] = [];
    let running = true;
    const tick = async () => {
      while (running) {
        const start = performance.now();
        await new Promise((resolve) => setTimeout(resolve, 5));
        lateness.push(performance.now() - start - 5);
      }
    };
    const ticking = tick();
    const start = performance.now();
    await decoder.forward(ids(Array.from({ length: tokens }, (_, i) => (i * 7) % 500)), new BigInt64Array(tokens).fill(1n), ids(Array.from({ length: tokens }, (_, i) => i)), decoder.emptyCache(1));
    const took = performance.now() - start;
    running = false;
    await ticking;
    await decoder.release();
    expect(took).toBeGreaterThan(200); // long enough that a blocked loop would miss ~40 ticks
    expect(lateness.length).toBeGreaterThan(took / 30);
    // A blocked loop would run one late tick (late by the whole run); on a free loop the ticks are late only by
    // what the OS scheduler adds, a few ms on a busy 2-core machine (the p90 bound leaves room for its bursts).
    lateness.sort((a, b) => a - b);
    expect(lateness[Math.floor(lateness.length / 2)]).toBeLessThan(10);
    expect(lateness[Math.floor(lateness.length * 0.9)]).toBeLessThan(50);
  }, 600_000);

  it('stops a run in flight when its signal is aborted, and runs the same pass whole afterwards', async () => {
    const decoder = await DecoderSession.open(loadExportedModel(await exportedTinyModel('100m', 0, 'fused')), { device: 'cpu', threads: 1 });
    const tokens = 384;
    const pass = (signal?: AbortSignal) =>
      decoder.forward(
        ids(Array.from({ length: tokens }, (_, i) => (i * 7) % 500)),
        new BigInt64Array(tokens).fill(1n),
        ids(Array.from({ length: tokens }, (_, i) => i)),
        decoder.emptyCache(1),
        undefined,
        signal,
      );
    const whole = await pass();
    const stop = new AbortController();
    // Well inside the pass (over 200 ms on one thread: see the test above).
    setTimeout(() => stop.abort(), 20);
    await expect(pass(stop.signal)).rejects.toBeInstanceOf(RunInterrupted);
    const again = await pass(new AbortController().signal);
    await decoder.release();
    expect(maxDifference(again.logits, whole.logits)).toBe(0);
    expect(maxDifference(again.cache.layers[0].key, whole.cache.layers[0].key)).toBe(0);
  }, 600_000);

  // CPU time this process spends in the 200 ms after a 2-thread run: ORT's spinning workers burn ~40 ms of it.
  async function cpuMsAfterRun(binding: 'llmkit' | 'onnxruntime-node'): Promise<number> {
    const decoder = await DecoderSession.open(loadExportedModel(await exportedTinyModel('100m', 0, 'fused')), { device: 'cpu', threads: 2, binding });
    expect(decoder.binding).toBe(binding);
    const tokens = 64;
    await decoder.forward(ids(Array.from({ length: tokens }, (_, i) => (i * 7) % 500)), new BigInt64Array(tokens).fill(1n), ids(Array.from({ length: tokens }, (_, i) => i)), decoder.emptyCache(1));
    const before = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const idle = process.cpuUsage(before);
    await decoder.release();
    return (idle.user + idle.system) / 1000;
  }

  it.each(['llmkit', 'onnxruntime-node'] as const)(
    'spins its CPU workers as ONNX Runtime does by default, and lets them sleep with LLMKIT_CPU_SPINNING=0 (%s)',
    async (binding) => {
      expect(await cpuMsAfterRun(binding)).toBeGreaterThan(10);
      process.env.LLMKIT_CPU_SPINNING = '0';
      try {
        expect(await cpuMsAfterRun(binding)).toBeLessThan(5);
      } finally {
        delete process.env.LLMKIT_CPU_SPINNING;
      }
    },
    600_000,
  );

  it('reports a bad model path, a wrong input name and a wrong shape in one line each', async () => {
    expect(() => NativeSession.open('/no/such/model.onnx', { provider: 'cpu' })).toThrow(/^Load model from \/no\/such\/model\.onnx failed:.*File doesn't exist$/);
    const session = NativeSession.open(probeModel, { provider: 'cpu', threads: 1 });
    const x = new Float32Array(4);
    const y = new Float32Array(4);
    expect(() => session.binding().input('nope', session.hostTensor(x, 'float32', [1, 4]))).toThrow(/^Failed to find input name in the mapping: nope$/);
    const wrongShape = session
      .binding()
      .input('x', session.hostTensor(x, 'float32', [2, 2]))
      .output('y', session.hostTensor(y, 'float32', [1, 4]));
    const shaped = await wrongShape.run().then(
      () => '',
      (e: Error) => e.message,
    );
    expect(shaped).toMatch(/^Got invalid dimensions for input: x .*index: 0 Got: 2 Expected: 1/);
    expect(shaped).not.toContain('\n');
    session.release();
  });
});

describe('the fallback', () => {
  const env = (extra: Record<string, string>) => ({ ...process.env, ...extra });
  it('runs on onnxruntime-node when the binding is switched off, and llmkit env says so', () => {
    const report = JSON.parse(execFileSync('node', ['bin/llmkit.js', 'env', '--json'], { cwd: packageRoot, env: env({ LLMKIT_NATIVE: '0' }), encoding: 'utf8' }));
    expect(report.ortBinding).toEqual({ binding: 'onnxruntime-node', reason: 'switched off by LLMKIT_NATIVE=0' });
    const script = `
      import { DecoderSession } from './dist/engine/decoder-session.js';
      import { loadExportedModel } from './dist/engine/model-manifest.js';
      const d = await DecoderSession.open(loadExportedModel(process.argv[1]), { device: 'cpu', logits: 'last' });
      const s = await d.forward(BigInt64Array.of(5n, 6n), BigInt64Array.of(1n, 1n), BigInt64Array.of(0n, 1n), d.emptyCache(1));
      console.log(JSON.stringify({ binding: d.binding, first: s.logits[0] }));`;
    return exportedTinyModel('tiny', 0, 'fused').then(async (folder) => {
      const run = (extra: Record<string, string>) => JSON.parse(execFileSync('node', ['--input-type=module', '-e', script, folder], { cwd: packageRoot, env: env(extra), encoding: 'utf8' }));
      const off = run({ LLMKIT_NATIVE: '0' });
      const on = run({});
      expect(off.binding).toBe('onnxruntime-node');
      expect(on.binding).toBe('llmkit');
      expect(off.first).toBe(on.first);
    });
  }, 120_000);

  it('opens the ONNX Runtime library LLMKIT_ORT_LIBRARY names, and falls back with the reason where it cannot', () => {
    const script = `import { bindingStatus } from './dist/engine/native/ort-binding.js'; console.log(JSON.stringify(bindingStatus()));`;
    const status = (library: string) => JSON.parse(execFileSync('node', ['--input-type=module', '-e', script], { cwd: packageRoot, env: env({ LLMKIT_ORT_LIBRARY: library }), encoding: 'utf8' }));
    const elsewhere = join(tempDir('llmkit-ort-library-'), 'libonnxruntime.so.1');
    symlinkSync(join(onnxruntimeLibDir(), 'libonnxruntime.so.1'), elsewhere);
    expect(status(elsewhere)).toEqual({ binding: 'llmkit', apiVersion: 23, library: elsewhere });
    const missing = status(join(tempDir('llmkit-ort-library-'), 'libonnxruntime.so.9'));
    expect(missing.binding).toBe('onnxruntime-node');
    expect(missing.reason).toMatch(/^the native binding did not load: cannot open ONNX Runtime: .*libonnxruntime\.so\.9/);
  });

  it('is what a build without a compiler leaves: no addon, and build.json says why', () => {
    const copy = tempDir();
    mkdirSync(join(copy, 'src/engine/native'), { recursive: true });
    for (const file of ['build.js', 'ort-binding.cc']) copyFileSync(join(packageRoot, 'src/engine/native', file), join(copy, 'src/engine/native', file));
    symlinkSync(join(packageRoot, 'node_modules'), join(copy, 'node_modules'));
    execFileSync('node', ['src/engine/native/build.js'], { cwd: copy, env: env({ CXX: 'no-such-compiler' }), stdio: 'ignore' });
    expect(existsSync(join(copy, 'dist/native/ort-binding.node'))).toBe(false);
    expect(JSON.parse(readFileSync(join(copy, 'dist/native/build.json'), 'utf8'))).toEqual({ built: false, reason: 'no C++ compiler (no-such-compiler) on this machine' });
  });
});
