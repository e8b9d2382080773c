"""Turns a GGUF file (llama.cpp's, Ollama's) into a Hugging Face model folder that every llmkit command takes.

Config: gguf (the file), out (the folder), dtype ("float32", "bfloat16", "float16"). transformers reads the GGUF
and de-quantizes its tensors; what it gets wrong or leaves out is taken from the GGUF's own metadata: the special
tokens (its tokenizer names `<|im_start|>` as eos for ChatML models whose GGUF says `<|im_end|>`), the chat
template and the generation config. The de-quantized weights carry the rounding of the GGUF's quantization.
Raises BadInput, in one line, for an architecture transformers cannot read or a tensor type it cannot de-quantize.
"""

import json
import os
from collections import Counter

from .atomic import move_into_place, temp_folder
from .gguf_pretokenizers import tokenizer_json_steps
from .protocol import BadInput, emit, log

# Tensor types held unquantized; the quantized ones gguf-py's de-quantizer knows are added at run time.
PLAIN_TYPES = {"F32", "F16", "BF16"}
SPECIAL_TOKENS = {"bos": "bos_token_id", "eos": "eos_token_id", "pad": "padding_token_id", "unk": "unknown_token_id"}


def metadata(reader) -> dict:
    """The GGUF's scalar and string metadata (the vocabulary's long arrays left out)."""
    skip = {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"}
    return {key: field.contents() for key, field in reader.fields.items() if key not in skip and not key.startswith("GGUF.")}


def check_importable(reader, meta: dict, path: str) -> str:
    """The architecture, once transformers is known to read it and every tensor type to de-quantize."""
    import gguf.quants
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    architecture = meta.get("general.architecture", "unknown")
    readable = [a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer")]
    if architecture not in readable:
        raise BadInput(f"{path}: GGUF architecture {architecture!r} cannot be imported", hint=f"transformers reads {', '.join(readable)}")
    known = PLAIN_TYPES | {t.name for t in gguf.quants._type_traits}
    unknown = sorted({t.tensor_type.name for t in reader.tensors} - known)
    if unknown:
        raise BadInput(
            f"{path}: GGUF tensor type {', '.join(unknown)} cannot be de-quantized", hint="convert the model to F16, Q8_0 or Q4_K first (llama-quantize)"
        )
    return architecture


def special_ids(meta: dict) -> dict:
    ids = {name: meta.get(f"tokenizer.ggml.{key}") for name, key in SPECIAL_TOKENS.items()}
    ids["eot"] = meta.get("tokenizer.ggml.eot_token_id")
    return {k: int(v) for k, v in ids.items() if v is not None}


def write_weights(folder: str, file: str, dtype, ids: dict, tmp: str):
    """De-quantized by transformers, then rebuilt from its config without the GGUF's quantization_config (which
    save_pretrained refuses) and saved in the precision asked."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype="float32")
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.bos_token_id, config.eos_token_id, config.pad_token_id = ids.get("bos"), ids.get("eos"), ids.get("pad")
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.load_state_dict(loaded.state_dict())
    stops = [ids[k] for k in ("eos", "eot") if k in ids]
    model.generation_config = GenerationConfig(
        bos_token_id=ids.get("bos"), eos_token_id=sorted(set(stops)) if len(set(stops)) > 1 else ids.get("eos"), pad_token_id=ids.get("pad")
    )
    model.save_pretrained(tmp)
    return model


def write_tokenizer(folder: str, file: str, ids: dict, meta: dict, tmp: str) -> dict:
    """The tokenizer with the GGUF's special tokens and chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    named = {name: tokenizer.convert_ids_to_tokens(i) for name, i in ids.items() if name != "eot"}
    for name, token in named.items():
        setattr(tokenizer, f"{name}_token", token)
    template = meta.get("tokenizer.chat_template")
    if template:
        tokenizer.chat_template = template
    # transformers' GGUF tokenizer asks for WordPiece's clean-up, which strips spaces before punctuation of BPE text.
    tokenizer.clean_up_tokenization_spaces = False
    if "tokenizer.ggml.add_bos_token" in meta and hasattr(tokenizer, "add_bos_token"):
        tokenizer.add_bos_token = bool(meta["tokenizer.ggml.add_bos_token"])
    tokenizer.save_pretrained(tmp)
    if meta.get("tokenizer.ggml.model") == "gpt2":
        restore_byte_level(os.path.join(tmp, "tokenizer.json"), meta.get("tokenizer.ggml.pre", "gpt-2"))
    return named


def restore_byte_level(path: str, pre: str) -> None:
    """transformers builds a GGUF's byte-level BPE as SentencePiece-like (byte fallback, a ▁ decoder) with GPT-2's
    splitting whatever the GGUF's pre-tokenizer: rebuilt here as the byte-level tokenizer llama.cpp runs."""
    steps = tokenizer_json_steps(pre)
    if steps is None:
        log(f"the GGUF's pre-tokenizer {pre!r} is not one llmkit rebuilds: text may split differently than in llama.cpp", level="warn")
        return
    with open(path, encoding="utf-8") as f:
        tokenizer = json.load(f)
    tokenizer["model"]["byte_fallback"] = False
    tokenizer["pre_tokenizer"] = steps
    tokenizer["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=2)


def run(config: dict) -> int:
    import torch
    from gguf import GGUFReader

    path, out = os.path.abspath(config["gguf"]), os.path.abspath(config["out"])
    if not os.path.isfile(path):
        raise BadInput(f"GGUF file {path} does not exist", hint="pass a .gguf file")
    dtype = getattr(torch, config.get("dtype", "float32"))
    emit("start", job="import_gguf", total_steps=3)
    reader = GGUFReader(path)
    meta = metadata(reader)
    architecture = check_importable(reader, meta, path)
    types = Counter(t.tensor_type.name for t in reader.tensors)
    ids = special_ids(meta)
    del reader
    emit("progress", step=1, total=3, message=f"{architecture}, {sum(types.values())} tensors")

    tmp = temp_folder(out)
    folder, file = os.path.split(path)
    model = write_weights(folder, file, dtype, ids, tmp)
    emit("progress", step=2, total=3, message="weights written")
    tokens = write_tokenizer(folder, file, ids, meta, tmp)
    with open(os.path.join(tmp, "llmkit-import.json"), "w") as f:
        json.dump({"source": path, "architecture": architecture, "tensor_types": dict(types), "special_tokens": tokens}, f, indent=2)
    move_into_place(tmp, out)
    emit("progress", step=3, total=3, message="tokenizer written")
    emit(
        "result",
        path=out,
        architecture=architecture,
        model_type=model.config.model_type,
        parameters=sum(p.numel() for p in model.parameters()),
        dtype=config.get("dtype", "float32"),
        tensor_types=dict(types),
        special_tokens=tokens,
        chat_template=bool(meta.get("tokenizer.chat_template")),
    )
    return 0
