import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DistillReport } from '../../src/core/distill/report.js';
import type { DistillSummary } from '../../src/core/distill/run.js';
import type { FinetuneSummary } from '../../src/core/finetune/run.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { tensorboardScalars } from '../helpers/tensorboard.js';

// Two shared cores: one thread per worker is faster than two fighting, and keeps CPU runs bit-identical.
const env = { OMP_NUM_THREADS: '1' };
const FACTS = 'recipes/data/facts.jsonl';
/** The same data, steps and schedule for the distilled student and its plain fine-tuned twin. */
const TRAINING = ['--data', FACTS, '--eval-data', FACTS, '--eval-every', '2', '--max-steps', '10', '--batch-size', '20', '--lr', '3e-3', '--warmup-ratio', '0', '--exact-match', '20'];

function evalCurve(out: string): [number, number][] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((m) => m.eval_loss !== undefined)
    .map((m) => [m.step, m.eval_loss]);
}

describe('llmkit distill: the fine-tuned tiny model into a student with half its layers (CPU)', () => {
  const work = tempDir();
  const teacher = join(work, 'teacher', 'model');
  const out = join(work, 'distill');
  let summary: DistillSummary;
  let plain: FinetuneSummary;

  beforeAll(async () => {
    // The teacher: the finetune recipe's run on the facts, as a full fine-tune, which answers all of them.
    const t = await runCli(['--json', 'finetune', '--recipe', 'recipes/llama/tiny_lora_cpu.yaml', '--no-lora', '--exact-match', '0', '--out', join(work, 'teacher')], { env });
    expect(t.exitCode, String(t.stderr).slice(-2000)).toBe(0);
    // The student keeps the teacher's last layer (of 2): it starts far from the teacher (the first layer alone
    // already answers most facts), so the comparison below measures learning.
    const d = await runCli(['--json', 'distill', '--teacher', teacher, '--student-layers', '1', ...TRAINING, '--out', out, '--report-to', 'tensorboard'], { env });
    expect(d.exitCode, String(d.stderr).slice(-2000)).toBe(0);
    summary = JSON.parse(String(d.stdout));
    // Plain fine-tuning of the same starting student on the same data, steps and schedule.
    const p = await runCli(['--json', 'finetune', join(out, 'student-init'), ...TRAINING, '--out', join(work, 'plain')], { env });
    expect(p.exitCode, String(p.stderr).slice(-2000)).toBe(0);
    plain = JSON.parse(String(p.stdout));
  });

  it('gives a student whose exact match on the facts is at least 90% of the teacher’s', () => {
    expect(summary.teacher.exactMatch!.value).toBeGreaterThanOrEqual(0.9);
    expect(summary.training.exactMatch!.before!.value).toBeLessThan(0.5);
    expect(summary.training.exactMatch!.after!.value).toBeGreaterThanOrEqual(0.9 * summary.teacher.exactMatch!.value);
    expect(summary.studentInit).toMatchObject({ layers: [1], freshTensors: 0 });
    expect(summary.training).toMatchObject({ method: 'full', steps: 10, device: 'cpu', examples: 20 });
  });

  it('lowers the student’s cross-entropy on the facts faster than plain fine-tuning from the same start', () => {
    const distilled = evalCurve(out);
    const baseline = evalCurve(join(work, 'plain'));
    expect(distilled.map(([step]) => step)).toEqual([2, 4, 6, 8, 10]);
    expect(baseline.map(([step]) => step)).toEqual([2, 4, 6, 8, 10]);
    for (const [i, [step, loss]] of distilled.entries()) expect(loss, `step ${step}`).toBeLessThan(baseline[i][1]);
    expect(summary.training.evalLoss!).toBeLessThan(plain.evalLoss!);
  });

  it('measures teacher and student side by side: parameters, ONNX size, decode speed, perplexity, agreement, exact match', () => {
    const report = JSON.parse(readFileSync(join(out, 'distill-report.json'), 'utf8')) as DistillReport;
    expect(report).toEqual(summary.report);
    const [t, s] = report.models;
    expect([t.role, s.role]).toEqual(['teacher', 'student']);
    expect(s.parameters).toBeLessThan(t.parameters);
    expect(s.sizeRatio).toBeLessThan(0.85);
    for (const m of [t, s]) {
      expect(m.decodeTokensPerSecond).toBeGreaterThan(0);
      expect(Number.isFinite(m.perplexity) && m.perplexity > 1).toBe(true);
    }
    expect(t.top1Agreement).toBe(1);
    expect(s.top1Agreement).toBeGreaterThan(0);
    expect([t.exactMatch, s.exactMatch]).toEqual([summary.teacher.exactMatch!.value, summary.training.exactMatch!.after!.value]);
    expect(report.eval.file).toBe(join(out, 'eval.txt'));
    // The student's export stays for `llmkit serve`; the teacher's is removed.
    expect(existsSync(join(out, 'onnx', 'llmkit.json'))).toBe(true);
    expect(existsSync(join(out, 'report-teacher-onnx'))).toBe(false);
  });

  it('saves what finetune saves: the model, metrics, checkpoint and the resolved config', () => {
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) expect(existsSync(join(out, 'model', f))).toBe(true);
    const config = JSON.parse(readFileSync(join(out, 'llmkit-config.json'), 'utf8'));
    expect(config).toMatchObject({ command: 'distill', options: { teacher, studentLayers: [1], mode: 'logits', temperature: 2, alpha: 0.5, maxSteps: 10 } });
    expect(existsSync(join(out, 'checkpoints', 'checkpoint-10'))).toBe(true);
  });

  it('logs the run to TensorBoard with --report-to tensorboard: the eval and train curves of metrics.jsonl', () => {
    expect(summary.training.tensorboard).toBe(join(out, 'tensorboard'));
    const board = tensorboardScalars(summary.training.tensorboard!);
    expect(board['eval/loss']).toEqual(evalCurve(out).map(([step, loss]) => [step, Math.fround(loss)]));
    expect(board['train/loss']?.map(([step]) => step)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(board['train/loss']![9][1]).toBe(Math.fround(summary.training.lastLoss!));
  });

  it('refuses to resume with other distillation settings', async () => {
    const r = await runCli(['distill', '--teacher', teacher, '--student-layers', '1', ...TRAINING, '--out', out, '--resume', '--temperature', '4']);
    expect([r.exitCode, r.stderr.trim()]).toEqual([2, `error: --resume: ${out} was made with --temperature 2, this run has 4; resume with the same --temperature, or start a new --out`]);
  });

  it('makes a draft for the teacher with --for-draft, measured as speculative decoding against the teacher', async () => {
    const draft = join(work, 'draft');
    const r = await runCli(['--json', 'distill', '--teacher', teacher, '--for-draft', '--draft-vocab', '64', ...TRAINING, '--out', draft], { env });
    expect(r.exitCode, String(r.stderr).slice(-2000)).toBe(0);
    const s = JSON.parse(String(r.stdout)) as DistillSummary;
    // An eighth of the teacher's 2 layers, at least one.
    expect(s.studentInit!.layers).toHaveLength(1);
    const d = s.report!.draft!;
    expect(d.draft).toBe(join(draft, 'onnx'));
    expect(d.identicalOutputs).toBe(true);
    expect(d.prompts).toBeGreaterThan(0);
    // The tiny teacher's weights are mostly its embeddings: a one-layer draft with every token in its output layer
    // reads most of what the teacher reads, and the scheduler's cost model (DraftLength) would draft nothing. Its
    // output layer cut to 64 tokens (--draft-vocab), it costs little, drafts, and the teacher takes most drafts.
    expect(d.acceptance).toBeGreaterThan(0.5);
    expect(d.tokensPerPass).toBeGreaterThan(1.3);
    // --draft-vocab: the 64 tokens the draft most needs, EOS first, beside the model and its export.
    const vocab = JSON.parse(readFileSync(join(draft, 'model', 'draft-vocab.json'), 'utf8')) as { ids: number[]; coverage: number };
    expect(readFileSync(join(draft, 'onnx', 'draft-vocab.json'), 'utf8')).toBe(readFileSync(join(draft, 'model', 'draft-vocab.json'), 'utf8'));
    expect(vocab.ids).toHaveLength(64);
    expect(new Set(vocab.ids).size).toBe(64);
    expect(vocab.ids[0]).toBe(JSON.parse(readFileSync(join(draft, 'onnx', 'llmkit.json'), 'utf8')).eos_token_ids[0]);
    expect(vocab.coverage).toBeGreaterThan(0.5);
  }, 600_000);

  it('distills sequence-level: the student learns the teacher’s answers', async () => {
    const seq = join(work, 'sequence');
    const r = await runCli(['--json', 'distill', '--teacher', teacher, '--student-layers', '1', '--mode', 'sequence', ...TRAINING, '--out', seq, '--no-report'], { env });
    expect(r.exitCode, String(r.stderr).slice(-2000)).toBe(0);
    const s = JSON.parse(String(r.stdout)) as DistillSummary;
    const answers = readFileSync(join(seq, 'teacher', 'answers-messages.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const facts = readFileSync(FACTS, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(answers).toHaveLength(20);
    // The teacher knows the facts, so its answers are the data's.
    expect(answers.filter((a, i) => a.messages[1].content === facts[i].messages[1].content).length).toBe(Math.round(20 * s.teacher.exactMatch!.value));
    expect(s.report).toBeNull();
    expect(s.training.exactMatch!.after!.value).toBeGreaterThanOrEqual(0.9 * s.teacher.exactMatch!.value);
  });

  it('builds a student from every teacher layer that starts at the teacher’s own loss on its answers', async () => {
    // A student copied whole is the teacher: its first loss (before any update) on the teacher's answers must be the
    // teacher's, which a fine-tune of the teacher on those answers measures. A wrong copy, tied output layer or
    // label shift would show as a loss far above it (a 4-of-30-layer SmolLM2 student starts at 15.4 where this is 0.65).
    const whole = join(work, 'whole');
    const oneStep = ['--max-steps', '1', '--batch-size', '20', '--lr', '1e-9', '--exact-match', '0'];
    const d = await runCli(['--json', 'distill', '--teacher', teacher, '--student-layers', '0,1', '--mode', 'sequence', '--data', FACTS, ...oneStep, '--out', whole, '--no-report'], { env });
    expect(d.exitCode, String(d.stderr).slice(-2000)).toBe(0);
    const student = (JSON.parse(String(d.stdout)) as DistillSummary).training;
    const f = await runCli(['--json', 'finetune', teacher, '--data', join(whole, 'teacher', 'answers-messages.jsonl'), ...oneStep, '--out', join(work, 'teacher-on-answers')], { env });
    expect(f.exitCode, String(f.stderr).slice(-2000)).toBe(0);
    const own = (JSON.parse(String(f.stdout)) as FinetuneSummary).firstLoss!;
    expect(own).toBeLessThan(0.5);
    expect(student.firstLoss).toBeCloseTo(own, 5);
  });

  it('fails with one line when the student has another vocabulary', async () => {
    const student = join(work, 'other-vocab');
    cpSync(join(out, 'student-init'), student, { recursive: true });
    const file = join(student, 'tokenizer.json');
    const tokenizer = JSON.parse(readFileSync(file, 'utf8'));
    const vocab = tokenizer.model.vocab as Record<string, number>;
    const [a, b] = Object.keys(vocab).filter((k) => vocab[k] === 300 || vocab[k] === 301);
    [vocab[a], vocab[b]] = [vocab[b], vocab[a]];
    writeFileSync(file, JSON.stringify(tokenizer));
    const r = await runCli(['distill', '--teacher', teacher, '--student', student, '--data', FACTS, '--out', join(work, 'mismatch')], { env });
    expect(r.exitCode).toBe(1);
    // The memory estimate, then one error line.
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^distill: memory estimate .* fits$/);
    expect(lines[1]).toMatch(
      /^error: the teacher and the student have different vocabularies \(771 and 771 tokens; '.+' is 30[01] in the teacher and 30[01] in the student\); distill into a student with the teacher's tokenizer/,
    );
  });
});

describe('llmkit distill errors, before any training starts', () => {
  it('names a missing teacher or student and bad flags in one line', async () => {
    const out = join(tempDir(), 'run');
    const cases: [string[], number, string][] = [
      [
        ['--teacher', '/no/such/teacher', '--student-config', 'num_hidden_layers=1'],
        2,
        'error: teacher model folder /no/such/teacher does not exist; pass a Hugging Face model folder (config.json, weights, tokenizer) or builtin:tiny',
      ],
      [
        ['--teacher', 'builtin:tiny', '--student', '/no/such/student'],
        2,
        'error: student model folder /no/such/student does not exist; pass a Hugging Face model folder (config.json, weights, tokenizer) or builtin:tiny',
      ],
      [['--student-config', 'num_hidden_layers=1'], 2, 'error: --teacher is required; pass the model to learn from with --teacher (a Hugging Face folder, e.g. runs/x/merged)'],
      [
        ['--teacher', 'builtin:tiny', '--student-config', 'num_hidden_layers=3'],
        2,
        "error: --student-config num_hidden_layers=3 is larger than the teacher's 2; a student is at most the size of its teacher",
      ],
      [['--teacher', 'builtin:tiny', '--student-config', 'num_hidden_layers=1', '--alpha', '2'], 2, 'error: --alpha must be a number ≥ 0 and ≤ 1 (got 2)'],
      [['--teacher', 'builtin:tiny', '--student-config', 'num_hidden_layers=1', '--top-k', '0'], 2, 'error: --top-k must be an integer ≥ 1 (got 0)'],
      [['--teacher', 'builtin:tiny', '--student-config', 'num_hidden_layers=1', '--draft-vocab', '64'], 2, 'error: --draft-vocab applies to --for-draft only; add --for-draft'],
      [['--teacher', 'builtin:tiny', '--for-draft', '--draft-vocab', '0'], 2, 'error: --draft-vocab must be an integer ≥ 1 (got 0)'],
      [['--teacher', 'builtin:tiny', '--student-config', 'num_hidden_layers=1', '--data', 'recipes/data/eval.txt'], 1, `error: ${resolve('recipes/data/eval.txt')}:1: line is not valid JSON`],
    ];
    for (const [flags, code, message] of cases) {
      const r = await runCli(['distill', '--data', FACTS, '--out', out, ...flags]);
      expect(r.exitCode, r.stderr).toBe(code);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim().startsWith(message), r.stderr).toBe(true);
    }
    expect(existsSync(out)).toBe(false);
  });

  it('refuses sequence mode on plain text, which has no prompts to answer', async () => {
    const dir = tempDir();
    const text = join(dir, 'text.jsonl');
    writeFileSync(text, JSON.stringify({ text: 'The river flows past the town.' }) + '\n');
    const r = await runCli(['distill', '--teacher', 'builtin:tiny', '--student-config', 'num_hidden_layers=1', '--mode', 'sequence', '--data', text, '--out', join(dir, 'run')]);
    expect([r.exitCode, r.stderr.trim()]).toEqual([
      2,
      `error: --mode sequence needs prompts for the teacher to answer, and ${text} holds plain text; use messages, alpaca or prompt/completion data, or --mode logits`,
    ]);
  });
});
