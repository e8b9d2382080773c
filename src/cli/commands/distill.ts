import { Command } from 'commander';
import { DISTILL_DEFAULTS as D, DISTILL_KEYS, DISTILL_PATH_KEYS, resolveDistillOptions, STUDENT_CONFIG_KEYS } from '../../core/distill/options.js';
import type { DistillReport } from '../../core/distill/report.js';
import type { DistillSummary } from '../../core/distill/run.js';
import { FINETUNE_DEFAULTS } from '../../core/finetune/options.js';
import { loadRecipe } from '../../core/recipe.js';
import { action } from '../action.js';
import { formatBytes, formatRows, formatTable, type GlobalFlags } from '../output.js';
import { formatExact, runTrainingCommand } from '../training-run.js';
import { finetuneCommand } from './finetune.js';

/** Training flags whose help or default differs from finetune's, so they are defined here. */
const OWN = ['out', 'lr', 'exactMatch'];

export function distillCommand(): Command {
  const command = new Command('distill')
    .description('train a smaller student to do what a teacher does (logit or sequence-level distillation), then measure both side by side')
    .option('--teacher <model>', 'the model to learn from: a Hugging Face folder (e.g. runs/x/merged), or builtin:tiny')
    .option('--student <model>', "a smaller model with the teacher's tokenizer, to train")
    .option('--student-config <key=value,...>', `build the student from the teacher's config with these changed: ${STUDENT_CONFIG_KEYS.join(', ')}`)
    .option('--student-layers <i,j,...>', 'the teacher layer each layer of a built student starts from (default: evenly spaced, first and last kept)')
    .option('--mode <name>', `logits (match the teacher's next-token distributions) or sequence (fine-tune on its greedy answers) (default: ${D.mode})`)
    .option('--temperature <T>', `logits mode: soften both distributions by T before comparing them (default: ${D.temperature})`)
    .option('--alpha <a>', `logits mode: weight of the distillation term; 1 - alpha goes to cross-entropy on the labels (default: ${D.alpha})`)
    .option('--top-k <k>', "logits mode: compare on the teacher's k most likely tokens only (less memory)")
    .option('--max-new-tokens <n>', `sequence mode: the longest teacher answer (default: ${D.maxNewTokens})`)
    .option('--out <dir>', 'output folder: checkpoints, metrics.jsonl, llmkit-config.json, model/, onnx/, distill-report.json');
  // The training flags are finetune's own (same names, meaning and help), taken from its command so that the two cannot drift apart.
  for (const option of finetuneCommand().options) {
    const key = option.attributeName();
    if (key === 'recipe' || (DISTILL_KEYS.includes(key) && !OWN.includes(key))) command.addOption(option);
  }
  command
    .option('--lr <rate>', `peak learning rate (default: ${FINETUNE_DEFAULTS.lrFull.toExponential()})`)
    .option('--exact-match <n>', `greedy-answer the first N eval (else training) examples with teacher and student (default: ${D.exactMatch} when the data has answers; 0 turns it off)`)
    .option('--no-report', 'skip the ONNX export and the side-by-side measurement at the end');

  return command.action(
    action(async (opts: Record<string, unknown>, flags: GlobalFlags) => {
      const { runDistill } = await import('../../core/distill/run.js');
      const recipePath = opts.recipe as string | undefined;
      const recipe = recipePath ? await loadRecipe(recipePath, { keys: DISTILL_KEYS, pathKeys: DISTILL_PATH_KEYS }) : undefined;
      const options = resolveDistillOptions({ values: { ...opts, recipe: undefined }, typed: (key) => command.getOptionValueSource(key) === 'cli' }, recipe);
      if (flags.verbose) process.stderr.write(`resolved options: ${JSON.stringify(options)}\n`);

      await runTrainingCommand(
        flags,
        'distill',
        (hooks) => runDistill(options, { ...hooks, recipe: recipePath }),
        formatSummary,
        (when) => (when === 'teacher' ? 'of the teacher' : when),
      );
    }),
  );
}

function formatSummary(s: DistillSummary): string {
  const t = s.training;
  const loss = (n: number | null) => (n === null ? '-' : n.toFixed(4));
  const how = s.mode === 'logits' ? 'logits' : "sequence: trained on the teacher's answers";
  const plural = (n: number, word: string) => `${word}${n === 1 ? '' : 's'}`;
  const init = s.studentInit;
  const student = init
    ? `built from the teacher: ${init.layers.length} ${plural(init.layers.length, 'layer')} from teacher ${plural(init.layers.length, 'layer')} ${init.layers.join(', ')}; ` +
      `${init.copiedTensors} tensors copied, ${init.freshTensors} fresh`
    : t.model;
  const rows: [string, string][] = [
    ['student', student],
    [s.mode === 'logits' ? 'distill loss' : 'train loss', `${loss(t.firstLoss)} → ${loss(t.lastLoss)} (${t.steps} steps, ${t.epochs.toFixed(2)} epochs)`],
    ['eval loss', `${loss(t.evalLoss)}${t.evalExamples ? ` on ${t.evalExamples} examples (student, cross-entropy)` : ''}`],
  ];
  if (t.exactMatch) {
    const teacher = s.teacher.exactMatch ? formatExact(s.teacher.exactMatch) : '-';
    rows.push(['exact match', `teacher ${teacher}; student ${t.exactMatch.before ? formatExact(t.exactMatch.before) : '-'} → ${t.exactMatch.after ? formatExact(t.exactMatch.after) : '-'}`]);
  }
  rows.push(['time', `${t.trainSeconds.toFixed(1)} s training on ${t.device} (${t.precision})`], ['model', t.modelOut ?? '-'], ['metrics', t.metrics], ['config', t.config], ['log', t.log]);
  if (s.reportFile) rows.push(['report', s.reportFile]);
  const head = `distill done (${how}${t.resumedFrom ? `, resumed from ${t.resumedFrom}` : ''})\n${formatRows(rows)}`;
  return s.report ? `${head}\n\n${formatReport(s.report)}` : head;
}

function formatReport(r: DistillReport): string {
  const percent = (x: number) => `${(100 * x).toFixed(1)}%`;
  const rows = r.models.map((m, i) => [
    m.role,
    i === 0 ? m.parameters.toLocaleString('en-US') : `${m.parameters.toLocaleString('en-US')} (${percent(m.parameters / r.models[0].parameters)})`,
    i === 0 ? formatBytes(m.bytes) : `${formatBytes(m.bytes)} (${percent(m.sizeRatio)})`,
    i === 0 ? `${m.decodeTokensPerSecond.toFixed(1)} tok/s` : `${m.decodeTokensPerSecond.toFixed(1)} tok/s (${m.speedup.toFixed(2)}×)`,
    i === 0 ? m.perplexity.toFixed(3) : `${m.perplexity.toFixed(3)} (${m.perplexityChange >= 0 ? '+' : ''}${percent(m.perplexityChange)})`,
    percent(m.top1Agreement),
    m.exactMatch === null ? '-' : percent(m.exactMatch),
  ]);
  return [
    formatTable(['model', 'parameters', 'size (ONNX)', 'decode speed', 'perplexity', 'top-1 agreement', 'exact match'], rows),
    `perplexity and agreement with the teacher over ${r.eval.positions} positions of ${r.eval.file} (the eval data as the models read it); ` +
      `decode speed: batch 1, ${r.speed.prompts} prompts × ${r.speed.newTokens} tokens × ${r.speed.rounds} rounds, ${r.speed.threads} threads, CPU (${r.machine.cpu})`,
  ].join('\n');
}
