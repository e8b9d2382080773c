import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import { greedyDecode } from '../../src/engine/greedy.js';
import { withLastPositionLogits } from '../../src/engine/last-position-logits.js';
import { GRAPH_NODE, MODEL_GRAPH, readNode, wireFields } from '../../src/engine/onnx-wire.js';
import { loadExportedModel, type ExportedModel } from '../../src/engine/model-manifest.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { exportedTinyModel, tinyModel } from '../helpers/models.js';
import { transformersJsGreedy } from '../helpers/transformersjs.js';

const TOKENS = [5, 17, 42, 99, 7, 300, 12, 8, 61, 4, 250, 9];
const PREFILL = 7;

/** PyTorch's logits for every position of TOKENS, from the Hugging Face folder. */
async function torchLogits(model: string): Promise<number[][]> {
  const { python } = await requirePythonEnv();
  const script = `
import json, sys, torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
with torch.no_grad():
    print(json.dumps(model(torch.tensor([json.loads(sys.argv[2])])).logits[0].tolist()))`;
  const r = await execa(python, ['-c', script, model, JSON.stringify(TOKENS)]);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** How many nodes of each operator the export's graph has. */
function operatorCounts(onnxPath: string): (op: string) => number {
  const bytes = readFileSync(onnxPath);
  const graph = [...wireFields(bytes)].find((f) => f.field === MODEL_GRAPH)!;
  const ops = [...wireFields(bytes, graph.valueStart, graph.end)].filter((f) => f.field === GRAPH_NODE).map((f) => readNode(bytes, f).opType);
  return (op) => ops.filter((o) => o === op).length;
}

describe('llmkit export', () => {
  let exported: string;
  let decoder: DecoderSession;
  beforeAll(async () => {
    exported = await exportedTinyModel();
    decoder = await DecoderSession.open(loadExportedModel(exported), { device: 'cpu' });
  });
  afterAll(() => decoder.release());

  /** A rewritten export: checked to 1e-4 by the exporter, the traced graph's logits and greedy tokens, and transformers.js's. */
  async function expectTracedBehaviour(model: ExportedModel): Promise<void> {
    for (const diff of Object.values(model.manifest.export_check ?? {})) expect(diff).toBeLessThan(1e-4);
    const prompt = TOKENS.slice(0, PREFILL);
    const opened = await DecoderSession.open(model, { device: 'cpu' });
    const [a, b] = await Promise.all(
      [decoder, opened].map((d) =>
        d.forward(
          BigInt64Array.from(prompt, BigInt),
          new BigInt64Array(PREFILL).fill(1n),
          BigInt64Array.from(prompt, (_, i) => BigInt(i)),
          d.emptyCache(1),
        ),
      ),
    );
    expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(1e-4);
    const expected = (await greedyDecode(decoder, prompt, 10)).tokens;
    expect((await greedyDecode(opened, prompt, 10)).tokens).toEqual(expected);
    await opened.release();
    const generated = await transformersJsGreedy(model.dir, prompt, 10);
    expect(generated.length).toBeGreaterThan(0);
    expect(expected.slice(0, generated.length)).toEqual(generated);
  }

  it('matches PyTorch in onnxruntime-node for a prefill and each cached decode step after it', async () => {
    const reference = await torchLogits(await tinyModel());
    const vocab = decoder.vocabSize;
    const prompt = TOKENS.slice(0, PREFILL);
    let step = await decoder.forward(
      BigInt64Array.from(prompt, BigInt),
      new BigInt64Array(PREFILL).fill(1n),
      BigInt64Array.from(prompt, (_, i) => BigInt(i)),
      decoder.emptyCache(1),
    );
    for (let p = 0; p < PREFILL; p++) expect(maxAbsDiff(step.logits.subarray(p * vocab, (p + 1) * vocab), reference[p]), `prefill ${p}`).toBeLessThan(1e-3);
    for (let p = PREFILL; p < TOKENS.length; p++) {
      step = await decoder.forward(BigInt64Array.of(BigInt(TOKENS[p])), new BigInt64Array(p + 1).fill(1n), BigInt64Array.of(BigInt(p)), step.cache);
      expect(maxAbsDiff(step.logits, reference[p]), `decode step at position ${p}`).toBeLessThan(1e-3);
    }
    expect(step.cache.length).toBe(TOKENS.length);
  });

  it("folds the exporter's shape arithmetic: every Reshape in the layers takes a constant shape", () => {
    const model = loadExportedModel(exported);
    const bytes = readFileSync(model.onnxPath);
    const graph = [...wireFields(bytes)].find((f) => f.field === MODEL_GRAPH)!;
    const nodes = [...wireFields(bytes, graph.valueStart, graph.end)].filter((f) => f.field === GRAPH_NODE).map((f) => readNode(bytes, f));
    const constants = new Set(nodes.filter((n) => n.opType === 'Constant').flatMap((n) => n.outputs));
    const inLayers = nodes.filter((n) => n.outputs[0].includes('/layers.'));
    const reshapes = inLayers.filter((n) => n.opType === 'Reshape');
    expect(reshapes.length).toBeGreaterThanOrEqual(6 * model.manifest.num_layers);
    expect(reshapes.filter((n) => !constants.has(n.inputs[1])).map((n) => n.outputs[0])).toEqual([]);
    // What stays dynamic in a layer: the past's length, which splits attention between past and new keys.
    expect(inLayers.filter((n) => n.opType === 'Shape')).toHaveLength(model.manifest.num_layers);
  });

  it('asks to export again a folder whose manifest predates the packed new_key_values', () => {
    const old = join(tempDir(), 'old-export');
    mkdirSync(join(old, 'onnx'), { recursive: true });
    const manifest = JSON.parse(readFileSync(join(exported, 'llmkit.json'), 'utf8'));
    // Until 2026-11-29 each layer's new keys and values were outputs of their own.
    manifest.outputs = manifest.outputs.flatMap((n: string) => (n === 'new_key_values' ? ['new_key_values.0.key', 'new_key_values.0.value'] : [n]));
    writeFileSync(join(old, 'llmkit.json'), JSON.stringify(manifest));
    expect(() => loadExportedModel(old)).toThrow(/llmkit\.json: outputs: no packed new_key_values output \(made by an older llmkit\)/);
  });

  it("records the exporter's own parity check in the manifest", () => {
    const check = loadExportedModel(exported).manifest.export_check ?? {};
    expect(Object.keys(check)).toEqual(['prefill', 'decode_1', 'decode_2', 'decode_3']);
    for (const diff of Object.values(check)) expect(diff).toBeLessThan(1e-3);
  });

  it('loads in transformers.js (onnxruntime-node backend), which generates the same greedy tokens', async () => {
    const ids = TOKENS.slice(0, PREFILL);
    const generated = await transformersJsGreedy(exported, ids, 10);
    const ours = (await greedyDecode(decoder, ids, 10)).tokens;
    // transformers.js stops at EOS; llmkit's timing loop does not.
    expect(generated.length).toBeGreaterThan(0);
    expect(ours.slice(0, generated.length)).toEqual(generated);
  });

  it("exports --fused into ONNX Runtime's fused operators, with the traced graph's logits and greedy tokens, in transformers.js too", async () => {
    const fused = loadExportedModel(await exportedTinyModel('tiny', 0, 'fused'));
    const layers = fused.manifest.num_layers;
    const count = operatorCounts(fused.onnxPath);
    expect(fused.manifest.graph).toBe('fused');
    // Every norm but the first takes the residual sum; q and k are rotated in each layer; q/k/v and gate/up are one MatMul each.
    expect([count('SimplifiedLayerNormalization'), count('SkipSimplifiedLayerNormalization'), count('RotaryEmbedding')]).toEqual([1, 2 * layers, 2 * layers]);
    // Splits: q/k/v, gate/up, and attention's probabilities into past and new columns (no Slices left).
    expect([count('Pow'), count('Neg'), count('Split'), count('Slice')]).toEqual([0, 0, 3 * layers, 0]);
    // A layer: q+k+v, o, gate+up, down, and attention's 4 (scores and values, past and new); then the output layer.
    expect(count('MatMul')).toBe(8 * layers + 1);
    await expectTracedBehaviour(fused);
  });

  it("exports --gqa with attention in GroupQueryAttention, the traced graph's logits and greedy tokens, in transformers.js too", async () => {
    const out = join(tempDir('llmkit-export-'), 'gqa');
    const r = await runCli(['export', await tinyModel(), '--gqa', '--out', out, '--json']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const gqa = loadExportedModel(out);
    const layers = gqa.manifest.num_layers;
    const count = operatorCounts(gqa.onnxPath);
    expect(gqa.manifest.graph).toBe('fused-gqa');
    expect(gqa.manifest.outputs).not.toContain('new_key_values');
    // A layer: q+k+v, o, gate+up and down MatMuls, attention in one operator; then the output layer.
    expect([count('GroupQueryAttention'), count('RotaryEmbedding'), count('MatMul')]).toEqual([layers, 2 * layers, 4 * layers + 1]);
    expect([count('Softmax'), count('Transpose')]).toEqual([0, 0]);
    await expectTracedBehaviour(gqa);
  });

  it('exports float16 weights behind float32 inputs and outputs, checked against PyTorch', async () => {
    const out = join(tempDir('llmkit-export-'), 'fp16');
    const r = await runCli(['export', await tinyModel(), '--fp16', '--out', out]);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const model = loadExportedModel(out);
    expect(model.manifest).toMatchObject({ precision: 'fp16', dtype: 'float16', kv_dtype: 'float32', inputs: loadExportedModel(exported).manifest.inputs });
    for (const diff of Object.values(model.manifest.export_check ?? {})) {
      expect(diff).toBeGreaterThan(1e-6);
      expect(diff).toBeLessThan(5e-2);
    }
    const prompt = TOKENS.slice(0, PREFILL);
    const expected = (await greedyDecode(decoder, prompt, 4)).tokens;
    // Generation's session computes the output layer at the last position, through the float16 graph's output Cast.
    expect(withLastPositionLogits(readFileSync(model.onnxPath))).toBeDefined();
    for (const logits of ['all', 'last'] as const) {
      const fp16 = await DecoderSession.open(model, { device: 'cpu', logits });
      expect((await greedyDecode(fp16, prompt, 4)).tokens).toEqual(expected);
      await fp16.release();
    }
  });

  it('rejects a missing folder and an unsupported architecture with one line', async () => {
    const dir = tempDir('llmkit-export-');
    const gpt2 = join(dir, 'gpt2');
    mkdirSync(gpt2);
    writeFileSync(join(gpt2, 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'] }));
    writeFileSync(join(gpt2, 'model.safetensors'), '');
    const hint = 'pass a Hugging Face model folder \\(config\\.json, weights, tokenizer\\)';
    const cases: [string, RegExp, number][] = [
      [join(dir, 'missing'), new RegExp(`^error: model folder .*missing does not exist; ${hint}$`), 2],
      [dir, new RegExp(`^error: model folder .* has no config\\.json; ${hint}$`), 2],
      [
        gpt2,
        /^error: architecture GPT2LMHeadModel is not supported for export; supported: Gemma3ForCausalLM, LlamaForCausalLM, MistralForCausalLM, Phi3ForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, SmolLM3ForCausalLM$/,
        1,
      ],
    ];
    const results = await Promise.all(cases.map(([model]) => runCli(['export', model, '--out', join(dir, 'out')])));
    for (const [i, [model, message, exitCode]] of cases.entries()) {
      expect(results[i].exitCode, model).toBe(exitCode);
      expect(String(results[i].stderr).trim().split('\n')).toHaveLength(1);
      expect(String(results[i].stderr).trim()).toMatch(message);
    }
    const both = await runCli(['export', gpt2, '--gqa', '--triton', join(dir, 'triton'), '--out', join(dir, 'out')]);
    expect(both.exitCode).toBe(2);
    expect(String(both.stderr).trim()).toBe('error: --gqa and --triton exclude each other; export for Triton with --fused');
  });
});
