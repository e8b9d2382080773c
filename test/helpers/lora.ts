import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { exportModel } from '../../src/core/export.js';
import { mergeAdapter } from '../../src/core/finetune/lora.js';
import { llmkitHome, pythonSourceDir } from '../../src/shared/paths.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';

const MAKER = join('test', 'helpers', 'lora_adapter.py');

export interface AdapterSpec {
  seed: number;
  rank: number;
  targets: readonly string[];
  dtype?: 'float32' | 'bfloat16';
}

const key = (...parts: string[]) => {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p).update('\0');
  return hash.digest('hex').slice(0, 10);
};

/** A PEFT adapter of `base` with random non-zero weights (lora_adapter.py), made once under LLMKIT_HOME/models. */
export async function randomAdapter(base: string, spec: AdapterSpec): Promise<string> {
  const dtype = spec.dtype ?? 'float32';
  const out = join(llmkitHome(), 'models', `lora-${key(base, readFileSync(MAKER, 'utf8'), JSON.stringify({ ...spec, dtype }))}`);
  if (!existsSync(join(out, 'adapter_model.safetensors'))) {
    const { python } = await requirePythonEnv();
    const tmp = `${out}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    await execa(python, [MAKER, base, tmp, String(spec.seed), String(spec.rank), spec.targets.join(','), dtype], { stdin: 'ignore' });
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
  }
  return out;
}

/** `llmkit lora merge` of the adapter into `base`, exported to ONNX (fp32, traced): the reference the served adapter must equal. */
export async function mergedExport(base: string, adapter: string): Promise<string> {
  const exporter = readFileSync(join(pythonSourceDir, 'llmkit_worker', 'export_onnx.py'), 'utf8');
  const out = join(llmkitHome(), 'models', `lora-merged-${key(base, adapter, exporter)}`);
  if (!existsSync(join(out, 'llmkit.json'))) {
    const merged = `${out}.hf-${process.pid}`;
    rmSync(merged, { recursive: true, force: true });
    await mergeAdapter({ base, adapter, out: merged });
    await exportModel({ model: merged, out });
    rmSync(merged, { recursive: true, force: true });
  }
  return out;
}
