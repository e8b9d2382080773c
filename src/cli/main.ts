import { Command, CommanderError } from 'commander';

/**
 * The subcommands, each loaded only when needed: a run of one command imports that command's file
 * alone (`llmkit env` loads no training options); `--help` and unknown names load all.
 */
export const COMMANDS: Record<string, () => Promise<Command>> = {
  env: async () => (await import('./commands/env.js')).envCommand(),
  'make-model': async () => (await import('./commands/make-model.js')).makeModelCommand(),
  finetune: async () => (await import('./commands/finetune.js')).finetuneCommand(),
  distill: async () => (await import('./commands/distill.js')).distillCommand(),
  lora: async () => (await import('./commands/lora.js')).loraCommand(),
  import: async () => (await import('./commands/import.js')).importCommand(),
  export: async () => (await import('./commands/export.js')).exportCommand(),
  inspect: async () => (await import('./commands/inspect.js')).inspectCommand(),
  quantize: async () => (await import('./commands/quantize.js')).quantizeCommand(),
  serve: async () => (await import('./commands/serve.js')).serveCommand(),
  bench: async () => (await import('./commands/bench.js')).benchCommand(),
  batch: async () => (await import('./commands/batch.js')).batchCommand(),
  chat: async () => (await import('./commands/chat.js')).chatCommand(),
  demo: async () => (await import('./commands/demo.js')).demoCommand(),
};

/** Registers the subcommands; every usage error exits 2 with one line. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('llmkit')
    .description('From local weights to a running service: fine-tune, distill, export, quantize, serve and chat.')
    .version(process.env.npm_package_version ?? '0.1.0')
    .option('--verbose', 'print details and stack traces of errors', false)
    .option('--json', 'print machine-readable JSON on stdout (progress as JSON lines on stderr)', false)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(oneLine(text)) });
  // The first word that is not a flag names the command (the global flags take no values).
  const named = argv.slice(2).find((a) => !a.startsWith('-'));
  const load = named !== undefined && Object.hasOwn(COMMANDS, named) ? [COMMANDS[named]] : Object.values(COMMANDS);
  for (const command of await Promise.all(load.map((make) => make()))) {
    program.addCommand(command.exitOverride().configureOutput({ outputError: (text, write) => write(oneLine(text)) }));
  }
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
}

/** Commander's error on one line, its "(Did you mean chat?)" kept: the suggestion is the useful half of a typo's error. */
function oneLine(text: string): string {
  const [first, ...rest] = text.trim().split('\n');
  const suggestion = rest.find((line) => line.startsWith('(Did you mean'));
  return `${first}${suggestion ? ` ${suggestion.replace('(Did you mean', '(did you mean')}` : ''}\n`;
}
