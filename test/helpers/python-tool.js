// Python developer tools (pytest, ruff, mypy) for tests and `npm run lint`, installed on first use by
// `pip install --target` into $LLMKIT_HOME/tools/<name>-<version>: the worker environment stays as
// requirements.txt makes it (its hash keys the venv) and nothing is installed by hand. pip runs from a
// small venv of its own ($LLMKIT_HOME/tools/venv), since a system Python may refuse installs (PEP 668).
//
//   node test/helpers/python-tool.js ruff check src/workers/python test
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export const TOOLS = { pytest: '9.2.0', ruff: '0.17.5', mypy: '2.4.1' };

const toolsHome = () => join(resolve(process.env.LLMKIT_HOME ?? join(homedir(), '.cache', 'llmkit')), 'tools');

/** Makes `dir` by running `make(tmp)` on a temporary name and renaming it, so a failed install leaves nothing behind. */
function installOnce(dir, make) {
  if (existsSync(dir)) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  make(tmp);
  renameSync(tmp, dir);
  return dir;
}

/** The Python of the tools' own venv (it has pip), made on first use. */
export function toolsPython() {
  const venv = installOnce(join(toolsHome(), 'venv'), (tmp) => execFileSync('python3', ['-m', 'venv', tmp], { stdio: ['ignore', 'inherit', 'inherit'] }));
  return join(venv, 'bin', 'python');
}

/** The folder holding the tool's package, installed there first if missing. */
export function toolDir(name) {
  return installOnce(join(toolsHome(), `${name}-${TOOLS[name]}`), (tmp) =>
    execFileSync(toolsPython(), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', tmp, `${name}==${TOOLS[name]}`], { stdio: ['ignore', 'inherit', 'inherit'] }),
  );
}

/** Runs `python -m <name> ...args` with the tool on PYTHONPATH; returns the exit code. */
export function runTool(name, args, { python = toolsPython(), env = {}, stdio = 'inherit' } = {}) {
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
