import { describe, expect, it } from 'vitest';
import { planStudent, resolveDistillOptions, type DistillOptions } from '../../src/core/distill/options.js';
import { usageLine } from '../helpers/options.js';

const TEACHER = { model_type: 'llama', num_hidden_layers: 12, hidden_size: 768, intermediate_size: 2048, num_attention_heads: 12, num_key_value_heads: 4, head_dim: 64 };
const base = { teacher: 't', data: 'd.jsonl', out: 'o' };

function resolve(values: Record<string, unknown>): DistillOptions {
  const all = { ...base, ...values };
  return resolveDistillOptions({ values: all, typed: (k) => k in all });
}

describe('distill options', () => {
  it('takes the student config as key=value pairs or a mapping, and layer lists', () => {
    expect(resolve({ studentConfig: 'num_hidden_layers=6, intermediate_size=1024' }).studentConfig).toEqual({ num_hidden_layers: 6, intermediate_size: 1024 });
    expect(resolve({ studentConfig: { hidden_size: 512 } }).studentConfig).toEqual({ hidden_size: 512 });
    expect(resolve({ studentLayers: '0, 5,11' })).toMatchObject({ studentLayers: [0, 5, 11], mode: 'logits', report: true });
  });

  it('rejects bad and contradicting flags with one line naming the flag', () => {
    expect(usageLine(() => resolve({}))).toMatch(/^--student or --student-config is required; pass a smaller model with the teacher's tokenizer as --student/);
    expect(usageLine(() => resolve({ student: 's', studentConfig: 'num_hidden_layers=1' }))).toBe('--student and --student-config contradict each other: pass one of them');
    expect(usageLine(() => resolve({ studentConfig: 'layers=1' }))).toBe(
      '--student-config must be key=value pairs (comma-separated) of num_hidden_layers, hidden_size, intermediate_size, num_attention_heads, num_key_value_heads, head_dim with integer values ≥ 1 (got layers=1)',
    );
    expect(usageLine(() => resolve({ studentConfig: 'num_hidden_layers=half' }))).toMatch(/^--student-config must be key=value pairs/);
    expect(usageLine(() => resolve({ studentLayers: '0,x' }))).toBe('--student-layers must be a comma-separated list of teacher layer indices (integers ≥ 0) (got 0,x)');
    expect(usageLine(() => resolve({ student: 's', alpha: '1.5' }))).toBe('--alpha must be a number ≥ 0 and ≤ 1 (got 1.5)');
    expect(usageLine(() => resolve({ student: 's', temperature: '0' }))).toBe('--temperature must be a number > 0 and ≤ 100 (got 0)');
    expect(usageLine(() => resolve({ student: 's', mode: 'sequence', temperature: '3' }))).toBe('--temperature applies to --mode logits only');
    expect(usageLine(() => resolve({ student: 's', maxNewTokens: '64' }))).toBe('--max-new-tokens applies to --mode sequence only');
    expect(usageLine(() => resolve({ student: 's', mode: 'words' }))).toBe('--mode must be one of logits, sequence (got words)');
  });

  it('drops the recipe settings of the other mode when --mode is typed over it', () => {
    const recipe = { path: 'r.yaml', values: { temperature: 4, alpha: 0.9 } };
    const typed = { ...base, student: 's', mode: 'sequence' };
    const options = resolveDistillOptions({ values: typed, typed: (k) => k in typed }, recipe);
    expect([options.mode, options.temperature, options.alpha]).toEqual(['sequence', undefined, undefined]);
    expect(usageLine(() => resolveDistillOptions({ values: { ...base, student: 's' }, typed: () => true }, { path: 'r.yaml', values: { mode: 'sequence', alpha: 0.9 } }))).toBe(
      '--alpha applies to --mode logits only',
    );
  });

  it('plans a built student against the teacher: evenly spaced layers, first and last kept, unless given', () => {
    expect(planStudent({ studentConfig: { num_hidden_layers: 4 } }, TEACHER)).toEqual({ config: { num_hidden_layers: 4 }, layers: [0, 4, 7, 11] });
    expect(planStudent({ studentConfig: { num_hidden_layers: 1 } }, TEACHER).layers).toEqual([0]);
    expect(planStudent({ studentConfig: { intermediate_size: 1024 } }, TEACHER).layers).toHaveLength(12);
    expect(planStudent({ studentLayers: [11] }, TEACHER)).toEqual({ config: {}, layers: [11] });
  });

  it('refuses student shapes the teacher cannot give', () => {
    expect(usageLine(() => planStudent({ studentConfig: { num_hidden_layers: 16 } }, TEACHER))).toBe(
      "--student-config num_hidden_layers=16 is larger than the teacher's 12; a student is at most the size of its teacher",
    );
    expect(usageLine(() => planStudent({ studentConfig: { num_attention_heads: 6 } }, TEACHER))).toBe('--student-config: num_attention_heads 6 is not a multiple of num_key_value_heads 4');
    expect(usageLine(() => planStudent({ studentLayers: [0, 12] }, TEACHER))).toBe('--student-layers 12: the teacher has layers 0 to 11');
    expect(usageLine(() => planStudent({ studentConfig: { num_hidden_layers: 3 }, studentLayers: [0, 11] }, TEACHER))).toBe(
      '--student-layers lists 2 layers but --student-config has num_hidden_layers=3; give one teacher layer for each student layer',
    );
    const { head_dim: _, ...noHeadDim } = TEACHER;
    expect(usageLine(() => planStudent({ studentConfig: { hidden_size: 500 } }, noHeadDim))).toBe('--student-config: hidden_size 500 is not a multiple of num_attention_heads 12');
    expect(usageLine(() => planStudent({ studentConfig: { head_dim: 32 } }, noHeadDim))).toMatch(
      /^--student-config head_dim: the teacher's config.json has no head_dim; change num_hidden_layers, hidden_size/,
    );
  });
});
