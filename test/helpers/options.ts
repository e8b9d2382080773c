import { expect } from 'vitest';
import { defineCommand } from '../../src/core/options/define.js';
import { booleanField, enumField, intField, intListField, pathsField, textField, textsField } from '../../src/core/options/fields.js';
import { UsageError } from '../../src/shared/errors.js';

/** A definition with one option of each kind, for the tests of definitions and of the commands built from them. */
export const TRAIN = defineCommand({
  name: 'train',
  description: 'a command for the tests',
  recipes: true,
  options: {
    model: { field: textField(), positional: true, required: true, path: true, help: 'model folder' },
    data: { field: pathsField(), value: '<file>', repeat: true, path: true, help: 'data files' },
    loraR: { field: intField(1), value: '<n>', default: 16, help: 'LoRA rank' },
    schedule: { field: enumField(['linear', 'cosine']), value: '<name>', default: 'cosine', help: 'learning-rate decay' },
    levels: { field: intListField(1), value: '<list>', default: [1, 4], help: 'levels' },
    lr: { field: intField(1), value: '<rate>', help: 'peak learning rate', defaultHelp: '2 with --lora, 1 without' },
    lora: { field: booleanField(), default: false, help: 'train an adapter', negate: 'no adapter even where the recipe says so' },
    report: { field: booleanField(), default: true, help: 'measure at the end', negate: 'skip the measurement' },
    exclude: { field: textsField(), value: '<nodes>', variadic: true, help: 'nodes to skip' },
  },
  rules: { requires: { lr: ['lora'] }, hints: { model: 'pass a model folder' } },
});

/** The one line a UsageError prints (message; hint); fails the test when `f` does not throw one. */
export function usageLine(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as UsageError).message + ((e as UsageError).hint ? `; ${(e as UsageError).hint}` : '');
  }
  throw new Error('expected a UsageError');
}
