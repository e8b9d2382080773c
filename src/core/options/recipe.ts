import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { z } from 'zod';
import { closestName } from '../../shared/closest.js';
import { UsageError } from '../../shared/errors.js';
import { isHfModelId } from '../import/hf-cache.js';

/**
 * Recipes: a YAML mapping whose keys are a command's long flag names (camelCase `loraR` or kebab-case
 * `lora-r`) and whose values are what the flags would take. Flags the user types override the recipe;
 * the recipe overrides the flags' defaults. One zod schema validates the merged result, so a bad value
 * gets the same message whether it came from the command line or the recipe.
 */
export interface Recipe {
  path: string;
  /** Values keyed by camelCase flag name. */
  values: Record<string, unknown>;
}

export function camelCase(key: string): string {
  return key.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** `loraR` → `--lora-r`; names in `positional` (e.g. `{ model: '<model>' }`) are shown as given. */
export function flagName(key: string, positional: Record<string, string> = {}): string {
  return positional[key] ?? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

export interface LoadRecipeOptions {
  /** The keys the command accepts (camelCase). */
  keys: readonly string[];
  /** Keys whose values are paths: relative ones are taken from the recipe's folder, so a recipe works from any directory. */
  pathKeys?: readonly string[];
}

export async function loadRecipe(path: string, opts: LoadRecipeOptions): Promise<Recipe> {
  if (!existsSync(path)) throw new UsageError(`--recipe ${path} does not exist`, 'pass a YAML recipe file (see recipes/)');
  // Imported here, not at the top: every command's options come from this module, and --help need not load a YAML parser.
  const { parseDocument } = await import('yaml');
  const doc = parseDocument(await readFile(path, 'utf8'));
  if (doc.errors.length) {
    const e = doc.errors[0];
    const at = e.linePos?.[0];
    // yaml's message ends with "at line L, column C:" before a picture of the line; the place goes after the path instead.
    const what = e.message
      .split('\n')[0]
      .replace(/\s*at line \d+, column \d+:?$/, '')
      .replace(/:$/, '');
    throw new UsageError(`--recipe ${path}${at ? `:${at.line}:${at.col}` : ''}: ${what}`, 'fix the YAML');
  }
  const data: unknown = doc.toJS();
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new UsageError(`--recipe ${path} must be a YAML mapping of flag names to values`, 'e.g. `lora-r: 16`');
  }
  const values: Record<string, unknown> = {};
  for (const [rawKey, value] of Object.entries(data)) {
    const key = camelCase(rawKey);
    if (!opts.keys.includes(key)) {
      const meant = closestName(key, opts.keys);
      const examples = opts.keys
        .slice(0, 4)
        .map((k) => flagName(k).slice(2))
        .join(', ');
      throw new UsageError(`--recipe ${path}: unknown key "${rawKey}"${meant ? ` (did you mean ${flagName(meant).slice(2)}?)` : ''}`, `keys are the command's long flag names, e.g. ${examples}`);
    }
    values[key] = opts.pathKeys?.includes(key) ? resolvePaths(value, dirname(resolve(path)), MODEL_KEYS.has(key)) : value;
  }
  return { path, values };
}

/** The keys that name a model, which may be a Hugging Face id. */
const MODEL_KEYS = new Set(['model', 'teacher']);

/**
 * `builtin:tiny`- and `ollama:name`-style references are not paths and stay as they are; so does a model's Hugging Face
 * id (`org/name`) unless a folder of that name is beside the recipe.
 */
function resolvePaths(value: unknown, base: string, model: boolean): unknown {
  if (Array.isArray(value)) return value.map((v) => resolvePaths(v, base, model));
  if (typeof value !== 'string' || isAbsolute(value) || /^[a-z][a-z0-9+.-]+:/i.test(value)) return value;
  const beside = resolve(base, value);
  return model && !existsSync(beside) && isHfModelId(value) ? value : beside;
}

/** What the command line gave: values by camelCase name, and whether the user typed each one. */
export interface FlagValues {
  values: Record<string, unknown>;
  typed: (key: string) => boolean;
}

export interface FlagRules {
  /** Groups of flags that contradict each other: at most one of each group may be set. */
  exclusive?: string[][];
  /** A flag that only makes sense with one of some others (`loraR: ['lora']`). */
  requires?: Record<string, string[]>;
  /** Display names of positional arguments (`{ model: '<model>' }`). */
  positional?: Record<string, string>;
  /** What to say when a required flag is missing (`{ data: 'pass a JSONL file' }`). */
  hints?: Record<string, string>;
}

/**
 * Merges flag defaults < recipe < typed flags and validates the result with `schema`. A conflict between a
 * typed flag and a recipe value (say the recipe sets --epochs and the user types --max-steps) is settled
 * for the typed flag; a conflict within one layer is a UsageError naming both flags.
 */
export function resolveConfig<S extends z.ZodType>(schema: S, flags: FlagValues, recipe?: Recipe, rules: FlagRules = {}): z.output<S> {
  const merged: Record<string, unknown> = {};
  const fromRecipe = new Set<string>();
  for (const [k, v] of Object.entries(flags.values)) if (v !== undefined && !flags.typed(k)) merged[k] = v;
  for (const [k, v] of Object.entries(recipe?.values ?? {})) {
    merged[k] = v;
    fromRecipe.add(k);
  }
  for (const [k, v] of Object.entries(flags.values)) if (v !== undefined && flags.typed(k)) merged[k] = v;
  const set = (k: string) => merged[k] !== undefined && merged[k] !== false;
  const name = (k: string) => flagName(k, rules.positional);
  const drop = (k: string) => fromRecipe.has(k) && !flags.typed(k) && delete merged[k];

  for (const group of rules.exclusive ?? []) {
    if (group.some((k) => flags.typed(k) && set(k))) group.filter((k) => !flags.typed(k)).forEach(drop);
    const present = group.filter(set);
    if (present.length > 1) throw new UsageError(`${present.map(name).join(' and ')} contradict each other: pass one of them`);
  }
  for (const [key, needs] of Object.entries(rules.requires ?? {})) {
    if (!set(key) || needs.some(set)) continue;
    // Typing --no-lora over a LoRA recipe makes the recipe's --lora-r moot rather than an error.
    if (needs.some((n) => flags.typed(n)) && drop(key)) continue;
    throw new UsageError(`${name(key)} needs ${needs.map(name).join(' or ')}`);
  }

  const parsed = schema.safeParse(merged);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const key = String(issue.path[0] ?? '');
  const value = merged[key];
  if (value === undefined) throw new UsageError(`${name(key)} is required`, rules.hints?.[key]);
  const where = fromRecipe.has(key) && !flags.typed(key) ? ` in ${recipe!.path}` : '';
  throw new UsageError(`${name(key)} ${issue.message} (got ${typeof value === 'string' ? value : JSON.stringify(value)}${where})`);
}
