import { z } from 'zod';
import { flagName, resolveConfig, type FlagRules, type FlagValues, type Recipe } from './recipe.js';

/**
 * The one way a command defines its options. A definition lists each flag and positional argument once,
 * with its help, default and zod field; from it come the command line (src/cli/command.ts turns it into
 * commander options), --help with the defaults shown, the recipe keys, and the validated, typed options
 * the command hands to core. Only zod is imported: `llmkit --help` loads every definition.
 */
export interface OptionSpec {
  /** Checks and converts a value: the command line's string(s), or whatever YAML a recipe holds. */
  field: z.ZodType;
  /** What the option does, for --help. */
  help: string;
  /** The value's placeholder in --help (`<n>`); a switch (a boolean flag) has none. */
  value?: string;
  /** Taken when neither the command line nor a recipe sets it, and shown in --help (switches: not shown). */
  default?: string | number | boolean | readonly number[];
  /** What --help says the default is when it is not one value (`the model's context, at most 2048`). */
  defaultHelp?: string;
  /** A one-letter form of the flag (`i` for `-i, --input`). */
  short?: string;
  /** A value must be there once flags, recipe and defaults are merged. */
  required?: boolean;
  /** Help of the `--no-` form, for a switch that is on by default or that a recipe may turn on. */
  negate?: string;
  /** The flag may be given more than once; its values make a list. */
  repeat?: boolean;
  /** Several values after one flag (`--exclude a b`), or a last positional argument taking the rest. */
  variadic?: boolean;
  /** A positional argument instead of a flag; they come in the order the definition lists them. */
  positional?: boolean;
  /** How --help shows a positional argument when not `<key>` or `[key]` (chat's folder shows as `[model]`). */
  display?: string;
  /** A recipe's relative path for this key is taken from the recipe's folder. */
  path?: boolean;
}

export type OptionSpecs = Record<string, OptionSpec>;

/** A spec's field as the command's schema holds it: with its default, required, or optional. */
type FieldOf<S extends OptionSpec> = S extends { default: NonNullable<unknown> } ? z.ZodDefault<S['field']> : S extends { required: true } ? S['field'] : z.ZodOptional<S['field']>;
export type SchemaOf<O extends OptionSpecs> = z.ZodObject<{ -readonly [K in keyof O]: FieldOf<O[K]> }>;
/** The options a command's definition validates to. */
export type Parsed<O extends OptionSpecs> = z.output<SchemaOf<O>>;

export interface CommandSpec<O extends OptionSpecs, R> {
  name: string;
  description: string;
  options: O;
  /** The command takes `--recipe FILE`, a YAML mapping of these options' names to values. */
  recipes?: boolean;
  /** Flags that contradict each other, flags that need others, hints for missing required ones. */
  rules?: Omit<FlagRules, 'positional'>;
  /**
   * Checks across options that the rules cannot say, after each value is valid (`--python goes with --setup`),
   * turning the options into what core takes. `typed` says whether the user typed a flag (not a recipe or a default).
   */
  finish?: (options: Parsed<O>, typed: (key: string) => boolean) => R;
}

export interface CommandDefinition<O extends OptionSpecs = OptionSpecs, R = unknown> extends CommandSpec<O, R> {
  schema: SchemaOf<O>;
  /** Recipe keys (camelCase): every option. */
  keys: string[];
  /** Recipe keys whose relative paths are taken from the recipe's folder. */
  pathKeys: string[];
}

export function defineCommand<const O extends OptionSpecs, R = Parsed<O>>(spec: CommandSpec<O, R>): CommandDefinition<O, R> {
  let schema: SchemaOf<O> | undefined;
  const keys = Object.keys(spec.options);
  return {
    ...spec,
    // Built on first use, like the fields: --help never validates.
    get schema() {
      schema ??= z.object(
        Object.fromEntries(Object.entries(spec.options).map(([key, o]) => [key, o.default !== undefined ? o.field.default(o.default as never) : o.required ? o.field : o.field.optional()])),
      ) as SchemaOf<O>;
      return schema;
    },
    keys,
    pathKeys: keys.filter((k) => spec.options[k].path),
  };
}

/** How --help and error messages name a positional argument: `<model>`, `[model]`, `<models...>`. */
export function positionalName(key: string, o: OptionSpec, optional: boolean): string {
  if (o.display) return o.display;
  const name = `${key}${o.variadic ? '...' : ''}`;
  return optional ? `[${name}]` : `<${name}>`;
}

/** `--lora-r <n>`, `--exclude <nodes...>`, `--packing`: the flag as commander reads it and --help shows it. */
export function flagSyntax(key: string, o: OptionSpec): string {
  const name = o.short ? `-${o.short}, ${flagName(key)}` : flagName(key);
  return o.value ? `${name} ${o.value.replace(/>$/, o.variadic ? '...>' : '>')}` : name;
}

/** The help line of an option: its help, then the default (a fixed value, or words for one that depends on other things). */
export function helpText(o: OptionSpec): string {
  const shown = o.defaultHelp ?? (o.default === undefined || typeof o.default === 'boolean' ? undefined : formatDefault(o.default));
  return shown === undefined ? o.help : `${o.help} (default: ${shown})`;
}

function formatDefault(value: string | number | readonly number[]): string {
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value === 'number' ? String(value) : JSON.stringify(value.join(','));
}

/**
 * The command's options from what was typed, a recipe and the defaults (typed > recipe > default), validated
 * by the definition's schema: a bad value is a one-line UsageError naming the flag, the value and where it came from.
 */
export function resolveOptions<O extends OptionSpecs, R>(def: CommandDefinition<O, R>, flags: FlagValues, recipe?: Recipe): R {
  const positional = Object.fromEntries(
    Object.entries(def.options)
      .filter(([, o]) => o.positional)
      .map(([k, o]) => [k, positionalName(k, o, false)]),
  );
  const options = resolveConfig(def.schema, flags, recipe, { ...def.rules, positional }) as Parsed<O>;
  return def.finish ? def.finish(options, flags.typed) : (options as R);
}
