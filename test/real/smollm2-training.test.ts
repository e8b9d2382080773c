import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DistillSummary } from '../../src/core/distill/run.js';
import type { FinetuneSummary } from '../../src/core/finetune/run.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { smollm2, smollm2Gguf } from '../helpers/real-model.js';

const FACTS = 'recipes/data/facts.jsonl';
// The LoRA run, as few steps as reach 20/20 (every step is the whole file: 20 answers, padded to ~45 tokens): the
// real tier must stay inside CI's budget (docs/real-model.md has what it costs).
const LORA = ['--lora', '--batch-size', '20', '--lr', '2e-3', '--max-seq-len', '64', '--max-steps', '18'];
/** How much the LoRA run on the facts may raise perplexity on held-out text (recipes/data/eval.txt). */
const HELD_OUT_PERPLEXITY_RISE = 0.1;

/** Perplexity of each model on recipes/data/eval.txt: 256-token windows from an empty cache, as the quantize report measures. */
async function heldOutPerplexity(models: string[]): Promise<number[]> {
  const script = `
import json, math, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
text = open("recipes/data/eval.txt").read()
out = []
for path in sys.argv[1:]:
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    ids = tok(text, return_tensors="pt").input_ids[0]
    nll, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, 256):
            window = ids[start:start + 256].unsqueeze(0)
            if window.shape[1] < 2:
                continue
            loss = model(window, labels=window).loss
            nll, n = nll + float(loss) * (window.shape[1] - 1), n + window.shape[1] - 1
    out.append(math.exp(nll / n))
print(json.dumps(out))`;
  const { python } = await requirePythonEnv();
  const r = await execa(python, ['-c', script, ...models], { env: { OMP_NUM_THREADS: '2' } });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('fine-tuning the real model (SmolLM2-135M-Instruct), given as its GGUF file', () => {
  let gguf: string;
  beforeAll(async () => {
    gguf = await smollm2Gguf();
    await smollm2();
  }, 900_000);

  it(`LoRA on the facts: 20/20 exact answers, held-out perplexity up by at most ${HELD_OUT_PERPLEXITY_RISE * 100}%`, async () => {
    const out = join(tempDir(), 'lora');
    const r = await runCli(['--json', 'finetune', gguf, ...LORA, '--data', FACTS, '--out', out, '--exact-match', '20', '--merge'], { env: { OMP_NUM_THREADS: '2' } });
    expect(r.exitCode, r.stderr.slice(-2000)).toBe(0);
    const summary = JSON.parse(r.stdout) as FinetuneSummary;
    expect(summary.exactMatch!.before!.correct).toBeLessThanOrEqual(2);
    expect(summary.exactMatch!.after!.correct).toBe(20);
    const [base, tuned] = await heldOutPerplexity([await smollm2(), join(out, 'merged')]);
    console.log(`held-out perplexity: base ${base.toFixed(3)}, after LoRA ${tuned.toFixed(3)} (${(((tuned - base) / base) * 100).toFixed(2)}%)`);
    expect(tuned).toBeLessThanOrEqual(base * (1 + HELD_OUT_PERPLEXITY_RISE));
  }, 1_800_000);

  it('full fine-tuning and distillation of the tied model save their checkpoints and resume from them', async () => {
    const work = tempDir();
    const env = { OMP_NUM_THREADS: '2' };
    const full = ['--json', 'finetune', gguf, '--no-lora', '--data', FACTS, '--out', join(work, 'full'), '--max-steps', '2', '--batch-size', '2', '--max-seq-len', '32', '--exact-match', '0'];
    const f = await runCli(full, { env });
    expect(f.exitCode, f.stderr.slice(-2000)).toBe(0);
    const resumed = await runCli([...full, '--resume'], { env });
    expect(resumed.exitCode, resumed.stderr.slice(-2000)).toBe(0);
    expect((JSON.parse(resumed.stdout) as FinetuneSummary).resumedFrom).toBe(join(work, 'full', 'checkpoints', 'checkpoint-2'));

    const distill = [
      '--json',
      'distill',
      '--teacher',
      gguf,
      '--student-config',
      'num_hidden_layers=2',
      '--data',
      FACTS,
      '--out',
      join(work, 'distill'),
      '--max-steps',
      '2',
      '--batch-size',
      '2',
      '--max-seq-len',
      '32',
      '--exact-match',
      '0',
    ];
    const d = await runCli(distill, { env });
    expect(d.exitCode, d.stderr.slice(-2000)).toBe(0);
    const again = await runCli([...distill, '--resume'], { env });
    expect(again.exitCode, again.stderr.slice(-2000)).toBe(0);
    expect((JSON.parse(again.stdout) as DistillSummary).training.resumedFrom).toBe(join(work, 'distill', 'checkpoints', 'checkpoint-2'));
  }, 1_800_000);
});
