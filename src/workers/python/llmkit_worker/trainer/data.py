"""Training data as pure functions: JSONL rows, their rendering through the model's chat template with the
character spans that carry the loss, tokenization into (input ids, targets) with truncation counted, packing,
the training plan (every optimizer step's micro-batches, a pure function of the data and the seed) and
collation into tensors."""

import bisect
import json

import torch

from ..jobs import FinetuneConfig
from ..protocol import BadInput

# The target of a position that carries no loss (PyTorch's ignore_index).
IGNORE = -100


def read_rows(files: list) -> list:
    rows = []
    for f in files:
        with open(f["path"], encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    rows.append((json.loads(line), f["format"], f"{f['path']}:{number}"))
    return rows


def split_rows(train: list, evals: list, cfg: FinetuneConfig) -> tuple[list, list]:
    split = cfg["eval_split"]
    if not split:
        return train, evals
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg["seed"])).tolist()
    n_eval = max(1, round(len(train) * split))
    held = set(order[:n_eval])
    return [r for i, r in enumerate(train) if i not in held], [r for i, r in enumerate(train) if i in held]


def as_messages(row: dict, fmt: str):
    if fmt == "messages":
        return row["messages"]
    if fmt == "alpaca":
        user = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
        return [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
    return None


def chat(tokenizer, messages: list, generation_prompt: bool = False) -> str:
    # enable_thinking=False, as llmkit serves by default (src/engine/tokenizer.ts): Qwen3 then writes an empty
    # thinking block into the generation prompt and the answers are trained, checked and served after it alike.
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt, enable_thinking=False)


def render(row: dict, fmt: str, tokenizer, train_on_prompt: bool, where: str) -> list:
    """The example as one or more texts, each with the character spans that carry the loss and whether the tokenizer
    adds its own BOS."""
    messages = as_messages(row, fmt)
    if messages is not None:
        if not tokenizer.chat_template:
            raise BadInput(
                "the model has no chat template, which conversation data needs",
                where=where,
                hint="add a chat_template to tokenizer_config.json, or use prompt/completion data",
            )
        text = chat(tokenizer, messages)
        if train_on_prompt:
            return [(text, [(0, len(text))], False)]
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        spans = [answer_span(tokenizer, messages, i, text) for i in turns]
        if all(spans):
            return [(text, spans, False)]
        # Templates that render an earlier turn differently once the conversation goes on (Qwen3 drops its
        # thinking block, Phi-3 ends the last turn with EOS) get one example per answer, each with the history
        # exactly as the model sees it when it writes that answer.
        examples = []
        for i in turns:
            upto = chat(tokenizer, messages[: i + 1])
            span = answer_span(tokenizer, messages, i, upto)
            if span is None:
                raise BadInput(
                    "the model's chat template does not render this conversation turn by turn, so the answers cannot be told from the prompt",
                    where=where,
                    hint="use --train-on-prompt or prompt/completion data",
                )
            examples.append((upto, [span], False))
        return examples
    eos = tokenizer.eos_token or ""
    if fmt == "prompt-completion":
        text = row["prompt"] + row["completion"] + eos
        return [(text, [(0 if train_on_prompt else len(row["prompt"]), len(text))], True)]
    text = row["text"] + eos
    return [(text, [(0, len(text))], True)]


def answer_span(tokenizer, messages: list, i: int, text: str):
    """Where assistant turn i sits in `text`: what rendering turn i adds after the generation prompt, or None where
    `text` does not start with both (the template renders that turn differently in `text`)."""
    begin, end = chat(tokenizer, messages[:i], generation_prompt=True), chat(tokenizer, messages[: i + 1])
    if text.startswith(begin) and text.startswith(end) and len(begin) <= len(end):
        return len(begin), len(end)
    return None


def tokenize_rows(rows: list, tokenizer, cfg: FinetuneConfig) -> tuple[list, dict]:
    """Each example as (input_ids, targets): targets[j] is the token after j where that token carries the loss."""
    examples, truncated, dropped = [], 0, 0
    for row, fmt, where in rows:
        for text, spans, add_special in render(row, fmt, tokenizer, cfg["train_on_prompt"], where):
            enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
            ids = enc["input_ids"]
            trained = [any(a <= start < b for a, b in spans) for start, _ in enc["offset_mapping"]]
            if len(ids) > cfg["max_seq_len"]:
                truncated += 1
                ids, trained = ids[: cfg["max_seq_len"]], trained[: cfg["max_seq_len"]]
            targets = [ids[j + 1] if trained[j + 1] else IGNORE for j in range(len(ids) - 1)] + [IGNORE]
            if all(t == IGNORE for t in targets):
                dropped += 1
                continue
            examples.append((ids, targets))
    return examples, {"examples": len(rows), "truncated": truncated, "dropped": dropped}


