// The fixed-cache decode path (src/engine/fixed-cache/) on the CPU, on llmkit's own binding: the same greedy tokens
// as the engine's dynamic path with rows joining and leaving, and its device sampler against TokenSampler. The CUDA
// specifics (graph capture and replay per bucket) run only on a GPU: test/bench/device/binding-run.sh.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalEngine } from '../../src/engine/local-engine.js';
import { DeviceSampler } from '../../src/engine/fixed-cache/device-sampler.js';
import { fixedCacheGraph } from '../../src/engine/fixed-cache/fixed-cache-graph.js';
import { FixedCacheDecoder } from '../../src/engine/fixed-cache/fixed-cache-decoder.js';
import { FixedCacheScheduler } from '../../src/engine/fixed-cache/fixed-cache-scheduler.js';
import { GenerationScheduler } from '../../src/engine/generation-scheduler.js';
import type { SchedulerLimits } from '../../src/engine/admission.js';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { NativeSession } from '../../src/engine/native/ort-binding.js';
import { autoMeansCpu } from '../../src/engine/onnx-runtime.js';
import { PrefixCache } from '../../src/engine/prefix-cache.js';
import { Random } from '../../src/engine/random.js';
import { GREEDY, type SamplingParams, TokenSampler } from '../../src/engine/sampling.js';
import type { GenerationRequest } from '../../src/engine/sequence.js';
import type { GenerationEnd } from '../../src/engine/streamer.js';
import { exportedTinyModel } from '../helpers/models.js';

const prompt = (length: number, seed: number) => {
  const random = new Random(seed);
  return Array.from({ length }, () => 4 + Math.floor(random.next() * 700));
};

interface TestRequest {
  promptIds: number[];
  maxTokens: number;
  sampling?: SamplingParams;
  lane?: GenerationRequest['lane'];
  /** Submitted once this settles. */
  after?: Promise<unknown>;
  onToken?: (tokens: number[]) => void;
}

/** Submits each request once its `after` settles; resolves with each one's tokens. */
function generate(scheduler: Pick<GenerationScheduler, 'submit'>, requests: TestRequest[]) {
  return Promise.all(
    requests.map(async (r) => {
      await r.after;
      return new Promise<{ tokens: number[]; end: GenerationEnd }>((resolve) => {
        const tokens: number[] = [];
        const request: GenerationRequest = {
          promptIds: r.promptIds,
          maxTokens: r.maxTokens,
          sampling: r.sampling ?? GREEDY,
          stopTokenIds: [],
          lane: r.lane,
          sink: { token: (t) => (tokens.push(t), r.onToken?.(tokens), false), end: (end) => resolve({ tokens, end }) },
        };
        scheduler.submit(request);
      });
    }),
  );
}

/** Resolves once the counter has seen `n` decode steps. */
function stepper() {
  let steps = 0;
  const waiting: [number, () => void][] = [];
  return {
    onStep: () => {
      steps++;
      for (const w of waiting.filter(([n]) => n <= steps)) w[1]();
    },
    after: (n: number) => new Promise<void>((resolve) => (n <= steps ? resolve() : waiting.push([n, resolve]))),
  };
}

