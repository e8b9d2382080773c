"""The model side of a run: loading it, LoRA, gradient checkpointing and torch.compile, the model and its loss as
one module, and that module wrapped in DDP or FSDP under torchrun."""

import os

import torch

from ..protocol import BadInput, log
from .context import RunContext
from .loss import CausalLMLoss

# Below this size a CPU run uses one thread (unless OMP_NUM_THREADS says otherwise).
SMALL_MODEL_PARAMETERS = 10_000_000


def load_model(ctx: RunContext):
    """The tokenizer and the model, on the run's device: fp32 master weights, except a LoRA base in bf16."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # A LoRA base is frozen, so it can live in bf16; full fine-tuning keeps fp32 master weights under autocast.
    # FSDP flattens a layer's weights into one tensor of one dtype, so under it LoRA keeps fp32 too (FSDP's mixed
    # precision computes in bf16).
    cfg = ctx.cfg
    dtype = torch.bfloat16 if cfg["lora"] and ctx.precision == "bf16" and not cfg.get("fsdp") else torch.float32
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
    if ctx.device == "cpu" and "OMP_NUM_THREADS" not in os.environ and model.num_parameters() < SMALL_MODEL_PARAMETERS:
        # A small model's matrices are too small to split across threads, and threads that spin-wait stall a
        # step tenfold whenever another process shares the cores.
        torch.set_num_threads(1)
    return tokenizer, model.to(ctx.device)


def prepare_model(model, ctx: RunContext):
    """The model as trained (gradient checkpointing, LoRA, compiled layers) and its cross-entropy loss."""
    cfg, graphs = ctx.cfg, False
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
        if ctx.device != "cuda":
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
            log(f"compiling {len(layers)} decoder layers with torch.compile{' and CUDA graphs' if graphs else ''} (the first steps are slow)")
    return model, CausalLMLoss(compiled=cfg["compile"] and ctx.device == "cuda", cuda_graphs=graphs)


def base_of(model):
    """The *ForCausalLM under a peft wrapper (peft injects LoRA into its modules in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def trainable_params(model):
    return [p for p in model.parameters() if p.requires_grad]


class Objective(torch.nn.Module):
    """The model and its loss as one module: the loss calls the decoder and the output layer itself (chunked, not
    model.forward), and DDP and FSDP only see what runs inside their wrapper's forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, loss):
        return loss(base_of(self.model), batch)


def distribute(ctx: RunContext, objective):
    """The objective in DDP, or FSDP full-shard with fsdp, when there are several ranks."""
    device = ctx.device
    if ctx.world == 1:
        return objective
    if not ctx.cfg.get("fsdp"):
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(objective, device_ids=[torch.cuda.current_device()] if device == "cuda" else None)
    import functools

    from torch.distributed.fsdp import FullyShardedDataParallel, MixedPrecision, ShardingStrategy
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    # One FSDP unit per decoder layer (whatever class the architecture uses): a layer's weights are gathered just
    # before it runs and freed after, so the whole model never sits on one process. The root unit keeps the
    # embeddings, final norm and output layer.
    layer = type(base_of(objective.model).get_decoder().layers[0])
    mixed = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.bfloat16) if ctx.precision == "bf16" else None
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


def unwrapped(ctx: RunContext, objective):
    """The Objective inside a DDP or FSDP wrapper."""
    return objective.module if ctx.world > 1 else objective


def peak_memory_per_rank(ctx: RunContext) -> tuple:
    """Every rank's peak (a collective: all ranks call it), and what kind of memory it counts."""
    peak, kind = peak_memory(ctx.device)
    if ctx.world == 1:
        return [peak], kind
    import torch.distributed as dist

    peaks = [None] * ctx.world
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
