import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { DistillSummary } from '../../src/core/distill/run.js';
import type { FinetuneSummary } from '../../src/core/finetune/run.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { tiedTinyModel } from '../helpers/models.js';
import { interruptedAtFirstCheckpoint, metrics } from '../helpers/training.js';

// Full fine-tuning and distillation of a model whose output layer is its input embedding (tie_word_embeddings):
// safetensors refuses tensors that share memory, which once lost such runs at their first checkpoint.
const env = { OMP_NUM_THREADS: '1' };
const FACTS = 'recipes/data/facts.jsonl';

function losses(out: string): [number, number][] {
  return metrics(out)
    .filter((m) => m.loss !== undefined)
    .map((m) => [m.step, m.loss]);
}

/** Whether the saved model still ties its output layer to its embedding, and how far its weights moved from `base`. */
async function tiedWeights(model: string, base: string): Promise<{ tied: boolean; moved: number }> {
  const script = `
import json, sys, torch
from transformers import AutoModelForCausalLM
m, b = (AutoModelForCausalLM.from_pretrained(p) for p in sys.argv[1:3])
tied = m.config.tie_word_embeddings and m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()
moved = float((m.model.embed_tokens.weight - b.model.embed_tokens.weight).abs().max())
print(json.dumps({"tied": bool(tied), "moved": moved}))`;
  const { python } = await requirePythonEnv();
  const r = await execa(python, ['-c', script, model, base], { env });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('full fine-tuning and distillation of a tied-embedding model checkpoint and resume', () => {
  it('finetune --no-lora: an interrupted run resumes from its checkpoint to the losses of an uninterrupted one', async () => {
    const model = await tiedTinyModel();
    const work = tempDir();
    const args = (out: string) => [
      '--json',
      'finetune',
      model,
      '--no-lora',
      '--data',
      FACTS,
      '--out',
      out,
      '--max-steps',
      '40',
      '--batch-size',
      '4',
      '--lr',
      '3e-3',
      '--save-every',
      '5',
      '--exact-match',
      '0',
    ];
    const straight = await runCli(args(join(work, 'straight')), { env });
    expect(straight.exitCode, String(straight.stderr).slice(-2000)).toBe(0);
    const trained = await tiedWeights(join(work, 'straight', 'model'), model);
    expect(trained.tied).toBe(true);
    expect(trained.moved).toBeGreaterThan(1e-3);

    const out = join(work, 'stopped');
    const stopped = await interruptedAtFirstCheckpoint(args(out), { env });
    expect(stopped.exitCode, String(stopped.stderr).slice(-2000)).toBe(130);
    const resumed = await runCli([...args(out), '--resume'], { env });
    expect(resumed.exitCode, String(resumed.stderr).slice(-2000)).toBe(0);
    expect((JSON.parse(String(resumed.stdout)) as FinetuneSummary).resumedFrom).toMatch(/checkpoint-\d+$/);
    const [a, b] = [losses(join(work, 'straight')), losses(out)];
    expect(b.map(([step]) => step)).toEqual(a.map(([step]) => step));
    for (const [i, [, loss]] of b.entries()) expect(Math.abs(loss - a[i][1])).toBeLessThan(1e-4);
  }, 600_000);

  it('distill --teacher: a tied student trains, checkpoints, and a resumed run finishes from the checkpoint', async () => {
    const teacher = await tiedTinyModel();
    const out = join(tempDir(), 'distill');
    const args = [
      '--json',
      'distill',
      '--teacher',
      teacher,
      '--student-layers',
      '1',
      '--data',
      FACTS,
      '--out',
      out,
      '--max-steps',
      '4',
      '--lr',
      '3e-3',
      '--save-every',
      '2',
      '--exact-match',
      '0',
      '--no-report',
    ];
    const d = await runCli(args, { env });
    expect(d.exitCode, String(d.stderr).slice(-2000)).toBe(0);
    expect(String(d.stderr)).toContain(join(out, 'checkpoints', 'checkpoint-4'));
    const student = await tiedWeights(join(out, 'model'), join(out, 'student-init'));
    expect(student.tied).toBe(true);
    expect(student.moved).toBeGreaterThan(1e-4);
    const again = await runCli([...args, '--resume'], { env });
    expect(again.exitCode, String(again.stderr).slice(-2000)).toBe(0);
    expect((JSON.parse(String(again.stdout)) as DistillSummary).training.resumedFrom).toBe(join(out, 'checkpoints', 'checkpoint-4'));
    // The side-by-side report (two ONNX exports and a measurement a run) is core/distill.test's; not made here.
    expect(existsSync(join(out, 'distill-report.json'))).toBe(false);
  }, 600_000);
});
