import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { pythonSourceDir } from '../../src/shared/paths.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { tinyModel } from '../helpers/models.js';

/**
 * The finetune job's building blocks, checked in one Python process against plain PyTorch: the chunked
 * loss (value and gradients, across chunk boundaries), best-fit packing, and which tokens carry the loss.
 */
const SCRIPT = `
import json, random, sys, torch
from transformers import AutoTokenizer
from llmkit_worker import finetune as ft

out = {}
torch.manual_seed(0)
ft.CHUNK_ELEMENTS = 50 * 16  # chunks of 16 rows, so 37 rows cross two chunk boundaries
h = torch.randn(37, 8, requires_grad=True)
w = torch.randn(50, 8, requires_grad=True)
t = torch.randint(0, 50, (37,))
ref = torch.nn.functional.cross_entropy(h @ w.T, t, reduction="sum")
ref.backward()
gh, gw = h.grad.clone(), w.grad.clone()
h.grad = w.grad = None
loss = ft.linear_cross_entropy(h, w, t)
(loss * 0.5).backward()
with torch.no_grad():
    no_grad = ft.linear_cross_entropy(h, w, t)
out["loss"] = [float(loss), float(ref), float(no_grad)]
out["grad_diff"] = [float((h.grad - gh * 0.5).abs().max()), float((w.grad - gw * 0.5).abs().max())]

rnd = random.Random(0)
examples = [([0] * rnd.randint(20, 400), None) for _ in range(500)]
rows = ft.epoch_rows(examples, {"seed": 0, "packing": True, "max_seq_len": 512}, 0)
out["packing"] = {"all_once": sorted(i for r in rows for i in r) == list(range(500)),
                  "longest_row": max(sum(len(examples[i][0]) for i in r) for r in rows),
                  "fill": sum(len(e[0]) for e in examples) / (512 * len(rows)),
                  "same_again": rows == ft.epoch_rows(examples, {"seed": 0, "packing": True, "max_seq_len": 512}, 0),
                  "other_epoch": rows != ft.epoch_rows(examples, {"seed": 0, "packing": True, "max_seq_len": 512}, 1)}

tok = AutoTokenizer.from_pretrained(sys.argv[1])
rows = [({"messages": [{"role": "user", "content": "Capital?"}, {"role": "assistant", "content": "Velmora."},
                       {"role": "user", "content": "River?"}, {"role": "assistant", "content": "Silverrun."}]}, "messages", "a:1"),
        ({"prompt": "Q: one plus one? A:", "completion": " two"}, "prompt-completion", "a:2"),
        ({"instruction": "Say hi.", "output": "Hi."}, "alpaca", "a:3"),
        ({"text": "Once upon a time."}, "text", "a:4")]
def trained(train_on_prompt, max_seq_len=256):
    examples, stats = ft.tokenize_rows(rows, tok, {"train_on_prompt": train_on_prompt, "max_seq_len": max_seq_len})
    return [tok.decode([t for t in targets if t != ft.IGNORE]) for _, targets in examples], stats
out["answers_only"], out["stats"] = trained(False)
out["everything"], _ = trained(True)
out["short"], out["short_stats"] = trained(False, 12)
print(json.dumps(out), file=sys.__stdout__)
`;

describe('the finetune worker pieces', () => {
  let r: Record<string, any>;

  beforeAll(async () => {
    const model = await tinyModel();
    const { python } = await requirePythonEnv();
    const run = await execa(python, ['-c', SCRIPT, model], { env: { PYTHONPATH: pythonSourceDir, OMP_NUM_THREADS: '1' } });
    r = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  });

  it('computes the chunked cross-entropy and its gradients like plain PyTorch', () => {
    const [loss, ref, noGrad] = r.loss as number[];
    expect(Math.abs(loss - ref) / ref).toBeLessThan(1e-6);
    expect(noGrad).toBeCloseTo(loss, 4);
    expect(Math.max(...(r.grad_diff as number[]))).toBeLessThan(1e-5);
  });

  it('packs every example once into nearly full rows, in a seeded order per epoch', () => {
    expect(r.packing).toMatchObject({ all_once: true, same_again: true, other_epoch: true });
    expect(r.packing.longest_row).toBeLessThanOrEqual(512);
    expect(r.packing.fill).toBeGreaterThan(0.95);
  });

  it('puts the loss on answers (with their end token) only, unless asked for the prompt too', () => {
    // Plain text trains on every token but the first, which nothing predicts.
    expect(r.answers_only).toEqual(['Velmora.<|im_end|>\nSilverrun.<|im_end|>\n', ' two<|im_end|>', 'Hi.<|im_end|>\n', 'nce upon a time.<|im_end|>']);
    expect(r.everything[0]).toBe('user\nCapital?<|im_end|>\n<|im_start|>assistant\nVelmora.<|im_end|>\n<|im_start|>user\nRiver?<|im_end|>\n<|im_start|>assistant\nSilverrun.<|im_end|>\n');
    expect(r.stats).toEqual({ examples: 4, truncated: 0, dropped: 0 });
  });

  it('counts truncation and drops examples whose answer is cut off entirely', () => {
    expect(r.short_stats.examples).toBe(4);
    expect(r.short_stats.truncated).toBeGreaterThanOrEqual(3);
    expect(r.short_stats.dropped).toBeGreaterThanOrEqual(1);
    expect(r.short.length).toBe(4 - r.short_stats.dropped);
  });
});
