import { Command } from 'commander';
import { action } from '../action.js';
import { parseInteger } from '../flags.js';
import type { GlobalFlags } from '../output.js';
import { ProgressView } from '../progress.js';

export function makeModelCommand(): Command {
  return new Command('make-model')
    .description("write one of llmkit's own Llama-family models (random weights from a seed, trained tokenizer) in Hugging Face format")
    .option('--preset <name>', 'size: tiny (~0.2M params), small (~5M), 100m (~90M)', 'tiny')
    .option('--seed <n>', 'random seed for the weights', '0')
    .option('--corpus <files...>', 'text files to train the tokenizer on (default: the bundled corpus)')
    .option('--out <dir>', 'output folder (default: a cache folder under LLMKIT_HOME)')
    .action(
      action(async (opts: { preset: string; seed: string; corpus?: string[]; out?: string }, flags: GlobalFlags) => {
        const { makeModel, parsePreset } = await import('../../core/model-maker.js');
        const view = new ProgressView(flags, 'make-model');
        const made = await makeModel({
          preset: parsePreset(opts.preset),
          seed: parseInteger(opts.seed, '--seed', 0),
          corpus: opts.corpus,
          out: opts.out,
          onEvent: view.onEvent,
        });
        view.stop();
        if (flags.json) process.stdout.write(JSON.stringify(made) + '\n');
        else process.stdout.write(`${made.cached ? 'cached' : 'wrote'} ${opts.preset} model: ${made.path}\n`);
      }),
    );
}
