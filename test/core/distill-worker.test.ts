import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { pythonSourceDir } from '../../src/shared/paths.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { tempDir } from '../helpers/cli.js';
import { tinyModel } from '../helpers/models.js';

/**
 * The distill job's own pieces, checked in one Python process against plain PyTorch: the chunked
 * distillation loss and its gradients (full vocabulary and top-k), and a student built from the teacher.
 */
const SCRIPT = `
import copy, json, sys, torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmkit_worker import distill as ds, finetune as ft

path, work = sys.argv[1], sys.argv[2]
out = {}
tok = AutoTokenizer.from_pretrained(path)
teacher = AutoModelForCausalLM.from_pretrained(path).eval()
student = copy.deepcopy(teacher)
torch.manual_seed(0)
with torch.no_grad():
    for p in student.parameters():
        p.add_(torch.randn_like(p) * 0.05)
rows = ft.read_rows([{"path": "recipes/data/facts.jsonl", "format": "messages"}])[:4]
examples, _ = ft.tokenize_rows(rows, tok, {"train_on_prompt": False, "max_seq_len": 64})
batch = ft.collate((1.0, [[0], [1], [2], [3]]), examples, tok.pad_token_id, None, "cpu")
V, T, alpha = len(tok), 2.0, 0.3
ft.CHUNK_ELEMENTS = V * 16  # chunks of 16 rows, so the batch's target tokens cross chunk boundaries

def reference(top_k):
    pick = lambda m: m(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits.reshape(-1, m.config.vocab_size)[batch["picked"]][:, :V]
    s = pick(student)
    with torch.no_grad():
        t = pick(teacher)
    ids = t.topk(top_k, -1).indices if top_k else torch.arange(V).expand(t.shape[0], V)
    t_logp = F.log_softmax(t.gather(1, ids) / T, -1)
    s_logp = F.log_softmax(s / T, -1).gather(1, ids)
    return alpha * T * T * (t_logp.exp() * (t_logp - s_logp)).sum() + (1 - alpha) * F.cross_entropy(s, batch["targets"], reduction="sum")

def compare(top_k):
    student.zero_grad()
    ref = reference(top_k)
    ref.backward()
    ref_grads = [p.grad.clone() for p in (student.lm_head.weight, student.model.layers[0].mlp.up_proj.weight)]
    student.zero_grad()
    loss = ds.distillation_loss(teacher, V, {"temperature": T, "alpha": alpha, "top_k": top_k})(student.model, student.lm_head, batch)
    loss.backward()
    grads = [student.lm_head.weight.grad, student.model.layers[0].mlp.up_proj.weight.grad]
    return {"loss": float(loss), "ref": float(ref), "grad_diff": max(float((a - b).abs().max()) for a, b in zip(grads, ref_grads))}

out["full"], out["top5"], out["top_all"] = compare(0), compare(5), compare(V)
out["targets"] = int(batch["n_targets"])

cfg = {"teacher": path, "model": work + "/student", "student_config": {"intermediate_size": 96}, "student_layers": [1], "seed": 0}
ds.build_student(teacher, cfg)
built = AutoModelForCausalLM.from_pretrained(cfg["model"])
same = lambda a, b: a.shape == b.shape and bool(torch.equal(a, b))
out["student"] = {
    "layers": built.config.num_hidden_layers,
    "attention_from_layer_1": same(built.model.layers[0].self_attn.q_proj.weight, teacher.model.layers[1].self_attn.q_proj.weight),
    "not_from_layer_0": not same(built.model.layers[0].self_attn.q_proj.weight, teacher.model.layers[0].self_attn.q_proj.weight),
    "mlp_shape": list(built.model.layers[0].mlp.gate_proj.weight.shape),
    "embeddings": same(built.model.embed_tokens.weight, teacher.model.embed_tokens.weight),
    "head": same(built.lm_head.weight, teacher.lm_head.weight),
    "chat_template": AutoTokenizer.from_pretrained(cfg["model"]).chat_template == tok.chat_template,
}
print(json.dumps(out), file=sys.__stdout__)
`;

describe('the distill worker pieces', () => {
  let r: Record<string, any>;

  beforeAll(async () => {
    const { python } = await requirePythonEnv();
    const run = await execa(python, ['-c', SCRIPT, await tinyModel(), tempDir()], { env: { PYTHONPATH: pythonSourceDir, OMP_NUM_THREADS: '1' } });
    r = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  });

  it('computes alpha·T²·KL + (1 − alpha)·CE and its gradients like plain PyTorch, a chunk of rows at a time', () => {
    expect(r.targets).toBeGreaterThan(16);
    for (const k of ['full', 'top5', 'top_all']) {
      expect(Math.abs(r[k].loss - r[k].ref) / r[k].ref, k).toBeLessThan(1e-5);
      expect(r[k].grad_diff, k).toBeLessThan(1e-5);
    }
    // The teacher's top k of the whole vocabulary is the whole distribution.
    expect(r.top_all.loss).toBeCloseTo(r.full.loss, 3);
    expect(r.top5.loss).not.toBeCloseTo(r.full.loss, 3);
  });

  it('builds a student from the teacher: chosen layers and matching shapes copied, other shapes fresh', () => {
    expect(r.student).toEqual({
      layers: 1,
      attention_from_layer_1: true,
      not_from_layer_0: true,
      mlp_shape: [96, 64],
      embeddings: true,
      head: true,
      chat_template: true,
    });
  });
});
