// Python developer tools (pytest, ruff) for tests and `npm run lint`, installed on first use by
// `pip install --target` into $LLMKIT_HOME/tools/<name>-<version>: the worker environment stays as
// requirements.txt makes it (its hash keys the venv) and nothing is installed by hand.
//
//   node test/helpers/python-tool.js ruff check src/workers/python test
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export const TOOLS = { pytest: '9.2.0', ruff: '0.17.5' };

/** The folder holding the tool's package, installed there first if missing. */
export function toolDir(name) {
  const home = resolve(process.env.LLMKIT_HOME ?? join(homedir(), '.cache', 'llmkit'));
  const dir = join(home, 'tools', `${name}-${TOOLS[name]}`);
  if (!existsSync(dir)) {
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    execFileSync('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--root-user-action=ignore', '--target', tmp, `${name}==${TOOLS[name]}`], { stdio: ['ignore', 'inherit', 'inherit'] });
    renameSync(tmp, dir);
  }
  return dir;
}

/** Runs `python -m <name> ...args` with the tool on PYTHONPATH; returns the exit code. */
export function runTool(name, args, { python = 'python3', env = {}, stdio = 'inherit' } = {}) {
  const pythonPath = [toolDir(name), env.PYTHONPATH ?? process.env.PYTHONPATH].filter(Boolean).join(':');
  const r = spawnSync(python, ['-m', name, ...args], { stdio, env: { ...process.env, ...env, PYTHONPATH: pythonPath }, encoding: 'utf8' });
  if (r.error) throw r.error;
  return r;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [name, ...args] = process.argv.slice(2);
  if (!(name in TOOLS)) {
    console.error(`usage: node test/helpers/python-tool.js <${Object.keys(TOOLS).join('|')}> [args]`);
    process.exit(2);
  }
  process.exitCode = runTool(name, args).status ?? 1;
}
