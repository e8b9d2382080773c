import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProgressView } from '../../src/cli/progress.js';
import { LlmkitError } from '../../src/shared/errors.js';
import type { WorkerEvent } from '../../src/workers/protocol.js';
import { readOomKills } from '../../src/workers/oom-kills.js';
import { runWorker, WorkerInterrupted } from '../../src/workers/worker-run.js';
import { tempDir } from '../helpers/cli.js';

function selftest(config: Record<string, unknown>, extra: Partial<Parameters<typeof runWorker>[0]> = {}) {
  const dir = tempDir();
  const logFile = join(dir, 'worker.log');
  return { dir, logFile, run: runWorker({ job: 'selftest', config: { out: dir, ...config }, logFile, ...extra }) };
}

async function failure(promise: Promise<unknown>): Promise<LlmkitError> {
  const e = await promise.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LlmkitError);
  return e as LlmkitError;
}

describe('the worker runner against the real Python worker', () => {
  it('parses every event in order and returns the result', async () => {
    const seen: WorkerEvent[] = [];
    const { run } = selftest({ steps: 3 }, { onEvent: (e) => seen.push(e) });
    const { result, events } = await run;
    expect(events.map((e) => e.event)).toEqual(['start', 'log', 'progress', 'progress', 'progress', 'metric', 'artifact', 'result']);
    expect(seen).toEqual(events);
    expect(events.filter((e) => e.event === 'progress').map((e) => (e as { loss: number }).loss)).toEqual([1, 0.5, 1 / 3]);
    expect(result.steps).toBe(3);
  });

  it('keeps the job stderr in the log file', async () => {
    const { run, logFile } = selftest({ steps: 1, stderr_lines: 3 });
    await run;
    const log = readFileSync(logFile, 'utf8');
    expect(log).toContain('selftest stderr line 0');
    expect(log).toContain('selftest stderr line 2');
  });

  it('shows progress as plain lines when the output is not a terminal', async () => {
    const written: string[] = [];
    const stream = { isTTY: false, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
    const view = new ProgressView({}, 'selftest', stream);
    await selftest({ steps: 3 }, { onEvent: view.onEvent }).run;
    expect(written[0]).toBe('selftest: step 1/3 | loss 1.0000 | 100 tok/s\n');
    expect(written.at(-1)).toBe('selftest: step 3/3 | loss 0.3333 | 300 tok/s\n');
  });

  it('maps a non-zero exit to one line pointing at the log, with the stderr tail as details', async () => {
    const { run, logFile } = selftest({ steps: 1, fail: 'exit' });
    const e = await failure(run);
    expect(e.message).toBe('the selftest worker exited with code 7');
    expect(e.hint).toBe(`see ${logFile} (or run with --verbose)`);
    expect(e.details).toContain('selftest: failing on purpose');
  });

  it('says which signal ended a killed worker, and mentions memory only where the OOM kill count moved', async () => {
    const e = await failure(selftest({ steps: 1, fail: 'kill' }).run);
    expect(e.message).toBe('the selftest worker was ended by signal SIGKILL (9)');
    // No OOM killer acted (the count is read before and after): memory is not mentioned.
    const count = readOomKills();
    expect(count).toBeDefined();
    expect(e.hint).toContain(`llmkit did not send it, and the OOM killer did not act (${count!.source} stayed at ${count!.count}): another process did`);
    expect(e.hint).not.toMatch(/out of memory/);
  });

  it('maps bad input to the file and line', async () => {
    const e = await failure(selftest({ steps: 1, fail: 'bad_input' }).run);
    expect(e.message).toBe('data.jsonl:3: line is not JSON');
    expect(e.hint).toBe('fix the line or remove it');
  });

  it('maps CUDA out of memory to concrete advice', async () => {
    const e = await failure(selftest({ steps: 1, fail: 'oom' }).run);
    expect(e.message).toBe('out of GPU memory in selftest');
    expect(e.hint).toMatch(/--batch-size.*--gradient-checkpointing.*--lora.*--max-seq-len/);
  });

  it('maps a missing package to `llmkit env --setup`', async () => {
    const e = await failure(selftest({ steps: 1, fail: 'missing_package' }).run);
    expect(e.message).toBe("Python package 'llmkit_no_such_package' is not installed in the worker environment");
    expect(e.hint).toBe('run `llmkit env --setup`');
  });

  it('forwards a stop request (Ctrl-C) so the job checkpoints and says where', async () => {
    const controller = new AbortController();
    const { run, dir } = selftest({ steps: 50, step_seconds: 0.1 }, { stopSignal: controller.signal, onEvent: (e) => e.event === 'progress' && e.step === 2 && controller.abort() });
    const e = await failure(run);
    expect(e).toBeInstanceOf(WorkerInterrupted);
    expect(e.exitCode).toBe(130);
    const step = (e as WorkerInterrupted).event.step;
    expect(step).toBeGreaterThanOrEqual(2);
    expect(step).toBeLessThan(50);
    expect(e.message).toBe(`stopped at step ${step}; last checkpoint: ${join(dir, `checkpoint-${step}`)}`);
    expect(JSON.parse(readFileSync(join(dir, `checkpoint-${step}`, 'state.json'), 'utf8'))).toEqual({ step });
    expect(existsSync(dir)).toBe(true);
  });
});
