import { execaSync } from 'execa';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FinetuneSummary } from '../../src/core/finetune/run.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { metrics } from '../helpers/training.js';

const env = { OMP_NUM_THREADS: '1' };
const RECIPE = 'recipes/llama/tiny_lora_cpu.yaml';
/** Past the default --save-every (500), so that a checkpoint exists without any flag asking for it. */
const STEPS = 512;

// No checkpoint flag: the defaults (every 500 steps or 10 minutes, keep 2) are what is tested. Dropout is on, so
// that the RNG state has to come back too.
const args = (out: string) => ['--json', 'finetune', '--recipe', RECIPE, '--out', out, '--max-steps', String(STEPS), '--batch-size', '1', '--lora-dropout', '0.1', '--exact-match', '0'];

/** The CLI's child processes (the Python worker). */
const childrenOf = (pid: number) =>
  execaSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { reject: false })
    .stdout.split('\n')
    .map(Number)
    .filter((n) => n > 0);

describe('llmkit finetune killed from outside (SIGKILL, as an OOM killer or a pre-empted node does)', () => {
  it('checkpoints without being asked, says the worker was ended by SIGKILL without blaming memory, and resumes to the loss of an unbroken run', async () => {
    const work = tempDir();
    const straight = await runCli(args(join(work, 'straight')), { env });
    expect(straight.exitCode, String(straight.stderr).slice(-2000)).toBe(0);
    // Keeps the newest two by default.
    expect(readdirSync(join(work, 'straight', 'checkpoints')).sort()).toEqual(['checkpoint-500', `checkpoint-${STEPS}`]);

    const out = join(work, 'killed');
    const run = runCli(args(out), { env });
    let seen = '';
    let killed = false;
    run.stderr!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (killed || !seen.includes('"step":505,')) return;
      killed = true;
      for (const pid of childrenOf(run.pid!)) process.kill(pid, 'SIGKILL');
    });
    const broken = await run;
    expect(killed).toBe(true);
    expect(broken.exitCode).toBe(1);
    const { error } = JSON.parse(String(broken.stdout)) as { error: { message: string; hint: string } };
    const checkpoint = join(out, 'checkpoints', 'checkpoint-500');
    expect(error.message).toBe(`the finetune worker was ended by signal SIGKILL (9); last checkpoint: ${checkpoint}`);
    const { hint } = error;
    expect(hint).toMatch(/^llmkit did not send it.*; continue with the same command and --resume$/);
    expect(hint).not.toMatch(/out of memory/);

    const resumed = await runCli([...args(out), '--resume'], { env });
    expect(resumed.exitCode, String(resumed.stderr).slice(-2000)).toBe(0);
    const a = JSON.parse(String(straight.stdout)) as FinetuneSummary;
    const b = JSON.parse(String(resumed.stdout)) as FinetuneSummary;
    expect(b.resumedFrom).toBe(checkpoint);
    expect(b.steps).toBe(STEPS);
    expect(Math.abs(a.lastLoss! - b.lastLoss!)).toBeLessThan(1e-4);
    const last = (dir: string) => metrics(dir).filter((m) => m.loss !== undefined && m.step > 500);
    // The steps after the checkpoint, once from the killed run (up to the kill) and once more from the resumed one.
    expect(last(out).map((m) => m.step)).toEqual(expect.arrayContaining(last(join(work, 'straight')).map((m) => m.step)));
  }, 600_000);

  it('also checkpoints every --save-minutes of training, and keeps the newest --keep-checkpoints', async () => {
    const out = join(tempDir(), 'run');
    // 0.0005 minutes (30 ms): about every step; --save-every far past the end.
    const r = await runCli(
      ['--json', 'finetune', '--recipe', RECIPE, '--out', out, '--max-steps', '20', '--save-every', '1000', '--save-minutes', '0.0005', '--keep-checkpoints', '3', '--exact-match', '0'],
      {
        env,
      },
    );
    expect(r.exitCode, String(r.stderr).slice(-2000)).toBe(0);
    const saved = String(r.stderr)
      .split('\n')
      .filter((l) => l.includes('"kind":"checkpoint"'))
      .map((l) => JSON.parse(l).step as number);
    expect(saved.length).toBeGreaterThanOrEqual(10);
    expect(saved.at(-1)).toBe(20);
    expect(readdirSync(join(out, 'checkpoints')).sort()).toEqual(
      saved
        .slice(-3)
        .map((s) => `checkpoint-${s}`)
        .sort(),
    );
  }, 300_000);
});
