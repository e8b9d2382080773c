"""What a run writes and reads back: checkpoints (every N steps, on a stop request and at the end; resumed with
--resume) and the trained adapter or model."""

import glob
import json
import os
import shutil
from collections.abc import Mapping

import torch

from ..atomic import move_into_place, replace_folder, temp_folder
from ..lora_tools import merge, with_tokenizer
from ..protocol import BadInput, emit, log
from .context import RunContext
from .model import unwrapped

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


def fingerprint(cfg: Mapping[str, object]) -> dict:
    return {k: cfg.get(k) for k in RESUME_KEYS}


def newest_checkpoint(out: str):
    found = sorted(glob.glob(os.path.join(out, "checkpoints", "checkpoint-*[0-9]")), key=lambda p: int(p.rsplit("-", 1)[1]))
    return found[-1] if found else None


def full_state_options(ctx: RunContext, **more):
    """Whole tensors (FSDP's shards gathered) keyed by parameter name. From a GPU they are copied to the CPU as
    they are gathered, so a model too large for one GPU can still be saved; on the CPU that copy is pointless, and
    FSDP's offload there crashes (SIGSEGV, torch 2.11)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    offload = ctx.device == "cuda"
    if offload and ctx.rank != 0:
        # Offloaded, only rank 0 receives the gathered tensors; torch 2.11 would still drop the frozen ones from the
        # other ranks' empty dicts, and fail on the first (KeyError). There is nothing to drop there.
        more.pop("ignore_frozen_params", None)
    return StateDictOptions(full_state_dict=True, cpu_offload=offload, **more)


def without_shared_tensors(weights: dict) -> tuple[dict, dict]:
    """safetensors refuses tensors that share memory, as a tied output layer shares the input embedding's: each
    shared tensor is written once, and the other names are kept as aliases of it ({alias: saved name})."""
    saved, aliases = {}, {}
    first_name: dict[tuple, str] = {}
    for name, w in weights.items():
        key = (w.untyped_storage().data_ptr(), w.storage_offset(), tuple(w.shape), tuple(w.stride()))
        if key in first_name and w.numel() > 0:
            aliases[name] = first_name[key]
        else:
            first_name[key] = name
            saved[name] = w.contiguous()
    return saved, aliases


def save_checkpoint(ctx: RunContext, training, step: int) -> str:
    """Written under a temporary name and renamed, so the newest checkpoint is always whole; older ones are removed.

    The trained weights and the optimizer state are whole (FSDP's shards gathered) and keyed by parameter name, so
    a checkpoint resumes under any process count. Every rank takes part in the gathering; rank 0 writes."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import get_state_dict

    out = ctx.cfg["out"]
    weights, optim = get_state_dict(training.objective, training.optimizer, options=full_state_options(ctx, ignore_frozen_params=True))
    folder = os.path.join(out, "checkpoints", f"checkpoint-{step}")
    if ctx.rank != 0:
        return folder
    tmp = temp_folder(folder)
    distinct, aliases = without_shared_tensors(weights)
    save_file(distinct, os.path.join(tmp, "trainable.safetensors"), metadata={"aliases": json.dumps(aliases)})
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save({"step": step, "optimizer": optim, "scheduler": training.scheduler.state_dict(), "rng": rng}, os.path.join(tmp, "trainer_state.pt"))
    with open(os.path.join(tmp, "llmkit_state.json"), "w") as f:
        json.dump({"step": step, "fingerprint": fingerprint(ctx.cfg), "state": training.state}, f, indent=2)
    move_into_place(tmp, folder)
    remove_old_checkpoints(out, keep=ctx.cfg["keep_checkpoints"], newest=folder)
    emit("artifact", kind="checkpoint", path=folder, step=step)
    return folder


def remove_old_checkpoints(out: str, keep: int, newest: str) -> None:
    """Keeps the newest `keep` checkpoints (the one just written among them), and drops leftovers of writes that a
    kill interrupted (their temporary folders)."""
    whole = sorted(glob.glob(os.path.join(out, "checkpoints", "checkpoint-*[0-9]")), key=lambda p: int(p.rsplit("-", 1)[1]))
    kept = set(whole[-keep:]) | {newest}
    for old in glob.glob(os.path.join(out, "checkpoints", "checkpoint-*")):
        if old not in kept:
            shutil.rmtree(old, ignore_errors=True)


def load_shared_tensors(path: str) -> dict:
    """The weights save_checkpoint wrote, the aliases of a shared tensor pointing at it again."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    weights = load_file(path)
    with safe_open(path, "pt") as f:
        aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    return {**weights, **{alias: weights[name] for alias, name in aliases.items()}}


def load_checkpoint(ctx: RunContext, training) -> None:
    """Sets `training` back to the newest checkpoint: weights, optimizer, schedule, RNG, step and state. Every rank
    reads the checkpoint (on several machines, --out must be storage they all see)."""
    from torch.distributed.checkpoint.state_dict import set_state_dict

    out = ctx.cfg["out"]
    folder = newest_checkpoint(out)
    if folder is None:
        raise BadInput(f"--resume: {out} has no checkpoint to resume from", hint="start the run without --resume")
    with open(os.path.join(folder, "llmkit_state.json")) as f:
        saved = json.load(f)
    for key, value in fingerprint(ctx.cfg).items():
        if json.dumps(saved["fingerprint"].get(key)) != json.dumps(value):
            flag = "--" + key.replace("_", "-")
            raise BadInput(
                f"--resume: {folder} was made with {flag} {json.dumps(saved['fingerprint'].get(key))}, this run has {json.dumps(value)}",
                hint=f"resume with the same {flag}, or start a new --out",
            )
    weights = load_shared_tensors(os.path.join(folder, "trainable.safetensors"))
    trainer = torch.load(os.path.join(folder, "trainer_state.pt"), weights_only=True)
    # strict=False: the checkpoint holds the trained weights only, not the frozen base.
    set_state_dict(
        training.objective,
        training.optimizer,
        model_state_dict=weights,
        optim_state_dict=trainer["optimizer"],
        options=full_state_options(ctx, strict=False),
    )
    training.scheduler.load_state_dict(trainer["scheduler"])
    torch.set_rng_state(trainer["rng"]["cpu"])
    if "cuda" in trainer["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(trainer["rng"]["cuda"])
    log(f"resumed from {folder} (step {saved['step']})")
    training.start, training.state = saved["step"], {**saved["state"], "resumed_from": folder}


def save_outputs(ctx: RunContext, objective) -> dict:
    """Rank 0 writes the adapter or model; under FSDP every rank first helps gather the whole weights."""
    cfg = ctx.cfg
    out = cfg["out"]
    model = unwrapped(ctx, objective).model
    # Under FSDP the modules hold shards; save_pretrained then takes the gathered weights (named as in `model`).
    weights = None
    if cfg.get("fsdp") and ctx.world > 1:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        gathered = get_model_state_dict(objective, options=full_state_options(ctx))
        weights = {name.removeprefix("model."): w for name, w in gathered.items()}
    if ctx.rank != 0:
        return {}
    if cfg["lora"]:
        adapter = replace_folder(os.path.join(out, "adapter"), with_tokenizer(lambda tmp: model.save_pretrained(tmp, state_dict=weights), cfg["model"]))
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
    folder = replace_folder(os.path.join(out, "model"), with_tokenizer(lambda tmp: model.save_pretrained(tmp, state_dict=weights), cfg["model"]))
    emit("artifact", kind="model", path=folder)
    return {"adapter": None, "merged": None, "model": folder}
