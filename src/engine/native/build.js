// Builds llmkit's ONNX Runtime binding (ort-binding.cc) into dist/native/ with the system's C++ compiler, as
// part of `npm run build` (and so of `npm ci` and `npm test`). No node-gyp and no download: Node-API's headers
// come from the npm package node-api-headers, ONNX Runtime's C API header is in vendor/. A missing compiler or
// a failed build is not an error: dist/native/build.json says why, and llmkit runs on onnxruntime-node instead.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const outDir = join(root, 'dist', 'native');
const addon = join(outDir, 'ort-binding.node');
const record = join(outDir, 'build.json');
const source = join(here, 'ort-binding.cc');
const compiler = process.env.CXX || 'g++';

function write(result) {
  if (!result.built) rmSync(addon, { force: true });
  writeFileSync(`${record}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
  renameSync(`${record}.tmp`, record);
  console.log(result.built ? `native binding: built ${addon}` : `native binding: not built (${result.reason}); llmkit will use onnxruntime-node`);
}

function napiHeaders() {
  try {
    return dirname(createRequire(import.meta.url).resolve('node-api-headers/include/node_api.h'));
  } catch {
    return undefined;
  }
}

function build() {
  mkdirSync(outDir, { recursive: true });
  if (process.env.LLMKIT_NATIVE_BUILD === '0') return { built: false, reason: 'build switched off by LLMKIT_NATIVE_BUILD=0' };
  if (process.platform !== 'linux') return { built: false, reason: `no build recipe for ${process.platform} yet (docs/architecture.md)` };
  const headers = napiHeaders();
  if (!headers) return { built: false, reason: 'the npm package node-api-headers is missing (run `npm ci`)' };
  const upToDate = existsSync(addon) && statSync(addon).mtimeMs > Math.max(statSync(source).mtimeMs, statSync(fileURLToPath(import.meta.url)).mtimeMs);
  if (upToDate) return { built: true, compiler };
  const args = ['-std=c++17', '-O2', '-shared', '-fPIC', '-Wall', `-I${headers}`, `-I${join(here, 'vendor')}`, '-DNODE_GYP_MODULE_NAME=ort_binding', source, '-o', `${addon}.tmp`, '-ldl'];
  try {
    execFileSync(compiler, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    rmSync(`${addon}.tmp`, { force: true });
    if (e.code === 'ENOENT') return { built: false, reason: `no C++ compiler (${compiler}) on this machine` };
    const firstError = String(e.stderr ?? e.message).split('\n').find((l) => /error/.test(l)) ?? 'see the compiler output';
    return { built: false, reason: `${compiler} failed: ${firstError.trim().slice(0, 200)}` };
  }
  renameSync(`${addon}.tmp`, addon);
  return { built: true, compiler };
}

write(build());
