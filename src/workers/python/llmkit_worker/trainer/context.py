"""What every piece of one training run shares, as one object passed along instead of module globals and long
parameter lists: the resolved config, the device and precision, this process's place in a torchrun job, how
batches are padded, and where metrics go."""

import contextlib
import json
import os
import sys
from dataclasses import dataclass, field

import torch

from ..atomic import write_file
from ..jobs import FinetuneConfig
from ..protocol import BadInput
from .data import collate
from .tensorboard import EventWriter


class Metrics:
    """metrics.jsonl, one JSON record a line, written by rank 0 only; records go nowhere until it is opened. With
    `tensorboard`, the same numbers also go to TensorBoard event files in the folder's tensorboard/."""

    def __init__(self, file=None, events: EventWriter | None = None):
        self.file = file
        self.events = events

    @classmethod
    def open(cls, folder: str, keep_until: int, rank: int, tensorboard: bool = False) -> "Metrics":
        """The file holds one curve: a resumed run drops what came after its checkpoint, then appends."""
        if rank != 0:
            return cls()
        path = os.path.join(folder, "metrics.jsonl")
        kept = []
        if keep_until and os.path.exists(path):
            with open(path) as f:
                kept = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= keep_until]
        write_file(path, lambda f: f.writelines(kept))
        events = EventWriter(os.path.join(folder, "tensorboard"), keep_until) if tensorboard else None
        return cls(open(path, "a", buffering=1), events)

    def write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
        if self.events is not None:
            self.events.write(record)


@dataclass
class RunContext:
    # The finetune job's config (distill's extends it), as llmkit sent it: jobs.py says what each field holds.
    cfg: FinetuneConfig
    device: str
    precision: str
    # This process's place in a torchrun job (1 and 0 without torchrun).
    world: int = 1
    rank: int = 0
    pad_id: int = 0
    # Packed rows all take max_seq_len (one shape for torch.compile); unpacked ones the longest in the batch.
    fixed_len: int | None = None
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def start(cls, cfg: FinetuneConfig) -> "RunContext":
        """Picks the device and precision, and under torchrun (WORLD_SIZE > 1) joins the process group."""
        device, precision = pick_device(cfg)
        world, rank = init_distributed(device)
        return cls(cfg, device, precision, world, rank)

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()

    @contextlib.contextmanager
    def inference(self):
        """No gradients, in the run's precision, uncompiled: evaluation and generation change shapes and grad mode,
        which would make torch.compile recompile."""
        set_stance = getattr(torch.compiler, "set_stance", None)  # torch >= 2.6
        with torch.no_grad(), set_stance("force_eager") if set_stance else contextlib.nullcontext(), self.autocast():
            yield

    def collate(self, entry, examples: list) -> dict:
        return collate(entry, examples, self.pad_id, self.fixed_len, self.device)

    def any_rank(self, flag: bool) -> bool:
        """Whether `flag` holds on any rank (a stop request reaches the ranks at different moments)."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t)
        return bool(t.item())

    def finish(self, code: int) -> int:
        """The job's exit code; under torchrun the process leaves here once every rank's work is written."""
        if self.world == 1:
            return code
        import torch.distributed as dist

        # gloo's threads can abort a finished rank while the process group or the interpreter tears down
        # ("terminate called without an active exception", even after destroy_process_group), so each rank
        # leaves at once and the OS frees the rest.
        dist.barrier()
        sys.stderr.flush()
        os._exit(code)


def pick_device(cfg: FinetuneConfig) -> tuple[str, str]:
    cuda = torch.cuda.is_available()
    device = cfg["device"] if cfg["device"] != "auto" else ("cuda" if cuda else "cpu")
    if device == "cuda" and not cuda:
        raise BadInput("--device cuda: PyTorch in the worker environment sees no CUDA GPU", hint="use --device cpu (or auto)")
    bf16_ok = device == "cuda" and torch.cuda.is_bf16_supported()
    precision = cfg["precision"] if cfg["precision"] != "auto" else ("bf16" if bf16_ok else "fp32")
    if precision == "bf16" and not bf16_ok:
        raise BadInput("--precision bf16 needs a CUDA GPU with bf16 support", hint="use --precision fp32 (or auto)")
    return device, precision


def init_distributed(device: str) -> tuple[int, int]:
    """(world size, rank): a process group (nccl on CUDA, gloo on CPU) under torchrun, else (1, 0)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 1, 0
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
    return world, dist.get_rank()
