import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { LlmkitError } from '../../shared/errors.js';
import { llmkitHome, packageRoot } from '../../shared/paths.js';

/** llama.cpp, as node-llama-cpp ships it (the release whose gguf-py gguf/export.ts writes with). */
export const NODE_LLAMA_CPP = '3.21.1';

/**
 * node-llama-cpp's entry file, installed once under LLMKIT_HOME/peers (under a temporary name and renamed). Not a
 * dependency: npm would fetch all its optional prebuilt binaries for this platform, ~700 MB of CUDA and Vulkan builds;
 * here only the plain CPU one is named (83 MB), and its postinstall (which may try to build llama.cpp) is skipped.
 */
export async function nodeLlamaCppEntry(): Promise<string> {
  const dir = join(llmkitHome(), 'peers', `node-llama-cpp-${NODE_LLAMA_CPP}`);
  const entry = join(dir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
  if (existsSync(entry)) return entry;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'package.json'), '{ "private": true }\n');
  const binary = `@node-llama-cpp/${process.platform === 'darwin' ? 'mac' : process.platform === 'win32' ? 'win' : 'linux'}-${process.arch}`;
  const npm = await execa('npm', ['install', '--no-audit', '--no-fund', '--omit=optional', '--ignore-scripts', `node-llama-cpp@${NODE_LLAMA_CPP}`, `${binary}@${NODE_LLAMA_CPP}`], {
    cwd: tmp,
    stdin: 'ignore',
    reject: false,
    all: true,
  });
  if (npm.exitCode !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new LlmkitError(`npm could not install node-llama-cpp@${NODE_LLAMA_CPP} (exit ${npm.exitCode})`, 'check network access to the npm registry', 1, String(npm.all ?? '').slice(-3000));
  }
  if (existsSync(entry)) rmSync(tmp, { recursive: true, force: true });
  else renameSync(tmp, dir);
  return entry;
}

/**
 * Loads a GGUF file with llama.cpp in a child process (llama.cpp aborts the whole process on some malformed files),
 * tokenizes a newline, and throws a one-line error with llama.cpp's own words when it cannot.
 */
export async function checkGgufLoads(path: string): Promise<void> {
  // The built script (tests run this module from src/, where there is only its TypeScript).
  const script = join(packageRoot, 'dist', 'core', 'gguf', 'load-check.js');
  const r = await execa(process.execPath, [script, await nodeLlamaCppEntry(), path], { reject: false, stdin: 'ignore', all: true });
  if (r.exitCode === 0) return;
  const lines = String(r.all ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  // llama.cpp's first error, else its first warning (the SentencePiece newline one comes before an abort), else the end.
  const logged = (level: string) => lines.find((l) => l.startsWith(`[${level}] `))?.slice(level.length + 3);
  const said = logged('error') ?? logged('warn') ?? lines.at(-1) ?? `exit ${r.exitCode}`;
  const aborted = r.signal ? `, and aborted (${r.signal})` : '';
  throw new LlmkitError(`llama.cpp (node-llama-cpp ${NODE_LLAMA_CPP}) cannot load the GGUF written: ${said}${aborted}`, 'nothing was written; please report this model', 1, String(r.all ?? ''));
}
