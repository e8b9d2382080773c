/**
 * Where ONNX Runtime's CUDA provider sits for onnxruntime-node, and the loader path it needs.
 *
 * The provider (from the PyPI wheel onnxruntime-gpu, placed by `llmkit env --setup --cuda`) links the
 * CUDA 13 libraries by name and has no RUNPATH, and the dynamic loader reads LD_LIBRARY_PATH only when
 * a process starts. So when the set-up recorded library folders that the loader path lacks, the CLI
 * starts itself again with them added (bin/llmkit.js, before anything heavy loads): one extra Node
 * start, on machines that set CUDA up, instead of asking every user to export LD_LIBRARY_PATH.
 * This module must not import onnxruntime-node.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { llmkitHome } from '../shared/paths.js';

export interface CudaSetupRecord {
  /** onnxruntime-node's version when the provider was placed; the wheel was of the same release. */
  onnxruntimeVersion: string;
  /** The folder the provider libraries were copied into (onnxruntime-node's core folder). */
  providerDir: string;
  /** Folders holding the CUDA libraries the provider links; put on the loader path at start. */
  libraryDirs: string[];
  /** The wheel or folder the provider came from. */
  source: string;
}

export const CUDA_PROVIDER_LIBRARY = 'libonnxruntime_providers_cuda.so';
const RELAUNCHED = 'LLMKIT_CUDA_LOADER_PATH';

const require = createRequire(import.meta.url);

export function onnxruntimeNodeVersion(): string {
  return (require('onnxruntime-node/package.json') as { version: string }).version;
}

/** onnxruntime-node's binary folder: its core libonnxruntime.so.1, beside which ONNX Runtime looks for providers. */
export function onnxruntimeLibDir(): string {
  return join(dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

export function cudaRecordPath(): string {
  return join(llmkitHome(), 'cuda', 'provider.json');
}

export function readCudaRecord(): CudaSetupRecord | null {
  const path = cudaRecordPath();
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as CudaSetupRecord) : null;
}

/** The recorded library folders that `ldLibraryPath` does not hold yet. */
export function missingLoaderDirs(record: CudaSetupRecord, ldLibraryPath = ''): string[] {
  const present = new Set(ldLibraryPath.split(':').filter(Boolean));
  return record.libraryDirs.filter((dir) => !present.has(dir));
}

/**
 * Starts this CLI again with the CUDA libraries on the loader path when the set-up recorded some that
 * are missing from it; resolves with the child's exit code, or undefined when no restart is needed.
 * Ctrl-C reaches the child from the terminal (same process group), so this process ignores SIGINT and
 * forwards only what a terminal would not deliver to both (SIGTERM).
 */
export function relaunchWithCudaLibraries(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> | undefined {
  if (process.platform !== 'linux' || env[RELAUNCHED]) return undefined;
  const record = readCudaRecord();
  const missing = record ? missingLoaderDirs(record, env.LD_LIBRARY_PATH) : [];
  if (missing.length === 0) return undefined;
  const ldLibraryPath = [...missing, ...(env.LD_LIBRARY_PATH ? [env.LD_LIBRARY_PATH] : [])].join(':');
  const child = spawn(process.execPath, [...process.execArgv, ...argv.slice(1)], {
    stdio: 'inherit',
    env: { ...env, LD_LIBRARY_PATH: ldLibraryPath, [RELAUNCHED]: '1' },
  });
  const ignore = () => {};
  const forward = () => child.kill('SIGTERM');
  process.on('SIGINT', ignore).on('SIGTERM', forward);
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      process.off('SIGINT', ignore).off('SIGTERM', forward);
      resolve(code ?? (signal === 'SIGINT' ? 130 : 143));
    });
  });
}
