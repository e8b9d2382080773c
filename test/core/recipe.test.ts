import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LlmkitError, UsageError } from '../../src/shared/errors.js';
import { intField, listField } from '../../src/core/options/fields.js';
import { camelCase, flagName, loadRecipe, resolveConfig, type Recipe } from '../../src/core/options/recipe.js';
import { tempDir } from '../helpers/cli.js';

const KEYS = ['model', 'data', 'loraR', 'epochs', 'maxSteps', 'lora', 'targets'];

function recipeFile(text: string): string {
  const path = join(tempDir(), 'recipe.yaml');
  writeFileSync(path, text);
  return path;
}

async function usageError(fn: () => unknown): Promise<UsageError> {
  const e = await Promise.resolve()
    .then(fn)
    .then(
      () => null,
      (err: unknown) => err,
    );
  expect(e).toBeInstanceOf(UsageError);
  return e as UsageError;
}

const schema = z.object({
  model: z.string(),
  loraR: intField(1).default(16),
  epochs: intField(1).optional(),
  maxSteps: intField(1).optional(),
  lora: z.boolean().default(false),
  targets: listField().optional(),
});
const rules = { exclusive: [['epochs', 'maxSteps']], requires: { loraR: ['lora'] }, positional: { model: '<model>' } };
const flags = (values: Record<string, unknown>, typed: string[] = Object.keys(values)) => ({ values, typed: (k: string) => typed.includes(k) });

