import type { Command } from 'commander';
import { DISTILL } from '../../core/distill/options.js';
import type { DistillReport } from '../../core/distill/report.js';
import type { DistillSummary } from '../../core/distill/run.js';
import { commandFrom } from '../command.js';
import { formatBytes, formatRows, formatTable } from '../output.js';
import { formatExact, runJobCommand } from '../job-run.js';

export function distillCommand(): Command {
  return commandFrom(DISTILL, async (options, { flags, recipe }) => {
    const { runDistill } = await import('../../core/distill/run.js');
    await runJobCommand(
      flags,
      'distill',
      (hooks) => runDistill(options, { ...hooks, recipe }),
      formatSummary,
      (when) => (when === 'teacher' ? 'of the teacher' : when),
    );
  });
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
  rows.push(
    ['time', `${t.trainSeconds.toFixed(1)} s training on ${t.device} (${t.precision})`],
    ['model', t.modelOut ?? '-'],
    ['metrics', t.metrics],
    ['chart', t.chart ?? '-'],
    ...(t.tensorboard ? [['tensorboard', t.tensorboard] as [string, string]] : []),
    ['config', t.config],
    ['log', t.log],
  );
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
    ...(r.draft ? [formatDraft(r.draft)] : []),
  ].join('\n');
}

function formatDraft(d: NonNullable<DistillReport['draft']>): string {
  return (
    `as the teacher's draft (serve --draft): ${d.speedup.toFixed(2)}× batch-1 decode (rounds ${d.speedupRange.map((x) => x.toFixed(2)).join('–')}), ` +
    (d.acceptance === null || d.tokensPerPass === null
      ? 'no tokens drafted (the draft costs too much of a target step to pay), '
      : `${(100 * d.acceptance).toFixed(1)}% of drafted tokens accepted, ${d.tokensPerPass.toFixed(2)} tokens a pass, `) +
    `greedy output ${d.identicalOutputs ? 'identical' : 'DIFFERENT'}`
  );
}
