"""The `llmkit finetune` job: full or LoRA fine-tuning of a causal LM on JSONL data.

Config: FinetuneConfig in jobs.py (resolved and validated by llmkit, see src/core/finetune/options.ts).

Supports: messages / alpaca / prompt-completion / text data (conversations go through the model's
chat template; the loss is on answers only unless train_on_prompt); truncation, counted; packing
best-fit into full rows, with per-example positions (transformers turns them into block-diagonal
attention); AdamW (fused
on CUDA), linear or cosine schedule with warm-up, gradient accumulation with the loss averaged over
the whole step, clipping; bf16 autocast on CUDA with the frozen base held in bf16 for LoRA, fp32 on
CPU; gradient checkpointing; a chunked linear cross-entropy that never holds the [tokens, vocab]
logits and skips positions without a target; torch.compile of each decoder layer replayed as CUDA
graphs, and of the loss chunk (CUDA only; falls back to eager); eval loss; greedy exact-match before and after training; checkpoints every N steps and on
SIGINT; resume from the newest checkpoint (weights, optimizer, scheduler, data position, RNG).

Under torchrun (WORLD_SIZE > 1; docs/deploy.md): a process group (nccl on CUDA, gloo on CPU), the model and its
loss wrapped in DDP, or with fsdp in FSDP full-shard with one unit per decoder layer and bf16 mixed precision
on CUDA. Each rank takes rows rank::world of every micro-batch of the same plan, and the loss is divided by the
target tokens of the whole global batch, so the updates (and the loss curve) are those of one process up to
float summation order, whatever the process count. Only rank 0 writes files and sends events (protocol.py);
checkpoints hold full (unsharded) state, so any process count resumes them.

Writes under `out`: checkpoints/checkpoint-N/ (the newest only), metrics.jsonl, adapter/ (LoRA, PEFT
format, with the tokenizer) or model/ (full), merged/ (LoRA with merge). Events: start, progress,
metric (eval_loss, exact_match), log, artifact (checkpoint, adapter, model), result, interrupted.

Raises BadInput for: a model transformers cannot load, CUDA or bf16 asked for without a GPU, a chat
template that cannot be split into turns, data with nothing to learn after tokenization, LoRA
targets the model lacks, a checkpoint made with other settings.
"""

import bisect
import contextlib
import glob
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass

import torch

from .atomic import move_into_place, replace_folder, temp_folder, write_file
from .jobs import FinetuneConfig
from .lora_tools import copy_tokenizer_files, merge
from .protocol import BadInput, StopRequest, emit, log

IGNORE = -100
# Settings that decide the weights, the data order or the schedule: a checkpoint resumes only under the same ones.
RESUME_KEYS = (
    "model",
    "data",
    "eval_data",
    "eval_split",
    "lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_targets",
    "epochs",
    "max_steps",
    "batch_size",
    "grad_accum",
    "lr",
    "schedule",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "seed",
    "max_seq_len",
    "packing",
    "train_on_prompt",
)
# Below this size a CPU run uses one thread (unless OMP_NUM_THREADS says otherwise).
SMALL_MODEL_PARAMETERS = 10_000_000
# Logits computed at once by the chunked loss: 2**28 fp32 values are 1 GiB (1766 rows of Qwen's 151936-token vocabulary).
CHUNK_ELEMENTS = 1 << 28
# tokens/s leaves out the first steps: compilation, cuBLAS heuristics and the allocator warm up there.
TIMING_WARMUP_STEPS = 5


@dataclass
class Context:
    """What the steps of one run share, passed as one object instead of five parameters: the resolved
    config, where and in what precision it computes, and how batches are padded."""

    cfg: dict
    device: str
    precision: str
    pad_id: int = 0
    # Packed rows all take max_seq_len (one shape for torch.compile); unpacked ones the longest in the batch.
    fixed_len: int | None = None

    @classmethod
    def for_config(cls, cfg: dict) -> "Context":
        device, precision = pick_device(cfg)
        return cls(cfg, device, precision)

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()

    def collate(self, entry, examples: list) -> dict:
        return collate(entry, examples, self.pad_id, self.fixed_len, self.device)