describe('recipes', () => {
  it('maps flag names both ways', () => {
    expect(camelCase('lora-r')).toBe('loraR');
    expect(camelCase('maxSeqLen')).toBe('maxSeqLen');
    expect(flagName('gradientCheckpointing')).toBe('--gradient-checkpointing');
    expect(flagName('model', { model: '<model>' })).toBe('<model>');
  });

  it('loads kebab-case and camelCase keys and resolves relative paths from the recipe folder', async () => {
    const path = recipeFile('# a comment\nmodel: builtin:tiny\ndata: [../d.jsonl, /abs/e.jsonl]\nlora-r: 8\nmaxSteps: 3\n');
    const recipe = await loadRecipe(path, { keys: KEYS, pathKeys: ['model', 'data'] });
    expect(recipe.values).toEqual({ model: 'builtin:tiny', data: [join(path, '..', '..', 'd.jsonl'), '/abs/e.jsonl'], loraR: 8, maxSteps: 3 });
  });

  it("keeps a model's Hugging Face id or ollama: name as it is, unless a folder of that name is beside the recipe", async () => {
    const path = recipeFile('model: HuggingFaceTB/SmolLM2-135M-Instruct\ndata: org/d.jsonl\n');
    const recipe = await loadRecipe(path, { keys: KEYS, pathKeys: ['model', 'data'] });
    // A data file is always a path, even one shaped like an id.
    expect(recipe.values).toEqual({ model: 'HuggingFaceTB/SmolLM2-135M-Instruct', data: join(path, '..', 'org', 'd.jsonl') });
    const ollama = await loadRecipe(recipeFile('model: ollama:smollm2:135m\n'), { keys: KEYS, pathKeys: ['model'] });
    expect(ollama.values.model).toBe('ollama:smollm2:135m');
    mkdirSync(join(path, '..', 'HuggingFaceTB', 'SmolLM2-135M-Instruct'), { recursive: true });
    const local = await loadRecipe(path, { keys: KEYS, pathKeys: ['model'] });
    expect(local.values.model).toBe(join(path, '..', 'HuggingFaceTB', 'SmolLM2-135M-Instruct'));
  });

  it('rejects unknown keys, YAML errors, non-mappings and missing files with the file named', async () => {
    const unknown = await usageError(() => loadRecipe(recipeFile('lora_rank: 8\n'), { keys: KEYS }));
    expect(unknown.message).toMatch(/recipe\.yaml: unknown key "lora_rank"$/);
    expect(unknown.hint).toMatch(/long flag names/);
    expect((await usageError(() => loadRecipe(recipeFile('a: [1, 2\nb: 3\n'), { keys: KEYS }))).message).toMatch(/recipe\.yaml:\d+:\d+: /);
    expect((await usageError(() => loadRecipe(recipeFile('- 1\n- 2\n'), { keys: KEYS }))).message).toMatch(/must be a YAML mapping/);
    expect((await usageError(() => loadRecipe('/no/such/recipe.yaml', { keys: KEYS }))).message).toBe('--recipe /no/such/recipe.yaml does not exist');
  });

  it("suggests the key a typo meant, and names a YAML error's line and column without yaml's trailing colon", async () => {
    expect((await usageError(() => loadRecipe(recipeFile('lroa: true\n'), { keys: KEYS }))).message).toMatch(/unknown key "lroa" \(did you mean lora\?\)$/);
    expect((await usageError(() => loadRecipe(recipeFile('max-setps: 3\n'), { keys: KEYS }))).message).toMatch(/\(did you mean max-steps\?\)$/);
    expect((await usageError(() => loadRecipe(recipeFile('zzz: 1\n'), { keys: KEYS }))).message).toMatch(/unknown key "zzz"$/);
    const yaml = await usageError(() => loadRecipe(recipeFile('lora: true\n  bad: [\n'), { keys: KEYS }));
    expect(yaml.message).toMatch(/recipe\.yaml:1:\d+: \S.*[^:]$/);
    expect(yaml.message).not.toMatch(/column/);
  });

  it('layers flag defaults < recipe < typed flags', () => {
    const recipe: Recipe = { path: 'r.yaml', values: { model: 'from-recipe', loraR: 8, lora: true } };
    const out = resolveConfig(schema, flags({ model: 'typed', loraR: '4' }, ['model']), recipe, rules);
    expect(out).toEqual({ model: 'typed', loraR: 8, lora: true });
    expect(resolveConfig(schema, flags({ loraR: '4' }), recipe, rules).loraR).toBe(4);
  });

  it('settles a typed flag against a recipe value that contradicts it, and rejects contradictions in one layer', async () => {
    const recipe: Recipe = { path: 'r.yaml', values: { model: 'm', epochs: 3, lora: true, loraR: 8 } };
    const settled = resolveConfig(schema, flags({ maxSteps: '5' }), recipe, rules);
    expect([settled.maxSteps, settled.epochs]).toEqual([5, undefined]);
    const typedBoth = await usageError(() => resolveConfig(schema, flags({ model: 'm', epochs: '1', maxSteps: '5' }), undefined, rules));
    expect(typedBoth.message).toBe('--epochs and --max-steps contradict each other: pass one of them');
    const recipeBoth = await usageError(() => resolveConfig(schema, flags({}), { path: 'r.yaml', values: { model: 'm', epochs: 1, maxSteps: 2 } }, rules));
    expect(recipeBoth.message).toBe('--epochs and --max-steps contradict each other: pass one of them');
    // --no-lora typed over a LoRA recipe: the recipe's --lora-r no longer applies.
    expect(resolveConfig(schema, flags({ lora: false }), recipe, rules)).toMatchObject({ lora: false, loraR: 16 });
    const needs = await usageError(() => resolveConfig(schema, flags({ model: 'm', loraR: '8' }), undefined, rules));
    expect(needs.message).toBe('--lora-r needs --lora');
  });

  it('names the flag, the value and where it came from when a value is bad', async () => {
    const typed = await usageError(() => resolveConfig(schema, flags({ model: 'm', lora: true, loraR: '-4' }), undefined, rules));
    expect(typed.message).toBe('--lora-r must be an integer ≥ 1 (got -4)');
    expect(typed.exitCode).toBe(2);
    const fromRecipe = await usageError(() => resolveConfig(schema, flags({}), { path: 'r.yaml', values: { model: 'm', lora: true, loraR: 2.5 } }, rules));
    expect(fromRecipe.message).toBe('--lora-r must be an integer ≥ 1 (got 2.5 in r.yaml)');
    const missing = await usageError(() => resolveConfig(schema, flags({}), undefined, { ...rules, hints: { model: 'pass a folder' } }));
    expect([missing.message, missing.hint]).toEqual(['<model> is required', 'pass a folder']);
    expect(resolveConfig(schema, flags({ model: 'm', targets: 'q_proj, v_proj' }), undefined, rules).targets).toEqual(['q_proj', 'v_proj']);
    expect(missing).toBeInstanceOf(LlmkitError);
  });
});
