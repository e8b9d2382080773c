"""The architectures llmkit supports, from assets/architectures.json (which src/core/architectures.ts reads too),
so export, finetune, lora merge, distill and quantize accept exactly the same families."""

import json
import os

from .protocol import BadInput

with open(os.path.join(os.path.dirname(__file__), "assets", "architectures.json")) as _f:
    SUPPORTED = {name: entry for name, entry in json.load(_f).items() if not name.startswith("_")}


def check_architecture(config: dict, command: str) -> str:
    """The config's architecture, or BadInput naming it and the supported ones."""
    arch = (config.get("architectures") or ["?"])[0]
    if arch not in SUPPORTED:
        hint = f"supported: {', '.join(sorted(SUPPORTED))}"
        if arch == "Gemma3ForConditionalGeneration":
            hint = "llmkit takes Gemma 3's text model (Gemma3ForCausalLM, e.g. gemma-3-1b); " + hint
        raise BadInput(f"architecture {arch} is not supported for {command}", hint=hint)
    return arch
