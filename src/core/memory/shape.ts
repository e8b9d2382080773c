import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { hostCopiesAtOpen, loadExportedModel } from '../../engine/model-manifest.js';
import { UsageError } from '../../shared/errors.js';
import { readSafetensorsHeader } from '../finetune/lora.js';
import type { ModelShape } from './estimate.js';

/** Parameters counted from the safetensors headers (no weights read); null without safetensors. */
export async function countParameters(path: string, files: string[]): Promise<number | null> {
  const shards = files.filter((f) => f.endsWith('.safetensors'));
  if (!shards.length) return null;
  let total = 0;
  for (const shard of shards) {
    const { tensors } = await readSafetensorsHeader(join(path, shard), 'the weights are not a valid safetensors file');
    for (const t of Object.values(tensors)) total += t.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}

/** The shape the estimate needs, from a Hugging Face folder's config.json (text_config for multimodal ones) or an export's llmkit.json. */
export async function readModelShape(dir: string): Promise<ModelShape & { weightBytes: number | null; kvBytes: number; openCopies: (lora: boolean) => number }> {
  // Without a config.json it can only be an export: the loader's errors say what is wrong with it.
  if (existsSync(join(dir, 'llmkit.json')) || !existsSync(join(dir, 'config.json'))) {
    const { manifest: m, onnxPath } = loadExportedModel(dir);
    const onnxFiles = readdirSync(join(onnxPath, '..'));
    const weightBytes = onnxFiles.reduce((n, f) => n + statSync(join(onnxPath, '..', f)).size, 0);
    const hidden = m.hidden_size;
    return {
      parameters: 0,
      layers: m.num_layers,
      hidden,
      // Not in llmkit.json: the Llama family's usual ratio, for the prefill scratch only.
      intermediate: Math.round((8 / 3) * hidden),
      heads: m.num_attention_heads,
      kvHeads: m.num_kv_heads,
      headDim: m.head_dim,
      vocab: m.vocab_size,
      context: m.max_position_embeddings,
      projections: [],
      weightBytes,
      kvBytes: m.kv_dtype === 'float16' ? 2 : 4,
      openCopies: (lora: boolean) =>
        hostCopiesAtOpen(
          m.graph,
          onnxFiles.some((f) => f !== basename(onnxPath)),
          lora,
        ),
    };
  }
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const c = ((config.text_config as Record<string, unknown> | undefined) ?? config) as Record<string, number>;
  const hidden = c.hidden_size;
  const heads = c.num_attention_heads;
  const kvHeads = c.num_key_value_heads ?? heads;
  const headDim = c.head_dim ?? hidden / heads;
  const intermediate = c.intermediate_size;
  const parameters = (await countParameters(dir, readdirSync(dir))) ?? 0;
  if (![hidden, heads, intermediate, c.num_hidden_layers, c.vocab_size].every((v) => typeof v === 'number' && v > 0)) {
    throw new UsageError(`${join(dir, 'config.json')} lacks the sizes an estimate needs (hidden_size, num_attention_heads, intermediate_size, num_hidden_layers, vocab_size)`);
  }
  return {
    parameters,
    layers: c.num_hidden_layers,
    hidden,
    intermediate,
    heads,
    kvHeads,
    headDim,
    vocab: c.vocab_size,
    context: c.max_position_embeddings ?? 2048,
    // q, k, v, o and gate, up, down: LoRA's usual targets (llmkit's default).
    projections: [
      [hidden, heads * headDim],
      [hidden, kvHeads * headDim],
      [hidden, kvHeads * headDim],
      [heads * headDim, hidden],
      [hidden, intermediate],
      [hidden, intermediate],
      [intermediate, hidden],
    ],
    weightBytes: null,
    kvBytes: 4,
    openCopies: (lora: boolean) => hostCopiesAtOpen(null, false, lora),
  };
}
