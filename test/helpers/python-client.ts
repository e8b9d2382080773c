import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { llmkitHome } from '../../src/shared/paths.js';

/** The official Python client and pydantic, for tests that drive the server from Python. */
const REQUIREMENTS = ['openai>=1.92,<4', 'pydantic>=2,<3'];

/**
 * A small venv with the `openai` Python package, separate from the worker's (no torch): made once under
 * LLMKIT_HOME with the system's python3 and pip from PyPI, built under a temporary name and renamed.
 */
export async function pythonClient(): Promise<string> {
  const dir = join(llmkitHome(), 'venvs', 'openai-client-1');
  const python = join(dir, 'bin', 'python');
  if (existsSync(python)) return python;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  await execa('python3', ['-m', 'venv', tmp], { stdin: 'ignore' });
  await execa(join(tmp, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', ...REQUIREMENTS], { stdin: 'ignore' });
  renameSync(tmp, dir);
  return python;
}
