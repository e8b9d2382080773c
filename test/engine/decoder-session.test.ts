import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftPaddedPrompts } from '../../src/engine/batch-inputs.js';
import { DecoderSession, type BatchCache } from '../../src/engine/decoder-session.js';
import { gatherRows, leftPaddedMask } from '../../src/engine/kv-cache.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { exportedTinyModel } from '../helpers/models.js';

/**
 * Guards continuous batching: a row in a left-padded batch must give the same logits as that row
 * run alone, for prefill and for cached decode steps (tracing can bake a padding-dependent branch in;
 * a fused operator can read the mask or the positions differently), in the three graphs `llmkit export` writes.
 */
describe.each(['traced', 'fused', 'fused-gqa'] as const)('the exported decoder (%s graph) with padding', (graph) => {
  let decoder: DecoderSession;
  beforeAll(async () => {
    decoder = await DecoderSession.open(loadExportedModel(await exportedTinyModel('tiny', 0, graph)), { device: 'cpu' });
  });
  afterAll(() => decoder.release());

  const rows = [
    [5, 17, 42, 99, 7, 300, 12, 8],
    [61, 4, 250],
    [9, 9, 100, 200, 33],
  ];

  async function alone(tokens: number[], steps: number[]): Promise<Float32Array[]> {
    let cache = decoder.emptyCache(1);
    const out: Float32Array[] = [];
    let step = await decoder.forward(BigInt64Array.from(tokens.map(BigInt)), new BigInt64Array(tokens.length).fill(1n), BigInt64Array.from(tokens.map((_, i) => BigInt(i))), cache);
    out.push(step.logits.slice((tokens.length - 1) * decoder.vocabSize));
    cache = step.cache;
    for (const [i, t] of steps.entries()) {
      step = await decoder.forward(BigInt64Array.of(BigInt(t)), new BigInt64Array(cache.length + 1).fill(1n), BigInt64Array.of(BigInt(tokens.length + i)), cache);
      out.push(step.logits);
      cache = step.cache;
    }
    return out;
  }

  it('gives each row of a left-padded batch the logits it gets alone, in prefill and decode', async () => {
    const decodeTokens = [11, 22, 33];
    const width = Math.max(...rows.map((r) => r.length));
    const { ids, mask, positions: pos } = leftPaddedPrompts(rows, width);
    let step = await decoder.forward(ids, mask, pos, decoder.emptyCache(rows.length));
    let cache: BatchCache = step.cache;
    let fullMask = mask;
    const batched: Float32Array[][] = rows.map((_, b) => [step.logits.slice(((b + 1) * width - 1) * decoder.vocabSize, (b + 1) * width * decoder.vocabSize)]);
    for (const [i, t] of decodeTokens.entries()) {
      const nextMask = new BigInt64Array(rows.length * (cache.length + 1));
      rows.forEach((_, b) => {
        nextMask.set(fullMask.subarray(b * cache.length, (b + 1) * cache.length), b * (cache.length + 1));
        nextMask[b * (cache.length + 1) + cache.length] = 1n;
      });
      fullMask = nextMask;
      step = await decoder.forward(BigInt64Array.from(rows.map(() => BigInt(t))), fullMask, BigInt64Array.from(rows.map((r) => BigInt(r.length + i))), cache);
      cache = step.cache;
      rows.forEach((_, b) => batched[b].push(step.logits.slice(b * decoder.vocabSize, (b + 1) * decoder.vocabSize)));
    }
    for (const [b, r] of rows.entries()) {
      const reference = await alone(r, decodeTokens);
      for (const [s, logits] of reference.entries()) {
        let worst = 0;
        for (let v = 0; v < logits.length; v++) worst = Math.max(worst, Math.abs(logits[v] - batched[b][s][v]));
        expect(worst, `row ${b} step ${s}`).toBeLessThan(1e-4);
      }
    }
    expect(cache.length).toBe(width + decodeTokens.length);
  });

  it('prefills a left-padded batch in chunks with the logits and cache of one pass', async () => {
    const width = rows[0].length;
    const padded = (fill: (r: number[], i: number) => number) => BigInt64Array.from(rows.flatMap((r) => [...Array(width - r.length).fill(0), ...r.map((_, i) => fill(r, i))].map(BigInt)));
    const ids = padded((r, i) => r[i]);
    const pos = padded((_, i) => i);
    const mask = BigInt64Array.from(rows.flatMap((r) => [...Array(width - r.length).fill(0), ...Array(r.length).fill(1)].map(BigInt)));
    const whole = await decoder.forward(ids, mask, pos, decoder.emptyCache(rows.length));
    // Columns [0, 5) then [5, 8): the second pass has several new tokens a row over a non-empty past.
    const columns = (a: BigInt64Array, from: number, to: number, stride = width) => BigInt64Array.from(rows.flatMap((_, b) => [...a.subarray(b * stride + from, b * stride + to)]));
    const first = await decoder.forward(columns(ids, 0, 5), columns(mask, 0, 5), columns(pos, 0, 5), decoder.emptyCache(rows.length));
    const second = await decoder.forward(columns(ids, 5, width), mask, columns(pos, 5, width), first.cache);
    const vocab = decoder.vocabSize;
    let worst = 0;
    rows.forEach((_, b) => {
      for (let t = 0; t < 3; t++) {
        for (let v = 0; v < vocab; v++) worst = Math.max(worst, Math.abs(whole.logits[(b * width + 5 + t) * vocab + v] - second.logits[(b * 3 + t) * vocab + v]));
      }
    });
    expect(worst).toBeLessThan(1e-4);
    expect(second.cache.length).toBe(width);
    // The cache at real columns: a padding column's keys past layer 0 come from a query that attends to nothing.
    const { num_kv_heads: kvHeads, head_dim: headDim } = decoder.model.manifest;
    let cacheWorst = 0;
    whole.cache.layers.forEach((layer, i) => {
      for (let j = 0; j < layer.key.length; j++) {
        const column = Math.floor(j / headDim) % width;
        const row = Math.floor(j / (headDim * width * kvHeads));
        if (mask[row * width + column] === 0n) continue;
        cacheWorst = Math.max(cacheWorst, Math.abs(layer.key[j] - second.cache.layers[i].key[j]), Math.abs(layer.value[j] - second.cache.layers[i].value[j]));
      }
    });
    expect(cacheWorst).toBeLessThan(1e-4);
  });

  it('appends in place into spare columns, across regathers, with the logits of the copying path', async () => {
    const { num_kv_heads: kvHeads, head_dim: headDim } = decoder.model.manifest;
    const prompts = [rows[0], rows[1]];
    const width = prompts[0].length;
    const ids = BigInt64Array.from(prompts.flatMap((r) => [...Array(width - r.length).fill(0), ...r].map(BigInt)));
    const mask = BigInt64Array.from(prompts.flatMap((r) => [...Array(width - r.length).fill(0), ...Array(r.length).fill(1)].map(BigInt)));
    const pos = BigInt64Array.from(prompts.flatMap((r) => [...Array(width - r.length).fill(0), ...r.map((_, i) => i)].map(BigInt)));
    const prefill = await decoder.forward(ids, mask, pos, decoder.emptyCache(2));
    let copying = prefill.cache;
    // Three spare columns: the 10 steps below run out of them and regather three times.
    let inPlace = gatherRows([{ cache: prefill.cache, rows: [0, 1] }], width, kvHeads, headDim, width + 3);
    let worst = 0;
    for (let s = 0; s < 10; s++) {
      const cached = prompts.map((r) => r.length + s);
      const next = BigInt64Array.of(BigInt(40 + s), BigInt(70 + s));
      const positions = BigInt64Array.from(cached.map(BigInt));
      if (inPlace.capacity! <= inPlace.length) inPlace = gatherRows([{ cache: inPlace, rows: [0, 1] }], inPlace.length, kvHeads, headDim, inPlace.length + 3);
      const a = await decoder.forward(next, leftPaddedMask(cached, copying.length, 1), positions, copying);
      const b = await decoder.decodeInPlace(next, leftPaddedMask(cached, inPlace.length, 1, inPlace.capacity), positions, inPlace);
      for (let v = 0; v < a.logits.length; v++) worst = Math.max(worst, Math.abs(a.logits[v] - b.logits[v]));
      [copying, inPlace] = [a.cache, b.cache];
    }
    expect(worst).toBeLessThan(1e-4);
    expect(inPlace.length).toBe(copying.length);
  });

  it('reads the manifest: shapes, EOS ids and chat template', () => {
    const m = decoder.model.manifest;
    expect(m.vocab_size).toBe(decoder.vocabSize);
    expect(m.num_layers).toBe(2);
    expect(m.graph).toBe(graph);
    expect(m.eos_token_ids.length).toBeGreaterThan(0);
    expect(m.chat_template).toContain('<|im_start|>');
    expect(Math.max(...Object.values(m.export_check ?? {}))).toBeLessThan(1e-3);
  });
});