def run(config: FinetuneConfig, train_loss=None) -> int:
    """`train_loss(decoder, lm_head, batch)`, the distill job's, replaces cross-entropy in training (not in evaluation)."""
    code = fine_tune(config, train_loss)
    if DIST["world"] > 1:
        import torch.distributed as dist

        # Past this barrier every rank's work is written. gloo's threads can abort a finished rank while the
        # process group or the interpreter tears down ("terminate called without an active exception", even
        # after destroy_process_group), so each rank leaves at once and the OS frees the rest.
        dist.barrier()
        sys.stderr.flush()
        os._exit(code)
    return code


def fine_tune(config: dict, train_loss) -> int:
    stop = StopRequest()
    cfg = config
    out = cfg["out"]
    ctx = Context.for_config(cfg)
    device, precision = ctx.device, ctx.precision
    init_distributed(device)
    # The same seed on every rank: every rank builds the same initial adapter.
    torch.manual_seed(cfg["seed"])
    if device == "cpu":
        # Bit-identical steps on CPU make an interrupted-and-resumed run match an uninterrupted one.
        torch.use_deterministic_algorithms(True, warn_only=True)

    tokenizer, model = load_model(cfg, device, precision)
    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ and model.num_parameters() < SMALL_MODEL_PARAMETERS:
        # A small model's matrices are too small to split across threads, and threads that spin-wait stall a
        # step tenfold whenever another process shares the cores.
        torch.set_num_threads(1)
    train_rows, eval_rows = split_rows(read_rows(cfg["data"]), read_rows(cfg.get("eval_data") or []), cfg)
    train, stats = tokenize_rows(train_rows, tokenizer, cfg)
    evals, _ = tokenize_rows(eval_rows, tokenizer, cfg)
    if not train:
        raise BadInput(
            f"no training example has a target token left after tokenizing ({stats['dropped']} dropped)",
            hint="check that answers are not empty and that --max-seq-len leaves room for them",
        )
    if stats["truncated"]:
        log(
            f"{stats['truncated']} of {stats['examples']} training examples were longer than --max-seq-len {cfg['max_seq_len']} and were truncated",
            level="warning",
        )
    if stats["dropped"]:
        log(f"{stats['dropped']} training examples had no answer token within --max-seq-len and were left out", level="warning")

    # The chunked loss computes the output layer itself, so it applies the model's logit soft-capping itself.
    RUNTIME["softcap"] = getattr(model.config, "final_logit_softcapping", None)
    model = prepare_model(model, cfg, device)
    # Counted before FSDP replaces each weight with its shard.
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    parameters = sum(p.numel() for p in model.parameters())
    objective = distribute(Objective(model), cfg, device, precision)
    ctx.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    groups = training_plan(train, cfg)
    total = len(groups)
    optimizer = make_optimizer(objective, cfg, device)
    scheduler = make_scheduler(optimizer, cfg, total)
    ctx.fixed_len = cfg["max_seq_len"] if cfg["packing"] else None
    state = {"first_loss": None, "last_loss": None, "exact_match_before": None, "resumed_from": None}
    start = 0
    if cfg["resume"]:
        start, state = load_checkpoint(out, cfg, objective, optimizer, scheduler)
    open_metrics(out, start)
    emit("start", job="finetune", total_steps=total)
    processes = f" × {DIST['world']} processes ({'FSDP' if cfg.get('fsdp') else 'DDP'})" if DIST["world"] > 1 else ""
    log(
        f"{'LoRA' if cfg['lora'] else 'full'} fine-tuning on {device}{processes} ({precision}): {trainable:,} trainable "
        f"parameters, {len(train)} examples, {total} steps"
    )

    if cfg["exact_match"] and state["exact_match_before"] is None:
        state["exact_match_before"] = exact_match(ctx, model, tokenizer, eval_rows or train_rows, "before", start)
    if any_rank(stop.requested, device):
        emit("interrupted", step=start, checkpoint=newest_checkpoint(out))
        return 130

    objective.train()
    timed_tokens, timed_seconds, train_tokens, eval_loss = 0, 0.0, 0, None
    started = time.time()
    for index in range(start, total):
        step = index + 1
        if DIST["world"] > 1:
            # Each rank's dropout draws its own masks, from a seed that a resumed run finds again from the step alone.
            torch.manual_seed(cfg["seed"] * 1_000_003 + step * 1_009 + DIST["rank"])
        t0 = time.time()
        loss, tokens, grad_norm, lr = train_step(ctx, groups[index], train, objective, optimizer, scheduler, train_loss)
        seconds = time.time() - t0
        train_tokens += tokens
        if index - start >= min(TIMING_WARMUP_STEPS, (total - start) // 2):
            timed_tokens += tokens
            timed_seconds += seconds
        state["last_loss"] = loss
        if state["first_loss"] is None:
            state["first_loss"] = loss
        epoch = groups[index][-1][0]
        tps = tokens / seconds if seconds > 0 else 0.0
        emit("progress", step=step, total=total, loss=loss, lr=lr, tokens_per_s=tps, message=f"epoch {epoch:.2f}")
        write_metric({"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tps, "epoch": epoch})

        if evals and cfg.get("eval_every") and step % cfg["eval_every"] == 0 and step != total:
            evaluate(ctx, objective, evals, step)
        # Every rank must stop after the same step: the checkpoint gathers from all of them.
        if any_rank(stop.requested, device):
            checkpoint = save_checkpoint(out, step, cfg, objective, optimizer, scheduler, state)
            emit("interrupted", step=step, checkpoint=checkpoint)
            return 130
        if cfg.get("save_every") and step % cfg["save_every"] == 0 and step != total:
            save_checkpoint(out, step, cfg, objective, optimizer, scheduler, state)

    train_seconds = time.time() - started
    if total > start:
        save_checkpoint(out, total, cfg, objective, optimizer, scheduler, state)
    if evals:
        eval_loss = evaluate(ctx, objective, evals, total)
    exact_after = exact_match(ctx, model, tokenizer, eval_rows or train_rows, "after", total) if cfg["exact_match"] else None
    outputs = save_outputs(objective, cfg)
    peaks, memory_kind = peak_memory_per_rank(device)
    if DIST["rank"] != 0:
        return 0
    emit(
        "result",
        out=out,
        method="lora" if cfg["lora"] else "full",
        steps=total,
        resumed_from=state["resumed_from"],
        epochs=groups[-1][-1][0],
        first_loss=state["first_loss"],
        last_loss=state["last_loss"],
        eval_loss=eval_loss,
        tokens_per_s=timed_tokens / timed_seconds if timed_seconds > 0 else None,
        train_tokens=train_tokens,
        train_seconds=train_seconds,
        peak_memory_bytes=None if None in peaks else max(peaks),
        peak_memory_per_rank=peaks,
        processes=DIST["world"],
        memory_kind=memory_kind,
        examples=stats["examples"],
        eval_examples=len(evals),
        truncated=stats["truncated"],
        dropped=stats["dropped"],
        trainable_parameters=trainable,
        total_parameters=parameters,
        device=device,
        precision=precision,
        compiled=bool(cfg["compile"] and device == "cuda"),
        exact_match={"before": state["exact_match_before"], "after": exact_after} if cfg["exact_match"] else None,
        **outputs,
    )
    return 0


# ---- setup -----------------------------------------------------------------------------------------


def pick_device(cfg: dict) -> tuple[str, str]:
    cuda = torch.cuda.is_available()
    device = cfg["device"] if cfg["device"] != "auto" else ("cuda" if cuda else "cpu")
    if device == "cuda" and not cuda:
        raise BadInput("--device cuda: PyTorch in the worker environment sees no CUDA GPU", hint="use --device cpu (or auto)")
    bf16_ok = device == "cuda" and torch.cuda.is_bf16_supported()
    precision = cfg["precision"] if cfg["precision"] != "auto" else ("bf16" if bf16_ok else "fp32")
    if precision == "bf16" and not bf16_ok:
        raise BadInput("--precision bf16 needs a CUDA GPU with bf16 support", hint="use --precision fp32 (or auto)")
    return device, precision


# This process's place in a torchrun job (world 1 without torchrun), and its device.
DIST = {"world": 1, "rank": 0, "device": "cpu"}


def init_distributed(device: str) -> None:
    DIST["device"] = device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return
    import torch.distributed as dist

    if device == "cuda":
        local = int(os.environ["LOCAL_RANK"])
        if local >= torch.cuda.device_count():
            raise BadInput(
                f"process {local} of this machine has no CUDA GPU of its own ({torch.cuda.device_count()} seen)",
                hint="use --gpus N with N at most the GPU count",
            )
        torch.cuda.set_device(local)  # "cuda" below is this rank's GPU
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    DIST.update(world=world, rank=dist.get_rank())


def any_rank(flag: bool, device: str) -> bool:
    """Whether `flag` holds on any rank (a stop request reaches the ranks at different moments)."""
    if DIST["world"] == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t)
    return bool(t.item())


class Objective(torch.nn.Module):
    """The model and its loss as one module: the loss calls the decoder and the output layer itself (chunked, not
    model.forward), and DDP and FSDP only see what runs inside their wrapper's forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, loss_fn):
        base = base_of(self.model)
        return loss_fn(base.get_decoder(), base.get_output_embeddings(), batch)


def distribute(objective, cfg: dict, device: str, precision: str):
    """The objective in DDP, or FSDP full-shard with fsdp, when there are several ranks."""
    if DIST["world"] == 1:
        return objective
    if not cfg.get("fsdp"):
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(objective, device_ids=[torch.cuda.current_device()] if device == "cuda" else None)
    import functools

    from torch.distributed.fsdp import FullyShardedDataParallel, MixedPrecision, ShardingStrategy
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    # One FSDP unit per decoder layer (whatever class the architecture uses): a layer's weights are gathered just
    # before it runs and freed after, so the whole model never sits on one process. The root unit keeps the
    # embeddings, final norm and output layer.
    layer = type(base_of(objective.model).get_decoder().layers[0])
    mixed = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.bfloat16) if precision == "bf16" else None
    # use_orig_params: LoRA mixes frozen and trained weights in one unit, and the optimizer and checkpoints keep
    # the original parameter names.
    return FullyShardedDataParallel(
        objective,
        auto_wrap_policy=functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={layer}),
        sharding_strategy=ShardingStrategy.FULL_SHARD,
        mixed_precision=mixed,
        use_orig_params=True,
        device_id=torch.cuda.current_device() if device == "cuda" else torch.device("cpu"),
    )


def load_model(cfg: dict, device: str, precision: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # A LoRA base is frozen, so it can live in bf16; full fine-tuning keeps fp32 master weights under autocast.
    # FSDP flattens a layer's weights into one tensor of one dtype, so under it LoRA keeps fp32 too (FSDP's mixed
    # precision computes in bf16).
    dtype = torch.bfloat16 if cfg["lora"] and precision == "bf16" and not cfg.get("fsdp") else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
        model = AutoModelForCausalLM.from_pretrained(cfg["model"], dtype=dtype)
    except (OSError, ValueError, KeyError) as e:
        raise BadInput(
            f"transformers cannot load the model in {cfg['model']}: {str(e).splitlines()[0]}",
            hint="pass a Hugging Face causal LM folder (config.json, weights, tokenizer)",
        ) from e
    if not tokenizer.is_fast:
        raise BadInput(f"the tokenizer in {cfg['model']} is not a fast tokenizer", hint="the model folder needs a tokenizer.json")
    model.config.use_cache = False
    return tokenizer, model.to(device)


def prepare_model(model, cfg: dict, device: str):
    if cfg["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg["lora"]:
        from peft import LoraConfig, get_peft_model

        linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in f".{name}"})
        targets = cfg.get("lora_targets") or linear
        missing = sorted(set(targets) - set(linear))
        if missing:
            raise BadInput(
                f"--lora-targets: the model has no linear layer named {', '.join(missing)}", hint=f"its attention and MLP linear layers are {', '.join(linear)}"
            )
        lora = LoraConfig(
            r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=cfg["lora_dropout"], target_modules=targets, bias="none", task_type="CAUSAL_LM"
        )
        # peft keeps the adapter weights in fp32 (autocast_adapter_dtype), so the optimizer updates full-precision values.
        model = get_peft_model(model, lora)
    if cfg["compile"]:
        if device != "cuda":
            log("--compile applies on CUDA only; training runs eagerly on CPU", level="warning")
        else:
            import torch._dynamo as dynamo

            # A layer that fails to compile runs eagerly instead of failing the run.
            dynamo.config.suppress_errors = True
            layers = base_of(model).get_decoder().layers
            # CUDA graphs replay each layer's many small kernels (LoRA adds several matmuls to every linear layer)
            # with one launch; without them a 0.5B model's step waits on Python and kernel launches, not on the
            # GPU (docs/benchmarks.md). Checkpointing reruns the forward inside the backward, which graphs cannot capture.
            graphs = not cfg["gradient_checkpointing"]
            for layer in layers:
                layer.compile(mode="reduce-overhead" if graphs else None)
            RUNTIME.update(ce_chunk=torch.compile(cross_entropy_chunk, dynamic=True), cuda_graphs=graphs)
            log(f"compiling {len(layers)} decoder layers with torch.compile{' and CUDA graphs' if graphs else ''} (the first steps are slow)")
    return model


def base_of(model):
    """The *ForCausalLM under a peft wrapper (peft injects LoRA into its modules in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def trainable_params(model):
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(model, cfg: dict, device: str):
    params = trainable_params(model)
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg["weight_decay"]},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg["lr"], fused=device == "cuda")


def make_scheduler(optimizer, cfg: dict, total: int):
    warmup = math.ceil(total * cfg["warmup_ratio"])

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 1.0 - progress if cfg["schedule"] == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---- data ------------------------------------------------------------------------------------------


def read_rows(files: list) -> list:
    rows = []
    for f in files:
        with open(f["path"], encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    rows.append((json.loads(line), f["format"], f"{f['path']}:{number}"))
    return rows


def split_rows(train: list, evals: list, cfg: dict) -> tuple[list, list]:
    if not cfg.get("eval_split"):
        return train, evals
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg["seed"])).tolist()
    n_eval = max(1, round(len(train) * cfg["eval_split"]))
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


