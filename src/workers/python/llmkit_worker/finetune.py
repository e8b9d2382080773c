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

import torch

from .jobs import FinetuneConfig
from .protocol import BadInput, StopRequest, emit, log
from .trainer.checkpoint import load_checkpoint, save_outputs
from .trainer.context import Metrics, RunContext
from .trainer.data import read_rows, split_rows, tokenize_rows, training_plan
from .trainer.exact_match import exact_match
from .trainer.loop import Training, evaluate, fit, make_optimizer, make_scheduler, stopped_before_training
from .trainer.model import Objective, distribute, load_model, peak_memory_per_rank, prepare_model


def run(config: FinetuneConfig) -> int:
    ctx = RunContext.start(config)
    return ctx.finish(train(ctx))


def train(ctx: RunContext, loss=None) -> int:
    """The whole run on `ctx`: 0, or 130 when stopped. `loss` (the distill job's) replaces cross-entropy in
    training; evaluation stays cross-entropy."""
    cfg = ctx.cfg
    stop = StopRequest()
    # The same seed on every rank: every rank builds the same initial adapter.
    torch.manual_seed(cfg["seed"])
    if ctx.device == "cpu":
        # Bit-identical steps on CPU make an interrupted-and-resumed run match an uninterrupted one.
        torch.use_deterministic_algorithms(True, warn_only=True)

    # ---- model and data
    tokenizer, model = load_model(ctx)
    train_rows, eval_rows = split_rows(read_rows(cfg["data"]), read_rows(cfg.get("eval_data") or []), cfg)
    examples, stats = tokenize_rows(train_rows, tokenizer, cfg)
    evals, _ = tokenize_rows(eval_rows, tokenizer, cfg)
    check_examples(examples, stats, cfg)
    model, cross_entropy = prepare_model(model, ctx)
    # Counted before FSDP replaces each weight with its shard.
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    parameters = sum(p.numel() for p in model.parameters())
    objective = distribute(ctx, Objective(model))
    ctx.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    ctx.fixed_len = cfg["max_seq_len"] if cfg["packing"] else None

    # ---- optimizer, schedule, plan, and where a resumed run stands
    plan = training_plan(examples, cfg)
    optimizer = make_optimizer(ctx, objective)
    scheduler = make_scheduler(optimizer, cfg, len(plan))
    training = Training(objective, loss or cross_entropy, cross_entropy, optimizer, scheduler, plan, examples, evals)
    if cfg["resume"]:
        load_checkpoint(ctx, training)
    ctx.metrics = Metrics.open(cfg["out"], training.start, ctx.rank, cfg["report_to"] == "tensorboard")
    emit("start", job="finetune", total_steps=len(plan))
    processes = f" × {ctx.world} processes ({'FSDP' if cfg.get('fsdp') else 'DDP'})" if ctx.world > 1 else ""
    log(
        f"{'LoRA' if cfg['lora'] else 'full'} fine-tuning on {ctx.device}{processes} ({ctx.precision}): {trainable:,} trainable "
        f"parameters, {len(examples)} examples, {len(plan)} steps"
    )

    # ---- train
    state, qa_rows = training.state, eval_rows or train_rows
    if cfg["exact_match"] and state["exact_match_before"] is None:
        state["exact_match_before"] = exact_match(ctx, model, tokenizer, qa_rows, when="before", step=training.start)
    if stopped_before_training(ctx, training, stop):
        return 130
    timing = fit(ctx, training, stop)
    if timing is None:
        return 130

    # ---- evaluate, save, report
    eval_loss = evaluate(ctx, training, len(plan)) if evals else None
    exact_after = exact_match(ctx, model, tokenizer, qa_rows, when="after", step=len(plan)) if cfg["exact_match"] else None
    outputs = save_outputs(ctx, objective)
    peaks, memory_kind = peak_memory_per_rank(ctx)
    if ctx.rank != 0:
        return 0
    emit(
        "result",
        out=cfg["out"],
        method="lora" if cfg["lora"] else "full",
        steps=len(plan),
        resumed_from=state["resumed_from"],
        epochs=plan[-1][-1][0],
        first_loss=state["first_loss"],
        last_loss=state["last_loss"],
        eval_loss=eval_loss,
        tokens_per_s=timing.tokens_per_s(),
        train_tokens=timing.train_tokens,
        train_seconds=timing.train_seconds,
        peak_memory_bytes=None if None in peaks else max(peaks),
        peak_memory_per_rank=peaks,
        processes=ctx.world,
        memory_kind=memory_kind,
        examples=stats["examples"],
        eval_examples=len(evals),
        truncated=stats["truncated"],
        dropped=stats["dropped"],
        trainable_parameters=trainable,
        total_parameters=parameters,
        device=ctx.device,
        precision=ctx.precision,
        compiled=bool(cfg["compile"] and ctx.device == "cuda"),
        exact_match={"before": state["exact_match_before"], "after": exact_after} if cfg["exact_match"] else None,
        **outputs,
    )
    return 0


def check_examples(examples: list, stats: dict, cfg: FinetuneConfig) -> None:
    """Fails when nothing is left to learn; warns about what truncation cut."""
    if not examples:
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
