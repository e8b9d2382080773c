import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportModel } from '../../src/core/export.js';
import { makeModel, type ModelPreset } from '../../src/core/model-maker.js';
import { pythonSourceDir } from '../../src/core/paths.js';

/** The built-in tiny model (cached under LLMKIT_HOME, made once). */
export async function tinyModel(preset: ModelPreset = 'tiny', seed = 0): Promise<string> {
  return (await makeModel({ preset, seed })).path;
}

/**
 * The tiny model exported to ONNX (`fused`: with `llmkit export --fused`), cached next to it and re-exported
 * when the exporter changes.
 */
export async function exportedTinyModel(preset: ModelPreset = 'tiny', seed = 0, graph: 'traced' | 'fused' = 'traced'): Promise<string> {
  const model = await tinyModel(preset, seed);
  const hash = createHash('sha256');
  for (const file of ['export_onnx.py', 'fuse_graph.py']) hash.update(readFileSync(join(pythonSourceDir, 'llmkit_worker', file)));
  const out = `${model}-onnx${graph === 'fused' ? '-fused' : ''}-${hash.digest('hex').slice(0, 8)}`;
  if (!existsSync(join(out, 'llmkit.json'))) await exportModel({ model, out, fused: graph === 'fused' });
  return out;
}
