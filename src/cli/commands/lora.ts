import { Command } from 'commander';
import { action } from '../action.js';
import { formatBytes, formatRows, type GlobalFlags } from '../output.js';
import { ProgressView } from '../progress.js';

export function loraCommand(): Command {
  const lora = new Command('lora')
    .description('inspect LoRA adapters (PEFT format) and merge them into their base model')
    // main.ts configures exit handling and one-line errors on `lora` after this file builds it; pass that on.
    .hook('preSubcommand', (self, sub) => void sub.copyInheritedSettings(self));

  lora.addCommand(
    new Command('info')
      .description('show an adapter: rank, alpha, targets, trainable parameters, base model')
      .argument('<adapter>', 'adapter folder (adapter_config.json + adapter_model.safetensors)')
      .action(
        action(async (_opts: object, flags: GlobalFlags, [adapter]: string[]) => {
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
      ),
  );

  lora.addCommand(
    new Command('merge')
      .description('fold an adapter into its base model and write a whole Hugging Face model folder with the tokenizer')
      .argument('<base>', 'the base model folder the adapter was trained on (or builtin:tiny)')
      .argument('<adapter>', 'adapter folder (adapter_config.json + adapter_model.safetensors)')
      .requiredOption('--out <dir>', 'folder to write the merged model to (must not exist)')
      .action(
        action(async (opts: { out: string }, flags: GlobalFlags, [base, adapter]: string[]) => {
          const view = new ProgressView(flags, 'lora merge');
          const { mergeAdapter } = await import('../../core/finetune/lora.js');
          const merged = await mergeAdapter({ base, adapter, out: opts.out, onEvent: view.onEvent });
          view.stop();
          process.stdout.write(flags.json ? JSON.stringify(merged) + '\n' : `merged ${merged.adapter} into ${merged.base}: ${merged.out}\n`);
        }),
      ),
  );
  return lora;
}
