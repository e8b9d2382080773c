import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AutoTokenizer, env as hfEnv } from '@huggingface/transformers';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { tinyModel } from '../helpers/models.js';

hfEnv.allowRemoteModels = false;

const TEXTS = ['What is the capital of Zarnovia?', 'Héllo wörld — 1873 ✓ 🙂', '  spaces\tand\nnewlines  '];
const MESSAGES = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'What is the capital of Zarnovia?' },
  { role: 'assistant', content: 'Velmora.' },
  { role: 'user', content: 'And its river?' },
];

describe('the tiny model', () => {
  let model: string;
  let python: Record<string, unknown>;

  beforeAll(async () => {
    model = await tinyModel();
    const { python: exe } = await requirePythonEnv();
    const script = `
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path, texts, messages = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path)
ids = tok(texts[0], return_tensors="pt").input_ids
with torch.no_grad():
    logits = model(ids).logits
print(json.dumps({
  "ids": [tok(t)["input_ids"] for t in texts],
  "chat": tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
  "chat_ids": tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False),
  "logits_shape": list(logits.shape), "finite": bool(torch.isfinite(logits).all()),
  "params": sum(p.numel() for p in model.parameters()), "arch": model.config.architectures[0],
  "decoded": tok.decode(tok(texts[1])["input_ids"]),
}))`;
    const r = await execa(exe, ['-c', script, model, JSON.stringify(TEXTS), JSON.stringify(MESSAGES)]);
    python = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  });

  it('is a Hugging Face Llama folder that transformers loads and runs', () => {
    const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
    expect(config.architectures).toEqual(['LlamaForCausalLM']);
    expect(python.arch).toBe('LlamaForCausalLM');
    expect(python.logits_shape).toEqual([1, (python.ids as number[][])[0].length, config.vocab_size]);
    expect(python.finite).toBe(true);
    expect(python.params).toBeGreaterThan(100_000);
    expect(python.params).toBeLessThan(2_000_000);
    expect(python.decoded).toBe(TEXTS[1]);
  });

  it('tokenizes the same in transformers.js as in Python', async () => {
    const tok = await AutoTokenizer.from_pretrained(model, { local_files_only: true });
    const ids = TEXTS.map((t) => Array.from(tok.encode(t)));
    expect(ids).toEqual(python.ids);
  });

  it('renders the same chat template in transformers.js as in Python', async () => {
    const tok = await AutoTokenizer.from_pretrained(model, { local_files_only: true });
    const text = tok.apply_chat_template(MESSAGES, { tokenize: false, add_generation_prompt: true });
    expect(text).toBe(python.chat);
    expect(text).toContain('<|im_start|>assistant\nVelmora.<|im_end|>\n');
    const ids = tok.apply_chat_template(MESSAGES, { tokenize: true, add_generation_prompt: true, return_dict: false });
    // A Tensor of int64 (bigint) ids, the same as Python's list.
    expect(Array.from((ids as unknown as { data: BigInt64Array }).data, Number)).toEqual(python.chat_ids);
  });
});
