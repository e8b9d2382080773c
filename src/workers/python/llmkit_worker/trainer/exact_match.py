"""Greedy answers and exact match: how often a model's greedy answer to a prompt of the data is the data's answer,
measured before and after training (and of the distill job's teacher)."""

import torch

from ..jobs import ExactMatchSample
from ..protocol import emit
from .context import RunContext
from .data import question_and_answer


def greedy_answers(ctx: RunContext, model, tokenizer, prompts: list, max_new_tokens: int) -> list:
    """The decoded greedy continuation of each prompt (token ids), stopping at the end token; 32 prompts at a time."""
    from transformers import GenerationConfig

    eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None else []
    eos = sorted({*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id} - {None})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    generation = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=pad)
    answers, was_training = [], model.training
    model.eval()
    for s in range(0, len(prompts), 32):
        chunk = prompts[s : s + 32]
        width = max(len(ids) for ids in chunk)
        # Left padding, so every prompt ends where generation starts.
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in chunk], device=ctx.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in chunk], device=ctx.device)
        with ctx.inference():
            generated = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=generation)
        answers += tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
    model.train(was_training)
    return answers


def exact_match(ctx: RunContext, model, tokenizer, rows: list, *, when: str, step: int) -> dict:
    """Greedy-generates the answer of the first `exact_match` examples and counts exact (whitespace-trimmed) hits."""
    items = [qa for qa in (question_and_answer(r, f, tokenizer) for r, f, _ in rows) if qa][: ctx.cfg["exact_match"]]
    longest = max((len(tokenizer(answer, add_special_tokens=False)["input_ids"]) for _, _, answer in items), default=0)
    answers = greedy_answers(ctx, model, tokenizer, [ids for ids, _, _ in items], longest + 8)
    correct, samples = 0, list[ExactMatchSample]()
    for (_, question, expected), got in zip(items, answers):
        hit = got.strip() == expected.strip()
        correct += hit
        if len(samples) < 20:
            samples.append({"question": question, "expected": expected, "got": got.strip(), "correct": hit})
    result = {"value": correct / len(items) if items else 0.0, "correct": correct, "total": len(items), "samples": samples}
    emit("metric", name="exact_match", when=when, step=step, **result)
    ctx.metrics.write({"step": step, "exact_match": result["value"], "when": when})
    return result
