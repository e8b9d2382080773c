import { describe, expect, it } from 'vitest';
import { groupByBase, type ModelInfo } from '../../src/serve/ui/api.js';

const model = (id: string, parent?: string): ModelInfo => ({ id, context_length: 1024, device: 'cpu', parent: parent ?? null });

describe("the page's model picker groups LoRA adapters under their base (/v1/models' parent)", () => {
  it('keeps each base with its adapters, in the order /v1/models lists them', () => {
    const groups = groupByBase([model('llama'), model('fr', 'llama'), model('qwen'), model('de', 'llama'), model('sql', 'qwen')]);
    expect(groups.map((g) => [g.base, g.model?.id, g.adapters.map((a) => a.id)])).toEqual([
      ['llama', 'llama', ['fr', 'de']],
      ['qwen', 'qwen', ['sql']],
    ]);
  });

  it('works without adapters, and with an adapter whose base is not listed', () => {
    expect(groupByBase([model('a'), model('b')]).map((g) => [g.base, g.adapters.length])).toEqual([
      ['a', 0],
      ['b', 0],
    ]);
    const [orphan] = groupByBase([model('fr', 'hidden')]);
    expect([orphan.base, orphan.model, orphan.adapters.map((a) => a.id)]).toEqual(['hidden', undefined, ['fr']]);
  });
});
