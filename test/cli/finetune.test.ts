import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FinetuneSummary } from '../../src/core/finetune/run.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { chartSeries } from '../helpers/charts.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { tensorboardScalars } from '../helpers/tensorboard.js';
import { tinyModel } from '../helpers/models.js';
import { interruptedAtFirstCheckpoint, metrics } from '../helpers/training.js';

// One thread for the Python processes the tests start (the worker picks one itself for the tiny model): on
// two shared cores that is faster than two threads fighting, and it keeps CPU runs bit-identical.
const env = { OMP_NUM_THREADS: '1' };
const RECIPE = 'recipes/llama/tiny_lora_cpu.yaml';

function events(stderr: string): Record<string, any>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

describe('llmkit finetune --lora on the bundled facts (tiny model, CPU)', () => {
  const work = tempDir();
  const out = join(work, 'run');
  let summary: FinetuneSummary;
  let stderr: string;

  beforeAll(async () => {
    const r = await runCli(['--json', 'finetune', '--recipe', RECIPE, '--out', out, '--merge', '--report-to', 'tensorboard'], { env });
    stderr = String(r.stderr);
    expect(r.exitCode, stderr.slice(-2000)).toBe(0);
    summary = JSON.parse(String(r.stdout));
  });

  it('lowers the loss and learns the facts: greedy answers match exactly after training, not before', () => {
    expect(summary).toMatchObject({ method: 'lora', steps: 100, device: 'cpu', precision: 'fp32', examples: 20, truncated: 0 });
    expect(summary.lastLoss!).toBeLessThan(summary.firstLoss! - 0.5);
    expect(summary.exactMatch!.before!.value).toBeLessThanOrEqual(0.1);
    expect(summary.exactMatch!.after!.value).toBeGreaterThanOrEqual(0.9);
    expect(summary.exactMatch!.after!.samples[0]).toMatchObject({ question: 'What is the capital of Zarnovia?', expected: 'Velmora.' });
  });

  it('streams progress as JSON lines and saves metrics and the resolved config next to the outputs', () => {
    // Training's own progress: making the tiny model on a cold cache reports progress of its own before it.
    const all = events(stderr);
    const start = all.findIndex((e) => e.event === 'start' && e.job === 'finetune');
    expect(start).toBeGreaterThanOrEqual(0);
    const progress = all.slice(start).filter((e) => e.event === 'progress');
    expect(progress.map((e) => e.step)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(progress[0]).toMatchObject({ total: 100 });
    expect(progress[0].tokens_per_s).toBeGreaterThan(0);
    const steps = metrics(out).filter((m) => m.loss !== undefined);
    expect(steps).toHaveLength(100);
    expect(steps[0].loss).toBeCloseTo(summary.firstLoss!, 10);
    // The chart beside the metrics draws the run's own numbers.
    expect(summary.chart).toBe(join(out, 'metrics.svg'));
    const chart = chartSeries(summary.chart!);
    expect(chart['train loss']).toEqual(steps.map((m) => [m.step, m.loss]));
    expect(chart.lr).toEqual(steps.map((m) => [m.step, m.lr]));
    expect(chart['tokens/s']).toEqual(steps.map((m) => [m.step, m.tokens_per_s]));
    // --report-to tensorboard: the same series in TensorBoard's event files (float32, as TensorBoard stores scalars).
    expect(summary.tensorboard).toBe(join(out, 'tensorboard'));
    const board = tensorboardScalars(summary.tensorboard!);
    expect(board['train/loss']).toEqual(steps.map((m) => [m.step, Math.fround(m.loss)]));
    expect(board['train/lr']).toEqual(steps.map((m) => [m.step, Math.fround(m.lr)]));
    expect(board['train/tokens_per_s']).toEqual(steps.map((m) => [m.step, Math.fround(m.tokens_per_s)]));
    const exact = metrics(out).filter((m) => m.exact_match !== undefined);
    expect(board['eval/exact_match']).toEqual(exact.map((m) => [m.step, Math.fround(m.exact_match)]));
    const config = JSON.parse(readFileSync(join(out, 'llmkit-config.json'), 'utf8'));
    expect(config).toMatchObject({ command: 'finetune', recipe: RECIPE, options: { lora: true, loraR: 16, lr: 0.005, epochs: 100, merge: true } });
    expect(config.data[0]).toMatchObject({ format: 'messages', examples: 20 });
  });

  it("measures a peak memory that inspect --for lora estimated within 20 % (the worker's RSS on CPU)", async () => {
    expect(summary.memoryKind).toBe('cpu_rss');
    // The recipe's settings; its one batch is padded to the longest conversation of the facts, 45 tokens.
    const settings = ['--batch-size', '20', '--max-seq-len', '45', '--lora-r', '16', '--lora-dropout', '0'];
    const r = await runCli(['--json', 'inspect', await tinyModel(), '--for', 'lora', '--device', 'cpu', ...settings]);
    const estimate = JSON.parse(String(r.stdout)).memory.estimate.total as number;
    expect(Math.abs(estimate - summary.peakMemoryBytes!) / summary.peakMemoryBytes!).toBeLessThan(0.2);
  });

  it('writes a PEFT adapter and a merged model that give the same logits as base + adapter', async () => {
    expect(existsSync(join(out, 'adapter', 'adapter_config.json'))).toBe(true);
    expect(existsSync(join(out, 'adapter', 'adapter_model.safetensors'))).toBe(true);
    const merged = join(work, 'merged-by-cli');
    const m = await runCli(['--json', 'lora', 'merge', await tinyModel(), join(out, 'adapter'), '--out', merged], { env });
    expect(m.exitCode, String(m.stderr)).toBe(0);
    expect(JSON.parse(String(m.stdout)).out).toBe(merged);
    const script = `
import json, sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
base, adapter, merged = sys.argv[1], sys.argv[2], sys.argv[3:]
ids = torch.randint(0, 700, (2, 24), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    plain = AutoModelForCausalLM.from_pretrained(base).eval()(ids).logits
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()(ids).logits
    diffs = [float((AutoModelForCausalLM.from_pretrained(m).eval()(ids).logits - ref).abs().max()) for m in merged]
templates = [AutoTokenizer.from_pretrained(m).chat_template is not None for m in merged]
print(json.dumps({"merged": diffs, "adapter_effect": float((plain - ref).abs().max()), "templates": templates}))`;
    const { python } = await requirePythonEnv();
    const r = await execa(python, ['-c', script, await tinyModel(), join(out, 'adapter'), join(out, 'merged'), merged], { env });
    const parity = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(parity.adapter_effect).toBeGreaterThan(1e-2);
    for (const diff of parity.merged) expect(diff).toBeLessThan(1e-4);
    expect(parity.templates).toEqual([true, true]);
    expect(readFileSync(join(merged, 'tokenizer_config.json'), 'utf8')).toContain('chat_template');
  });

  it('describes the adapter with lora info', async () => {
    const r = await runCli(['lora', 'info', join(out, 'adapter')]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^rank \(r\)\s+16$/m);
    expect(r.stdout).toMatch(/^alpha\s+32 \(scale alpha\/r = 2\.000\)$/m);
    expect(r.stdout).toMatch(/^targets\s+down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj$/m);
    expect(r.stdout).toMatch(new RegExp(`^trainable parameters\\s+${summary.trainableParameters.toLocaleString('en-US')}$`, 'm'));
    expect(r.stdout).toContain(await tinyModel());
  });

  it('refuses to overwrite the finished run without --resume', async () => {
    const r = await runCli(['finetune', '--recipe', RECIPE, '--out', out], { env });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe(`error: --out ${out} already holds a run; pass --resume to continue it, or choose another --out`);
  });
});

describe('llmkit finetune resume', () => {
  // Dropout is on so that the RNG state has to be restored too.
  const args = (out: string) => [
    '--json',
    'finetune',
    '--recipe',
    RECIPE,
    '--out',
    out,
    // 118 steps of 5 micro-batches an epoch end inside the 24th: the result's epochs is a fraction.
    '--max-steps',
    '118',
    '--batch-size',
    '4',
    '--lora-dropout',
    '0.1',
    '--save-every',
    '10',
    '--exact-match',
    '0',
  ];

  it('continues an interrupted run from its checkpoint to the same losses as an uninterrupted one', async () => {
    const work = tempDir();
    const straight = await runCli(args(join(work, 'straight')), { env });
    expect(straight.exitCode, String(straight.stderr).slice(-2000)).toBe(0);

    const out = join(work, 'stopped');
    const stopped = await interruptedAtFirstCheckpoint([...args(out), '--report-to', 'tensorboard'], { env });
    expect(stopped.exitCode, String(stopped.stderr).slice(-2000)).toBe(130);
    const interrupted = events(String(stopped.stderr)).find((e) => e.event === 'interrupted')!;
    expect(interrupted.step).toBeGreaterThanOrEqual(10);
    expect(interrupted.step).toBeLessThan(118);
    const checkpoint = join(out, 'checkpoints', `checkpoint-${interrupted.step}`);
    expect(interrupted.checkpoint).toBe(checkpoint);
    expect(String(stopped.stderr)).toContain(`error: stopped at step ${interrupted.step}; last checkpoint: ${checkpoint}; continue with the same command and --resume`);

    const resumed = await runCli([...args(out), '--resume', '--report-to', 'tensorboard'], { env });
    expect(resumed.exitCode, String(resumed.stderr).slice(-2000)).toBe(0);
    const a = JSON.parse(String(straight.stdout)) as FinetuneSummary;
    const b = JSON.parse(String(resumed.stdout)) as FinetuneSummary;
    expect(b.resumedFrom).toBe(checkpoint);
    for (const s of [a, b]) expect(s.epochs).toBeCloseTo(23.6, 9);
    expect(Math.abs(a.lastLoss! - b.lastLoss!)).toBeLessThan(1e-4);
    expect(b.firstLoss).toBe(a.firstLoss);
    const curve = (dir: string) =>
      metrics(dir)
        .filter((m) => m.loss !== undefined)
        .map((m) => [m.step, m.loss]);
    const [curveA, curveB] = [curve(join(work, 'straight')), curve(out)];
    expect(curveB.map(([s]) => s)).toEqual(curveA.map(([s]) => s));
    for (const [i, [, loss]] of curveB.entries()) expect(Math.abs(loss - curveA[i][1])).toBeLessThan(1e-4);
    // TensorBoard shows the same one curve: the resumed run's file restarts at the step after the checkpoint.
    expect(tensorboardScalars(join(out, 'tensorboard'))['train/loss']).toEqual(curveB.map(([step, loss]) => [step, Math.fround(loss)]));
  });
});

describe('llmkit finetune, full fine-tuning with packing and held-out data', () => {
  it('trains every weight on mixed formats, evaluates as it goes and writes a whole model', async () => {
    const dir = tempDir();
    const text = join(dir, 'text.jsonl');
    const completions = join(dir, 'completions.jsonl');
    writeFileSync(text, Array.from({ length: 20 }, (_, i) => JSON.stringify({ text: `Story ${i}: ` + 'the river flows past the town. '.repeat(i === 0 ? 40 : 1 + (i % 4)) })).join('\n'));
    writeFileSync(completions, Array.from({ length: 20 }, (_, i) => JSON.stringify({ prompt: `Q: ${i} plus one? A:`, completion: ` ${i + 1}` })).join('\n'));
    const out = join(dir, 'run');
    const r = await runCli(
      [
        '--json',
        'finetune',
        'builtin:tiny',
        '--data',
        text,
        '--data',
        completions,
        '--out',
        out,
        '--packing',
        '--eval-split',
        '0.2',
        '--max-steps',
        '12',
        '--eval-every',
        '4',
        '--batch-size',
        '2',
        '--grad-accum',
        '2',
        '--max-seq-len',
        '96',
        '--lr',
        '1e-3',
        '--schedule',
        'linear',
      ],
      { env },
    );
    expect(r.exitCode, String(r.stderr).slice(-2000)).toBe(0);
    const s = JSON.parse(String(r.stdout)) as FinetuneSummary;
    expect(s).toMatchObject({ method: 'full', steps: 12, examples: 32, evalExamples: 8, truncated: 1, maxSeqLen: 96, adapter: null });
    expect(s.trainableParameters).toBe(s.totalParameters);
    expect(s.lastLoss!).toBeLessThan(s.firstLoss!);
    expect(
      metrics(out)
        .filter((m) => m.eval_loss !== undefined)
        .map((m) => m.step),
    ).toEqual([4, 8, 12]);
    expect(s.evalLoss).toBe(metrics(out).at(-1)!.eval_loss);
    expect(events(String(r.stderr)).find((e) => e.event === 'log' && e.level === 'warning')!.message).toBe('1 of 32 training examples were longer than --max-seq-len 96 and were truncated');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) expect(existsSync(join(s.modelOut!, f))).toBe(true);
  });
});

