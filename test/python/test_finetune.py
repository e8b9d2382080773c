"""The finetune job's building blocks against plain PyTorch: the chunked loss (value and gradients,
across chunk boundaries), best-fit packing, and which tokens carry the loss."""

import random

import pytest
import torch
from transformers import AutoTokenizer

from llmkit_worker import finetune as ft


@pytest.fixture
def small_chunks(monkeypatch):
    # Chunks of 16 rows of a 50-token vocabulary, so 37 rows cross two chunk boundaries.
    monkeypatch.setattr(ft, "CHUNK_ELEMENTS", 50 * 16)


def test_chunked_cross_entropy_matches_plain_pytorch(small_chunks):
    torch.manual_seed(0)
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
    assert abs(float(loss) - float(ref)) / float(ref) < 1e-6
    assert float(no_grad) == pytest.approx(float(loss), abs=1e-4)
    assert float((h.grad - gh * 0.5).abs().max()) < 1e-5
    assert float((w.grad - gw * 0.5).abs().max()) < 1e-5


def test_packs_every_example_once_into_nearly_full_rows_in_a_seeded_order():
    rnd = random.Random(0)
    examples = [([0] * rnd.randint(20, 400), None) for _ in range(500)]
    cfg = {"seed": 0, "packing": True, "max_seq_len": 512}
    rows = ft.epoch_rows(examples, cfg, 0)
    assert sorted(i for r in rows for i in r) == list(range(500))
    assert max(sum(len(examples[i][0]) for i in r) for r in rows) <= 512
    assert sum(len(e[0]) for e in examples) / (512 * len(rows)) > 0.95
    assert rows == ft.epoch_rows(examples, cfg, 0)
    assert rows != ft.epoch_rows(examples, cfg, 1)


ROWS = [
    (
        {
            "messages": [
                {"role": "user", "content": "Capital?"},
                {"role": "assistant", "content": "Velmora."},
                {"role": "user", "content": "River?"},
                {"role": "assistant", "content": "Silverrun."},
            ]
        },
        "messages",
        "a:1",
    ),
    ({"prompt": "Q: one plus one? A:", "completion": " two"}, "prompt-completion", "a:2"),
    ({"instruction": "Say hi.", "output": "Hi."}, "alpaca", "a:3"),
    ({"text": "Once upon a time."}, "text", "a:4"),
]


def trained(tok, train_on_prompt: bool, max_seq_len: int = 256):
    examples, stats = ft.tokenize_rows(ROWS, tok, {"train_on_prompt": train_on_prompt, "max_seq_len": max_seq_len})
    return [tok.decode([t for t in targets if t != ft.IGNORE]) for _, targets in examples], stats


def test_puts_the_loss_on_answers_with_their_end_token_unless_asked_for_the_prompt(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    answers, stats = trained(tok, False)
    # Plain text trains on every token but the first, which nothing predicts.
    assert answers == ["Velmora.<|im_end|>\nSilverrun.<|im_end|>\n", " two<|im_end|>", "Hi.<|im_end|>\n", "nce upon a time.<|im_end|>"]
    assert stats == {"examples": 4, "truncated": 0, "dropped": 0}
    everything, _ = trained(tok, True)
    assert everything[0] == (
        "user\nCapital?<|im_end|>\n<|im_start|>assistant\nVelmora.<|im_end|>\n<|im_start|>user\nRiver?<|im_end|>\n<|im_start|>assistant\nSilverrun.<|im_end|>\n"
    )


def test_counts_truncation_and_drops_examples_whose_answer_is_cut_off(tiny_model):
    short, stats = trained(AutoTokenizer.from_pretrained(tiny_model), False, 12)
    assert stats["examples"] == 4
    assert stats["truncated"] >= 3
    assert stats["dropped"] >= 1
    assert len(short) == 4 - stats["dropped"]