def epoch_rows(examples: list, cfg: FinetuneConfig, epoch: int) -> list:
    """One epoch in a seeded order, as rows of example indices: one example a row, or with packing as many as
    fit in max_seq_len tokens, placed best-fit-decreasing (longest first, each into the fullest row with room),
    which leaves rows nearly full where filling them in order leaves close to a third of each empty."""
    generator = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + epoch)
    order = torch.randperm(len(examples), generator=generator).tolist()
    if not cfg["packing"]:
        return [[i] for i in order]
    rows: list[list[int]] = []
    space: list[tuple[int, int]] = []  # sorted (tokens left, row index) of rows that are not full
    for i in sorted(order, key=lambda i: -len(examples[i][0])):
        n = len(examples[i][0])
        k = bisect.bisect_left(space, (n, -1))
        if k < len(space):
            left, r = space.pop(k)
            rows[r].append(i)
        else:
            left, r = cfg["max_seq_len"], len(rows)
            rows.append([i])
        if left > n:
            bisect.insort(space, (left - n, r))
    return [rows[r] for r in torch.randperm(len(rows), generator=generator).tolist()]


def training_plan(examples: list, cfg: FinetuneConfig) -> list:
    """Every optimizer step as its list of micro-batches (each a list of rows), with the epoch each came from.

    The plan is a pure function of the data and the seed, so a resumed run finds its data position by index.
    """
    micro: list[tuple[float, list]] = []
    epoch = 0
    # llmkit sends max_steps, or else epochs.
    steps, epochs = cfg["max_steps"], cfg["epochs"] or 0
    needed = steps * cfg["grad_accum"] if steps else None
    while (epoch < epochs) if needed is None else (len(micro) < needed):
        rows = epoch_rows(examples, cfg, epoch)
        batches = [rows[i : i + cfg["batch_size"]] for i in range(0, len(rows), cfg["batch_size"])]
        micro += [(epoch + (k + 1) / len(batches), b) for k, b in enumerate(batches)]
        epoch += 1
    micro = micro[:needed] if needed else micro
    ga = cfg["grad_accum"]
    return [micro[i : i + ga] for i in range(0, len(micro), ga)]


def collate(entry, examples: list, pad_id: int, fixed_len, device: str) -> dict:
    """A micro-batch as tensors. No attention mask: padding sits at the end of each row, where causal attention
    never lets a real token see it; packed examples get positions that restart at 0, from which transformers
    builds a block-diagonal mask so that they do not see each other."""
    _, rows = entry
    lengths = [sum(len(examples[i][0]) for i in row) for row in rows]
    length = fixed_len or max(lengths)
    if device == "cuda" and fixed_len is None:
        length = -(-length // 64) * 64  # fewer distinct shapes for cuBLAS and torch.compile
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    positions = torch.arange(length).repeat(len(rows), 1)
    for b, row in enumerate(rows):
        at = 0
        for i in row:
            x, y = examples[i]
            ids[b, at : at + len(x)] = torch.tensor(x)
            targets[b, at : at + len(x)] = torch.tensor(y)
            if fixed_len is not None:
                positions[b, at : at + len(x)] = torch.arange(len(x))
            at += len(x)
        if fixed_len is not None:
            positions[b, at:] = torch.arange(length - at)
    flat = targets.view(-1)
    picked = (flat != IGNORE).nonzero().squeeze(1)
    return {
        "input_ids": ids.to(device, non_blocking=True),
        "position_ids": positions.to(device, non_blocking=True),
        "picked": picked.to(device, non_blocking=True),
        "targets": flat[picked].to(device, non_blocking=True),
        "tokens": sum(lengths),
        "n_targets": int(picked.numel()),
    }


def question_and_answer(row: dict, fmt: str, tokenizer):
    """(prompt ids, question to show, expected answer) or None for data without an answer (plain text)."""
    messages = as_messages(row, fmt)
    if messages is not None:
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        prompt = chat(tokenizer, messages[:last], generation_prompt=True)
        question = next((m["content"] for m in reversed(messages[:last]) if m["role"] == "user"), "")
        return tokenizer(prompt, add_special_tokens=False)["input_ids"], question, messages[last]["content"]
    if fmt == "prompt-completion":
        return tokenizer(row["prompt"])["input_ids"], row["prompt"], row["completion"]
    return None
