import { Command, CommanderError } from 'commander';
import { benchCommand } from './commands/bench.js';
import { chatCommand } from './commands/chat.js';
import { demoCommand } from './commands/demo.js';
import { distillCommand } from './commands/distill.js';
import { envCommand } from './commands/env.js';
import { exportCommand } from './commands/export.js';
import { finetuneCommand } from './commands/finetune.js';
import { inspectCommand } from './commands/inspect.js';
import { loraCommand } from './commands/lora.js';
import { makeModelCommand } from './commands/make-model.js';
import { quantizeCommand } from './commands/quantize.js';
import { serveCommand } from './commands/serve.js';

/** Registers the subcommands; every usage error exits 2 with one line. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('llmkit')
    .description('From local weights to a running service: fine-tune, distill, export, quantize, serve and chat.')
    .version(process.env.npm_package_version ?? '0.1.0')
    .option('--verbose', 'print details and stack traces of errors', false)
    .option('--json', 'print machine-readable JSON on stdout (progress as JSON lines on stderr)', false)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text.split('\n')[0] + '\n') });
  for (const command of [envCommand(), makeModelCommand(), finetuneCommand(), distillCommand(), loraCommand(), exportCommand(), inspectCommand(), quantizeCommand(), serveCommand(), benchCommand(), chatCommand(), demoCommand()]) {
    program.addCommand(command.exitOverride().configureOutput({ outputError: (text, write) => write(text.split('\n')[0] + '\n') }));
  }
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
}