def tokenize_rows(rows: list, tokenizer, cfg: dict) -> tuple[list, dict]:
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


def epoch_rows(examples: list, cfg: dict, epoch: int) -> list:
    """One epoch in a seeded order, as rows of example indices: one example a row, or with packing as many as
    fit in max_seq_len tokens, placed best-fit-decreasing (longest first, each into the fullest row with room),
    which leaves rows nearly full where filling them in order leaves close to a third of each empty."""
    generator = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + epoch)
    order = torch.randperm(len(examples), generator=generator).tolist()
    if not cfg["packing"]:
        return [[i] for i in order]
    rows, space = [], []  # space: sorted (tokens left, row index) of rows that are not full
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


def training_plan(examples: list, cfg: dict) -> list:
    """Every optimizer step as its list of micro-batches (each a list of rows), with the epoch each came from.

    The plan is a pure function of the data and the seed, so a resumed run finds its data position by index.
    """
    micro, epoch = [], 0
    needed = cfg["max_steps"] * cfg["grad_accum"] if cfg.get("max_steps") else None
    while (epoch < cfg["epochs"]) if needed is None else (len(micro) < needed):
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


def train_step(ctx: Context, group, examples, objective, optimizer, scheduler, loss_fn=None):
    """One optimizer step over its micro-batches; the loss (`loss_fn`, a sum over target tokens, default
    batch_loss) is averaged over all target tokens of the step, so gradient accumulation gives the same update
    as one large batch. Under torchrun each rank takes rows rank::world of every micro-batch and the average is
    still over the whole global batch. Returns (loss, tokens, grad norm, lr), tokens counted over all ranks."""
    cfg, world, rank = ctx.cfg, DIST["world"], DIST["rank"]
    ids = [i for _, batch_rows in group for row in batch_rows for i in row]
    n_targets = sum(sum(t != IGNORE for t in examples[i][1]) for i in ids)
    tokens = sum(len(examples[i][0]) for i in ids)
    loss_sum = torch.zeros((), device=ctx.device)
    for k, (epoch, batch_rows) in enumerate(group):
        mine = batch_rows[rank::world]
        # A rank left without rows (a short last batch) still runs the pass that the others' gradient
        # all-reduce waits for, on a row whose loss it then multiplies by 0.
        batch = ctx.collate((epoch, mine or batch_rows[:1]), examples)
        # DDP all-reduces the gradients on the step's last micro-batch only.
        ddp_accumulating = world > 1 and not cfg.get("fsdp") and k < len(group) - 1
        sync = objective.no_sync() if ddp_accumulating else contextlib.nullcontext()
        with sync:
            with ctx.autocast():
                loss = objective(batch, loss_fn or batch_loss) * (1.0 if mine else 0.0)
            # DDP and FSDP average the gradients over the ranks; scaling by world turns that into their sum.
            (loss * world / n_targets).backward()
        loss_sum += loss.detach()
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(loss_sum)
    params = trainable_params(objective)
    max_norm = cfg["max_grad_norm"] or float("inf")
    # Under FSDP each rank holds a shard of the gradients: the FSDP method reduces the norm over all of them.
    grad_norm = objective.clip_grad_norm_(max_norm) if cfg.get("fsdp") and world > 1 else torch.nn.utils.clip_grad_norm_(params, max_norm)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    # float() waits for the GPU, so the caller's step timing is real.
    return float(loss_sum) / n_targets, tokens, float(grad_norm), lr


