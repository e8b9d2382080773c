"""The training loop: AdamW and its schedule, one optimizer step over its micro-batches, eval loss, and the run
of steps with progress events, periodic evaluation and checkpoints, and a checkpoint on Ctrl-C (SIGINT).

Checkpoints are written without being asked: every save_every steps or save_minutes of training, whichever comes
first, so that a worker killed from outside (SIGKILL: an OOM killer, a pre-empted node) loses at most that."""

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch

from ..jobs import FinetuneConfig
from ..protocol import StopRequest, emit
from .checkpoint import newest_checkpoint, save_checkpoint
from .context import RunContext
from .data import IGNORE, training_plan
from .model import trainable_params

# tokens/s leaves out the first steps: compilation, cuBLAS heuristics and the allocator warm up there.
TIMING_WARMUP_STEPS = 5


@dataclass
class Training:
    """What a run trains and with what: the model and its loss in their DDP/FSDP wrapper, the training loss and
    the evaluation one (cross-entropy), the optimizer and schedule, the step plan over the tokenized examples, and
    where it stands (`start`: steps already done; `state`: what checkpoints carry to the result)."""

    objective: torch.nn.Module
    loss: object
    eval_loss: object
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    plan: list
    examples: list
    evals: list
    start: int = 0
    state: dict = field(default_factory=lambda: {"first_loss": None, "last_loss": None, "exact_match_before": None, "resumed_from": None})


@dataclass
class Timing:
    train_tokens: int = 0
    train_seconds: float = 0.0
    # Tokens and seconds of the steps after the warm-up.
    timed_tokens: int = 0
    timed_seconds: float = 0.0

    def tokens_per_s(self):
        return self.timed_tokens / self.timed_seconds if self.timed_seconds > 0 else None


def make_optimizer(ctx: RunContext, model):
    params = trainable_params(model)
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": ctx.cfg["weight_decay"]},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=ctx.cfg["lr"], fused=ctx.device == "cuda")


def make_scheduler(optimizer, cfg: FinetuneConfig, total: int):
    """Linear warm-up over warmup_ratio of the steps, then a linear or cosine decay to 0."""
    warmup = math.ceil(total * cfg["warmup_ratio"])

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 1.0 - progress if cfg["schedule"] == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(ctx: RunContext, training: Training, stop: StopRequest) -> Timing | None:
    """Runs the steps from training.start to the end of the plan and saves the last checkpoint; None when a stop
    request ended it early (after a checkpoint and the `interrupted` event)."""
    cfg, objective, total = ctx.cfg, training.objective, len(training.plan)
    state, timing = training.state, Timing()
    objective.train()
    started = last_save = time.time()
    for index in range(training.start, total):
        step = index + 1
        if ctx.world > 1:
            # Each rank's dropout draws its own masks, from a seed that a resumed run finds again from the step alone.
            torch.manual_seed(cfg["seed"] * 1_000_003 + step * 1_009 + ctx.rank)
        t0 = time.time()
        loss, tokens, grad_norm, lr = train_step(ctx, training, training.plan[index])
        seconds = time.time() - t0
        timing.train_tokens += tokens
        if index - training.start >= min(TIMING_WARMUP_STEPS, (total - training.start) // 2):
            timing.timed_tokens += tokens
            timing.timed_seconds += seconds
        state["last_loss"] = loss
        if state["first_loss"] is None:
            state["first_loss"] = loss
        epoch = training.plan[index][-1][0]
        tps = tokens / seconds if seconds > 0 else 0.0
        emit("progress", step=step, total=total, loss=loss, lr=lr, tokens_per_s=tps, message=f"epoch {epoch:.2f}")
        ctx.metrics.write({"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tps, "epoch": epoch})

        if training.evals and (every := cfg["eval_every"]) and step % every == 0 and step != total:
            evaluate(ctx, training, step)
        # Every rank must stop after the same step: the checkpoint gathers from all of them.
        if ctx.any_rank(stop.requested):
            emit("interrupted", step=step, checkpoint=save_checkpoint(ctx, training, step))
            return None
        if step != total and checkpoint_due(ctx, step, time.time() - last_save):
            save_checkpoint(ctx, training, step)
            last_save = time.time()
    timing.train_seconds = time.time() - started
    if total > training.start:
        save_checkpoint(ctx, training, total)
    return timing


def checkpoint_due(ctx: RunContext, step: int, seconds_since_save: float) -> bool:
    """Every save_every steps, or once save_minutes have passed since the last save. The ranks' clocks differ, and
    all of them must save at the same step: it is due when it is due on any of them."""
    cfg = ctx.cfg
    return step % cfg["save_every"] == 0 or ctx.any_rank(seconds_since_save >= cfg["save_minutes"] * 60)


def stopped_before_training(ctx: RunContext, training: Training, stop: StopRequest) -> bool:
    """A stop request that came during setup: reported as an interruption at the step the run started from."""
    if not ctx.any_rank(stop.requested):
        return False
    emit("interrupted", step=training.start, checkpoint=newest_checkpoint(ctx.cfg["out"]))
    return True


def train_step(ctx: RunContext, training: Training, group) -> tuple[float, int, float, float]:
    """One optimizer step over its micro-batches; the loss (a sum over target tokens) is averaged over all target
    tokens of the step, so gradient accumulation gives the same update as one large batch. Under torchrun each
    rank takes rows rank::world of every micro-batch and the average is still over the whole global batch.
    Returns (loss, tokens, grad norm, lr), tokens counted over all ranks."""
    cfg, world, rank, examples, objective = ctx.cfg, ctx.world, ctx.rank, training.examples, training.objective
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
                loss = objective(batch, training.loss) * (1.0 if mine else 0.0)
            # DDP and FSDP average the gradients over the ranks; scaling by world turns that into their sum.
            (loss * world / n_targets).backward()
        loss_sum += loss.detach()
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(loss_sum)
    optimizer = training.optimizer
    max_norm = cfg["max_grad_norm"] or float("inf")
    # Under FSDP each rank holds a shard of the gradients: the FSDP method reduces the norm over all of them.
    fsdp = cfg.get("fsdp") and world > 1
    grad_norm = objective.clip_grad_norm_(max_norm) if fsdp else torch.nn.utils.clip_grad_norm_(trainable_params(objective), max_norm)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    training.scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    # float() waits for the GPU, so the caller's step timing is real.
    return float(loss_sum) / n_targets, tokens, float(grad_norm), lr


def evaluate(ctx: RunContext, training: Training, step: int) -> float:
    """Eval loss (cross-entropy) over all eval examples. Under torchrun every rank evaluates all of them, in step,
    since FSDP gathers each layer from every rank (eval sets are small next to training)."""
    examples = training.evals
    plan = training_plan(examples, {**ctx.cfg, "epochs": 1, "max_steps": None, "grad_accum": 1})
    total, count = 0.0, 0
    training.objective.eval()
    with ctx.inference():
        for (entry,) in plan:
            batch = ctx.collate(entry, examples)
            total += float(training.objective(batch, training.eval_loss))
            count += batch["n_targets"]
    training.objective.train()
    value = total / count
    emit("metric", name="eval_loss", value=value, step=step)
    ctx.metrics.write({"step": step, "eval_loss": value})
    return value
