import { describe, expect, it } from 'vitest';
import { defineCommand, flagSyntax, helpText, resolveOptions } from '../../src/core/options/define.js';
import { booleanField, intField } from '../../src/core/options/fields.js';
import { UsageError } from '../../src/shared/errors.js';
import { TRAIN, usageLine } from '../helpers/options.js';

const typedAll = (values: Record<string, unknown>) => ({ values, typed: (k: string) => k in values });

describe('option definitions', () => {
  it('write each option’s flag and help with its default, fixed or described', () => {
    const o = TRAIN.options;
    expect([flagSyntax('loraR', o.loraR), flagSyntax('exclude', o.exclude), flagSyntax('lora', o.lora)]).toEqual(['--lora-r <n>', '--exclude <nodes...>', '--lora']);
    expect(helpText(o.loraR)).toBe('LoRA rank (default: 16)');
    expect(helpText(o.schedule)).toBe('learning-rate decay (default: "cosine")');
    expect(helpText(o.levels)).toBe('levels (default: "1,4")');
    expect(helpText(o.lr)).toBe('peak learning rate (default: 2 with --lora, 1 without)');
    // A switch's default is what leaving it out means: not shown.
    expect(helpText(o.lora)).toBe('train an adapter');
    expect(helpText(o.data)).toBe('data files');
  });

  it('give the recipe keys and the keys whose paths a recipe resolves', () => {
    expect(TRAIN.keys).toEqual(['model', 'data', 'loraR', 'schedule', 'levels', 'lr', 'lora', 'report', 'exclude']);
    expect(TRAIN.pathKeys).toEqual(['model', 'data']);
  });

  it('validate to typed options with the defaults filled in', () => {
    expect(resolveOptions(TRAIN, typedAll({ model: 'm', loraR: '8', levels: '1,2', exclude: ['a', 'b'] }))).toEqual({
      model: 'm',
      loraR: 8,
      schedule: 'cosine',
      levels: [1, 2],
      lora: false,
      report: true,
      exclude: ['a', 'b'],
    });
  });

  it('reject a bad value with one line naming the flag, the rule and the value', () => {
    expect(usageLine(() => resolveOptions(TRAIN, typedAll({ model: 'm', loraR: '-4' })))).toBe('--lora-r must be an integer ≥ 1 (got -4)');
    expect(usageLine(() => resolveOptions(TRAIN, typedAll({ model: 'm', schedule: 'step' })))).toBe('--schedule must be one of linear, cosine (got step)');
    expect(usageLine(() => resolveOptions(TRAIN, typedAll({ model: 'm', levels: '1,x' })))).toBe('--levels must be a comma-separated list of integers ≥ 1 (got 1,x)');
    expect(usageLine(() => resolveOptions(TRAIN, typedAll({ model: 'm', lr: '2' })))).toBe('--lr needs --lora');
    expect(usageLine(() => resolveOptions(TRAIN, typedAll({})))).toBe('<model> is required; pass a model folder');
    const fromRecipe = usageLine(() => resolveOptions(TRAIN, typedAll({ model: 'm' }), { path: 'r.yaml', values: { loraR: 0 } }));
    expect(fromRecipe).toBe('--lora-r must be an integer ≥ 1 (got 0 in r.yaml)');
  });

  it('take typed flags over the recipe, and the recipe over the defaults', () => {
    const recipe = { path: 'r.yaml', values: { model: 'from-recipe', loraR: 4, schedule: 'linear' } };
    const options = resolveOptions(TRAIN, typedAll({ loraR: '32' }), recipe);
    expect([options.model, options.loraR, options.schedule, options.levels]).toEqual(['from-recipe', 32, 'linear', [1, 4]]);
  });

  it('run the definition’s own checks after the values are valid, with what was typed', () => {
    const seen: string[] = [];
    const checked = defineCommand({
      name: 'x',
      description: 'x',
      options: { a: { field: intField(0), value: '<n>', default: 1, help: 'a' }, b: { field: booleanField(), default: false, help: 'b' } },
      finish: (o, typed) => {
        seen.push(`a=${o.a} typed=${typed('a')}`);
        if (o.b && o.a === 0) throw new UsageError('--b goes with --a 1 or more');
        return { total: o.a + 1 };
      },
    });
    expect(resolveOptions(checked, { values: { a: '2' }, typed: () => true })).toEqual({ total: 3 });
    expect(usageLine(() => resolveOptions(checked, typedAll({ a: '0', b: true })))).toBe('--b goes with --a 1 or more');
    expect(usageLine(() => resolveOptions(checked, typedAll({ a: 'x' })))).toBe('--a must be an integer ≥ 0 (got x)');
    expect(seen).toEqual(['a=2 typed=true', 'a=0 typed=true']);
  });
});
