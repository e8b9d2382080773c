import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ResultPromise } from 'execa';
import { LlmkitError } from '../shared/errors.js';
import { pythonSourceDir } from '../shared/paths.js';
import { JOBS, type JobConfig, type JobName, type JobResult } from './jobs.js';
import { type OomKillCount, oomKillVerdict, readOomKills } from './oom-kills.js';
import { parseWorkerLine, type ErrorEvent, type InterruptedEvent, type WorkerEvent } from './protocol.js';
import { requirePythonEnv } from './python-env.js';

export interface WorkerRunOptions<J extends JobName = JobName> {
  /** Job name: a module of llmkit_worker (make_model, finetune, ...), listed in jobs.ts. */
  job: J;
  /** Sent to the job as JSON on stdin. */
  config: JobConfig<J>;
  /** The job's stderr goes here (created with its folder). */
  logFile: string;
  onEvent?: (event: WorkerEvent) => void;
  /** Aborting asks the job to stop (SIGINT): it saves a checkpoint and exits. */
  stopSignal?: AbortSignal;
  /** After a stop request, how long the job may take before it is killed. */
  stopGraceMs?: number;
  /** Extra environment (e.g. CUDA_VISIBLE_DEVICES). */
  env?: Record<string, string>;
  /**
   * Replaces `python -m llmkit_worker` with a launcher (torchrun) that takes the same arguments. Its processes
   * share one stdin, so the config goes in a file named by LLMKIT_WORKER_CONFIG instead.
   */
  launcher?: { command: string; args: string[] };
}

