import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import { greedyDecode } from '../../src/engine/greedy.js';
import { withLastPositionLogits } from '../../src/engine/last-position-logits.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { formatReportTable, type QuantizeReport } from '../../src/core/quantize/report.js';
import { DEFAULT_EVAL_DATA } from '../../src/core/quantize/options.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { chartBars } from '../helpers/charts.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { exportedTinyModel, tiedTinyModel, tinyModel } from '../helpers/models.js';
import { transformersJsGreedy } from '../helpers/transformersjs.js';

/** The perplexity of the Hugging Face model in PyTorch, over the same windows the report scores. */
async function torchPerplexity(model: string, evalFile: string, tokens: number, window: number): Promise<number> {
  const { python } = await requirePythonEnv();
  const script = `
import math, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path, text_file, n, window = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ids = AutoTokenizer.from_pretrained(path)(open(text_file).read())["input_ids"][:n]
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
windows = torch.tensor(ids[: len(ids) // window * window]).view(-1, window)
with torch.no_grad():
    loss = model(input_ids=windows, labels=windows).loss.item()
print(math.exp(loss))`;
  const r = await execa(python, ['-c', script, model, evalFile, String(tokens), String(window)]);
  return Number(r.stdout.trim().split('\n').at(-1));
}

function oneLineError(r: { stderr?: unknown }): string {
  const lines = String(r.stderr).trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  return lines[0];
}

/** Every position's logits for one forward pass over `ids` (no cache), one array per position. */
async function positionLogits(folder: string, ids: number[]): Promise<number[][]> {
  const session = await DecoderSession.open(loadExportedModel(folder), { device: 'cpu' });
  const n = ids.length;
  const step = await session.forward(
    BigInt64Array.from(ids, BigInt),
    new BigInt64Array(n).fill(1n),
    BigInt64Array.from(ids, (_, i) => BigInt(i)),
    session.emptyCache(1),
  );
  const vocab = session.vocabSize;
  await session.release();
  return Array.from({ length: step.logitsPositions }, (_, p) => Array.from(step.logits.subarray(p * vocab, (p + 1) * vocab)));
}

