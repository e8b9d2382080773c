import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { ggufPackageDir } from '../../src/core/gguf/export.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { runCli, tempDir } from '../helpers/cli.js';

// GGUF files llmkit must refuse, written with gguf-py: an architecture transformers cannot read, and a tensor type
// (Q8_1, llama.cpp's intermediate type) that gguf-py cannot de-quantize.
const WRITE_GGUFS = `
import sys, numpy as np, gguf
def write(path, arch, raw):
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(1)
    if raw:
        w.add_tensor("token_embd.weight", np.zeros((4, 40), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_1)
    else:
        w.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
write(sys.argv[1], "rwkv6", False)
write(sys.argv[2], "llama", True)
`;

describe('llmkit import refuses, in one line, what it cannot import', () => {
  const dir = tempDir();
  const [rwkv, q81] = [join(dir, 'rwkv.gguf'), join(dir, 'q8_1.gguf')];

  beforeAll(async () => {
    const { python } = await requirePythonEnv();
    await execa(python, ['-c', WRITE_GGUFS, rwkv, q81], { env: { PYTHONPATH: await ggufPackageDir() } });
  });

  it('names the architecture transformers cannot read', async () => {
    const r = await runCli(['import', rwkv, '--out', join(dir, 'out')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^error: ${rwkv}: GGUF architecture 'rwkv6' cannot be imported; transformers reads llama, mistral, qwen2, `));
  });

  it('names the tensor type it cannot de-quantize', async () => {
    const r = await runCli(['import', q81, '--out', join(dir, 'out')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim()).toMatch(new RegExp(`^error: ${q81}: GGUF tensor type Q8_1 cannot be de-quantized; convert the model to F16, Q8_0 or Q4_K first`));
  });

  it('says which Ollama models a store holds when the one asked for is not there', async () => {
    const store = join(dir, 'ollama');
    mkdirSync(join(store, 'manifests', 'registry.ollama.ai', 'library', 'qwen2.5'), { recursive: true });
    writeFileSync(join(store, 'manifests', 'registry.ollama.ai', 'library', 'qwen2.5', '0.5b'), '{"layers":[]}');
    const r = await runCli(['import', 'ollama:llama3.2'], { env: { OLLAMA_MODELS: store } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe(`error: ollama:llama3.2:latest is not in the Ollama store ${store}; models there: qwen2.5:0.5b`);
  });

  it('refuses a folder (it needs no import) and a Hugging Face id that neither the cache nor the hub has', async () => {
    const folder = await runCli(['import', dir]);
    expect(folder.exitCode).toBe(2);
    expect(folder.stderr.trim()).toBe(`error: ${dir} is neither a .gguf file, an ollama: name nor a Hugging Face id; a model folder needs no import: pass it to the commands as it is`);
    const hf = await runCli(['import', 'nobody/no-such-model'], { env: { HF_HUB_CACHE: join(dir, 'hub'), HF_HUB_OFFLINE: '1' } });
    expect(hf.exitCode).toBe(1);
    expect(hf.stderr.trim().split('\n')).toHaveLength(1);
    expect(hf.stderr).toMatch(/^error: nobody\/no-such-model is not a folder, nor a model in the local Hugging Face cache, and could not be downloaded: /);
  });
});