# ---- loss ------------------------------------------------------------------------------------------


def batch_loss(decoder, lm_head, batch: dict):
    """Sum of the token losses of a micro-batch; only positions with a target go through the output layer."""
    if RUNTIME["cuda_graphs"]:
        torch.compiler.cudagraph_mark_step_begin()  # the previous micro-batch's graph outputs are no longer needed
    hidden = decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).last_hidden_state
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["picked"])
    return linear_cross_entropy(picked, lm_head.weight, batch["targets"])


def linear_cross_entropy(hidden, weight, targets):
    """sum(cross_entropy(hidden @ weight.T, targets)), a chunk of rows at a time, so the [rows, vocab] fp32
    logits of a large vocabulary (152k for Qwen) never exist at once. With gradients, each chunk's gradient
    (softmax minus one-hot) is made in the forward pass and its logits dropped, so nothing is recomputed."""
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return LinearCrossEntropy.apply(hidden, weight, targets, dtype)
    return chunked_cross_entropy(hidden, weight, targets, dtype, grads=False)[0]


def chunked_cross_entropy(hidden, weight, targets, dtype, grads: bool):
    with torch.autocast(hidden.device.type, enabled=False):
        h, w = hidden.to(dtype), weight.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h) if grads else None
        grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device) if grads and weight.requires_grad else None
        rows = max(1, CHUNK_ELEMENTS // w.shape[0])
        for s in range(0, h.shape[0], rows):
            hs = h[s : s + rows]
            loss, g = RUNTIME["ce_chunk"](hs @ w.T, targets[s : s + rows], grads)
            total += loss
            if grads:
                grad_h[s : s + rows] = g @ w
                if grad_w is not None:
                    grad_w += (g.T @ hs).float()
    return total, grad_h, grad_w


def cross_entropy_chunk(logits, targets, grads: bool):
    """Summed loss of one chunk of logits and, with grads, d(loss)/d(logits) = softmax - one-hot, in the logits'
    dtype. Written as plain elementwise math and reductions so that torch.compile fuses it into a couple of
    passes over the chunk (eager PyTorch makes about ten)."""
    x = logits.float()
    cap = RUNTIME["softcap"]
    if cap:  # final logit soft-capping (Gemma 2/3 configs that set it): logits = cap * tanh(logits / cap)
        t = torch.tanh(x / cap)
        x = t * cap
    lse = torch.logsumexp(x, -1, keepdim=True)
    picked = x.gather(1, targets[:, None])
    loss = (lse - picked).sum()
    if not grads:
        return loss, None
    onehot = torch.arange(x.shape[1], device=x.device)[None, :] == targets[:, None]
    grad = torch.exp(x - lse) - onehot.float()
    return loss, (grad * (1 - t * t) if cap else grad).to(logits.dtype)


# What --compile (on CUDA) changes for the whole job: a compiled loss chunk, and layers replayed as CUDA graphs.
RUNTIME = {"ce_chunk": cross_entropy_chunk, "cuda_graphs": False, "softcap": None}


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, dtype):
        total, grad_h, grad_w = chunked_cross_entropy(hidden, weight, targets, dtype, grads=True)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        grad_weight = (grad_w * grad_out).to(ctx.dtypes[1]) if grad_w is not None else None
        return (grad_h * grad_out).to(ctx.dtypes[0]), grad_weight, None, None