describe('llmkit quantize', () => {
  const dir = tempDir('llmkit-quantize-');
  let fp32: string;
  const reports: Record<string, QuantizeReport> = {};

  // int8 starts from the Hugging Face folder (exported on the way), int4 from the cached fp32 export.
  beforeAll(async () => {
    fp32 = await exportedTinyModel();
    for (const [precision, model] of [
      ['int8', await tinyModel()],
      ['int4', fp32],
    ]) {
      const r = await runCli(['quantize', model, `--${precision}`, '--out', join(dir, precision), '--json']);
      expect(r.exitCode, String(r.stderr)).toBe(0);
      reports[precision] = JSON.parse(String(r.stdout));
    }
  });

  it('measures size, speed and accuracy rather than copying them: int8 and int4 differ from fp32 within sane ranges', () => {
    for (const [precision, report] of Object.entries(reports)) {
      expect(JSON.parse(readFileSync(join(dir, precision, 'quantize-report.json'), 'utf8'))).toEqual(report);
      const bars = chartBars(join(dir, precision, 'quantize-report.svg'));
      expect(bars['decode speed']).toEqual(report.models.map((m) => [m.name, m.decodeTokensPerSecond]));
      expect(bars.perplexity).toEqual(report.models.map((m) => [m.name, m.perplexity]));
      expect(bars.size).toEqual(report.models.map((m) => [m.name, m.bytes / 2 ** 20]));
      const [base, q] = report.models;
      expect(base).toMatchObject({ name: 'fp32', bits: 32, sizeRatio: 1, speedup: 1, perplexityChange: 0, top1Agreement: 1, meanKl: 0 });
      expect(q.name).toBe(precision);
      expect(q.bytes).toBeLessThan(base.bytes);
      expect(q.sizeRatio).toBeCloseTo(q.bytes / base.bytes, 10);
      expect(q.perplexity).not.toBe(base.perplexity);
      expect(q.perplexityChange).toBeCloseTo(q.perplexity / base.perplexity - 1, 10);
      expect(Math.abs(q.perplexityChange)).toBeLessThan(0.05);
      expect(q.top1Agreement).toBeGreaterThan(0.5);
      expect(q.top1Agreement).toBeLessThanOrEqual(1);
      expect(q.meanKl).toBeGreaterThan(0);
      expect(q.meanKl).toBeLessThan(0.05);
      // Speed is measured, not asserted (docs/benchmarks.md has the numbers): the ratio is the two rates'.
      expect(q.speedup).toBeCloseTo(q.decodeTokensPerSecond! / base.decodeTokensPerSecond!, 10);
      expect(report.eval.positions).toBe(report.eval.windows * (report.eval.window - 1));
      expect(report.speed!.steps).toBe(report.speed!.prompts * report.speed!.rounds * (report.speed!.newTokens - 1));
    }
    // Random tiny weights: every block is one scale, so int4's error is much larger than int8's.
    expect(reports.int8.models[1].sizeRatio).toBeLessThan(0.4);
    expect(reports.int4.models[1].sizeRatio).toBeLessThan(reports.int8.models[1].sizeRatio);
    expect(reports.int4.models[1].meanKl).toBeGreaterThan(reports.int8.models[1].meanKl);
  });

  it('reports the fp32 perplexity that PyTorch computes on the same windows', async () => {
    const { eval: e, models } = reports.int8;
    expect(e.file).toBe(DEFAULT_EVAL_DATA);
    const reference = await torchPerplexity(await tinyModel(), e.file, e.windows * e.window, e.window);
    expect(models[0].perplexity / reference - 1).toBeLessThan(1e-4);
    expect(reference / models[0].perplexity - 1).toBeLessThan(1e-4);
  });

  it('writes models that onnxruntime-node and transformers.js load and generate with, with the same I/O and a manifest that says how', async () => {
    const reference = await DecoderSession.open(loadExportedModel(fp32), { device: 'cpu' });
    const prompt = [5, 17, 42, 99, 7, 300, 12, 8];
    const expected = (await greedyDecode(reference, prompt, 12)).tokens;
    await reference.release();
    for (const precision of ['int8', 'int4'] as const) {
      const model = loadExportedModel(join(dir, precision));
      expect(model.manifest.precision).toBe(precision);
      expect(model.manifest.quantization).toMatchObject({ bits: precision === 'int8' ? 8 : 4, symmetric: true, excluded: [] });
      expect(model.manifest.inputs).toEqual(loadExportedModel(fp32).manifest.inputs);
      const decoder = await DecoderSession.open(model, { device: 'cpu' });
      const run = await greedyDecode(decoder, prompt, 12);
      await decoder.release();
      // Generation's session: the quantized output layer (MatMulNBits) at the last position only, same tokens.
      expect(withLastPositionLogits(readFileSync(model.onnxPath))).toBeDefined();
      const generating = await DecoderSession.open(model, { device: 'cpu', logits: 'last' });
      expect((await greedyDecode(generating, prompt, 12)).tokens).toEqual(run.tokens);
      await generating.release();
      expect(run.tokens).toHaveLength(12);
      expect(run.stepMs).toHaveLength(11);
      for (const t of run.tokens) expect(t).toBeLessThan(model.manifest.vocab_size);
      const theirs = await transformersJsGreedy(model.dir, prompt, 12);
      expect(theirs.length).toBeGreaterThan(0);
      expect(run.tokens.slice(0, theirs.length)).toEqual(theirs);
      if (precision === 'int8') expect(run.tokens[0]).toBe(expected[0]);
      // int4's fp16 scales: each quantized operator computes in fp16 between two Casts, and transformers.js runs that too.
      expect(model.manifest.quantization).toMatchObject({ scales: precision === 'int4' ? 'fp16' : 'fp32' });
    }
  });

  it("scores fp32's greedy tokens close to fp32: int8 picks the same ones, int4 keeps them in its top 5", async () => {
    // Teacher-forced on fp32's own continuation, so one early disagreement does not decide the rest.
    const prompt = [5, 17, 42, 99, 7, 300, 12, 8];
    const reference = await DecoderSession.open(loadExportedModel(fp32), { device: 'cpu' });
    const expected = (await greedyDecode(reference, prompt, 12)).tokens;
    await reference.release();
    const ids = [...prompt, ...expected.slice(0, -1)];
    const base = await positionLogits(fp32, ids);
    const error: Record<string, number> = {};
    for (const precision of ['int8', 'int4'] as const) {
      const logits = await positionLogits(join(dir, precision), ids);
      // Where fp32's token ranks among this model's logits at each generated position (0 = its top choice).
      const ranks = expected.map((t, i) => logits[prompt.length - 1 + i].filter((x) => x > logits[prompt.length - 1 + i][t]).length);
      error[precision] = Math.max(...logits.flatMap((row, p) => row.map((x, v) => Math.abs(x - base[p][v]))));
      if (precision === 'int8') expect(ranks.filter((r) => r === 0).length, `ranks ${ranks}`).toBeGreaterThanOrEqual(10);
      else expect(Math.max(...ranks), `ranks ${ranks}`).toBeLessThan(5);
    }
    // Measured on the tiny model: int8 0.009, int4 0.10 (fp32's logits spread over ~0.95).
    expect(error.int8).toBeLessThan(0.05);
    expect(error.int4).toBeLessThan(0.25);
    expect(error.int4).toBeGreaterThan(error.int8);
  });

  it('exports a Hugging Face folder on the way into a temporary folder, and removes it', () => {
    const int8 = loadExportedModel(join(dir, 'int8'));
    expect(int8.manifest.source).toBe(reports.int8.models[0].path);
    expect(Math.max(...Object.values(int8.manifest.export_check ?? {}))).toBeLessThan(1e-3);
    expect(existsSync(join(dir, 'int8.fp32-export'))).toBe(false);
  });

  it('keeps --exclude nodes in fp32 and takes --block-size, --asymmetric and --accuracy-level; --no-speed skips the timing', async () => {
    const args = ['quantize', fp32, '--int8', '--block-size', '32', '--asymmetric', '--exclude', '/model/lm_head/MatMul', '--accuracy-level', '1', '--no-speed'];
    const r = await runCli([...args, '--out', join(dir, 'excluded'), '--json']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const report: QuantizeReport = JSON.parse(String(r.stdout));
    expect(report.quantization).toMatchObject({ bits: 8, block_size: 32, symmetric: false, excluded: ['/model/lm_head/MatMul'], accuracy_level: 1 });
    expect(reports.int8.quantization.accuracy_level).toBe(4);
    expect(formatReportTable(report)).toContain('8-bit, fp32 compute');
    expect(formatReportTable(reports.int8)).toContain('8-bit, int8 compute');
    // The fp32 lm_head alone is a quarter of the tiny model.
    expect(report.models[1].sizeRatio).toBeGreaterThan(reports.int8.models[1].sizeRatio + 0.1);
    expect([report.speed, report.models[1].decodeTokensPerSecond, report.models[1].speedup]).toEqual([null, null, null]);
    expect(formatReportTable(report)).toContain('decode speed: not timed (--no-speed)');
  });

  it('quantizes a --fused export: q/k/v and gate/up become one MatMulNBits each, with the fused fp32 greedy tokens', async () => {
    const fused = await exportedTinyModel('tiny', 0, 'fused');
    const r = await runCli(['quantize', fused, '--int8', '--eval-tokens', '64', '--no-speed', '--out', join(dir, 'fused-int8'), '--json']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const report: QuantizeReport = JSON.parse(String(r.stdout));
    const layers = loadExportedModel(fused).manifest.num_layers;
    // Per layer q+k+v, o, gate+up, down; then the output layer and the embedding (7 per layer in a traced export).
    expect(report.quantization.quantized_nodes).toBe(4 * layers + 2);
    expect(reports.int8.quantization.quantized_nodes).toBe(7 * layers + 2);
    expect(report.models[1].top1Agreement).toBeGreaterThan(0.9);
    const prompt = [5, 17, 42, 99, 7, 300, 12, 8];
    const tokens = [];
    for (const folder of [fused, join(dir, 'fused-int8')]) {
      const decoder = await DecoderSession.open(loadExportedModel(folder), { device: 'cpu', logits: 'last' });
      tokens.push((await greedyDecode(decoder, prompt, 4)).tokens);
      await decoder.release();
    }
    expect(tokens[1][0]).toBe(tokens[0][0]);
  });

  it("--compare-gguf scores llama.cpp's Q8_0 and Q4_0 of the same weights on the same windows; Q4_0 keeps the tied embedding at Q8_0", async () => {
    const r = await runCli(['quantize', await tiedTinyModel(), '--int4', '--compare-gguf', '--eval-tokens', '512', '--no-speed', '--out', join(dir, 'tied-int4'), '--json']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const report: QuantizeReport = JSON.parse(String(r.stdout));
    const [q8, q4] = report.gguf!;
    expect([q8.type, q4.type]).toEqual(['Q8_0', 'Q4_0']);
    // The tied model has one 2-D tensor that is both embedding and output layer: Q8_0 in the Q4_0 file too.
    expect(q4.tensorTypes.Q8_0).toBe(1);
    expect(q8.tensorTypes.Q4_0).toBeUndefined();
    // Scored on the fp32 row's windows: 8-bit weights keep its perplexity and its top token; 4-bit ones stay near.
    expect(Math.abs(q8.perplexityChange)).toBeLessThan(0.005);
    expect(q8.top1Agreement).toBeGreaterThan(0.95);
    expect(Math.abs(q4.perplexityChange)).toBeLessThan(0.05);
    expect(q4.bytes).toBeLessThan(q8.bytes);
    expect(q8.sizeRatio).toBeCloseTo(q8.bytes / report.models[0].bytes, 6);
    expect(formatReportTable(report)).toMatch(/\| GGUF Q4_0 +\| llama\.cpp \(node-llama-cpp [\d.]+\)/);
    expect(existsSync(join(dir, 'tied-int4.compare-gguf'))).toBe(false);
  }, 600_000);

  it('--output-bits 16 keeps the output layer and embedding as fp16 tables computed in fp32: one table when tied, two when not', async () => {
    const { python } = await requirePythonEnv();
    const fp16Tables = async (folder: string) => {
      const script = `import onnx, sys; m = onnx.load(sys.argv[1]); print(sum(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer))`;
      return Number((await execa(python, ['-c', script, join(folder, 'onnx', 'model.onnx')])).stdout.trim());
    };
    const layers = loadExportedModel(fp32).manifest.num_layers;
    for (const [name, model, tables] of [
      ['tied', await tiedTinyModel(), 1],
      ['untied', fp32, 2],
    ] as const) {
      const out = join(dir, `${name}-int8-output16`);
      const r = await runCli(['quantize', model, '--int8', '--output-bits', '16', '--eval-tokens', '256', '--no-speed', '--out', out, '--json']);
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const report: QuantizeReport = JSON.parse(String(r.stdout));
      expect(report.quantization).toMatchObject({ bits: 8, head_bits: 16, shared_embedding: name === 'tied' ? ['/model/model/embed_tokens/Gather'] : [] });
      // Every projection of every layer in 8 bits; neither the output layer nor the embedding.
      expect(report.quantization.quantized_nodes).toBe(7 * layers);
      expect(await fp16Tables(out)).toBe(tables);
      expect(report.models[1].top1Agreement).toBeGreaterThan(0.95);
      expect(formatReportTable(report)).toContain('8-bit (output 16-bit), int8 compute');
    }
  }, 600_000);

  it('rejects bad input with one line before any long work', async () => {
    const gpt2 = join(dir, 'gpt2');
    mkdirSync(gpt2);
    writeFileSync(join(gpt2, 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }));
    writeFileSync(join(gpt2, 'model.safetensors'), '');
    const cases: [string[], number, RegExp][] = [
      [['quantize', fp32, '--int8', '--int4', '--out', join(dir, 'x')], 2, /--int8 and --int4 exclude each other/],
      [['quantize', fp32, '--out', join(dir, 'x')], 2, /pass --int8 or --int4/],
      [['quantize', join(dir, 'missing'), '--int8', '--out', join(dir, 'x')], 2, /model folder .*missing does not exist/],
      [['quantize', fp32, '--int4', '--block-size', '48', '--out', join(dir, 'x')], 2, /--block-size must be one of 16, 32, 64, 128 \(got 48\)/],
      [['quantize', fp32, '--int4', '--accuracy-level', '2', '--out', join(dir, 'x')], 2, /--accuracy-level must be one of 1, 4 \(got 2\)/],
      [['quantize', join(dir, 'int8'), '--int4', '--out', join(dir, 'x')], 2, /holds int8 weights: quantize starts from fp32/],
      [['quantize', fp32, '--int8', '--eval-data', join(dir, 'none.txt'), '--out', join(dir, 'x')], 2, /--eval-data .*none\.txt does not exist/],
      [['quantize', fp32, '--int4', '--output-bits', '6', '--out', join(dir, 'x')], 2, /--output-bits must be one of 4, 8, 16 \(got 6\)/],
      [['quantize', fp32, '--int4', '--scales', 'bf16', '--out', join(dir, 'x')], 2, /--scales must be one of fp16, fp32 \(got bf16\)/],
      [['quantize', fp32, '--int4', '--calibration-data', join(dir, 'none.txt'), '--out', join(dir, 'x')], 2, /--calibration-data .*none\.txt does not exist/],
      [['quantize', fp32, '--int4', '--gguf', '--calibration-data', join(dir, 'none.txt'), '--out', join(dir, 'x.gguf')], 2, /--calibration-data/],
      [['quantize', fp32, '--int4', '--gguf', '--compare-gguf', '--out', join(dir, 'x.gguf')], 2, /--compare-gguf/],
      [['quantize', fp32, '--int8', '--exclude', 'lm_head', '--out', join(dir, 'x')], 1, /--exclude lm_head: no MatMul or Gather weight node has that name; names look like \/model/],
      [['quantize', gpt2, '--int8', '--out', join(dir, 'x')], 1, /architecture GPT2LMHeadModel is not supported for export; supported: Gemma3ForCausalLM, LlamaForCausalLM/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    for (const [i, [args, code, message]] of cases.entries()) {
      expect(results[i].exitCode, args.join(' ')).toBe(code);
      expect(oneLineError(results[i])).toMatch(message);
    }
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });
});
