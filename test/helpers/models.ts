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

/** The tiny model exported to ONNX, cached next to it and re-exported when the exporter changes. */
export async function exportedTinyModel(preset: ModelPreset = 'tiny', seed = 0): Promise<string> {
  const model = await tinyModel(preset, seed);
  const exporter = readFileSync(join(pythonSourceDir, 'llmkit_worker', 'export_onnx.py'));
  const out = `${model}-onnx-${createHash('sha256').update(exporter).digest('hex').slice(0, 8)}`;
  if (!existsSync(join(out, 'llmkit.json'))) await exportModel({ model, out });
  return out;
}
