import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ggufPackageDir } from '../../src/core/gguf/export.js';
import { checkGgufLoads } from '../../src/core/gguf/llama-cpp.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { tempDir } from '../helpers/cli.js';

// A SentencePiece ("llama") vocabulary without the <0x0A> newline piece: llama.cpp 3.21.1 logs "SPM vocabulary, but
// newline token not found" and aborts its process (std::out_of_range), as it did on SmolLM2's first GGUF export.
const WRITE_BROKEN = `
import sys, numpy as np, gguf
w = gguf.GGUFWriter(sys.argv[1], "llama")
w.add_block_count(1); w.add_context_length(64); w.add_embedding_length(32); w.add_feed_forward_length(64)
w.add_head_count(4); w.add_head_count_kv(4); w.add_layer_norm_rms_eps(1e-5)
w.add_tokenizer_model("llama")
w.add_token_list(["<unk>", "<s>", "</s>", "a", "b"]); w.add_token_scores([0.0] * 5); w.add_token_types([2, 3, 3, 1, 1])
w.add_tensor("token_embd.weight", np.zeros((5, 32), dtype=np.float32))
w.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
for name, shape in [("attn_norm", (32,)), ("ffn_norm", (32,)), ("attn_q", (32, 32)), ("attn_k", (32, 32)), ("attn_v", (32, 32)),
                    ("attn_output", (32, 32)), ("ffn_gate", (64, 32)), ("ffn_up", (64, 32)), ("ffn_down", (32, 64))]:
    w.add_tensor(f"blk.0.{name}.weight", np.ones(shape, dtype=np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
`;

describe('checkGgufLoads: what export --gguf runs on the file it wrote before renaming it into place', () => {
  it('reports llama.cpp’s own words in one line when llama.cpp aborts on a file, and survives the abort', async () => {
    const file = join(tempDir(), 'broken.gguf');
    const { python } = await requirePythonEnv();
    await execa(python, ['-c', WRITE_BROKEN, file], { env: { PYTHONPATH: await ggufPackageDir() } });
    expect(existsSync(file)).toBe(true);
    const error = await checkGgufLoads(file).then(
      () => null,
      (e: Error) => e,
    );
    // node-llama-cpp hands llama.cpp's log lines to JavaScript asynchronously, so on a loaded machine the abort can
    // come before the warning is delivered (seen in CI, load 6-10): then the C++ runtime's last words are llama.cpp's.
    expect(error?.message).toMatch(
      /^llama\.cpp \(node-llama-cpp 3\.21\.1\) cannot load the GGUF written: (load: SPM vocabulary, but newline token not found.*|what\(\): +_Map_base::at), and aborted \(SIGABRT\)$/,
    );
    expect(error?.message).not.toContain('\n');
  });
});