# ---- evaluation ------------------------------------------------------------------------------------


def eager():
    """Evaluation and generation change shapes and grad mode; running them uncompiled avoids recompiling."""
    set_stance = getattr(torch.compiler, "set_stance", None)  # torch >= 2.6
    return set_stance("force_eager") if set_stance else contextlib.nullcontext()


def evaluate(ctx: Context, objective, examples, step) -> float:
    """Eval loss over all eval examples. Under torchrun every rank evaluates all of them, in step, since FSDP gathers
    each layer from every rank (eval sets are small next to training)."""
    plan = training_plan(examples, {**ctx.cfg, "epochs": 1, "max_steps": None, "grad_accum": 1})
    total, count = 0.0, 0
    objective.eval()
    with torch.no_grad(), eager():
        for (entry,) in plan:
            batch = ctx.collate(entry, examples)
            with ctx.autocast():
                total += float(objective(batch, batch_loss))
            count += batch["n_targets"]
    objective.train()
    value = total / count
    emit("metric", name="eval_loss", value=value, step=step)
    write_metric({"step": step, "eval_loss": value})
    return value


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


def greedy_answers(ctx: Context, model, tokenizer, prompts: list, max_new_tokens: int) -> list:
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
        with torch.no_grad(), eager(), ctx.autocast():
            generated = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=generation)
        answers += tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
    model.train(was_training)
    return answers


