import { Argument, Command, Option } from 'commander';
import { flagSyntax, helpText, positionalName, resolveOptions, type CommandDefinition, type OptionSpecs } from '../core/options/define.js';
import { flagName, loadRecipe } from '../core/options/recipe.js';
import { reportError, type GlobalFlags } from './output.js';

const RECIPE_HELP = "YAML recipe whose keys are these flags' names; flags you type override it";

export interface CommandContext {
  flags: GlobalFlags;
  /** The --recipe file, when one was given. */
  recipe?: string;
}

/**
 * Builds a command from its definition in core: its arguments and flags with their help and defaults, and an
 * action that resolves typed flags over the recipe over the defaults, validates them, and hands `run` the
 * typed options. Every error is caught once, printed as one line, and sets the exit code; `run` returns its own.
 */
export function commandFrom<O extends OptionSpecs, R>(def: CommandDefinition<O, R>, run: (options: R, context: CommandContext) => Promise<number | void>): Command {
  const command = new Command(def.name).description(def.description);
  const positionals = Object.entries(def.options).filter(([, o]) => o.positional);
  for (const [key, o] of positionals) {
    // With a recipe, a required argument may come from the recipe instead.
    command.addArgument(new Argument(positionalName(key, o, !o.required || def.recipes === true), helpText(o)));
  }
  if (def.recipes) command.option('--recipe <file>', RECIPE_HELP);
  for (const [key, o] of Object.entries(def.options)) {
    if (o.positional) continue;
    // A switch that is on by default is only turned off; one a recipe may turn on is turned off with --no- too.
    if (!(o.negate && o.default === true)) {
      const option = new Option(flagSyntax(key, o), helpText(o));
      if (o.repeat) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
      if (o.required && !def.recipes) option.makeOptionMandatory();
      command.addOption(option);
    }
    if (o.negate) command.addOption(new Option(`--no-${flagName(key).slice(2)}`, o.negate));
  }

  return command.action(async (...params: unknown[]) => {
    const flags = command.optsWithGlobals() as GlobalFlags;
    const args = params.slice(0, positionals.length);
    try {
      const { recipe: recipePath, ...opts } = command.opts() as Record<string, unknown> & { recipe?: string };
      const values: Record<string, unknown> = { ...opts };
      positionals.forEach(([key], i) => (values[key] = args[i]));
      const typed = (key: string) => (positionals.some(([k]) => k === key) ? values[key] !== undefined : command.getOptionValueSource(key) === 'cli');
      const recipe = recipePath ? await loadRecipe(recipePath, def) : undefined;
      const options = resolveOptions(def, { values, typed }, recipe);
      if (flags.verbose && def.recipes) process.stderr.write(`resolved options: ${JSON.stringify(options)}\n`);
      process.exitCode = (await run(options, { flags, recipe: recipePath })) ?? 0;
    } catch (e) {
      process.exitCode = reportError(e, flags);
    }
  });
}
