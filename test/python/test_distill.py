"""The distill job's own pieces against plain PyTorch: the chunked distillation loss and its
gradients (full vocabulary and top-k), and a student built from the teacher."""

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmkit_worker import distill as ds
from llmkit_worker import finetune as ft

FACTS = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "data", "facts.jsonl")
T, ALPHA = 2.0, 0.3


@pytest.fixture(scope="module")
def pair(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    teacher = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    student = copy.deepcopy(teacher)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    rows = ft.read_rows([{"path": FACTS, "format": "messages"}])[:4]
    examples, _ = ft.tokenize_rows(rows, tok, {"train_on_prompt": False, "max_seq_len": 64})
    batch = ft.collate((1.0, [[0], [1], [2], [3]]), examples, tok.pad_token_id, None, "cpu")
    return tok, teacher, student, batch


def reference(teacher, student, batch, vocab: int, top_k: int):
    def pick(m):
        logits = m(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        return logits.reshape(-1, m.config.vocab_size)[batch["picked"]][:, :vocab]

    s = pick(student)
    with torch.no_grad():
        t = pick(teacher)
    ids = t.topk(top_k, -1).indices if top_k else torch.arange(vocab).expand(t.shape[0], vocab)
    t_logp = F.log_softmax(t.gather(1, ids) / T, -1)
    s_logp = F.log_softmax(s / T, -1).gather(1, ids)
    kl = (t_logp.exp() * (t_logp - s_logp)).sum()
    return ALPHA * T * T * kl + (1 - ALPHA) * F.cross_entropy(s, batch["targets"], reduction="sum")


def compare(pair, top_k: int) -> tuple[float, float, float]:
    tok, teacher, student, batch = pair
    vocab = len(tok)
    student.zero_grad()
    ref = reference(teacher, student, batch, vocab, top_k)
    ref.backward()
    watched = (student.lm_head.weight, student.model.layers[0].mlp.up_proj.weight)
    ref_grads = [p.grad.clone() for p in watched]
    student.zero_grad()
    loss = ds.distillation_loss(teacher, vocab, {"temperature": T, "alpha": ALPHA, "top_k": top_k})(student.model, student.lm_head, batch)
    loss.backward()
    grad_diff = max(float((p.grad - g).abs().max()) for p, g in zip(watched, ref_grads))
    return float(loss.detach()), float(ref.detach()), grad_diff


def test_distillation_loss_and_gradients_match_plain_pytorch_a_chunk_of_rows_at_a_time(pair, monkeypatch):
    tok, _, _, batch = pair
    # Chunks of 16 rows, so the batch's target tokens cross chunk boundaries.
    monkeypatch.setattr(ft, "CHUNK_ELEMENTS", len(tok) * 16)
    assert int(batch["n_targets"]) > 16
    results = {k: compare(pair, top_k) for k, top_k in (("full", 0), ("top5", 5), ("top_all", len(tok)))}
    for k, (loss, ref, grad_diff) in results.items():
        assert abs(loss - ref) / ref < 1e-5, k
        assert grad_diff < 1e-5, k
    # The teacher's top k of the whole vocabulary is the whole distribution.
    assert results["top_all"][0] == pytest.approx(results["full"][0], abs=5e-4)
    assert results["top5"][0] != pytest.approx(results["full"][0], abs=5e-4)


def test_builds_a_student_from_chosen_teacher_layers_with_other_shapes_fresh(pair, tiny_model, tmp_path):
    tok, teacher, _, _ = pair
    cfg = {"teacher": tiny_model, "model": str(tmp_path / "student"), "student_config": {"intermediate_size": 96}, "student_layers": [1], "seed": 0}
    ds.build_student(teacher, cfg)
    built = AutoModelForCausalLM.from_pretrained(cfg["model"])

    def same(a, b):
        return a.shape == b.shape and bool(torch.equal(a, b))

    assert built.config.num_hidden_layers == 1
    assert same(built.model.layers[0].self_attn.q_proj.weight, teacher.model.layers[1].self_attn.q_proj.weight)
    assert not same(built.model.layers[0].self_attn.q_proj.weight, teacher.model.layers[0].self_attn.q_proj.weight)
    assert list(built.model.layers[0].mlp.gate_proj.weight.shape) == [96, 64]
    assert same(built.model.embed_tokens.weight, teacher.model.embed_tokens.weight)
    assert same(built.lm_head.weight, teacher.lm_head.weight)
    assert AutoTokenizer.from_pretrained(cfg["model"]).chat_template == tok.chat_template
