import { beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession, type RowAdapters } from '../../src/engine/decoder-session.js';
import { LocalEngine } from '../../src/engine/local-engine.js';
import type { LoraAdapter } from '../../src/engine/lora-adapter.js';
import { leftPaddedPrompts } from '../../src/engine/batch-inputs.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { Random } from '../../src/engine/random.js';
import { exportedTinyModel, tinyModel } from '../helpers/models.js';
import { mergedExport, randomAdapter, type AdapterSpec } from '../helpers/lora.js';

// Two adapters of different ranks, targets and stored dtypes, so one batch's tables pad ranks and leave modules zero.
const SPECS: AdapterSpec[] = [
  { seed: 1, rank: 4, targets: ['q_proj', 'v_proj', 'down_proj'] },
  { seed: 2, rank: 8, targets: ['q_proj', 'k_proj', 'o_proj', 'gate_proj', 'up_proj'], dtype: 'bfloat16' },
];
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
/** llmkit export's check against PyTorch (fp32). */
const EXPORT_TOLERANCE = 1e-3;

const prompt = (length: number, seed: number) => {
  const random = new Random(seed);
  return Array.from({ length }, () => 4 + Math.floor(random.next() * 700));
};

/** Every position's logits of a left-padded batch prefill. */
async function prefillLogits(session: DecoderSession, prompts: number[][], adapters?: RowAdapters): Promise<Float32Array> {
  const width = Math.max(...prompts.map((p) => p.length));
  const { ids, mask, positions } = leftPaddedPrompts(prompts, width);
  return (await session.forward(ids, mask, positions, session.emptyCache(prompts.length), adapters)).logits;
}

function maxDiffOfRow(a: Float32Array, b: Float32Array, row: number, rowSize: number, realFrom: number): number {
  let max = 0;
  for (let i = row * rowSize + realFrom; i < (row + 1) * rowSize; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe('multi-LoRA: adapters as per-row graph inputs over one base', () => {
  let base: string;
  let merged: string[];
  let engine: LocalEngine;
  let adapters: LoraAdapter[];
  beforeAll(async () => {
    const hf = await tinyModel();
    base = await exportedTinyModel();
    const folders = await Promise.all(SPECS.map((s) => randomAdapter(hf, s)));
    merged = [];
    for (const f of folders) merged.push(await mergedExport(hf, f));
    engine = await LocalEngine.open(base, { device: 'cpu', threads: 1, loraTargets: TARGETS, maxBatch: 8 });
    adapters = await Promise.all(folders.map((f, i) => engine.loadAdapter(f, `a${i}`)));
  }, 600_000);

  it('gives each row of a mixed batch the logits of its adapter merged and exported (within the export tolerance)', async () => {
    const prompts = [prompt(9, 1), prompt(5, 2), prompt(9, 3), prompt(7, 4)];
    const rows: RowAdapters = [adapters[0], undefined, adapters[1], adapters[0]];
    const lora = await DecoderSession.open(loadExportedModel(base), { device: 'cpu', threads: 1, lora: TARGETS });
    const references = await Promise.all([base, ...merged].map((dir) => DecoderSession.open(loadExportedModel(dir), { device: 'cpu', threads: 1 })));
    const mixed = await prefillLogits(lora, prompts, rows);
    const vocab = lora.vocabSize;
    const width = 9;
    for (const [b, adapter] of rows.entries()) {
      const reference = references[adapter ? adapters.indexOf(adapter) + 1 : 0];
      const alone = await prefillLogits(reference, prompts);
      const diff = maxDiffOfRow(mixed, alone, b, width * vocab, (width - prompts[b].length) * vocab);
      expect(diff).toBeLessThan(EXPORT_TOLERANCE);
    }
    // The adapters do change the model: each merged model's logits are far from the base's.
    const plain = await prefillLogits(references[0], prompts);
    expect(maxDiffOfRow(mixed, plain, 0, width * vocab, 0)).toBeGreaterThan(0.05);
    expect(maxDiffOfRow(mixed, plain, 2, width * vocab, 0)).toBeGreaterThan(0.05);
    expect(maxDiffOfRow(mixed, plain, 1, width * vocab, 4 * vocab)).toBeLessThan(1e-5);
    await Promise.all([lora, ...references].map((s) => s.release()));
  }, 120_000);

  it("generates the merged models' greedy tokens for rows of different adapters (and none) decoded in one batch", async () => {
    const requests = Array.from({ length: 12 }, (_, i) => ({ ids: prompt(4 + (i % 5) * 3, 10 + i), adapter: [adapters[0], undefined, adapters[1]][i % 3] }));
    const run = (e: LocalEngine, rs: typeof requests, withAdapter: boolean) =>
      Promise.all(rs.map((r) => e.complete({ promptIds: r.ids, maxTokens: 24, ignoreEos: true, adapter: withAdapter ? r.adapter : undefined })));
    const together = await run(engine, requests, true);
    for (const [i, dir] of [base, ...merged].entries()) {
      const reference = await LocalEngine.open(dir, { device: 'cpu', threads: 1 });
      const mine = requests.flatMap((r, j) => ((r.adapter ? adapters.indexOf(r.adapter) + 1 : 0) === i ? [j] : []));
      const alone = await run(
        reference,
        mine.map((j) => requests[j]),
        false,
      );
      expect(mine.map((j) => together[j].text)).toEqual(alone.map((a) => a.text));
      await reference.close();
    }
    // Different adapters give different text for the same prompt.
    const same = prompt(6, 99);
    const texts = await Promise.all([undefined, ...adapters].map((adapter) => engine.complete({ promptIds: same, maxTokens: 16, ignoreEos: true, adapter })));
    expect(new Set(texts.map((t) => t.text)).size).toBe(3);
  }, 300_000);

  it('refuses an adapter whose projections the graph does not take, or a folder that is not a PEFT adapter, in one line', async () => {
    const narrow = await LocalEngine.open(base, { device: 'cpu', threads: 1, loraTargets: ['q_proj'] });
    const folder = await randomAdapter(await tinyModel(), SPECS[0]);
    await expect(narrow.loadAdapter(folder, 'a0')).rejects.toThrow(/adapts layers\.\d+\.(v_proj|down_proj), which this server's graph does not take \(it takes q_proj\)/);
    await expect(narrow.loadAdapter('/nonexistent/adapter', 'x')).rejects.toThrow(/adapter folder \/nonexistent\/adapter does not exist/);
    await narrow.close();
  }, 120_000);
});
