"""The trainer's losses (trainer/loss.py) against plain PyTorch and hand computation: the chunked cross-entropy
(value and gradients, across chunk boundaries, with and without soft-capping), its mean over the answer tokens
of a real model's batch, and the distillation loss (full vocabulary and top-k)."""

import copy
import math
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmkit_worker.trainer.data import IGNORE, collate, read_rows, tokenize_rows
from llmkit_worker.trainer.loss import CausalLMLoss, DistillationLoss, kl_divergence

FACTS = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "data", "facts.jsonl")
T, ALPHA = 2.0, 0.3


@pytest.mark.parametrize("cap", [None, 3.0])
def test_chunked_cross_entropy_matches_plain_pytorch(cap):
    torch.manual_seed(0)
    h = torch.randn(37, 8, requires_grad=True)
    w = torch.randn(50, 8, requires_grad=True)
    t = torch.randint(0, 50, (37,))
    logits = h @ w.T
    ref = F.cross_entropy(torch.tanh(logits / cap) * cap if cap else logits, t, reduction="sum")
    ref.backward()
    ref = float(ref.detach())
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    # Chunks of 16 rows of a 50-token vocabulary, so 37 rows cross two chunk boundaries.
    ce = CausalLMLoss(chunk_elements=50 * 16)
    loss = ce.linear_cross_entropy(h, w, t, cap)
    (loss * 0.5).backward()
    with torch.no_grad():
        no_grad = ce.linear_cross_entropy(h, w, t, cap)
    assert abs(float(loss.detach()) - ref) / ref < 1e-6
    assert float(no_grad) == pytest.approx(float(loss.detach()), abs=1e-4)
    assert float((h.grad - gh * 0.5).abs().max()) < 1e-5
    assert float((w.grad - gw * 0.5).abs().max()) < 1e-5


@pytest.fixture(scope="module")
def pair(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    teacher = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    student = copy.deepcopy(teacher)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    rows = read_rows([{"path": FACTS, "format": "messages"}])[:4]
    examples, _ = tokenize_rows(rows, tok, {"train_on_prompt": False, "max_seq_len": 64})
    batch = collate((1.0, [[0], [1], [2], [3]]), examples, tok.pad_token_id, None, "cpu")
    return tok, teacher, student, examples, batch


def test_loss_over_the_target_count_is_the_mean_over_answer_tokens_by_hand(pair):
    _, model, _, examples, batch = pair
    with torch.no_grad():
        loss = float(CausalLMLoss()(model, batch)) / batch["n_targets"]
        terms = []
        for ids, targets in examples:
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
            terms += [-float(logp[j, t]) for j, t in enumerate(targets) if t != IGNORE]
    assert batch["n_targets"] == len(terms) < sum(len(ids) for ids, _ in examples)
    assert loss == pytest.approx(math.fsum(terms) / len(terms), rel=1e-5)


def test_kl_of_identical_distributions_is_zero_and_positive_otherwise():
    torch.manual_seed(0)
    logp = torch.log_softmax(torch.randn(5, 50), -1)
    other = torch.log_softmax(torch.randn(5, 50), -1)
    assert float(kl_divergence(logp, logp)) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_divergence(logp, other)) == pytest.approx(float(F.kl_div(other, logp, log_target=True, reduction="sum")), rel=1e-5)
    assert float(kl_divergence(logp, other)) > 0.1


def test_distilling_a_model_into_itself_costs_nothing_with_alpha_one(pair):
    tok, teacher, _, _, batch = pair
    with torch.no_grad():
        assert float(DistillationLoss(teacher, len(tok), T, 1.0, 0)(teacher, batch)) == pytest.approx(0.0, abs=1e-4)


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
    tok, teacher, student, _, batch = pair
    vocab = len(tok)
    student.zero_grad()
    ref = reference(teacher, student, batch, vocab, top_k)
    ref.backward()
    watched = (student.lm_head.weight, student.model.layers[0].mlp.up_proj.weight)
    ref_grads = [p.grad.clone() for p in watched]
    student.zero_grad()
    # Chunks of 16 rows, so the batch's target tokens cross chunk boundaries.
    loss = DistillationLoss(teacher, vocab, T, ALPHA, top_k, chunk_elements=vocab * 16)(student, batch)
    loss.backward()
    grad_diff = max(float((p.grad - g).abs().max()) for p, g in zip(watched, ref_grads))
    return float(loss.detach()), float(ref.detach()), grad_diff


def test_distillation_loss_and_gradients_match_plain_pytorch_a_chunk_of_rows_at_a_time(pair):
    tok, _, _, _, batch = pair
    assert int(batch["n_targets"]) > 16
    results = {k: compare(pair, top_k) for k, top_k in (("full", 0), ("top5", 5), ("top_all", len(tok)))}
    for k, (loss, ref, grad_diff) in results.items():
        assert abs(loss - ref) / ref < 1e-5, k
        assert grad_diff < 1e-5, k
    # The teacher's top k of the whole vocabulary is the whole distribution.
    assert results["top_all"][0] == pytest.approx(results["full"][0], abs=5e-4)
    assert results["top5"][0] != pytest.approx(results["full"][0], abs=5e-4)
