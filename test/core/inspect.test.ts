import { copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SUPPORTED_ARCHITECTURES } from '../../src/core/architectures.js';
import { inspectModel } from '../../src/core/inspect.js';
import { ModelTokenizer } from '../../src/engine/tokenizer.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { exportedFamilyModel, familyModel } from '../helpers/models.js';

/** A folder with Llama 2's real tokenizer and a chat template that uses a filter transformers.js lacks. */
function folderWithUnrenderableTemplate(): string {
  const dir = join(tempDir('llmkit-inspect-'), 'bad-template');
  mkdirSync(dir);
  const source = join('node_modules', '@lenml', 'tokenizer-llama2', 'models');
  copyFileSync(join(source, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  const config = JSON.parse(readFileSync(join(source, 'tokenizer_config.json'), 'utf8'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: "{% for m in messages %}{{ m['content'] | shout }}{% endfor %}" }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', num_hidden_layers: 2, max_position_embeddings: 4096, vocab_size: 32000 }));
  return dir;
}

describe('llmkit inspect', () => {
  it('tells a Hugging Face folder: architecture, parameters from the safetensors header, context, tokenizer, template, commands', async () => {
    const r = await runCli(['--json', 'inspect', await familyModel('gemma3')]);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(JSON.parse(String(r.stdout))).toMatchObject({
      kind: 'huggingface',
      architecture: 'Gemma3ForCausalLM',
      modelType: 'gemma3_text',
      family: SUPPORTED_ARCHITECTURES.Gemma3ForCausalLM.family,
      supported: true,
      // embeddings 262144 x 64 (tied) + 3 layers: what family_model.py reports for the same config.
      parameters: 16_913_408,
      layers: 3,
      contextLength: 32768,
      vocabSize: 262144,
      tokenizer: { present: true, file: 'tokenizer.json', class: 'GemmaTokenizer', eos: '<end_of_turn>' },
      chatTemplate: { present: true, source: 'chat_template.jinja' },
      commands: ['finetune', 'distill', 'lora merge', 'export', 'quantize', 'export --gguf'],
      hint: null,
    });
  });

  it('lists export --gguf for the families it writes (Gemma 3 above), not for Mistral', async () => {
    const llama = await familyModel('llama3');
    const mistral = join(tempDir('llmkit-inspect-'), 'mistral');
    mkdirSync(mistral);
    for (const file of readdirSync(llama)) if (file !== 'config.json') symlinkSync(join(llama, file), join(mistral, file));
    const config = JSON.parse(readFileSync(join(llama, 'config.json'), 'utf8'));
    writeFileSync(join(mistral, 'config.json'), JSON.stringify({ ...config, architectures: ['MistralForCausalLM'], model_type: 'mistral' }));
    expect((await inspectModel(mistral)).commands).toEqual(['finetune', 'distill', 'lora merge', 'export', 'quantize']);
  });

  it('tells an export, whose template the engine renders, and the context its longrope graph is exact for', async () => {
    const report = await inspectModel(await exportedFamilyModel('phi3'));
    expect(report).toMatchObject({ kind: 'export', architecture: 'Phi3ForCausalLM', precision: 'fp32', commands: ['serve', 'chat', 'bench', 'quantize'] });
    // Phi-3's config says 131072; the traced graph holds the short rotary factors, exact up to the original 4096.
    expect(report.contextLength).toBe(4096);
    expect(report.chatTemplate).toEqual({ present: true, source: 'tokenizer_config.json', renders: true, error: null });
  });

  it('reports a template transformers.js cannot render, with the folder and the reason, in inspect and in the engine', async () => {
    const dir = folderWithUnrenderableTemplate();
    const report = await inspectModel(dir);
    expect(report.chatTemplate.renders).toBe(false);
    expect(report.chatTemplate.error).toBe(`the chat template of ${dir} cannot be rendered by transformers.js (Unknown StringValue filter: shout)`);
    const tokenizer = await ModelTokenizer.load(dir);
    expect(() => tokenizer.encodeChat([{ role: 'user', content: 'hi' }])).toThrow(report.chatTemplate.error!);
    // Plain text still works: serve answers /v1/completions for such a model.
    expect(tokenizer.encode('hi').length).toBeGreaterThan(0);
  });

  it('refuses what llmkit cannot take, naming the supported architectures, and a missing folder in one line', async () => {
    const dir = tempDir('llmkit-inspect-');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3' }));
    const r = await runCli(['--json', 'inspect', dir]);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(String(r.stdout))).toMatchObject({
      supported: false,
      commands: [],
      hint: expect.stringMatching(/^llmkit takes Gemma 3's text model \(Gemma3ForCausalLM, e\.g\. gemma-3-1b\); supported: Gemma3ForCausalLM, /),
    });
    const missing = await runCli(['inspect', join(dir, 'nope')]);
    expect(missing.exitCode).toBe(2);
    expect(String(missing.stderr).trim()).toMatch(/^error: model folder .*nope does not exist; pass a Hugging Face model folder \(config\.json\) or a folder made by `llmkit export`$/);
  });
});
