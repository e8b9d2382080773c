import { join } from 'node:path';
import { requirePythonEnv } from '../../workers/python-env.js';
import { runWorker } from '../../workers/worker-run.js';
import { UsageError } from '../../shared/errors.js';
import { llmkitHome } from '../../shared/paths.js';
import type { FinetuneOptions } from './options.js';

/** The flags of `llmkit finetune` that spread training over several processes (docs/deploy.md). */
export type DistributedFlags = Pick<FinetuneOptions, 'gpus' | 'nproc' | 'nnodes' | 'nodeRank' | 'masterAddr' | 'masterPort' | 'fsdp' | 'device' | 'exactMatch' | 'compile'>;

/** torchrun's own default rendezvous port, used on several machines when --master-port is not given. */
export const DEFAULT_MASTER_PORT = 29500;

/** Processes on this machine, and in the whole job. */
export function processCounts(o: DistributedFlags): { perNode: number; world: number } {
  const perNode = o.gpus ?? o.nproc ?? 1;
  return { perNode, world: perNode * (o.nnodes ?? 1) };
}

/**
 * Rejects flag combinations that cannot run, before anything starts; the ones a schema rule can say
 * (--gpus or --nproc, not both; --nnodes needs one of them) are in FINETUNE's rules (options.ts).
 */
export function checkDistributedFlags(o: DistributedFlags): void {
  const nnodes = o.nnodes ?? 1;
  if (o.gpus !== undefined && o.device === 'cpu') {
    throw new UsageError('--gpus runs one process per CUDA GPU, so it contradicts --device cpu', 'use --nproc N for several CPU processes');
  }
  if (nnodes > 1 && !o.masterAddr) {
    throw new UsageError(`--nnodes ${nnodes} needs --master-addr: the address of node 0, which every node connects to`, 'pass --master-addr HOST (and the same --master-port on every node)');
  }
  if (o.nodeRank !== undefined && o.nodeRank >= nnodes) {
    throw new UsageError(`--node-rank ${o.nodeRank} must be below --nnodes ${nnodes}`, `number the machines 0 to ${nnodes - 1}`);
  }
  if (o.masterPort !== undefined && o.masterPort > 65535) {
    throw new UsageError(`--master-port must be a TCP port, 1 to 65535 (got ${o.masterPort})`);
  }
  if (!o.fsdp) return;
  // One process has nothing to shard the model with; FSDP there would only add its overhead.
  if (processCounts(o).world < 2) throw new UsageError('--fsdp shards the model across processes, so it needs at least 2', 'add --gpus N or --nproc N with N ≥ 2 (or --nnodes)');
  // Generation calls the model outside FSDP's forward, where the root's weights stay sharded.
  if (o.exactMatch > 0) throw new UsageError('--exact-match cannot run under --fsdp (generation needs the whole model on one process)', 'drop --exact-match, or train with DDP (no --fsdp)');
  // CUDA graphs cannot capture FSDP's all-gathers, and compiling inside FSDP units is untested here.
  if (o.compile) throw new UsageError('--compile is not supported with --fsdp', 'drop --compile (or --no-compile over a recipe), or train with DDP (no --fsdp)');
}

/** --gpus N on a machine whose PyTorch sees fewer CUDA devices fails here, not in N crashing processes. */
export async function checkGpuCount(o: DistributedFlags): Promise<void> {
  if (o.gpus === undefined) return;
  const { result } = await runWorker({ job: 'probe', config: {}, logFile: join(llmkitHome(), 'logs', 'probe.log') });
  const seen = result.cuda.gpus.length;
  if (seen < o.gpus) {
    throw new UsageError(
      `--gpus ${o.gpus}: PyTorch in the worker environment sees ${seen} CUDA GPU${seen === 1 ? '' : 's'}`,
      seen ? `use --gpus ${seen} or less (CUDA_VISIBLE_DEVICES picks which)` : 'run on a machine with CUDA GPUs, or use --nproc N on the CPU',
    );
  }
}

/**
 * torchrun (`python -m torch.distributed.run`, with the worker environment's Python) as the job's launcher, or
 * undefined for a single process. One machine uses a standalone rendezvous on a free local port unless
 * --master-port pins it; several machines meet at --master-addr:--master-port.
 */
export async function torchrunLauncher(o: DistributedFlags): Promise<{ command: string; args: string[] } | undefined> {
  if (o.gpus === undefined && o.nproc === undefined) return undefined;
  const { python } = await requirePythonEnv();
  const nnodes = o.nnodes ?? 1;
  const rendezvous =
    nnodes === 1 && o.masterPort === undefined
      ? ['--standalone']
      : ['--node-rank', String(o.nodeRank ?? 0), '--master-addr', o.masterAddr ?? '127.0.0.1', '--master-port', String(o.masterPort ?? DEFAULT_MASTER_PORT)];
  return {
    command: python,
    args: ['-m', 'torch.distributed.run', '--nnodes', String(nnodes), '--nproc-per-node', String(processCounts(o).perNode), ...rendezvous],
  };
}
