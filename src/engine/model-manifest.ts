import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { LlmkitError, UsageError } from '../shared/errors.js';

/** llmkit.json: what the engine needs to know about an exported decoder (written by export_onnx.py). */
export const ModelManifestSchema = z
  .object({
    format: z.literal('llmkit-onnx-decoder'),
    version: z.literal(1),
    architecture: z.string(),
    model_type: z.string().nullish(),
    num_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_kv_heads: z.number().int().positive(),
    head_dim: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    vocab_size: z.number().int().positive(),
    max_position_embeddings: z.number().int().positive(),
    /** Path of the ONNX file, relative to the folder. */
    onnx: z.string(),
    inputs: z.array(z.string()),
    // The engine fetches the packed new_key_values (docs/export.md), or `present.*` from a "fused-gqa" graph
    // (checked below); exports from before it existed lack it.
    outputs: z.array(z.string()),
    dtype: z.string(),
    kv_dtype: z.enum(['float32', 'float16']),
    /** fp32, fp16, int8, int4: how the weights are stored. */
    precision: z.string(),
    /**
     * "fused": ONNX Runtime's fused operators (`llmkit export --fused`); "fused-gqa": those and GroupQueryAttention
     * (`--gqa`); "traced" or absent: the exporter's own.
     */
    graph: z.enum(['traced', 'fused', 'fused-gqa']).nullish(),
    quantization: z.record(z.string(), z.unknown()).nullish(),
    eos_token_ids: z.array(z.number().int()),
    pad_token_id: z.number().int().nullish(),
    bos_token_id: z.number().int().nullish(),
    chat_template: z.string().nullish(),
    source: z.string().nullish(),
    export_check: z.record(z.string(), z.number()).nullish(),
  })
  .refine((m) => m.graph === 'fused-gqa' || m.outputs.includes('new_key_values'), {
    path: ['outputs'],
    message: 'no packed new_key_values output (made by an older llmkit)',
  });

export type ModelManifest = z.infer<typeof ModelManifestSchema>;

export interface ExportedModel {
  dir: string;
  manifest: ModelManifest;
  onnxPath: string;
}

/** Reads and validates an exported model folder, with an error that says how to make one. */
export function loadExportedModel(dir: string): ExportedModel {
  const folder = resolve(dir);
  const file = join(folder, 'llmkit.json');
  if (!existsSync(folder)) throw new UsageError(`model folder ${dir} does not exist`, 'pass a folder made by `llmkit export` or `llmkit quantize`');
  if (!existsSync(file)) {
    const hint = existsSync(join(folder, 'config.json'))
      ? `it is a Hugging Face folder: export it first with \`llmkit export ${dir} --out ${dir}-onnx\``
      : 'pass a folder made by `llmkit export` or `llmkit quantize`';
    throw new UsageError(`${dir} has no llmkit.json (not an exported model)`, hint);
  }
  const parsed = ModelManifestSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LlmkitError(`${file}: ${issue.path.join('.')}: ${issue.message}`, 'export the model again with `llmkit export`');
  }
  const onnxPath = join(folder, parsed.data.onnx);
  if (!existsSync(onnxPath)) throw new LlmkitError(`${onnxPath} is missing`, 'export the model again with `llmkit export`');
  return { dir: folder, manifest: parsed.data, onnxPath };
}

/**
 * Copies of the weights in host memory while DecoderSession.open runs, besides the ones ONNX Runtime keeps: the file
 * as read, one per rewrite (`present.*` pruned, last-position logits, LoRA adapters' inputs when serving adapters; a
 * "fused-gqa" graph keeps its outputs) and ONNX Runtime's parsed model. The rewrites' buffers stay resident until a
 * later GC; serve's memory estimate counts them. Weights in an external data file (exports past 2 GB) are read by
 * ONNX Runtime alone: none (measured, docs/inspect.md).
 */
export function hostCopiesAtOpen(graph?: ModelManifest['graph'] | null, externalData = false, lora = false): number {
  if (externalData) return 0;
  return (graph === 'fused-gqa' ? 3 : 4) + (lora ? 1 : 0);
}
