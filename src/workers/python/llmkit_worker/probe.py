"""Reports the worker environment for `llmkit env`: package versions, CUDA, GPUs, NCCL.

Never raises for a missing package: a missing one is reported as null with the import error.
"""

import importlib
import platform
import sys

from .jobs import CudaInfo, ProbeConfig
from .protocol import emit

PACKAGES = ("torch", "transformers", "peft", "onnx", "onnxruntime", "safetensors", "tokenizers", "numpy")


def run(config: ProbeConfig) -> int:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = {"version": importlib.import_module(name).__version__}
        except Exception as e:  # noqa: BLE001 - report, do not fail
            packages[name] = {"version": None, "error": f"{type(e).__name__}: {e}"}
    cuda: CudaInfo = {"available": False, "gpus": [], "nccl": False, "bf16": False}
    if packages["torch"]["version"]:
        import torch

        cuda["available"] = torch.cuda.is_available()
        cuda["torch_cuda"] = torch.version.cuda
        if cuda["available"]:
            cuda["bf16"] = torch.cuda.is_bf16_supported()
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                cuda["gpus"].append({"index": i, "name": p.name, "memory_bytes": p.total_memory})
        import torch.distributed as dist

        cuda["nccl"] = dist.is_available() and dist.is_nccl_available() and cuda["available"]
        cuda["gloo"] = dist.is_available() and dist.is_gloo_available()
    emit("result", python={"executable": sys.executable, "version": platform.python_version()}, packages=packages, cuda=cuda)
    return 0
