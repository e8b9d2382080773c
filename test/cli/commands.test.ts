import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/main.js';

describe('the command table', () => {
  it('is keyed by each command’s own name, so running one command loads the right file', async () => {
    for (const [name, make] of Object.entries(COMMANDS)) expect((await make()).name()).toBe(name);
    expect(Object.keys(COMMANDS)).toEqual(['env', 'make-model', 'finetune', 'distill', 'lora', 'import', 'export', 'inspect', 'quantize', 'serve', 'bench', 'batch', 'chat', 'demo']);
  });
});
