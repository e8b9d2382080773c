import type { Command } from 'commander';
import { FINETUNE } from '../../core/finetune/options.js';
import type { FinetuneSummary } from '../../core/finetune/run.js';
import { commandFrom } from '../command.js';
import { formatBytes, formatRows } from '../output.js';
import { formatExact, runJobCommand } from '../job-run.js';

export function finetuneCommand(): Command {
  return commandFrom(FINETUNE, async (options, { flags, recipe }) => {
    const { runFinetune } = await import('../../core/finetune/run.js');
    await runJobCommand(flags, 'finetune', (hooks) => runFinetune(options, { ...hooks, recipe }), formatSummary);
  });
}

function formatSummary(s: FinetuneSummary): string {
  const loss = (n: number | null) => (n === null ? '-' : n.toFixed(4));
  const memory = s.memoryKind === 'cuda' ? 'GPU' : 'process RSS';
  const rows: [string, string][] = [
    ['train loss', `${loss(s.firstLoss)} → ${loss(s.lastLoss)} (${s.steps} steps, ${s.epochs.toFixed(2)} epochs)`],
    ['eval loss', `${loss(s.evalLoss)}${s.evalExamples ? ` on ${s.evalExamples} examples` : ''}`],
  ];
  if (s.exactMatch) rows.push(['exact match', `${s.exactMatch.before ? formatExact(s.exactMatch.before) : '-'} → ${s.exactMatch.after ? formatExact(s.exactMatch.after) : '-'}`]);
  rows.push(
    ['tokens/s', s.tokensPerSecond === null ? '-' : `${Math.round(s.tokensPerSecond).toLocaleString('en-US')}${s.processes > 1 ? ` (all ${s.processes} processes)` : ''}`],
    ['peak memory', s.processes > 1 ? `${s.peakMemoryPerProcess.map(formatBytes).join(', ')} (${memory}, per process)` : `${formatBytes(s.peakMemoryBytes)} (${memory})`],
    ['time', `${s.trainSeconds.toFixed(1)} s training on ${s.device} (${s.precision}${s.compiled ? ', compiled' : ''})`],
    ['examples', `${s.examples} (${s.truncated} truncated to ${s.maxSeqLen} tokens, ${s.dropped} without an answer left)`],
    ['parameters', `${s.trainableParameters.toLocaleString('en-US')} trained of ${s.totalParameters.toLocaleString('en-US')}`],
  );
  if (s.adapter) rows.push(['adapter', s.adapter]);
  if (s.merged) rows.push(['merged model', s.merged]);
  if (s.modelOut) rows.push(['model', s.modelOut]);
  rows.push(['metrics', s.metrics], ['chart', s.chart ?? '-']);
  if (s.tensorboard) rows.push(['tensorboard', s.tensorboard]);
  rows.push(['config', s.config], ['log', s.log]);
  const kind = s.method === 'lora' ? 'LoRA' : 'full';
  return `finetune done (${kind}${s.resumedFrom ? `, resumed from ${s.resumedFrom}` : ''})\n${formatRows(rows)}`;
}