describe.each(['tiny', '100m'] as const)('the fixed-cache path on the CPU (%s)', (preset) => {
  let folder: string;
  let dynamic: DecoderSession;
  let fixed: FixedCacheDecoder;
  const limits: SchedulerLimits = { maxBatch: 4, maxQueue: 16, maxTokensTotal: 4 * 256, prefillChunk: 24 };

  beforeAll(async () => {
    folder = await exportedTinyModel(preset, 0, 'fused-gqa');
    const model = loadExportedModel(folder);
    dynamic = await DecoderSession.open(model, { device: 'cpu', threads: 2, logits: 'last' });
    fixed = await FixedCacheDecoder.open(model, { provider: 'cpu', threads: 2, rows: limits.maxBatch, capacity: 256 });
  }, 600_000);
  afterAll(async () => {
    await dynamic?.release();
    await fixed?.release();
  });

  it('gives the dynamic path greedy tokens while rows join and leave inside a bucket (prefill in chunks between steps)', async () => {
    // Every layer's GroupQueryAttention rotates the packed projections itself here; the dynamic path keeps RotaryEmbedding.
    const model = loadExportedModel(folder);
    expect(fixedCacheGraph(readFileSync(model.onnxPath)).packedLayers).toBe(model.manifest.num_layers);
    // Six requests of different lengths through four rows: two start together, others join after some steps,
    // short ones leave early and their rows are taken again; prompts of 30-60 tokens take 2-3 chunks of 24.
    const shape = [
      [30, 12, 0],
      [45, 4, 0],
      [37, 9, 2],
      [60, 6, 3],
      [33, 10, 5],
      [41, 3, 6],
    ];
    const run = (scheduler: FixedCacheScheduler | GenerationScheduler, steps: ReturnType<typeof stepper>) =>
      generate(
        scheduler,
        shape.map(([length, maxTokens, after], i) => ({ promptIds: prompt(length, 10 + i), maxTokens, after: after ? steps.after(after) : undefined })),
      );
    const fixedSteps = stepper();
    const dynamicSteps = stepper();
    const [got, want] = [await run(new FixedCacheScheduler(fixed, limits, fixedSteps.onStep), fixedSteps), await run(new GenerationScheduler(dynamic, limits, dynamicSteps.onStep), dynamicSteps)];
    expect(got.map((r) => r.tokens)).toEqual(want.map((r) => r.tokens));
    expect(got.map((r) => r.tokens.length)).toEqual(shape.map(([, n]) => n));
    expect(got.every((r) => r.end.reason === 'length')).toBe(true);
  }, 300_000);

  it('prefills rows seated together with prompts of one length in one pass, with the tokens of the dynamic path', async () => {
    const passes: number[] = [];
    const original = fixed.prefillRows;
    fixed.prefillRows = (first, rows, start, opts) => (passes.push(rows.length), original.call(fixed, first, rows, start, opts));
    try {
      // The last row samples (seeded): its first token is drawn on the host from its own row of the pass's logits.
      const requests = [0, 1, 2, 3].map((i) => ({ promptIds: prompt(40, 200 + i), maxTokens: 6, sampling: i === 3 ? { ...GREEDY, temperature: 0.8, topK: 20, seed: 3 } : undefined }));
      const wide = { ...limits, prefillChunk: 256 };
      const got = await generate(new FixedCacheScheduler(fixed, wide), requests);
      expect(passes).toEqual([4]);
      const want = await generate(new GenerationScheduler(dynamic, wide), requests);
      expect(got.map((r) => r.tokens)).toEqual(want.map((r) => r.tokens));
    } finally {
      fixed.prefillRows = original;
    }
  }, 300_000);

  it.runIf(preset === 'tiny')(
    'reuses the conversation so far from the prefix cache at every later turn, with the tokens of no reuse',
    async () => {
      const { num_kv_heads: heads, head_dim: dim } = fixed.model.manifest;
      const prefixes = new PrefixCache(64 << 20, heads, dim);
      /** Two 6-turn chats interleaved (a 100-token system prompt, 8-token user turns, 8-token answers), each turn resending the conversation. */
      async function chats(scheduler: FixedCacheScheduler): Promise<number[][]> {
        const system = prompt(100, 7);
        const conversations = [[...system], [...system, ...prompt(5, 8)]];
        const answers: number[][] = [];
        for (let turn = 0; turn < 6; turn++) {
          const prompts = conversations.map((c, i) => [...c, ...prompt(8, 100 * turn + i)]);
          const outs = (
            await generate(
              scheduler,
              prompts.map((promptIds) => ({ promptIds, maxTokens: 8 })),
            )
          ).map((r) => r.tokens);
          outs.forEach((out, i) => (conversations[i] = [...prompts[i], ...out]));
          answers.push(...outs);
        }
        return answers;
      }
      const withReuse = await chats(new FixedCacheScheduler(fixed, limits, undefined, undefined, prefixes));
      expect(withReuse).toEqual(await chats(new FixedCacheScheduler(fixed, limits)));
      expect(withReuse.flat().length).toBe(12 * 8);
      // Turns 2..6 of both chats hit: each reuses at least the system prompt and the previous turn's prompt.
      expect(prefixes.hits).toBeGreaterThanOrEqual(10);
      expect(prefixes.reusedTokens).toBeGreaterThan(10 * 100);
    },
    300_000,
  );

  it.runIf(preset === 'tiny')(
    'hands an interactive arrival a batch-lane row at the next step; the preempted line resumes and loses nothing',
    async () => {
      const { num_kv_heads: heads, head_dim: dim } = fixed.model.manifest;
      const prefixes = new PrefixCache(64 << 20, heads, dim);
      const scheduler = new FixedCacheScheduler(fixed, limits, undefined, undefined, prefixes);
      const batchIds = [0, 1, 2, 3, 4, 5].map((i) => prompt(20 + i, 60 + i));
      let started!: () => void;
      const decoding = new Promise<void>((resolve) => (started = resolve));
      let batchEnded = 0;
      let endedBeforeInteractive = -1;
      const interactiveIds = prompt(9, 70);
      // Six batch lines for four rows (two wait in the batch lane); the interactive request comes once the first has 5 tokens.
      const [interactive, ...batch] = await Promise.all([
        generate(scheduler, [{ promptIds: interactiveIds, maxTokens: 6, after: decoding, onToken: (t) => t.length === 1 && (endedBeforeInteractive = batchEnded) }]),
        ...batchIds.map((promptIds, i) => generate(scheduler, [{ promptIds, maxTokens: 30, lane: 'batch', onToken: (t) => i === 0 && t.length === 5 && started() }]).then((r) => (batchEnded++, r))),
      ]);
      expect(endedBeforeInteractive).toBe(0);
      expect(scheduler.preempted).toBeGreaterThanOrEqual(1);
      // The preempted line resumed from its prompt and tokens, its keys/values from the prefix cache.
      expect(prefixes.hits).toBeGreaterThanOrEqual(1);
      const alone = async (promptIds: number[], maxTokens: number) => (await generate(new FixedCacheScheduler(fixed, limits), [{ promptIds, maxTokens }]))[0].tokens;
      expect(interactive[0].tokens).toEqual(await alone(interactiveIds, 6));
      for (const [i, ids] of batchIds.entries()) expect(batch[i][0].tokens, `batch line ${i}`).toEqual(await alone(ids, 30));
    },
    300_000,
  );

  // (On tiny only: the draw is the same code whatever the model; 100m's check above is what its size adds.)
  it.runIf(preset === 'tiny')(
    'samples seeded top-k/top-p requests as the dynamic path does, next to greedy ones',
    async () => {
      const sampled: SamplingParams = { ...GREEDY, temperature: 0.8, topK: 20, topP: 0.9, seed: 7 };
      const requests = [
        { promptIds: prompt(20, 1), maxTokens: 8, sampling: sampled },
        { promptIds: prompt(28, 2), maxTokens: 8 },
        { promptIds: prompt(25, 3), maxTokens: 8, sampling: { ...sampled, topK: 0, seed: 11 } },
      ];
      const got = await generate(new FixedCacheScheduler(fixed, limits), requests);
      const want = await generate(new GenerationScheduler(dynamic, limits), requests);
      expect(got.map((r) => r.tokens)).toEqual(want.map((r) => r.tokens));
    },
    300_000,
  );
});

