import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { FinetuneSummary } from '../../src/core/finetune/run.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { smollm2 } from '../helpers/real-model.js';

// LoRA on the real model (SmolLM2-135M-Instruct) teaching it 20 facts about places that do not exist, and what that
// costs it on text it was not trained on (recipes/data/eval.txt). The setting is the measured best trade-off within
// CI's budget (docs/real-model.md §3): small batches and a short, cool run learn the facts with the least damage of
// those tried (full batches and hotter or longer runs: +130% to +370% held-out perplexity for the same 20/20).
const FACTS = 'recipes/data/facts.jsonl';
const HELD_OUT = 'recipes/data/eval.txt';
/** How much the fine-tune may raise perplexity on the held-out text: measured +64% (docs/real-model.md §3). */
const HELD_OUT_PERPLEXITY_RISE = 0.8;
const TRAINING = ['--lora', '--data', FACTS, '--batch-size', '4', '--lr', '1.5e-3', '--max-seq-len', '64', '--max-steps', '25'];

/** Perplexity of each Hugging Face folder on the held-out text (PyTorch, 256-token windows). */
async function heldOutPerplexity(models: string[]): Promise<number[]> {
  const { python } = await requirePythonEnv();
  const r = await execa(python, [join('test', 'helpers', 'heldout_perplexity.py'), HELD_OUT, ...models], { env: { OMP_NUM_THREADS: '2' } });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('fine-tuning the real model (SmolLM2-135M-Instruct) on new facts', () => {
  it(`LoRA: 0/20 → 20/20 exact answers, held-out perplexity up by at most ${HELD_OUT_PERPLEXITY_RISE * 100}%`, { timeout: 1_800_000 }, async () => {
    const model = await smollm2();
    const out = join(tempDir('llmkit-real-facts-'), 'run');
    const r = await runCli(['--json', 'finetune', model, ...TRAINING, '--exact-match', '20', '--merge', '--out', out], { env: { OMP_NUM_THREADS: '2' } });
    expect(r.exitCode, String(r.stderr).slice(-2000)).toBe(0);
    const summary = JSON.parse(String(r.stdout)) as FinetuneSummary;
    const [base, tuned] = await heldOutPerplexity([model, summary.merged!]);
    console.log(
      `facts ${summary.exactMatch!.before!.correct}/20 → ${summary.exactMatch!.after!.correct}/20, loss ${summary.firstLoss!.toFixed(3)} → ${summary.lastLoss!.toFixed(3)}; ` +
        `held-out perplexity ${base.toFixed(3)} → ${tuned.toFixed(3)} (${(100 * (tuned / base - 1)).toFixed(1)}%); ${summary.trainSeconds.toFixed(0)} s training`,
    );
    expect(summary.exactMatch!.before!.correct).toBe(0);
    expect(summary.exactMatch!.after!.correct).toBe(20);
    expect(tuned / base - 1).toBeLessThanOrEqual(HELD_OUT_PERPLEXITY_RISE);
  });
});
