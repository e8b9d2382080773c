import { cpSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import { withoutOutputs } from '../../src/engine/graph-pruning.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { exportedTinyModel } from '../helpers/models.js';

/** Feeds for one prefill of `tokens` tokens on an empty cache. */
function prefillFeeds(layers: number, kvHeads: number, headDim: number, tokens: number[]): Record<string, ort.Tensor> {
  const n = tokens.length;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens.map(BigInt)), [1, n]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(tokens.map((_, i) => BigInt(i))), [1, n]),
  };
  for (let i = 0; i < layers; i++) {
    for (const kv of ['key', 'value']) feeds[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]);
  }
  return feeds;
}

describe('the engine graph (an export without its present outputs)', () => {
  let dir: string;
  let work: string;
  beforeAll(async () => {
    dir = await exportedTinyModel();
    work = await mkdtemp(join(tmpdir(), 'llmkit-graph-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('drops present.* and the Concat nodes that made them, and computes the same logits and new keys/values', async () => {
    const model = loadExportedModel(dir);
    const { num_layers: layers, num_kv_heads: kvHeads, head_dim: headDim } = model.manifest;
    const original = readFileSync(model.onnxPath);
    const pruned = withoutOutputs(original, (name) => name.startsWith('present.'));
    const full = await ort.InferenceSession.create(original);
    const engine = await ort.InferenceSession.create(pruned);
    try {
      expect(full.outputNames.filter((n) => n.startsWith('present.'))).toHaveLength(2 * layers);
      expect(engine.outputNames).toEqual(full.outputNames.filter((n) => !n.startsWith('present.')));
      // Each layer's two Concats (past + new) hold a NodeProto of well over 100 bytes.
      expect(original.length - pruned.length).toBeGreaterThan(2 * layers * 100);
      const feeds = prefillFeeds(layers, kvHeads, headDim, [5, 17, 42, 99, 7]);
      const want = await full.run(feeds);
      const got = await engine.run(feeds);
      for (const name of engine.outputNames) expect(Array.from(got[name].data as Float32Array), name).toEqual(Array.from(want[name].data as Float32Array));
    } finally {
      await full.release();
      await engine.release();
    }
  });

  it('opens an export whose weights lie in an external data file', async () => {
    const external = join(work, 'external');
    cpSync(dir, external, { recursive: true });
    const onnxPath = join(external, 'onnx', 'model.onnx');
    const { python } = await requirePythonEnv();
    const save = 'import onnx, sys; onnx.save(onnx.load(sys.argv[1]), sys.argv[1], save_as_external_data=True, location="model.onnx.data", size_threshold=0)';
    await execa(python, ['-c', save, onnxPath]);
    expect(statSync(onnxPath).size).toBeLessThan(statSync(join(external, 'onnx', 'model.onnx.data')).size);

    const logits = async (folder: string) => {
      const decoder = await DecoderSession.open(loadExportedModel(folder), { device: 'cpu' });
      try {
        const ids = BigInt64Array.of(5n, 17n, 42n);
        const step = await decoder.forward(ids, new BigInt64Array(3).fill(1n), BigInt64Array.of(0n, 1n, 2n), decoder.emptyCache(1));
        return Array.from(step.logits);
      } finally {
        await decoder.release();
      }
    };
    expect(await logits(external)).toEqual(await logits(dir));
  });
});