describe('the engine on the fixed-cache path', () => {
  it('serves a --gqa export on --device cpu by default, the dynamic path when asked, and refuses a plain export with one line', async () => {
    const engine = await LocalEngine.open(await exportedTinyModel('tiny', 0, 'fused-gqa'), { device: 'cpu', threads: 1, decodePath: 'fixed-cache', maxBatch: 2 });
    try {
      expect(engine.decodePath).toBe('fixed-cache');
      const { end } = await engine.complete({ promptIds: prompt(12, 4), maxTokens: 5, ignoreEos: true });
      expect(end.completionTokens).toBe(5);
    } finally {
      await engine.close();
    }
    await expect(LocalEngine.open(await exportedTinyModel('tiny', 0, 'traced'), { device: 'cpu', decodePath: 'fixed-cache' })).rejects.toThrow(
      /^the fixed-cache decode path cannot run: it needs an export with GroupQueryAttention/,
    );
    // The CPU default for a float32 --gqa export (its fastest graph: docs/benchmarks.md), unless asked otherwise.
    const byDefault = await LocalEngine.open(await exportedTinyModel('tiny', 0, 'fused-gqa'), { device: 'cpu', threads: 1, maxBatch: 2 });
    expect(byDefault.decodePath).toBe('fixed-cache');
    await byDefault.close();
    // `auto` (serve's default device) is the CPU where CUDA and WebGPU are known not to load, as on this machine.
    const auto = await LocalEngine.open(await exportedTinyModel('tiny', 0, 'fused-gqa'), { threads: 1, maxBatch: 2 });
    expect([auto.decodePath, auto.device]).toEqual(autoMeansCpu() ? ['fixed-cache', 'cpu'] : ['dynamic', auto.device]);
    await auto.close();
    const dynamic = await LocalEngine.open(await exportedTinyModel('tiny', 0, 'fused-gqa'), { device: 'cpu', threads: 1, maxBatch: 2, decodePath: 'dynamic' });
    expect(dynamic.decodePath).toBe('dynamic');
    await dynamic.close();
  }, 300_000);
});

