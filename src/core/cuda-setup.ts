import { join } from 'node:path';
import { cudaRecordPath, onnxruntimeLibDir, onnxruntimeNodeVersion, type CudaSetupRecord } from '../engine/cuda-libraries.js';
import type { WorkerEvent } from '../workers/protocol.js';
import { runWorker } from '../workers/worker-run.js';
import { writeFileAtomic } from '../shared/atomic.js';
import { llmkitHome } from '../shared/paths.js';

export interface CudaSetupOptions {
  /** An onnxruntime-gpu wheel, a folder holding one, or a folder with its provider libraries; default: PyPI. */
  from?: string;
  /** Where the provider libraries go; default: onnxruntime-node's core folder, the only one ONNX Runtime searches. */
  providerDir?: string;
  onEvent?: (event: WorkerEvent) => void;
}

/**
 * `llmkit env --setup --cuda`: the CUDA provider of onnxruntime-gpu (the same release as onnxruntime-node)
 * beside onnxruntime-node's core, the CUDA 13 libraries found or installed, and a record of their folders
 * that the CLI puts on the loader path at start. With `from`, nothing is fetched from PyPI.
 */
export async function setupCudaProvider(opts: CudaSetupOptions = {}): Promise<CudaSetupRecord & { providerFiles: string[] }> {
  const version = onnxruntimeNodeVersion();
  const providerDir = opts.providerDir ?? onnxruntimeLibDir();
  const { result: installed } = await runWorker({
    job: 'cuda_provider',
    config: { version, dest: providerDir, cache: join(llmkitHome(), 'cuda'), source: opts.from ?? null, offline: opts.from !== undefined },
    logFile: join(llmkitHome(), 'logs', 'cuda-setup.log'),
    onEvent: opts.onEvent,
  });
  const record: CudaSetupRecord = { onnxruntimeVersion: version, providerDir, libraryDirs: installed.library_dirs, source: installed.source };
  await writeFileAtomic(cudaRecordPath(), JSON.stringify(record, null, 2) + '\n');
  return { ...record, providerFiles: installed.provider_files };
}
