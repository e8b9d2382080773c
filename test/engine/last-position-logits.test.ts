import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import { withLastPositionLogits } from '../../src/engine/last-position-logits.js';
import { leftPaddedMask } from '../../src/engine/kv-cache.js';
import { loadExportedModel, type ExportedModel } from '../../src/engine/model-manifest.js';
import { exportedTinyModel } from '../helpers/models.js';

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe("a decoder opened with logits: 'last'", () => {
  let model: ExportedModel;
  let all: DecoderSession;
  let last: DecoderSession;
  beforeAll(async () => {
    model = loadExportedModel(await exportedTinyModel());
    all = await DecoderSession.open(model, { device: 'cpu' });
    last = await DecoderSession.open(model, { device: 'cpu', logits: 'last' });
  });
  afterAll(async () => {
    await all.release();
    await last.release();
  });

  it("returns each row's last-position logits of the full pass, in a left-padded prefill and the decode step after it", async () => {
    const rows = [
      [5, 17, 42, 99, 7, 300, 12],
      [61, 4, 250],
      [9, 9, 100, 200, 33],
    ];
    const width = 7;
    const ids = BigInt64Array.from(
      rows.flatMap((r) => [...Array(width - r.length).fill(0), ...r]),
      BigInt,
    );
    const mask = BigInt64Array.from(
      rows.flatMap((r) => [...Array(width - r.length).fill(0), ...r.map(() => 1)]),
      BigInt,
    );
    const positions = BigInt64Array.from(
      rows.flatMap((r) => [...Array(width - r.length).fill(0), ...r.map((_, i) => i)]),
      BigInt,
    );
    const vocab = all.vocabSize;
    const full = await all.forward(ids, mask, positions, all.emptyCache(rows.length));
    const mine = await last.forward(ids, mask, positions, last.emptyCache(rows.length));
    expect(full.logitsPositions).toBe(width);
    expect(mine.logitsPositions).toBe(1);
    expect(mine.logits).toHaveLength(rows.length * vocab);
    const lastRows = Float32Array.from(rows.flatMap((_, b) => Array.from(full.logits.subarray(((b + 1) * width - 1) * vocab, (b + 1) * width * vocab))));
    expect(maxAbsDiff(mine.logits, lastRows)).toBeLessThan(1e-5);

    const next = BigInt64Array.of(11n, 22n, 33n);
    const nextMask = leftPaddedMask(
      rows.map((r) => r.length),
      width,
      1,
    );
    const nextPositions = BigInt64Array.from(rows, (r) => BigInt(r.length));
    const fullStep = await all.forward(next, nextMask, nextPositions, full.cache);
    const myStep = await last.forward(next, nextMask, nextPositions, mine.cache);
    expect(myStep.logitsPositions).toBe(1);
    expect(maxAbsDiff(myStep.logits, fullStep.logits)).toBeLessThan(1e-5);
  });

  it('finds the output layer of an export, and leaves a graph alone when the output is not there', () => {
    const bytes = readFileSync(model.onnxPath);
    const rewritten = withLastPositionLogits(bytes);
    expect(rewritten).toBeDefined();
    expect(rewritten!.length).toBeGreaterThan(bytes.length);
    expect(withLastPositionLogits(bytes, 'no_such_output')).toBeUndefined();
  });
});