def exact_match(ctx: Context, model, tokenizer, rows, when, step) -> dict:
    """Greedy-generates the answer of the first `exact_match` examples and counts exact (whitespace-trimmed) hits."""
    items = [qa for qa in (question_and_answer(r, f, tokenizer) for r, f, _ in rows) if qa][: ctx.cfg["exact_match"]]
    longest = max((len(tokenizer(answer, add_special_tokens=False)["input_ids"]) for _, _, answer in items), default=0)
    answers = greedy_answers(ctx, model, tokenizer, [ids for ids, _, _ in items], longest + 8)
    correct, samples = 0, []
    for (_, question, expected), got in zip(items, answers):
        hit = got.strip() == expected.strip()
        correct += hit
        if len(samples) < 20:
            samples.append({"question": question, "expected": expected, "got": got.strip(), "correct": hit})
    result = {"value": correct / len(items) if items else 0.0, "correct": correct, "total": len(items), "samples": samples}
    emit("metric", name="exact_match", when=when, step=step, **result)
    write_metric({"step": step, "exact_match": result["value"], "when": when})
    return result


# ---- checkpoints, metrics, outputs -----------------------------------------------------------------

_metrics = {"file": None}


def open_metrics(out: str, keep_until: int) -> None:
    """metrics.jsonl holds one curve: a resumed run drops what came after its checkpoint, then appends. Rank 0's."""
    if DIST["rank"] != 0:
        return
    path = os.path.join(out, "metrics.jsonl")
    kept = []
    if keep_until and os.path.exists(path):
        with open(path) as f:
            kept = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= keep_until]
    write_file(path, lambda f: f.writelines(kept))
    _metrics["file"] = open(path, "a", buffering=1)


