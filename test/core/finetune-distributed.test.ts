import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { torchrunLauncher } from '../../src/core/finetune/launch.js';
import { runWorker } from '../../src/workers/worker-run.js';
import { runCli, tempDir } from '../helpers/cli.js';

/**
 * `llmkit finetune --nproc 2` on the CPU: torchrun, gloo, DDP and FSDP on the tiny model. Each 2-process run is
 * stopped with Ctrl-C after its first checkpoint and resumed, so one curve checks both parity with one process
 * and resume. Why 1e-4 relative: each rank runs half of every micro-batch, so the matrix shapes (padding, BLAS
 * blocking) and the order in which gradients are summed differ from one process; that moves results in the
 * last float32 bits. Over 12 AdamW steps the curves stayed within 1.7e-7 relative (DDP and FSDP, torch 2.11),
 * while a wrong share or scale (a rank dropping its rows, a loss divided by its own tokens rather than the
 * global batch's, a gradient averaged twice) moves the loss by 1e-3 or more within a few steps.
 */
const env = { OMP_NUM_THREADS: '1' };
// 20 examples, batch 8: micro-batches of 8, 8 and 4 rows, two a step, so accumulation and a short batch are covered.
const args = (out: string, ...more: string[]) => [
  '--json',
  'finetune',
  '--recipe',
  'recipes/llama/tiny_lora_cpu.yaml',
  '--out',
  out,
  '--max-steps',
  '12',
  '--batch-size',
  '8',
  '--grad-accum',
  '2',
  '--lora-dropout',
  '0',
  '--save-every',
  '3',
  '--exact-match',
  '0',
  ...more,
];

function curve(out: string): number[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((m) => m.loss !== undefined)
    .map((m) => m.loss);
}

/** Runs the command, sends Ctrl-C once its first checkpoint is saved, then runs it again with --resume. */
async function stopAndResume(cliArgs: string[]) {
  const child = runCli(cliArgs, { env });
  let seen = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    if (seen.includes('"kind":"checkpoint"')) return; // once: a second Ctrl-C quits without a checkpoint
    seen += chunk.toString();
    if (seen.includes('"kind":"checkpoint"')) child.kill('SIGINT');
  });
  const stopped = await child;
  const resumed = await runCli([...cliArgs, '--resume'], { env });
  return { stopped, resumed };
}

describe('llmkit finetune under torchrun with 2 CPU processes (gloo)', () => {
  const work = tempDir();
  let single: number[];

  beforeAll(async () => {
    const r = await runCli(args(join(work, 'single')), { env });
    expect(r.exitCode, String(r.stderr).slice(-2000)).toBe(0);
    single = curve(join(work, 'single'));
  });

  for (const [name, extra] of [
    ['DDP', []],
    ['FSDP', ['--fsdp']],
  ] as const) {
    it(`${name}: stops on Ctrl-C, resumes, and draws the single-process loss curve`, async () => {
      const out = join(work, name);
      const { stopped, resumed } = await stopAndResume(args(out, '--nproc', '2', ...extra));
      expect(stopped.exitCode, String(stopped.stderr).slice(-2000)).toBe(130);
      expect(String(stopped.stderr)).toMatch(/error: stopped at step \d+; last checkpoint: .*checkpoint-\d+; continue with the same command and --resume/);
      expect(resumed.exitCode, String(resumed.stderr).slice(-2000)).toBe(0);
      const summary = JSON.parse(String(resumed.stdout));
      expect(summary).toMatchObject({ method: 'lora', steps: 12, device: 'cpu' });
      expect(summary.resumedFrom).toMatch(/checkpoint-\d+$/);
      // Only rank 0 reports: one start line and one progress line a step.
      const events = String(resumed.stderr)
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
      expect(events.filter((e) => e.event === 'start')).toHaveLength(1);
      const resumedAt = Number(summary.resumedFrom.split('-').at(-1));
      expect(events.filter((e) => e.event === 'progress').map((e) => e.step)).toEqual(Array.from({ length: 12 - resumedAt }, (_, i) => resumedAt + i + 1));
      const losses = curve(out);
      expect(losses).toHaveLength(12);
      const worst = Math.max(...losses.map((l, i) => Math.abs(l - single[i]) / single[i]));
      expect(worst).toBeLessThan(1e-4);
      expect(losses.at(-1)!).toBeLessThan(losses[0] - 0.2);
    });
  }
});

describe('distributed failures and flags', () => {
  it("surfaces a failing rank's error as one error naming the rank", async () => {
    const launcher = await torchrunLauncher({ nproc: 2, fsdp: false, device: 'cpu', exactMatch: 0, compile: false });
    const run = runWorker({ job: 'selftest', config: { steps: 2, fail: 'bad_input', fail_rank: 1 }, logFile: join(tempDir(), 'selftest.log'), launcher, env });
    await expect(run).rejects.toThrow('rank 1: data.jsonl:3: line is not JSON');
  });

  it('rejects contradictory or impossible flags before starting anything', async () => {
    const out = join(tempDir(), 'run');
    const cases: [string[], string][] = [
      [['--fsdp'], 'error: --fsdp needs --gpus or --nproc'],
      [['--nproc', '1', '--fsdp'], 'error: --fsdp shards the model across processes, so it needs at least 2'],
      [['--nproc', '2', '--nnodes', '2'], 'error: --nnodes 2 needs --master-addr'],
      [['--nproc', '2', '--nnodes', '2', '--master-addr', 'h', '--node-rank', '2'], 'error: --node-rank 2 must be below --nnodes 2'],
      [['--gpus', '2', '--nproc', '2'], 'error: --gpus and --nproc contradict each other'],
      [['--nproc', '2', '--fsdp', '--exact-match', '3'], 'error: --exact-match cannot run under --fsdp'],
      [['--gpus', '64'], 'error: --gpus 64: PyTorch in the worker environment sees'],
    ];
    for (const [flags, message] of cases) {
      const r = await runCli(['finetune', '--recipe', 'recipes/llama/tiny_lora_cpu.yaml', '--out', out, ...flags], { env });
      expect(r.exitCode, flags.join(' ')).toBe(2);
      expect(String(r.stderr), flags.join(' ')).toContain(message);
    }
  });
});
