import { existsSync, renameSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { llmkitHome } from '../../src/shared/paths.js';

/** llama.cpp for the GGUF tests: node-llama-cpp with its prebuilt CPU binary, from npm. */
export const NODE_LLAMA_CPP = '3.21.1';

/**
 * Installs node-llama-cpp once under LLMKIT_HOME/peers (built under a temporary name and renamed) and imports it.
 * Not a devDependency: npm would fetch all its optional prebuilt binaries for this platform, ~700 MB of CUDA and Vulkan
 * builds; here only the plain CPU one is named (83 MB), and its postinstall (which may try to build llama.cpp) is skipped.
 */
export async function nodeLlamaCpp(): Promise<typeof import('node-llama-cpp')> {
  const dir = join(llmkitHome(), 'peers', `node-llama-cpp-${NODE_LLAMA_CPP}`);
  const entry = join(dir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
  if (!existsSync(entry)) {
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    writeFileSync(join(tmp, 'package.json'), '{ "private": true }\n');
    const binary = `@node-llama-cpp/${process.platform === 'darwin' ? 'mac' : process.platform === 'win32' ? 'win' : 'linux'}-${process.arch}`;
    await execa('npm', ['install', '--no-audit', '--no-fund', '--omit=optional', '--ignore-scripts', `node-llama-cpp@${NODE_LLAMA_CPP}`, `${binary}@${NODE_LLAMA_CPP}`], { cwd: tmp, stdin: 'ignore' });
    if (!existsSync(entry)) renameSync(tmp, dir);
    else rmSync(tmp, { recursive: true, force: true });
  }
  return import(pathToFileURL(entry).href);
}