def write_metric(record: dict) -> None:
    if _metrics["file"] is None:  # ranks other than 0
        return
    _metrics["file"].write(json.dumps(record) + "\n")


def fingerprint(cfg: dict) -> dict:
    return {k: cfg.get(k) for k in RESUME_KEYS}


def newest_checkpoint(out: str):
    found = sorted(glob.glob(os.path.join(out, "checkpoints", "checkpoint-*[0-9]")), key=lambda p: int(p.rsplit("-", 1)[1]))
    return found[-1] if found else None


def full_state_options(**more):
    """Whole tensors (FSDP's shards gathered) keyed by parameter name. From a GPU they are copied to the CPU as
    they are gathered, so a model too large for one GPU can still be saved; on the CPU that copy is pointless, and
    FSDP's offload there crashes (SIGSEGV, torch 2.11)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    offload = DIST["device"] == "cuda"
    if offload and DIST["rank"] != 0:
        # Offloaded, only rank 0 receives the gathered tensors; torch 2.11 would still drop the frozen ones from the
        # other ranks' empty dicts, and fail on the first (KeyError). There is nothing to drop there.
        more.pop("ignore_frozen_params", None)
    return StateDictOptions(full_state_dict=True, cpu_offload=offload, **more)


def save_checkpoint(out, step, cfg, objective, optimizer, scheduler, state) -> str:
    """Written under a temporary name and renamed, so the newest checkpoint is always whole; older ones are removed.

    The trained weights and the optimizer state are whole (FSDP's shards gathered) and keyed by parameter name, so
    a checkpoint resumes under any process count. Every rank takes part in the gathering; rank 0 writes."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import get_state_dict

    weights, optim = get_state_dict(objective, optimizer, options=full_state_options(ignore_frozen_params=True))
    folder = os.path.join(out, "checkpoints", f"checkpoint-{step}")
    if DIST["rank"] != 0:
        return folder
    tmp = temp_folder(folder)
    save_file({n: w.contiguous() for n, w in weights.items()}, os.path.join(tmp, "trainable.safetensors"))
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save({"step": step, "optimizer": optim, "scheduler": scheduler.state_dict(), "rng": rng}, os.path.join(tmp, "trainer_state.pt"))
    with open(os.path.join(tmp, "llmkit_state.json"), "w") as f:
        json.dump({"step": step, "fingerprint": fingerprint(cfg), "state": state}, f, indent=2)
    move_into_place(tmp, folder)
    for old in glob.glob(os.path.join(out, "checkpoints", "checkpoint-*")):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    emit("artifact", kind="checkpoint", path=folder, step=step)
    return folder


def load_checkpoint(out, cfg, objective, optimizer, scheduler) -> tuple[int, dict]:
    """Every rank reads the checkpoint (on several machines, --out must be storage they all see)."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_state_dict

    folder = newest_checkpoint(out)
    if folder is None:
        raise BadInput(f"--resume: {out} has no checkpoint to resume from", hint="start the run without --resume")
    with open(os.path.join(folder, "llmkit_state.json")) as f:
        saved = json.load(f)
    for key, value in fingerprint(cfg).items():
        if json.dumps(saved["fingerprint"].get(key)) != json.dumps(value):
            flag = "--" + key.replace("_", "-")
            raise BadInput(
                f"--resume: {folder} was made with {flag} {json.dumps(saved['fingerprint'].get(key))}, this run has {json.dumps(value)}",
                hint=f"resume with the same {flag}, or start a new --out",
            )
    weights = load_file(os.path.join(folder, "trainable.safetensors"))
    trainer = torch.load(os.path.join(folder, "trainer_state.pt"), weights_only=True)
    # strict=False: the checkpoint holds the trained weights only, not the frozen base.
    set_state_dict(objective, optimizer, model_state_dict=weights, optim_state_dict=trainer["optimizer"], options=full_state_options(strict=False))
    scheduler.load_state_dict(trainer["scheduler"])
    torch.set_rng_state(trainer["rng"]["cpu"])
    if "cuda" in trainer["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(trainer["rng"]["cuda"])
    log(f"resumed from {folder} (step {saved['step']})")
    return saved["step"], {**saved["state"], "resumed_from": folder}


def save_outputs(objective, cfg: dict) -> dict:
    """Rank 0 writes the adapter or model; under FSDP every rank first helps gather the whole weights."""
    out = cfg["out"]
    model = unwrapped(objective).model
    # Under FSDP the modules hold shards; save_pretrained then takes the gathered weights (named as in `model`).
    weights = None
    if cfg.get("fsdp") and DIST["world"] > 1:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        gathered = get_model_state_dict(objective, options=full_state_options())
        weights = {name.removeprefix("model."): w for name, w in gathered.items()}
    if DIST["rank"] != 0:
        return {}
    if cfg["lora"]:
        adapter = replace_folder(
            os.path.join(out, "adapter"), lambda tmp: (model.save_pretrained(tmp, state_dict=weights), copy_tokenizer_files(cfg["model"], tmp))
        )
        emit("artifact", kind="adapter", path=adapter)
        merged = merge(cfg["model"], adapter, os.path.join(out, "merged")) if cfg["merge"] else None
        return {"adapter": adapter, "merged": merged, "model": None}

    with open(os.path.join(cfg["model"], "config.json")) as f:
        base_config = json.load(f)
    dtype = getattr(torch, base_config.get("dtype") or base_config.get("torch_dtype") or "float32", torch.float32)
    # The checkpoint's own dtype, as users expect.
    if weights is None:
        model.to(dtype)
    else:
        weights = {name: w.to(dtype) for name, w in weights.items()}
    folder = replace_folder(os.path.join(out, "model"), lambda tmp: (model.save_pretrained(tmp, state_dict=weights), copy_tokenizer_files(cfg["model"], tmp)))
    emit("artifact", kind="model", path=folder)
    return {"adapter": None, "merged": None, "model": folder}


def unwrapped(objective):
    """The Objective inside a DDP or FSDP wrapper."""
    return objective.module if DIST["world"] > 1 else objective


def peak_memory_per_rank(device: str) -> tuple:
    """Every rank's peak (a collective: all ranks call it), and what kind of memory it counts."""
    peak, kind = peak_memory(device)
    if DIST["world"] == 1:
        return [peak], kind
    import torch.distributed as dist

    peaks = [None] * DIST["world"]
    dist.all_gather_object(peaks, peak)
    return peaks, kind


def peak_memory(device: str) -> tuple:
    if device == "cuda":
        return torch.cuda.max_memory_allocated(), "cuda"
    try:
        import resource
    except ImportError:  # Windows
        return None, None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cpu_rss"
