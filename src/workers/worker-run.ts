import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { LlmkitError } from '../core/errors.js';
import { pythonSourceDir } from '../core/paths.js';
import { parseWorkerLine, type ErrorEvent, type InterruptedEvent, type WorkerEvent } from './protocol.js';
import { requirePythonEnv } from './python-env.js';

export interface WorkerRunOptions {
  /** Job name: a module of llmkit_worker (make_model, finetune, ...). */
  job: string;
  /** Sent to the job as JSON on stdin. */
  config: unknown;
  /** The job's stderr goes here (created with its folder). */
  logFile: string;
  onEvent?: (event: WorkerEvent) => void;
  /** Aborting asks the job to stop (SIGINT): it saves a checkpoint and exits. */
  stopSignal?: AbortSignal;
  /** After a stop request, how long the job may take before it is killed. */
  stopGraceMs?: number;
  /** Extra environment (e.g. CUDA_VISIBLE_DEVICES). */
  env?: Record<string, string>;
  /** Replaces `python -m llmkit_worker` with a launcher (torchrun) that takes the same arguments. */
  launcher?: { command: string; args: string[] };
}

export interface WorkerOutcome {
  result: Record<string, unknown>;
  events: WorkerEvent[];
}

/** Thrown when a job stopped on request; says where the last checkpoint is. */
export class WorkerInterrupted extends LlmkitError {
  constructor(readonly event: InterruptedEvent) {
    super(
      event.checkpoint ? `stopped at step ${event.step}; last checkpoint: ${event.checkpoint}` : `stopped at step ${event.step} (no checkpoint yet)`,
      event.checkpoint ? 'continue with the same command and --resume' : undefined,
      130,
    );
  }
}

/**
 * One run of a Python job: spawns it, streams its events, keeps its stderr in a log file and turns
 * every way it can fail into a one-line LlmkitError with a hint (the stderr tail goes in `details`).
 */
export async function runWorker(opts: WorkerRunOptions): Promise<WorkerOutcome> {
  const env = await requirePythonEnv();
  await mkdir(dirname(opts.logFile), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const command = opts.launcher?.command ?? env.python;
  const args = [...(opts.launcher?.args ?? []), '-m', 'llmkit_worker', opts.job];
  const child = execa(command, args, {
    input: JSON.stringify(opts.config),
    env: { PYTHONUNBUFFERED: '1', PYTHONPATH: pythonSourceDir, TOKENIZERS_PARALLELISM: 'false', ...opts.env },
    reject: false,
    stdout: ['pipe'],
    stderr: ['pipe'],
    buffer: { stdout: false, stderr: false },
  });
  child.stderr.pipe(log);
  const stop = watchStop(child, opts.stopSignal, opts.stopGraceMs ?? 60_000);

  const events: WorkerEvent[] = [];
  let result: Record<string, unknown> | undefined;
  let failure: ErrorEvent | undefined;
  let interrupted: InterruptedEvent | undefined;
  for await (const line of child.iterable({ from: 'stdout' })) {
    if (!line.trim()) continue;
    const event = parseWorkerLine(line);
    events.push(event);
    if (event.event === 'result') result = event;
    if (event.event === 'error') failure = event;
    if (event.event === 'interrupted') interrupted = event;
    opts.onEvent?.(event);
  }
  const done = await child;
  stop.dispose();
  await closeStream(log);

  if (interrupted) throw new WorkerInterrupted(interrupted);
  if (failure) throw await errorFromEvent(failure, opts);
  if (done.exitCode === 0 && result) return { result, events };
  throw await errorFromExit(done, opts, stop.requested());
}

function watchStop(child: ResultPromise, signal: AbortSignal | undefined, graceMs: number) {
  let requested = false;
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    requested = true;
    child.kill('SIGINT');
    timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  return {
    requested: () => requested,
    dispose: () => {
      signal?.removeEventListener('abort', onAbort);
      if (timer) clearTimeout(timer);
    },
  };
}

async function errorFromEvent(e: ErrorEvent, opts: WorkerRunOptions): Promise<LlmkitError> {
  const details = await stderrTail(opts.logFile);
  switch (e.kind) {
    case 'bad_input':
      return new LlmkitError(e.where ? `${e.where}: ${e.message}` : e.message, e.hint ?? undefined, 1, details);
    case 'missing_package':
      return new LlmkitError(`${e.message} in the worker environment`, 'run `llmkit env --setup`', 1, details);
    case 'oom':
      return new LlmkitError(
        `out of GPU memory in ${opts.job}`,
        'lower --batch-size (raise --grad-accum to keep the global batch), add --gradient-checkpointing, use --lora, or shorten --max-seq-len',
        1,
        details,
      );
    default:
      return new LlmkitError(`${opts.job} failed: ${e.message}`, `see ${opts.logFile} (or run with --verbose)`, 1, details);
  }
}

async function errorFromExit(
  done: { exitCode?: number; signal?: string; isTerminated?: boolean },
  opts: WorkerRunOptions,
  stopRequested: boolean,
): Promise<LlmkitError> {
  const details = await stderrTail(opts.logFile);
  if (stopRequested) return new LlmkitError(`${opts.job} was stopped before it saved a checkpoint`, undefined, 130, details);
  const how = done.signal ? `was killed by ${done.signal}` : `exited with code ${done.exitCode}`;
  const hint = done.signal === 'SIGKILL' ? 'the system may have run out of memory; try a smaller batch' : `see ${opts.logFile} (or run with --verbose)`;
  return new LlmkitError(`the ${opts.job} worker ${how}`, hint, 1, details);
}

async function stderrTail(logFile: string, lines = 40): Promise<string> {
  try {
    return (await readFile(logFile, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function closeStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => stream.end(resolve));
}
