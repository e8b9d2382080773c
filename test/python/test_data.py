"""The trainer's data functions (trainer/data.py): which tokens carry the loss, truncation counted exactly,
best-fit packing, and the boundaries of packed examples in a collated batch."""

import random

import pytest
from transformers import AutoTokenizer

from llmkit_worker.trainer.data import IGNORE, collate, epoch_rows, tokenize_rows, training_plan

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


@pytest.fixture(scope="module")
def tok(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


def tokenize(tok, train_on_prompt: bool, max_seq_len: int = 256):
    return tokenize_rows(ROWS, tok, {"train_on_prompt": train_on_prompt, "max_seq_len": max_seq_len})


def trained_text(tok, examples) -> list:
    return [tok.decode([t for t in targets if t != IGNORE]) for _, targets in examples]


def test_puts_the_loss_on_answers_with_their_end_token_unless_asked_for_the_prompt(tok):
    examples, stats = tokenize(tok, False)
    # Plain text trains on every token but the first, which nothing predicts.
    assert trained_text(tok, examples) == ["Velmora.<|im_end|>\nSilverrun.<|im_end|>\n", " two<|im_end|>", "Hi.<|im_end|>\n", "nce upon a time.<|im_end|>"]
    assert stats == {"examples": 4, "truncated": 0, "dropped": 0}
    everything, _ = tokenize(tok, True)
    assert trained_text(tok, everything)[0] == (
        "user\nCapital?<|im_end|>\n<|im_start|>assistant\nVelmora.<|im_end|>\n<|im_start|>user\nRiver?<|im_end|>\n<|im_start|>assistant\nSilverrun.<|im_end|>\n"
    )


def test_targets_are_the_next_token_where_it_carries_the_loss(tok):
    for ids, targets in tokenize(tok, False)[0]:
        assert len(targets) == len(ids) and targets[-1] == IGNORE
        assert all(t in (IGNORE, ids[j + 1]) for j, t in enumerate(targets[:-1]))


def test_counts_truncation_and_drops_examples_whose_answer_is_cut_off(tok):
    full, _ = tokenize(tok, False)
    limit = 16
    short, stats = tokenize(tok, False, limit)
    # An example survives truncation when a target is left among its first limit - 1 positions.
    kept = [(ids[:limit], targets[:limit][:-1] + [IGNORE]) for ids, targets in full if any(t != IGNORE for t in targets[: limit - 1])]
    assert stats == {"examples": 4, "truncated": sum(len(ids) > limit for ids, _ in full), "dropped": len(full) - len(kept)}
    # The alpaca answer starts past position 15; the conversation and the completion keep part of theirs.
    assert stats["truncated"] == 3 and stats["dropped"] == 1
    assert short == kept


def test_packs_every_example_once_into_nearly_full_rows_in_a_seeded_order():
    rnd = random.Random(0)
    examples = [([0] * rnd.randint(20, 400), None) for _ in range(500)]
    cfg = {"seed": 0, "packing": True, "max_seq_len": 512}
    rows = epoch_rows(examples, cfg, 0)
    assert sorted(i for r in rows for i in r) == list(range(500))
    assert max(sum(len(examples[i][0]) for i in r) for r in rows) <= 512
    assert sum(len(e[0]) for e in examples) / (512 * len(rows)) > 0.95
    assert rows == epoch_rows(examples, cfg, 0)
    assert rows != epoch_rows(examples, cfg, 1)


def test_packed_examples_restart_positions_and_keep_their_own_targets():
    examples = [([11, 12, 13], [12, 13, IGNORE]), ([21, 22], [IGNORE, IGNORE]), ([31, 32, 33, 34], [IGNORE, 33, 34, IGNORE])]
    batch = collate((1.0, [[0, 1], [2]]), examples, pad_id=0, fixed_len=8, device="cpu")
    assert batch["input_ids"].tolist() == [[11, 12, 13, 21, 22, 0, 0, 0], [31, 32, 33, 34, 0, 0, 0, 0]]
    # Each packed example, and the padding after them, counts positions from 0.
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2], [0, 1, 2, 3, 0, 1, 2, 3]]
    # Targets stay within their example: 13 never predicts 21 across the boundary.
    assert batch["picked"].tolist() == [0, 1, 9, 10]
    assert batch["targets"].tolist() == [12, 13, 33, 34]
    assert (batch["tokens"], batch["n_targets"]) == (9, 4)
    unpacked = collate((1.0, [[0], [2]]), examples, pad_id=0, fixed_len=None, device="cpu")
    assert unpacked["input_ids"].shape == (2, 4) and unpacked["position_ids"].tolist() == [[0, 1, 2, 3]] * 2


def test_plans_steps_of_grad_accum_micro_batches_up_to_max_steps():
    examples = [([1] * 5, [1] * 5) for _ in range(10)]
    cfg = {"seed": 0, "packing": False, "max_seq_len": 16, "batch_size": 3, "grad_accum": 2, "epochs": 1, "max_steps": None}
    one_epoch = training_plan(examples, cfg)
    # 10 examples in micro-batches of 3 (3, 3, 3, 1), two a step.
    assert [[len(rows) for _, rows in step] for step in one_epoch] == [[3, 3], [3, 1]]
    assert one_epoch[-1][-1][0] == 1.0
    plan = training_plan(examples, {**cfg, "max_steps": 5})
    assert len(plan) == 5 and all(len(step) == 2 for step in plan)
    assert plan[-1][-1][0] == pytest.approx(2.5)
    assert plan[:2] == one_epoch
