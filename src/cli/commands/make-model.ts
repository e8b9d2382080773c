import type { Command } from 'commander';
import { MAKE_MODEL } from '../../core/options/make-model.js';
import { commandFrom } from '../command.js';
import { ProgressView } from '../progress.js';

export function makeModelCommand(): Command {
  return commandFrom(MAKE_MODEL, async (options, { flags }) => {
    const { makeModel } = await import('../../core/model-maker.js');
    const view = new ProgressView(flags, 'make-model');
    const made = await makeModel({ ...options, onEvent: view.onEvent });
    view.stop();
    if (flags.json) process.stdout.write(JSON.stringify(made) + '\n');
    else process.stdout.write(`${made.cached ? 'cached' : 'wrote'} ${options.preset} model: ${made.path}\n`);
  });
}
