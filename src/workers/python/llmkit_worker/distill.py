"""The `llmkit distill` job: teaches a smaller student model what a teacher model does, on JSONL data.

Config (snake_case; resolved and validated by llmkit, see src/core/distill/options.ts): everything the
finetune job takes (`model` is the student's folder, which this job writes first when student_config is
given), plus teacher (model folder), student_config ({config.json key: value} over the teacher's config, or
null for an existing student folder), student_layers (for each student layer, the teacher layer it starts
from), mode ("logits" or "sequence"), temperature, alpha, top_k (0: every logit), max_new_tokens.

Supports: logit distillation, where the loss of each target token is
alpha · T² · KL(teacher ‖ student, both at temperature T) + (1 − alpha) · cross-entropy on the label,
optionally against the teacher's top-k logits only (renormalised over those k), which keeps k numbers a
token instead of the vocabulary's worth until the backward pass; sequence-level distillation, where the
teacher answers the prompts of the training data greedily and the student is fine-tuned on those answers
(and judged on the data's own answers); a student built from the teacher's config with fewer layers or less
width, each tensor copied from the teacher where the shapes match. The teacher runs without gradients, in
bf16 on CUDA. Everything else (data formats, the training loop, progress, checkpoints, resume, eval loss,
exact match, outputs) is the finetune job's: this job sets up the teacher and the student and hands
finetune.train the data or the loss (trainer/loss.py's DistillationLoss).

Writes under `out`, besides the finetune job's outputs: student-init/ (the built student before training),
teacher/metrics.jsonl (the teacher's exact match), teacher/answers-<format>.jsonl and teacher/eval-<format>.jsonl
(sequence mode: the training data with the teacher's answers, the eval data with its own), eval.txt (the
eval data as the models read it, which llmkit scores for its report), model/draft-vocab.json (draft_vocab).
Events: the finetune job's, plus metric `student_init` (tensors copied from the teacher or left fresh), metric
`teacher` (parameters, exact match) and metric `draft_vocab` (size, coverage of the answers' tokens).

Raises BadInput for: a teacher transformers cannot load, teacher and student vocabularies that differ, a
student config transformers rejects, and whatever the finetune job raises.
"""

import copy
import dataclasses
import json
import os
import re
from typing import TypedDict

import torch

from .atomic import replace_folder, write_file
from .finetune import train
from .jobs import DataFile, DistillConfig
from .lora_tools import with_tokenizer
from .protocol import BadInput, emit, log
from .trainer.context import Metrics, RunContext
from .trainer.data import question_and_answer, read_rows, render, split_rows
from .trainer.exact_match import exact_match, greedy_answers
from .trainer.loss import DistillationLoss


class SequenceData(TypedDict):
    """What sequence-level distillation changes in the finetune job's config: the data it trains and evaluates on."""

    data: list[DataFile]
    eval_data: list[DataFile]
    eval_split: None


# A decoder layer's tensors are named `….layers.<index>.…` in every family llmkit trains.
LAYER = re.compile(r"\.layers\.(\d+)\.")
# Beside a draft's model: the token ids its output layer keeps, most frequent first (llmkit's ModelDrafter reads it).
DRAFT_VOCAB_FILE = "draft-vocab.json"


def run(config: DistillConfig) -> int:
    cfg = config
    out = cfg["out"]
    ctx = RunContext.start(cfg)
    tokenizer, teacher = load_teacher(cfg["teacher"])
    if cfg["student_config"] is not None:
        build_student(teacher, cfg)
    else:
        check_vocabulary(tokenizer, cfg["model"])
    # The teacher only runs forward: bf16 halves its memory on a GPU; fp32 keeps CPU runs exact.
    teacher = teacher.to(ctx.device, dtype=torch.bfloat16 if ctx.device == "cuda" else torch.float32).eval().requires_grad_(False)

    train_rows, eval_rows = split_rows(read_rows(cfg["data"]), read_rows(cfg.get("eval_data") or []), cfg)
    write_text(os.path.join(out, "eval.txt"), "\n".join(render(row, fmt, tokenizer, True, where)[0][0] for row, fmt, where in eval_rows or train_rows))
    os.makedirs(os.path.join(out, "teacher"), exist_ok=True)
    # The teacher's figures get a metrics file of their own: training starts the student's afresh.
    teacher_ctx = dataclasses.replace(ctx, metrics=Metrics.open(os.path.join(out, "teacher"), 0, ctx.rank))
    exact = exact_match(teacher_ctx, teacher, tokenizer, eval_rows or train_rows, when="teacher", step=0) if cfg["exact_match"] else None
    emit("metric", name="teacher", parameters=teacher.num_parameters(), exact_match=exact)

    if cfg["mode"] == "sequence":
        ctx.cfg = {**ctx.cfg, **sequence_data(ctx, teacher, tokenizer, train_rows, eval_rows, cfg["max_new_tokens"])}
        return finish(ctx, train(ctx), tokenizer, teacher.generation_config, cfg["draft_vocab"])
    temperature, alpha = cfg["temperature"], cfg["alpha"]
    assert temperature is not None and alpha is not None, "jobs.ts refuses a logits-mode config without them"
    if alpha == 0:
        # Cross-entropy on the labels alone: the teacher's logits would weigh nothing, so it does not run (data that
        # holds the teacher's answers already is sequence-level distillation, e.g. test/bench/draft-answers.js's).
        return finish(ctx, train(ctx), tokenizer, teacher.generation_config, cfg["draft_vocab"])
    loss = DistillationLoss(teacher, len(tokenizer), temperature, alpha, cfg["top_k"])
    return finish(ctx, train(ctx, loss), tokenizer, teacher.generation_config, cfg["draft_vocab"])


