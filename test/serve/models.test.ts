import { describe, expect, it } from 'vitest';
import { parseModelSpec } from '../../src/serve/model-registry.js';
import { exportedTinyModel } from '../helpers/models.js';
import { postJson, startTestServer } from '../helpers/server.js';

describe('several models in one server', () => {
  it('reads PATH, NAME=PATH and NAME@VERSION=PATH', () => {
    expect(parseModelSpec('./models/x-int8')).toEqual({ name: 'x-int8', path: './models/x-int8' });
    expect(parseModelSpec('chat=./m')).toEqual({ name: 'chat', version: undefined, path: './m' });
    expect(parseModelSpec('chat@2=./m')).toEqual({ name: 'chat', version: '2', path: './m' });
    expect(() => parseModelSpec('bad name=./m')).toThrow(/NAME@VERSION=PATH/);
    // Named, without NAME=, as the model is called: the GGUF file without .gguf, the Ollama name, the id's last part.
    expect(parseModelSpec('/m/SmolLM2-135M-Instruct.Q4_1.gguf').name).toBe('SmolLM2-135M-Instruct.Q4_1');
    expect(parseModelSpec('ollama:smollm2:135m')).toEqual({ name: 'smollm2:135m', path: 'ollama:smollm2:135m' });
    expect(parseModelSpec('HuggingFaceTB/SmolLM2-135M-Instruct').name).toBe('SmolLM2-135M-Instruct');
  });

  it('routes by name@version, by name to the last version listed, and 404s the rest', async () => {
    const path = await exportedTinyModel();
    const server = await startTestServer({ models: [`tiny@1=${path}`, `tiny@2=${path}`, `other=${path}`] });
    try {
      const list = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
      expect(list.data.map((m) => m.id)).toEqual(['tiny@1', 'tiny@2', 'other']);
      const ask = async (model: string) => postJson(`${server.url}/v1/completions`, { model, prompt: 'Hi', max_tokens: 2 });
      expect((await ask('tiny@1')).body.model).toBe('tiny@1');
      expect((await ask('tiny')).body.model).toBe('tiny@2');
      expect((await ask('other')).body.model).toBe('other');
      const missing = await ask('tiny@3');
      expect(missing.status).toBe(404);
      expect(missing.body.error!.message).toContain('tiny@1, tiny@2, other');
    } finally {
      await server.drain();
    }
  });
});
