import type { Command } from 'commander';
import type { ModelInspection } from '../../core/inspect.js';
import { INSPECT } from '../../core/options/inspect.js';
import { commandFrom } from '../command.js';
import { formatBytes, formatRows } from '../output.js';

export function inspectCommand(): Command {
  return commandFrom(INSPECT, async ({ model }, { flags }) => {
    const { inspectModel } = await import('../../core/inspect.js');
    const report = await inspectModel(model);
    if (flags.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else process.stdout.write(formatInspection(report) + '\n');
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
