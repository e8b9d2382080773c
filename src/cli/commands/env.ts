import type { Command } from 'commander';
import type { EnvReport } from '../../core/env.js';
import { ENV } from '../../core/options/env.js';
import { commandFrom } from '../command.js';
import { formatBytes, formatRows } from '../output.js';
import { ProgressView } from '../progress.js';

export function envCommand(): Command {
  return commandFrom(ENV, async (opts, { flags }) => {
    const { inspectEnvironment, setupPythonEnv } = await import('../../core/env.js');
    if (opts.setup) {
      const view = new ProgressView(flags, 'setup');
      const env = await setupPythonEnv({ python: opts.python }, (line, done) => {
        view.onEvent({ event: 'progress', step: done, message: line.slice(0, 60) });
        if (flags.verbose) view.print(line);
      });
      view.stop();
      if (!flags.json) process.stderr.write(env.created ? `created the worker environment: ${env.python}\n` : `worker environment ready: ${env.python}\n`);
      if (opts.triton) {
        const { setupTritonEnv } = await import('../../core/triton/env.js');
        const triton = await setupTritonEnv({}, (line) => flags.verbose && process.stderr.write(line + '\n'));
        if (!flags.json) process.stderr.write(`${triton.created ? 'created' : 'ready'}: Triton Inference Server ${triton.tritonserver}\n`);
      }
    }
    if (opts.cuda) {
      const view = new ProgressView(flags, 'cuda');
      const { setupCudaProvider } = await import('../../core/cuda-setup.js');
      const cuda = await setupCudaProvider({ from: opts.cudaFrom, onEvent: (e) => view.onEvent(e) });
      view.stop();
      if (!flags.json) {
        process.stderr.write(`CUDA provider of onnxruntime ${cuda.onnxruntimeVersion} placed in ${cuda.providerDir}\n`);
        process.stderr.write(`CUDA libraries (put on the loader path when llmkit starts): ${cuda.libraryDirs.join(':')}\n`);
      }
    }
    const report = await inspectEnvironment();
    if (flags.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else process.stdout.write(formatEnv(report) + '\n');
    return report.problems.length === 0 ? 0 : 1;
  });
}

function formatEnv(r: EnvReport): string {
  const providers = r.providers.map((p) => (p.loaded ? `${p.provider}: loads` : `${p.provider}: no (${p.reason})`));
  const gpus = r.cuda.gpus.length ? r.cuda.gpus.map((g) => `${g.index}: ${g.name}, ${formatBytes(g.memoryBytes)}`) : ['none'];
  const rows: [string, string][] = [
    ['OS', r.os],
    ['CPU cores', String(r.cpuCores)],
    ['RAM', `${formatBytes(r.memoryBytes)} (${formatBytes(r.freeMemoryBytes)} free)`],
    ['llmkit home', `${r.home} (${formatBytes(r.freeDiskBytes)} free)`],
    ['Node', r.node],
    ['onnxruntime-node', r.onnxruntimeNode],
    ['ONNX binding', formatBinding(r)],
    ...providers.map((p, i): [string, string] => [i === 0 ? 'ONNX providers' : '', p]),
    ['CUDA provider', formatCudaProvider(r)],
    ['Python', r.python ? `${r.python.python} (${r.python.version ?? '?'}, from ${r.python.source})` : 'not set up'],
    ...Object.entries(r.packages).map(([k, v]): [string, string] => [`  ${k}`, v ?? 'missing']),
    ['CUDA (torch)', r.cuda.available ? `yes (CUDA ${r.cuda.torchCuda}, bf16 ${r.cuda.bf16 ? 'yes' : 'no'})` : 'no'],
    ['NCCL / gloo', `${r.cuda.nccl ? 'yes' : 'no'} / ${r.cuda.gloo ? 'yes' : 'no'}`],
    ...gpus.map((g, i): [string, string] => [i === 0 ? 'GPUs (torch)' : '', g]),
    ['nvidia-smi', r.nvidiaSmi ? r.nvidiaSmi.map((g) => `${g.name} ${formatBytes(g.memoryBytes)}`).join('; ') : 'not found (no NVIDIA GPU)'],
  ];
  const problems = r.problems.map((p) => `problem: ${p.what}; fix: ${p.fix}`);
  return [formatRows(rows), ...problems].join('\n');
}

function formatBinding(r: EnvReport): string {
  const b = r.ortBinding;
  if (b.binding === 'llmkit') {
    const library = process.env.LLMKIT_ORT_LIBRARY ? ` on ${b.library} (LLMKIT_ORT_LIBRARY)` : '';
    return `llmkit's own (C API ${b.apiVersion}${library}; I/O binding, runs off the event loop); WebGPU on onnxruntime-node`;
  }
  return `onnxruntime-node: ${b.reason}`;
}

function formatCudaProvider(r: EnvReport): string {
  const c = r.cudaProvider;
  if (!c.installed) return 'not set up (llmkit env --setup --cuda)';
  if (!c.record) return 'installed with onnxruntime-node (ONNXRUNTIME_NODE_INSTALL=cuda12); CUDA libraries from the system';
  const path = c.missingFromLoaderPath.length ? `; not on the loader path: ${c.missingFromLoaderPath.join(':')}` : '';
  return `onnxruntime ${c.record.onnxruntimeVersion} from ${c.record.source}; CUDA libraries in ${c.record.libraryDirs.join(':')}${path}`;
}
