"""The `llmkit lora merge` job: folds a PEFT LoRA adapter into its base model and writes a whole Hugging Face
model folder (weights in the base checkpoint's dtype, tokenizer, generation config).

Config: base (model folder), adapter (PEFT adapter folder), out (folder to write; replaced atomically).
`llmkit lora info` needs no Python: it reads adapter_config.json and the safetensors header in TypeScript.

The merge runs in fp32 on the CPU whatever the base's dtype, so W + scale * B @ A is not rounded twice, and
the result is cast to the base's own dtype once at the end.

Raises BadInput for: a base or adapter transformers/peft cannot load, an adapter made for another shape.
"""

import json
import os
import re
import shutil
from collections.abc import Callable

from .atomic import move_into_place, temp_folder
from .jobs import LoraToolsConfig
from .protocol import BadInput, emit


def run(config: LoraToolsConfig) -> int:
    emit("start", job="lora_tools", total_steps=1)
    out = merge(config["base"], config["adapter"], config["out"])
    emit("progress", step=1, total=1, message="merged model written")
    emit("result", out=out)
    return 0


def merge(base: str, adapter: str, out: str) -> str:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        raise BadInput(
            f"transformers cannot load the base model in {base}: {str(e).splitlines()[0]}", hint="pass the Hugging Face model folder the adapter was trained on"
        ) from e
    try:
        model = PeftModel.from_pretrained(model, adapter)
    except RuntimeError as e:  # size mismatch: the adapter belongs to another base
        lines = [line.strip() for line in str(e).splitlines()]
        detail = next((line for line in lines if line.startswith("size mismatch")), lines[0])
        raise BadInput(
            f"the adapter in {adapter} does not fit the base model {base}: {detail}",
            hint="merge it into the model it was trained on (llmkit lora info shows it)",
        ) from e
    except (OSError, ValueError) as e:
        raise BadInput(
            f"peft cannot load the adapter in {adapter}: {str(e).splitlines()[0]}", hint="pass a folder with adapter_config.json and adapter_model.safetensors"
        ) from e
    merged = model.merge_and_unload()
    with open(os.path.join(base, "config.json")) as f:
        base_config = json.load(f)
    dtype = base_config.get("dtype") or base_config.get("torch_dtype") or "float32"
    merged.to(getattr(torch, dtype, torch.float32))

    tmp = temp_folder(out)
    merged.save_pretrained(tmp)
    copy_tokenizer_files(base, tmp)
    move_into_place(tmp, out)
    emit("artifact", kind="model", path=out)
    return out


TOKENIZER_FILE = re.compile(r"tokenizer|special_tokens_map|added_tokens|chat_template|vocab|merges")


def with_tokenizer(save: Callable[[str], object], base: str) -> Callable[[str], None]:
    """A folder writer (for replace_folder): saves a model with `save`, then copies the base's tokenizer files beside it."""

    def write(folder: str) -> None:
        save(folder)
        copy_tokenizer_files(base, folder)

    return write


def copy_tokenizer_files(base: str, folder: str) -> None:
    """Copies the base's tokenizer files as they are: re-saving through transformers can move the chat template
    out of tokenizer_config.json, where transformers.js (and so llmkit's engine) reads it."""
    for name in os.listdir(base):
        if TOKENIZER_FILE.search(name) and os.path.isfile(os.path.join(base, name)):
            shutil.copy2(os.path.join(base, name), os.path.join(folder, name))
