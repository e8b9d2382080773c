import type { Command } from 'commander';
import type { ModelInspection } from '../../core/inspect.js';
import { MEMORY_ADVICE } from '../../core/memory/fit.js';
import type { FitPlan } from '../../core/memory/plan.js';
import { INSPECT } from '../../core/options/inspect.js';
import { commandFrom } from '../command.js';
import { formatBytes, formatRows } from '../output.js';

export function inspectCommand(): Command {
  return commandFrom(INSPECT, async ({ model, for: purpose, ...fit }, { flags }) => {
    const { inspectModel } = await import('../../core/inspect.js');
    const report = await inspectModel(model);
    const memory = purpose ? await (await import('../../core/memory/plan.js')).planFit({ model, purpose, ...fit }) : undefined;
    if (flags.json) process.stdout.write(JSON.stringify(memory ? { ...report, memory } : report, null, 2) + '\n');
    else process.stdout.write(formatInspection(report) + (memory ? `\n${formatFit(memory)}` : '') + '\n');
    if (memory) return memory.fits ? 0 : 1;
    return report.commands.length ? 0 : 1;
  });
}

function formatInspection(r: ModelInspection): string {
  const template = r.chatTemplate.present
    ? `yes (${r.chatTemplate.source}${r.chatTemplate.renders === false ? `; ${r.chatTemplate.error}` : r.chatTemplate.renders ? '; renders in transformers.js' : ''})`
    : 'no';
  const rows: [string, string][] = [
    ['folder', `${r.path} (${r.kind === 'export' ? 'llmkit export' : 'Hugging Face'})`],
    ['architecture', `${r.architecture}${r.modelType ? ` (model_type ${r.modelType})` : ''}${r.family ? `: ${r.family}` : ''}`],
    ['supported', r.supported ? 'yes' : 'no'],
    ['size', `${r.parameters === null ? '' : `${(r.parameters / 1e6).toFixed(1)}M parameters, `}${formatBytes(r.bytesOnDisk)} on disk${r.precision ? `, ${r.precision}` : ''}`],
    ['layers', String(r.layers ?? '-')],
    ['context', r.contextLength === null ? '-' : `${r.contextLength} tokens`],
    [
      'tokenizer',
      r.tokenizer.file ? `${r.tokenizer.file}${r.tokenizer.class ? ` (${r.tokenizer.class})` : ''}, vocabulary ${r.vocabSize ?? '?'}${r.tokenizer.eos ? `, eos ${r.tokenizer.eos}` : ''}` : 'missing',
    ],
    ['chat template', template],
    ['commands', r.commands.length ? r.commands.join(', ') : 'none'],
  ];
  if (r.hint) rows.push(['hint', r.hint]);
  return formatRows(rows);
}

/** Why a part does not simply add to the peak, or what it is where its name does not say. */
function partNote(e: FitPlan['estimate'], part: string): string {
  if (part === 'loading') return ' (while the model opens; the peak counts the larger of this and the KV cache)';
  if (e.device !== 'cuda' || e.purpose === 'serve') return '';
  if (part === 'gradients') return ' (filled as the backward pass frees the activations; the peak counts the larger)';
  if (part === 'castCopies') return " (autocast's bf16 copies of the weights)";
  if (part === 'workspace') return ' (cuBLAS)';
  return '';
}

/** The estimate in parts, the verdict, and what would make it fit. */
export function formatFit(m: FitPlan): string {
  const e = m.estimate;
  const parts = Object.entries(e.parts)
    .filter(([k, v]) => k !== 'loading' || v > 0)
    .map(([k, v]): [string, string] => [`  ${k}`, `${formatBytes(v)}${partNote(e, k)}`]);
  const other =
    e.activationsOtherWay === undefined
      ? []
      : [['', `(activations ${formatBytes(e.activationsOtherWay)} with gradient checkpointing ${e.activationsOtherWay < e.parts.activations ? 'on' : 'off'})`] as [string, string]];
  const verdict = m.fits
    ? `fits: ${formatBytes(e.total)} of ${formatBytes(m.available)} ${m.availableOf} (${((100 * e.total) / m.available).toFixed(0)} %)`
    : `does not fit: ${formatBytes(e.total)} needed, ${formatBytes(m.available)} ${m.availableOf}; ${m.advice.length ? `try ${m.advice.map((a) => `${a.change} (${formatBytes(a.total)})`).join(' or ')}` : MEMORY_ADVICE}`;
  return formatRows([[`memory (${e.purpose})`, `${e.device}, batch ${m.batchSize} × ${m.maxSeqLen} tokens`], ...parts, ...other, ['  peak', formatBytes(e.total)], ['verdict', verdict]]);
}
