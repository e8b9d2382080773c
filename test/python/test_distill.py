"""The distill job's own piece: a student built from chosen teacher layers."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmkit_worker import distill


@pytest.fixture(scope="module")
def teacher(tiny_model):
    return AutoModelForCausalLM.from_pretrained(tiny_model).eval()


def test_builds_a_student_from_chosen_teacher_layers_with_other_shapes_fresh(teacher, tiny_model, tmp_path):
    cfg = {"teacher": tiny_model, "model": str(tmp_path / "student"), "student_config": {"intermediate_size": 96}, "student_layers": [1], "seed": 0}
    distill.build_student(teacher, cfg)
    built = AutoModelForCausalLM.from_pretrained(cfg["model"])

    def same(a, b):
        return a.shape == b.shape and bool(torch.equal(a, b))

    assert built.config.num_hidden_layers == 1
    assert same(built.model.layers[0].self_attn.q_proj.weight, teacher.model.layers[1].self_attn.q_proj.weight)
    assert not same(built.model.layers[0].self_attn.q_proj.weight, teacher.model.layers[0].self_attn.q_proj.weight)
    assert list(built.model.layers[0].mlp.gate_proj.weight.shape) == [96, 64]
    assert same(built.model.embed_tokens.weight, teacher.model.embed_tokens.weight)
    assert same(built.lm_head.weight, teacher.lm_head.weight)
    assert AutoTokenizer.from_pretrained(cfg["model"]).chat_template == AutoTokenizer.from_pretrained(tiny_model).chat_template
