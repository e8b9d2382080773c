import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LlmkitError } from '../shared/errors.js';
import { llmkitHome, workerRequirementsFile } from '../shared/paths.js';

/** Where the worker's Python comes from, in the order llmkit looks. */
export type PythonSource = 'LLMKIT_PYTHON' | 'configured' | 'venv';
export interface PythonEnv {
  python: string;
  source: PythonSource;
  venvDir?: string;
}

const READY_MARKER = '.llmkit-ready';
const configFile = () => join(llmkitHome(), 'python.json');

export async function requirementsHash(): Promise<string> {
  const text = await readFile(workerRequirementsFile, 'utf8');
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

export async function venvDir(): Promise<string> {
  return join(llmkitHome(), 'venvs', `worker-${await requirementsHash()}`);
}

/**
 * The interpreter every job uses: $LLMKIT_PYTHON, else one recorded by `env --setup --python`,
 * else the venv for the current requirements. Returns null when none is set up.
 */
export async function findPythonEnv(): Promise<PythonEnv | null> {
  if (process.env.LLMKIT_PYTHON) return { python: process.env.LLMKIT_PYTHON, source: 'LLMKIT_PYTHON' };
  if (existsSync(configFile())) {
    const { python } = JSON.parse(await readFile(configFile(), 'utf8')) as { python: string };
    return { python, source: 'configured' };
  }
  const dir = await venvDir();
  if (existsSync(join(dir, READY_MARKER))) return { python: join(dir, 'bin', 'python'), source: 'venv', venvDir: dir };
  return null;
}

export async function requirePythonEnv(): Promise<PythonEnv> {
  const env = await findPythonEnv();
  if (!env) {
    throw new LlmkitError('the Python worker environment is not set up', 'run `llmkit env --setup` (or pass --python PATH to it)');
  }
  return env;
}

export interface SetupProgress {
  (line: string, packagesDone: number): void;
}

/**
 * Creates the worker venv from requirements.txt, or records an existing interpreter (--python).
 * Idempotent: a venv whose requirements hash matches is reused. Built under a temporary name and
 * renamed into place, so an interrupted setup never leaves a half-made environment behind.
 */
export async function setupPythonEnv(opts: { python?: string; basePython?: string }, onProgress: SetupProgress = () => {}): Promise<PythonEnv & { created: boolean }> {
  await mkdir(llmkitHome(), { recursive: true });
  if (opts.python) {
    await checkInterpreter(opts.python);
    await writeFile(configFile(), JSON.stringify({ python: opts.python }, null, 2));
    return { python: opts.python, source: 'configured', created: false };
  }
  await rm(configFile(), { force: true });
  const dir = await venvDir();
  if (existsSync(join(dir, READY_MARKER))) return { python: join(dir, 'bin', 'python'), source: 'venv', venvDir: dir, created: false };

  const base = opts.basePython ?? (process.platform === 'win32' ? 'python' : 'python3');
  await checkInterpreter(base);
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(llmkitHome(), 'venvs'), { recursive: true });
  // execa takes ~80 ms to load, more than the rest of the CLI's start: loaded when a process is started.
  const { execa } = await import('execa');
  await execa(base, ['-m', 'venv', tmp]);
  const pip = execa(join(tmp, 'bin', 'python'), ['-m', 'pip', 'install', '--progress-bar', 'off', '-r', workerRequirementsFile], {
    all: true,
    reject: false,
  });
  let done = 0;
  for await (const line of pip.all!) {
    const text = String(line);
    if (/^(Collecting|Requirement already satisfied)/.test(text)) done += 1;
    onProgress(text, done);
  }
  const result = await pip;
  if (result.exitCode !== 0) {
    await rm(tmp, { recursive: true, force: true });
    throw new LlmkitError(
      `pip could not install the worker requirements (exit ${result.exitCode})`,
      `check network access to PyPI, or point llmkit at a ready interpreter: llmkit env --setup --python PATH`,
      1,
      String(result.all ?? '')
        .split('\n')
        .slice(-30)
        .join('\n'),
    );
  }
  await writeFile(join(tmp, READY_MARKER), new Date().toISOString());
  // Scripts in the venv's bin/ keep the temporary path in their shebang; llmkit only ever runs
  // `bin/python -m ...`, which finds its venv from its own location, so the rename is safe.
  // Another llmkit (a parallel test run, say) may have finished the same venv meanwhile: keep theirs,
  // since replacing a venv in use would pull packages from under running jobs.
  if (existsSync(join(dir, READY_MARKER))) {
    await rm(tmp, { recursive: true, force: true });
    return { python: join(dir, 'bin', 'python'), source: 'venv', venvDir: dir, created: false };
  }
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return { python: join(dir, 'bin', 'python'), source: 'venv', venvDir: dir, created: true };
}

async function checkInterpreter(python: string): Promise<void> {
  const { execa } = await import('execa');
  const r = await execa(python, ['-c', 'import sys; print(sys.version_info >= (3, 9))'], { reject: false });
  if (r.exitCode !== 0 || r.stdout.trim() !== 'True') {
    throw new LlmkitError(`${python} is not a usable Python 3.9+ interpreter`, 'install Python 3.9 or newer, or pass another with --python PATH');
  }
}
