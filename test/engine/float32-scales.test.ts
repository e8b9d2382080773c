// fp16 block scales on the CPU (float32-scales.ts): an int4 `--scales fp16` export, rewritten at load, has the very
// operators of the same weights quantized with `--scales fp32`, and the fixed-cache path on it generates what it
// generates on the fp32-scale file (the scales differ by fp16 rounding only).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FixedCacheDecoder } from '../../src/engine/fixed-cache/fixed-cache-decoder.js';
import { FixedCacheScheduler } from '../../src/engine/fixed-cache/fixed-cache-scheduler.js';
import { withFloat32Scales } from '../../src/engine/float32-scales.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { GRAPH_NODE, MODEL_GRAPH, readNode, wireFields } from '../../src/engine/onnx-wire.js';
import { GREEDY } from '../../src/engine/sampling.js';
import { llmkitHome } from '../../src/shared/paths.js';
import { runWorker } from '../../src/workers/worker-run.js';
import { tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';

/** The graph's operators, counted by type. */
function operators(bytes: Uint8Array): Record<string, number> {
  const graph = [...wireFields(bytes)].find((f) => f.field === MODEL_GRAPH)!;
  const counts: Record<string, number> = {};
  for (const f of wireFields(bytes, graph.valueStart, graph.end)) {
    if (f.field !== GRAPH_NODE) continue;
    const op = readNode(bytes, f).opType;
    counts[op] = (counts[op] ?? 0) + 1;
  }
  return counts;
}

async function quantized(fp32: string, out: string, scales: 'fp16' | 'fp32'): Promise<string> {
  await runWorker({
    job: 'quantize',
    config: { model: fp32, out, bits: 4, block_size: 32, symmetric: true, exclude: [], accuracy_level: 4, scales },
    logFile: join(llmkitHome(), 'logs', 'quantize.log'),
  });
  return out;
}

async function greedy(folder: string, promptIds: number[], maxTokens: number): Promise<number[]> {
  const decoder = await FixedCacheDecoder.open(loadExportedModel(folder), { provider: 'cpu', threads: 2, rows: 1, capacity: 128 });
  try {
    const scheduler = new FixedCacheScheduler(decoder, { maxBatch: 1, maxQueue: 1, maxTokensTotal: 128, prefillChunk: 64 });
    return await new Promise((resolve) => {
      const tokens: number[] = [];
      scheduler.submit({ promptIds, maxTokens, sampling: GREEDY, stopTokenIds: [], sink: { token: (t) => (tokens.push(t), false), end: () => resolve(tokens) } });
    });
  } finally {
    await decoder.release();
  }
}

describe('fp32 block scales at load on the CPU (int4, --gqa, tiny)', () => {
  let half: string;
  let full: string;
  beforeAll(async () => {
    const fp32 = await exportedTinyModel('tiny', 0, 'fused-gqa');
    const dir = tempDir('llmkit-scales-');
    [half, full] = await Promise.all([quantized(fp32, join(dir, 'fp16'), 'fp16'), quantized(fp32, join(dir, 'fp32'), 'fp32')]);
  }, 300_000);

  it('drops the Casts around every quantized operator: the operators of the --scales fp32 file', () => {
    const file = readFileSync(loadExportedModel(half).onnxPath);
    const { bytes, operators: changed } = withFloat32Scales(file);
    const before = operators(file);
    expect(before.Cast).toBeGreaterThan(operators(readFileSync(loadExportedModel(full).onnxPath)).Cast ?? 0);
    expect(changed).toBe(before.MatMulNBits + (before.GatherBlockQuantized ?? 0));
    expect(operators(bytes)).toEqual(operators(readFileSync(loadExportedModel(full).onnxPath)));
    // A graph with nothing to rewrite comes back as it was.
    expect(withFloat32Scales(readFileSync(loadExportedModel(full).onnxPath)).operators).toBe(0);
  });

  it('generates the greedy tokens of the fp32-scale file', async () => {
    const promptIds = Array.from({ length: 20 }, (_, i) => 5 + ((i * 37) % 600));
    expect(await greedy(half, promptIds, 16)).toEqual(await greedy(full, promptIds, 16));
  }, 300_000);
});