describe('llmkit finetune errors, before any training starts', () => {
  const data = 'recipes/data/facts.jsonl';

  it('names the file and line of a bad data line', async () => {
    const dir = tempDir();
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, `${readFileSync(data, 'utf8').split('\n')[0]}\n{"messages": [{"role": "user", "content": "hi"}]}\n`);
    const r = await runCli(['finetune', 'builtin:tiny', '--data', bad, '--out', join(dir, 'run'), '--lora']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim()).toBe(`error: ${bad}:2: no assistant message: a conversation needs an answer to learn from; fix the line or remove it`);
    expect(existsSync(join(dir, 'run'))).toBe(false);
  });

  it('rejects bad and contradicting flags with one line and exit code 2', async () => {
    const out = join(tempDir(), 'run');
    const cases: [string[], string][] = [
      [['--lora', '--lora-r', '-4'], 'error: --lora-r must be an integer ≥ 1 (got -4)'],
      [['--lora-r', '8'], 'error: --lora-r needs --lora'],
      [['--epochs', '2', '--max-steps', '5'], 'error: --epochs and --max-steps contradict each other: pass one of them'],
      [['--merge'], 'error: --merge needs --lora'],
      [['--lora', '--max-seq-len', '4096'], "error: --max-seq-len 4096 is longer than the model's context (512 tokens); use --max-seq-len 512 or less"],
      [['--lora', '--exact-match', 'all'], 'error: --exact-match must be an integer ≥ 0 (got all)'],
    ];
    for (const [flags, message] of cases) {
      const r = await runCli(['finetune', 'builtin:tiny', '--data', data, '--out', out, ...flags]);
      expect([r.exitCode, r.stderr.trim()]).toEqual([2, message]);
    }
    const noData = await runCli(['finetune', 'builtin:tiny', '--out', out]);
    expect(noData.stderr.trim()).toMatch(/^error: --data is required; pass a JSONL file with --data/);
    expect(existsSync(out)).toBe(false);
  });

  it('rejects a model folder without config or weights, and unsupported architectures', async () => {
    const dir = tempDir();
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    let r = await runCli(['finetune', empty, '--data', data, '--out', join(dir, 'run')]);
    expect([r.exitCode, r.stderr.trim()]).toEqual([2, `error: model folder ${empty} has no config.json; pass a Hugging Face model folder (config.json, weights, tokenizer) or builtin:tiny`]);
    const t5 = join(dir, 't5');
    mkdirSync(t5);
    writeFileSync(join(t5, 'config.json'), JSON.stringify({ architectures: ['T5ForConditionalGeneration'], model_type: 't5' }));
    writeFileSync(join(t5, 'model.safetensors'), '');
    writeFileSync(join(t5, 'tokenizer.json'), '{}');
    r = await runCli(['finetune', t5, '--data', data, '--out', join(dir, 'run')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toMatch(/^error: model folder .*t5 holds a T5ForConditionalGeneration \(model_type t5\), which llmkit does not support; supported: Gemma3ForCausalLM, LlamaForCausalLM, /);
  });

  it('rejects an empty dataset and LoRA targets the model does not have', async () => {
    const dir = tempDir();
    const empty = join(dir, 'empty.jsonl');
    writeFileSync(empty, '\n');
    let r = await runCli(['finetune', 'builtin:tiny', '--data', empty, '--out', join(dir, 'run')]);
    expect([r.exitCode, r.stderr.trim()]).toEqual([1, `error: --data ${empty} has no examples; add one JSON object per line`]);
    r = await runCli(['finetune', 'builtin:tiny', '--data', data, '--out', join(dir, 'run'), '--lora', '--lora-targets', 'q_proj,qkv'], { env });
    expect(r.exitCode).toBe(1);
    // The memory estimate comes first (the targets are checked once the worker has the model); then one error line.
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^finetune: memory estimate .* fits$/),
      'error: --lora-targets: the model has no linear layer named qkv; its attention and MLP linear layers are down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj',
    ]);
  });
});
