import { Command } from 'commander';
import { LORA_DESCRIPTION, LORA_INFO, LORA_MERGE } from '../../core/options/lora.js';
import { commandFrom } from '../command.js';
import { formatBytes, formatRows } from '../output.js';
import { ProgressView } from '../progress.js';

export function loraCommand(): Command {
  return (
    new Command('lora')
      .description(LORA_DESCRIPTION)
      // main.ts configures exit handling and one-line errors on `lora` after this file builds it; pass that on.
      .hook('preSubcommand', (self, sub) => void sub.copyInheritedSettings(self))
      .addCommand(
        commandFrom(LORA_INFO, async ({ adapter }, { flags }) => {
          const { readAdapterInfo } = await import('../../core/finetune/lora.js');
          const info = await readAdapterInfo(adapter);
          if (flags.json) {
            process.stdout.write(JSON.stringify(info) + '\n');
            return;
          }
          const rows: [string, string][] = [
            ['adapter', info.path],
            ['rank (r)', String(info.r)],
            ['alpha', `${info.alpha} (scale alpha/r = ${(info.alpha / info.r).toFixed(3)})`],
            ['dropout', String(info.dropout)],
            ['targets', info.targets.join(', ')],
            ['trainable parameters', info.trainableParameters.toLocaleString('en-US')],
            ['size', formatBytes(info.bytes)],
            ['base model', info.baseModel ?? 'not recorded'],
          ];
          process.stdout.write(formatRows(rows) + '\n');
        }),
      )
      .addCommand(
        commandFrom(LORA_MERGE, async (options, { flags }) => {
          const view = new ProgressView(flags, 'lora merge');
          const { mergeAdapter } = await import('../../core/finetune/lora.js');
          const merged = await mergeAdapter({ ...options, onEvent: view.onEvent });
          view.stop();
          process.stdout.write(flags.json ? JSON.stringify(merged) + '\n' : `merged ${merged.adapter} into ${merged.base}: ${merged.out}\n`);
        }),
      )
  );
}
