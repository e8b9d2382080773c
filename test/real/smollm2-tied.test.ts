import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { DistillSummary } from '../../src/core/distill/run.js';
import type { FinetuneSummary } from '../../src/core/finetune/run.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { smollm2 } from '../helpers/real-model.js';
import { interruptedAtFirstCheckpoint } from '../helpers/training.js';

// The real model ties its output layer to its embedding, as Qwen2.5-0.5B, Gemma 3 and Llama 3.2 1B do: full
// fine-tuning and distillation of it once trained to the end and then lost the run while saving (safetensors refuses
// shared tensors). Here each is stopped (Ctrl-C) at its first checkpoint, resumed from it, and writes a model that
// is still tied.
const env = { OMP_NUM_THREADS: '2' };
const FACTS = 'recipes/data/facts.jsonl';
const SHORT = ['--data', FACTS, '--batch-size', '2', '--max-seq-len', '48', '--lr', '1e-4', '--save-every', '1', '--max-steps', '3', '--exact-match', '0'];

/** A checkpoint before the last of the 3 steps (Ctrl-C lands at the first checkpoint or, steps being short, the next). */
const RESUMED = /checkpoints[/]checkpoint-[12]$/;

/** Runs the command, Ctrl-C at its first checkpoint, then again with --resume: the resumed run's JSON summary. */
async function stoppedAndResumed(args: string[]): Promise<unknown> {
  const stopped = await interruptedAtFirstCheckpoint(args, { env });
  expect(stopped.exitCode, String(stopped.stderr).slice(-2000)).toBe(130);
  const resumed = await runCli([...args, '--resume'], { env });
  expect(resumed.exitCode, String(resumed.stderr).slice(-2000)).toBe(0);
  return JSON.parse(String(resumed.stdout));
}

/** Whether the saved model still ties its output layer to its embedding, and how far its embedding moved from `base`. */
async function tiedWeights(model: string, base: string): Promise<{ tied: boolean; moved: number; layers: number }> {
  const script = `
import json, sys, torch
from transformers import AutoModelForCausalLM
m, b = (AutoModelForCausalLM.from_pretrained(p) for p in sys.argv[1:3])
tied = m.config.tie_word_embeddings and m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()
moved = float((m.model.embed_tokens.weight - b.model.embed_tokens.weight).abs().max())
print(json.dumps({"tied": bool(tied), "moved": moved, "layers": m.config.num_hidden_layers}))`;
  const { python } = await requirePythonEnv();
  const r = await execa(python, ['-c', script, model, base], { env });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('full fine-tuning and distillation of the real, tied model (SmolLM2-135M-Instruct): checkpoints and resume', () => {
  it('finetune --no-lora: Ctrl-C at a checkpoint, --resume from it, and the model stays tied', { timeout: 900_000 }, async () => {
    const model = await smollm2();
    const out = join(tempDir('llmkit-real-tied-'), 'finetune');
    const summary = (await stoppedAndResumed(['--json', 'finetune', model, '--no-lora', ...SHORT, '--out', out])) as FinetuneSummary;
    expect(summary.resumedFrom).toMatch(RESUMED);
    const saved = await tiedWeights(join(out, 'model'), model);
    expect(saved.tied).toBe(true);
    expect(saved.moved).toBeGreaterThan(0);
  });

  it('distill --teacher into a 2-layer tied student: Ctrl-C at a checkpoint, --resume from it, still tied', { timeout: 900_000 }, async () => {
    const teacher = await smollm2();
    const out = join(tempDir('llmkit-real-tied-'), 'distill');
    const summary = (await stoppedAndResumed(['--json', 'distill', '--teacher', teacher, '--student-layers', '0,29', ...SHORT, '--out', out, '--no-report'])) as DistillSummary;
    expect(summary.training.resumedFrom).toMatch(RESUMED);
    const student = await tiedWeights(join(out, 'model'), join(out, 'student-init'));
    expect(student).toMatchObject({ tied: true, layers: 2 });
    expect(student.moved).toBeGreaterThan(0);
  });
});