export interface WorkerOutcome<J extends JobName = JobName> {
  /** The job's `result` event, checked against its schema in jobs.ts (extra fields dropped). */
  result: JobResult<J>;
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
 * The config as the job's schema reads it (jobs.ts), checked before any process starts: a config the
 * worker would misread is llmkit's bug, and fails here in one line instead of deep inside the job.
 */
export function parseJobConfig<J extends JobName>(job: J, config: JobConfig<J>): JobConfig<J> {
  const parsed = JOBS[job].config.safeParse(config);
  if (parsed.success) return parsed.data as JobConfig<J>;
  const issue = parsed.error.issues[0];
  const at = issue.path.length ? ` at ${issue.path.join('.')}` : '';
  throw new LlmkitError(`llmkit built a ${job} config its worker does not accept${at}: ${issue.message}`, 'this is a bug in llmkit: please report it with the command that failed');
}

/**
 * One run of a Python job: spawns it, streams its events, keeps its stderr in a log file and turns
 * every way it can fail into a one-line LlmkitError with a hint (the stderr tail goes in `details`).
 */
export async function runWorker<J extends JobName>(opts: WorkerRunOptions<J>): Promise<WorkerOutcome<J>> {
  const config = parseJobConfig(opts.job, opts.config);
  const env = await requirePythonEnv();
  await mkdir(dirname(opts.logFile), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const command = opts.launcher?.command ?? env.python;
  const args = [...(opts.launcher?.args ?? []), '-m', 'llmkit_worker', opts.job];
  const configDir = opts.launcher ? await mkdtemp(join(tmpdir(), 'llmkit-worker-')) : undefined;
  if (configDir) await writeFile(join(configDir, 'config.json'), JSON.stringify(config));
  // execa takes ~80 ms to load, more than the rest of the CLI's start: loaded when a process is started.
  const { execa } = await import('execa');
  const oomKillsBefore = readOomKills();
  const child = execa(command, args, {
    input: configDir ? '' : JSON.stringify(config),
    env: {
      PYTHONUNBUFFERED: '1',
      PYTHONPATH: pythonSourceDir,
      TOKENIZERS_PARALLELISM: 'false',
      ...(configDir && { LLMKIT_WORKER_CONFIG: join(configDir, 'config.json') }),
      ...opts.env,
    },
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
    // The first error is the cause: under torchrun the other ranks fail after it, in the collective that waited for it.
    if (event.event === 'error') failure ??= event;
    if (event.event === 'interrupted') interrupted = event;
    opts.onEvent?.(event);
  }
  const done = await child;
  stop.dispose();
  await closeStream(log);
  if (configDir) await rm(configDir, { recursive: true, force: true });

  if (interrupted) throw new WorkerInterrupted(interrupted);
  // A rank that died without an error event (a signal) is the cause even if another rank's error came first.
  const cause = opts.launcher && done.exitCode !== 0 ? rootCause(await stderrTail(opts.logFile, 200)) : undefined;
  if (failure && (cause === undefined || cause.rank === failure.rank)) throw await errorFromEvent(failure, opts);
  if (done.exitCode === 0 && result) return { result: await parseResult(opts, result), events };
  const checkpoint = events.findLast((e) => e.event === 'artifact' && e.kind === 'checkpoint') as { path: string } | undefined;
  throw await errorFromExit(done, opts, { stopRequested: stop.requested(), cause, checkpoint: checkpoint?.path, oomKills: [oomKillsBefore, readOomKills()] });
}

/** The result as its job's schema says; anything else is a mismatch between the two sides, reported in one line. */
async function parseResult<J extends JobName>(opts: WorkerRunOptions<J>, event: Record<string, unknown>): Promise<JobResult<J>> {
  const { event: _, ...fields } = event;
  const parsed = JOBS[opts.job].result.safeParse(fields);
  if (parsed.success) return parsed.data as JobResult<J>;
  const issue = parsed.error.issues[0];
  throw new LlmkitError(
    `the ${opts.job} worker answered a result llmkit does not understand: ${issue.path.join('.') || '(result)'}: ${issue.message}`,
    'the Python worker and the CLI are from different versions of llmkit: reinstall it',
    1,
    await stderrTail(opts.logFile),
  );
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
  const rank = e.rank != null ? `rank ${e.rank}: ` : '';
  switch (e.kind) {
    case 'bad_input':
      return new LlmkitError(rank + (e.where ? `${e.where}: ${e.message}` : e.message), e.hint ?? undefined, 1, details);
    case 'missing_package':
      return new LlmkitError(`${rank}${e.message} in the worker environment`, 'run `llmkit env --setup`', 1, details);
    case 'oom':
      return new LlmkitError(
        `${rank}out of GPU memory in ${opts.job}`,
        'lower --batch-size (raise --grad-accum to keep the global batch), add --gradient-checkpointing, use --lora, or shorten --max-seq-len',
        1,
        details,
      );
    default:
      return new LlmkitError(`${opts.job} failed${e.rank != null ? ` on rank ${e.rank}` : ''}: ${e.message}`, `see ${opts.logFile} (or run with --verbose)`, 1, details);
  }
}

/** What is known of a worker that exited without a result. */
interface ExitContext {
  stopRequested: boolean;
  /** The rank torchrun blames. */
  cause?: { rank: number; exitCode: number };
  /** The last checkpoint the run wrote. */
  checkpoint?: string;
  /** The kernel's OOM kill count before the run and after it. */
  oomKills: [OomKillCount | undefined, OomKillCount | undefined];
}

async function errorFromExit(done: { exitCode?: number; signal?: string; shortMessage?: string }, opts: WorkerRunOptions, context: ExitContext): Promise<LlmkitError> {
  const details = await stderrTail(opts.logFile);
  const { cause, checkpoint } = context;
  if (context.stopRequested) return new LlmkitError(`${opts.job} was stopped before it saved a checkpoint`, undefined, 130, details);
  const signal = cause && cause.exitCode < 0 ? signalName(-cause.exitCode) : done.signal;
  const who = cause ? `'s rank ${cause.rank}` : '';
  const code = cause?.exitCode ?? done.exitCode;
  // No code and no signal: the process never ran (spawn failed) or execa gave up on it; its message says which.
  const how = signal
    ? ` was ended by signal ${signal} (${signalNumber(signal)})`
    : code === undefined
      ? ` did not run to an exit: ${done.shortMessage?.split('\n')[0] ?? 'no exit code or signal'}`
      : ` exited with code ${code}`;
  const saved = checkpoint ? `; last checkpoint: ${checkpoint}` : '';
  const next = checkpoint ? 'continue with the same command and --resume' : `see ${opts.logFile}`;
  if (signal !== 'SIGKILL') return new LlmkitError(`the ${opts.job} worker${who}${how}${saved}`, signal ? next : `see ${opts.logFile} (or run with --verbose)`, 1, details);
  const [before, after] = context.oomKills;
  const oom = oomKillVerdict(before, after);
  // Memory is named only where the kernel's count says its OOM killer acted.
  const sender = oom
    ? `${oom}: lower --batch-size or --max-seq-len`
    : after
      ? `llmkit did not send it, and the OOM killer did not act (${after.source} stayed at ${after.count}): another process did`
      : 'llmkit did not send it (another process or the system did)';
  const hint = `${sender}; ${next}`;
  return new LlmkitError(`the ${opts.job} worker${who}${how}${saved}`, hint, 1, details);
}

const signalNumber = (name: string) => osConstants.signals[name as keyof typeof osConstants.signals] ?? '?';
const signalName = (n: number) => Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;

/** The rank torchrun names under "Root Cause (first observed failure)": "rank : 0 (local_rank: 0)", "exitcode : -11". */
function rootCause(stderr: string): { rank: number; exitCode: number } | undefined {
  const at = stderr.lastIndexOf('Root Cause');
  const m = at < 0 ? null : /rank\s*:\s*(\d+)[^\n]*\n\s*exitcode\s*:\s*(-?\d+)/.exec(stderr.slice(at));
  return m ? { rank: Number(m[1]), exitCode: Number(m[2]) } : undefined;
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