def finish(ctx: RunContext, result: int, tokenizer, generation_config, size: int) -> int:
    """The finetune job's ending, with a draft's vocabulary of `size` tokens written beside the trained model first."""
    model = os.path.join(ctx.cfg["out"], "model")
    if size and os.path.isdir(model):
        eos = generation_config.eos_token_id
        eos = [t for t in (eos if isinstance(eos, list) else [eos]) if t is not None]
        vocab = draft_vocabulary(tokenizer, read_rows(ctx.cfg["data"]), size, eos)
        write_text(os.path.join(model, DRAFT_VOCAB_FILE), json.dumps(vocab) + "\n")
        emit("metric", name="draft_vocab", size=len(vocab["ids"]), coverage=vocab["coverage"])
        log(f"draft vocabulary: {len(vocab['ids'])} tokens cover {vocab['coverage']:.1%} of the answers' tokens")
    return ctx.finish(result)


# ---- a draft's output layer ------------------------------------------------------------------------


def draft_vocabulary(tokenizer, rows: list, size: int, always: list[int]) -> dict:
    """The `size` tokens a draft most needs to propose (FR-Spec's frequency-ranked output layer): the EOS tokens,
    then by how often they occur in the answers the draft learns (what the target generates; sequence mode's are
    the teacher's own), ties broken by the prompts (answers copy from them). Plain-text rows count as answers.
    `coverage` is the share of the answers' tokens inside the list."""
    from collections import Counter

    answers: Counter[int] = Counter()
    prompts: Counter[int] = Counter()
    for row, fmt, where in rows:
        qa = question_and_answer(row, fmt, tokenizer)
        if qa is None:
            answers.update(tokenizer(render(row, fmt, tokenizer, True, where)[0][0], add_special_tokens=False)["input_ids"])
            continue
        prompts.update(qa[0])
        answers.update(tokenizer(qa[2], add_special_tokens=False)["input_ids"])
    ranked = sorted((set(answers) | set(prompts)) - set(always), key=lambda t: (-answers[t], -prompts[t], t))
    ids = always[:size] + ranked[: max(0, size - len(always))]
    total = sum(answers.values())
    return {"ids": ids, "coverage": sum(answers[t] for t in ids) / total if total else 0.0}


# ---- teacher and student ---------------------------------------------------------------------------


