import { statfs } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { arch, cpus, freemem, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { CUDA_PROVIDER_LIBRARY, missingLoaderDirs, onnxruntimeLibDir, readCudaRecord, type CudaSetupRecord } from '../engine/cuda-libraries.js';
import { onnxruntimeVersion, probeProviders, type ProviderProbe } from '../engine/onnx-runtime.js';
import { type BindingStatus, bindingStatus } from '../engine/native/ort-binding.js';
import { findPythonEnv, type PythonEnv } from '../workers/python-env.js';
import { runWorker } from '../workers/worker-run.js';
import { llmkitHome } from '../shared/paths.js';

/** `llmkit env --setup`: the workers layer builds the environment; the command reaches it through core. */
export { setupPythonEnv } from '../workers/python-env.js';

export interface GpuInfo {
  index: number;
  name: string;
  memoryBytes: number;
}

export interface EnvReport {
  os: string;
  cpuCores: number;
  memoryBytes: number;
  freeMemoryBytes: number;
  home: string;
  freeDiskBytes: number | null;
  node: string;
  onnxruntimeNode: string;
  /** Which ONNX Runtime binding CPU and CUDA sessions run on: llmkit's own, or onnxruntime-node and why. */
  ortBinding: BindingStatus;
  providers: ProviderProbe[];
  cudaProvider: CudaProviderState;
  python: (PythonEnv & { version?: string }) | null;
  packages: Record<string, string | null>;
  cuda: { available: boolean; torchCuda: string | null; bf16: boolean; nccl: boolean; gloo: boolean; gpus: GpuInfo[] };
  nvidiaSmi: GpuInfo[] | null;
  problems: { what: string; fix: string }[];
}

/** The CUDA route of onnxruntime-node: is the provider beside its core, and are its libraries on the loader path? */
export interface CudaProviderState {
  installed: boolean;
  record: CudaSetupRecord | null;
  /** Recorded library folders missing from this process's loader path (the CLI adds them when it starts). */
  missingFromLoaderPath: string[];
}

function cudaProviderState(): CudaProviderState {
  const record = readCudaRecord();
  return {
    installed: existsSync(join(onnxruntimeLibDir(), CUDA_PROVIDER_LIBRARY)),
    record,
    missingFromLoaderPath: record ? missingLoaderDirs(record, process.env.LD_LIBRARY_PATH) : [],
  };
}

const REQUIRED_PACKAGES = ['torch', 'transformers', 'peft', 'onnx', 'onnxruntime'];

/** Gathers everything `llmkit env` shows; never throws for a missing piece, it lists it in `problems`. */
export async function inspectEnvironment(): Promise<EnvReport> {
  const home = llmkitHome();
  await mkdir(home, { recursive: true });
  const [providers, python, nvidiaSmi, disk] = await Promise.all([probeProviders(), findPythonEnv(), readNvidiaSmi(), freeDisk(home)]);
  const report: EnvReport = {
    os: `${platform()} ${release()} ${arch()}`,
    cpuCores: cpus().length,
    memoryBytes: totalmem(),
    freeMemoryBytes: freemem(),
    home,
    freeDiskBytes: disk,
    node: process.version,
    onnxruntimeNode: onnxruntimeVersion,
    ortBinding: bindingStatus(),
    providers,
    cudaProvider: cudaProviderState(),
    python,
    packages: Object.fromEntries(REQUIRED_PACKAGES.map((p) => [p, null])),
    cuda: { available: false, torchCuda: null, bf16: false, nccl: false, gloo: false, gpus: [] },
    nvidiaSmi,
    problems: [],
  };
  if (!python) {
    report.problems.push({ what: 'the Python worker environment is not set up', fix: 'llmkit env --setup' });
    return report;
  }
  try {
    const { result: probe } = await runWorker({ job: 'probe', config: {}, logFile: join(home, 'logs', 'probe.log') });
    report.python = { ...python, version: probe.python.version };
    report.packages = Object.fromEntries(Object.entries(probe.packages).map(([k, v]) => [k, v.version]));
    report.cuda = {
      available: probe.cuda.available,
      torchCuda: probe.cuda.torch_cuda ?? null,
      bf16: probe.cuda.bf16,
      nccl: probe.cuda.nccl,
      gloo: probe.cuda.gloo ?? false,
      gpus: probe.cuda.gpus.map((g) => ({ index: g.index, name: g.name, memoryBytes: g.memory_bytes })),
    };
    for (const name of REQUIRED_PACKAGES) {
      if (!report.packages[name]) report.problems.push({ what: `Python package ${name} is missing`, fix: fixFor(python) });
    }
  } catch (e) {
    report.problems.push({ what: `the Python worker did not start (${(e as Error).message})`, fix: fixFor(python) });
  }
  return report;
}

function fixFor(python: PythonEnv): string {
  return python.source === 'venv' ? 'llmkit env --setup' : `${python.python} -m pip install -r src/workers/python/requirements.txt`;
}

/** nvidia-smi is absent on machines without an NVIDIA GPU: that is "no GPU", not an error. */
export async function readNvidiaSmi(): Promise<GpuInfo[] | null> {
  // execa takes ~80 ms to load, more than the rest of the CLI's start: loaded when a process is started.
  const { execa } = await import('execa');
  const r = await execa('nvidia-smi', ['--query-gpu=index,name,memory.total', '--format=csv,noheader,nounits'], { reject: false });
  if (r.exitCode !== 0 || r.failed) return null;
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [index, name, mib] = line.split(',').map((s) => s.trim());
      return { index: Number(index), name, memoryBytes: Number(mib) * 1024 * 1024 };
    });
}

async function freeDisk(path: string): Promise<number | null> {
  if (!existsSync(path)) return null;
  const s = await statfs(path);
  return s.bavail * s.bsize;
}