describe('the device sampler against TokenSampler', () => {
  let sampler: DeviceSampler;
  let session: NativeSession;
  const vocab = 300;
  const random = new Random(99);
  // Peaked enough that top-p cuts somewhere in the middle.
  const logits = Float32Array.from({ length: vocab }, () => 4 * (random.next() - 0.5) ** 3 * 8);

  beforeAll(async () => {
    sampler = DeviceSampler.open('cpu');
    session = NativeSession.open(fixedCacheGraph(readFileSync(loadExportedModel(await exportedTinyModel('tiny', 0, 'fused-gqa')).onnxPath)).bytes, { provider: 'cpu' });
  }, 300_000);
  afterAll(() => {
    sampler?.release();
    session?.release();
  });

  /** `draws` samples of one row from TokenSampler (seeded) and from the device sampler fed the same uniform numbers. */
  async function both(params: SamplingParams, draws: number) {
    const host = new TokenSampler(params, []);
    const twin = new TokenSampler(params, []);
    const rows = draws;
    const batch = new Float32Array(rows * vocab);
    for (let r = 0; r < rows; r++) batch.set(logits, r * vocab);
    const choices = Array.from({ length: rows }, () => twin.deviceChoice()).map((c) => (c === 'greedy' ? undefined : c));
    const tensor = session.hostTensor(batch, 'float32', [rows, 1, vocab]);
    const device = await sampler.draw(tensor, rows, vocab, choices);
    const hostTokens = Array.from({ length: rows }, () => host.sample(logits.slice()));
    // What the scheduler falls back to where the device sampler fails: the same draws, made on the host.
    const fallback = choices.map((c) => (c ? twin.drawOnHost(logits.slice(), c) : -1));
    return { host: hostTokens, device: Array.from(device, Number), fallback };
  }

  it.each([
    ['top-k 20', { temperature: 0.7, topK: 20, topP: 1 }],
    ['top-p 0.8', { temperature: 1, topK: 0, topP: 0.8 }],
    ['top-k 50 and top-p 0.6', { temperature: 1.3, topK: 50, topP: 0.6 }],
  ])('draws the token TokenSampler draws from the same uniform number (%s)', async (_, filters) => {
    const { host, device, fallback } = await both({ ...GREEDY, ...filters, seed: 5 }, 2000);
    expect(fallback).toEqual(host);
    const same = host.filter((t, i) => t === device[i]).length;
    // float32 on the device against float64 on the host: only a draw right on a boundary may differ.
    expect(same / host.length).toBeGreaterThan(0.995);
    expect(new Set(device).size).toBeGreaterThan(3);
  });

  it('matches the whole-vocabulary distribution (temperature only), whose host draw walks the vocabulary unsorted', async () => {
    const n = 4000;
    const temperature = 0.9;
    const weights = Array.from(logits, (l) => Math.exp(l / temperature));
    const total = weights.reduce((a, b) => a + b, 0);
    const p = weights.map((w) => w / total);
    // Evenly spread uniform numbers: the device's counts are then the distribution's quantiles, within 1/n each.
    const draws = Array.from({ length: n }, (_, i) => ({ temperature, topK: 0, topP: 1, uniform: (i + 0.5) / n }));
    const batch = new Float32Array(n * vocab);
    for (let r = 0; r < n; r++) batch.set(logits, r * vocab);
    const device = await sampler.draw(session.hostTensor(batch, 'float32', [n, 1, vocab]), n, vocab, draws);
    const counts = new Array(vocab).fill(0);
    for (const t of device) counts[Number(t)]++;
    expect(Math.max(...counts.map((c, j) => Math.abs(c / n - p[j])))).toBeLessThan(2.5 / n);
    // TokenSampler's own draws (seeded) follow the same distribution: total variation of 4,000 draws.
    const host = new TokenSampler({ ...GREEDY, temperature, seed: 3 }, []);
    const hostCounts = new Array(vocab).fill(0);
    for (let i = 0; i < n; i++) hostCounts[host.sample(logits.slice())]++;
    expect(hostCounts.reduce((sum, c, j) => sum + Math.abs(c / n - p[j]), 0) / 2).toBeLessThan(0.08);
  });

  it('gives greedy rows their argmax', async () => {
    const { host, device } = await both({ ...GREEDY, topK: 1, temperature: 1 }, 3);
    expect(device).toEqual(host);
  });
});