def load_teacher(folder: str):
    """On the CPU in the dtype it was saved in, so that a student built from it copies its weights exactly."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder, dtype="auto")
    except (OSError, ValueError, KeyError) as e:
        raise BadInput(
            f"transformers cannot load the teacher in {folder}: {str(e).splitlines()[0]}",
            hint="pass a Hugging Face causal LM folder (config.json, weights, tokenizer) as --teacher",
        ) from e


def check_vocabulary(teacher_tokenizer, student: str) -> None:
    """Distillation compares next-token distributions, which only means something over one shared vocabulary."""
    from transformers import AutoTokenizer

    theirs, ours = teacher_tokenizer.get_vocab(), AutoTokenizer.from_pretrained(student).get_vocab()
    differ = sorted(set(theirs.items()) ^ set(ours.items()))
    if differ:
        token = differ[0][0]
        raise BadInput(
            f"the teacher and the student have different vocabularies ({len(theirs):,} and {len(ours):,} tokens; "
            f"{token!r} is {theirs.get(token)} in the teacher and {ours.get(token)} in the student)",
            hint="distill into a student with the teacher's tokenizer, e.g. one built with --student-config",
        )


def build_student(teacher, cfg: DistillConfig) -> None:
    """Writes the student's starting point to cfg["model"]: the teacher's config with student_config over it, and
    every tensor whose shape matches copied from the teacher (student layer i from teacher layer
    student_layers[i]); tensors of another shape keep their fresh initialisation."""
    from transformers import AutoModelForCausalLM

    changes, layers = cfg["student_config"], cfg["student_layers"]
    assert changes is not None and layers is not None, "llmkit sends both for a student built from the teacher"
    config = copy.deepcopy(teacher.config)
    for key, value in {**changes, "num_hidden_layers": len(layers)}.items():
        setattr(config, key, value)
    torch.manual_seed(cfg["seed"])
    try:
        student = AutoModelForCausalLM.from_config(config, dtype=teacher.dtype)
    except (ValueError, AssertionError) as e:
        raise BadInput(
            f"--student-config: transformers cannot build the student ({str(e).splitlines()[0]})",
            hint="change fewer dimensions, keeping hidden size a multiple of the heads",
        ) from e
    source = teacher.state_dict()
    copied, fresh = [], []
    with torch.no_grad():
        for name, param in student.named_parameters():
            tensor = source.get(LAYER.sub(lambda m: f".layers.{layers[int(m.group(1))]}.", name))
            if tensor is not None and tensor.shape == param.shape:
                param.copy_(tensor)
                copied.append(param.numel())
            else:
                fresh.append(param.numel())
    student.generation_config = copy.deepcopy(teacher.generation_config)
    replace_folder(cfg["model"], with_tokenizer(student.save_pretrained, cfg["teacher"]))
    emit("artifact", kind="student_init", path=cfg["model"])
    emit(
        "metric",
        name="student_init",
        layers=layers,
        copied_tensors=len(copied),
        fresh_tensors=len(fresh),
        copied_parameters=sum(copied),
        parameters=sum(copied) + sum(fresh),
    )
    log(f"student: {len(layers)} layers from teacher layers {layers}, {len(copied)} tensors copied from the teacher, {len(fresh)} freshly initialised")


# ---- sequence-level distillation -------------------------------------------------------------------


def sequence_data(ctx: RunContext, teacher, tokenizer, train_rows: list, eval_rows: list, max_new_tokens: int | None) -> SequenceData:
    """The finetune job's data for sequence-level distillation: the training rows with the teacher's greedy answers
    in place of theirs, and for evaluation the data's own answers (the eval rows, else the training rows), each
    as files of one format. A resumed run keeps the answers it trained on."""
    cfg = ctx.cfg
    folder = os.path.join(cfg["out"], "teacher")
    answers = rows_files(train_rows, folder, "answers")
    if not (cfg["resume"] and all(os.path.exists(f["path"]) for f in answers)):
        prompts = [question_and_answer(row, fmt, tokenizer)[0] for row, fmt, _ in train_rows]
        assert max_new_tokens is not None, "jobs.ts refuses a sequence-mode config without it"
        replies = greedy_answers(ctx, teacher, tokenizer, prompts, max_new_tokens)
        write_rows([(with_answer(row, fmt, reply), fmt, where) for (row, fmt, where), reply in zip(train_rows, replies)], answers)
        log(f"the teacher answered {len(replies)} prompts")
    evals = rows_files(eval_rows or train_rows, folder, "eval")
    write_rows(eval_rows or train_rows, evals)
    return {"data": answers, "eval_data": evals, "eval_split": None}


def with_answer(row: dict, fmt: str, answer: str) -> dict:
    if fmt == "messages":
        last = max(i for i, m in enumerate(row["messages"]) if m["role"] == "assistant")
        messages = [*row["messages"][:last], {"role": "assistant", "content": answer.strip()}, *row["messages"][last + 1 :]]
        return {**row, "messages": messages}
    if fmt == "alpaca":
        return {**row, "output": answer.strip()}
    return {**row, "completion": answer}  # a completion's leading space is part of the answer


def rows_files(rows: list, folder: str, name: str) -> list[DataFile]:
    return [{"path": os.path.join(folder, f"{name}-{fmt}.jsonl"), "format": fmt} for fmt in sorted({fmt for _, fmt, _ in rows})]


def write_rows(rows: list, files: list) -> None:
    for f in files:
        write_text(f["path"], "".join(json.dumps(row) + "\n" for row, fmt, _ in rows if fmt == f["format"]))


def write_text(path: str, text: str) -> None:
    write_file(path, lambda f: f.write(text))
