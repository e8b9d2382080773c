"""Writes a Hugging Face causal LM as one GGUF file (llama.cpp, Ollama) with its tokenizer and chat template.

Everything GGUF-specific comes from gguf-py (the `gguf` package llama.cpp keeps): the writer, the architecture
names, the tensor names (gguf.TensorNameMap maps each Hugging Face tensor to llama.cpp's), the metadata keys,
the tokenizer's special tokens, merges and chat template (gguf.SpecialVocab) and the quantizers (gguf.quants).
What this file adds is what llama.cpp's own converter (convert_hf_to_gguf.py) decides per family, for the
families listed with a `gguf` architecture in assets/architectures.json:

- Llama (Llama 3.x, llmkit's builtin models): llama.cpp rotates pairs of adjacent dimensions, Hugging Face rotates the two
  halves of each head, so q_proj and k_proj rows are permuted; rope_type "llama3" becomes a rope_freqs tensor.
- SmolLM3: Llama's layout; llama.cpp leaves out rotary in every 4th layer (a fixed step, no metadata key), so a
  config whose no_rope_layers differ from that is refused.
- Qwen2, Qwen3: rotate halves as Hugging Face does (no permutation); Qwen2's q/k/v biases and Qwen3's
  query/key norms map by name.
- Phi-3: the fused qkv_proj and gate_up_proj map by name and stay fused (llama.cpp splits them itself); partial
  rotary is the rope dimension count; longrope becomes rope_factors_short/long tensors and an attention factor.
- Gemma 3: RMSNorm weights become 1 + w; soft-capping, the sliding window and its layer period are metadata.

The tokenizer is a byte-level BPE whose pre-tokenizer llama.cpp knows (gguf_pretokenizers.py: GPT-2's, SmolLM's,
Llama 3's, Qwen2's), or a SentencePiece-style BPE with byte fallback and no byte-level step (Llama 2, Phi-3, Gemma),
written through gguf-py's LlamaHfVocab; others (Unigram) are refused, as is Mistral.

type: "f16" (2-D weights in float16, norms in float32), "q8_0" or "q4_0" (2-D weights in blocks of 32 with one
scale each; with q4_0 the output layer stays Q8_0, as llama.cpp's llama-quantize keeps it at a higher precision).
A weight whose rows are not a multiple of 32 stays float16.

Config: model (HF folder with safetensors weights), out (the .gguf file), type.
Raises BadInput for a folder without config or safetensors weights, an architecture, RoPE scaling or tokenizer
it cannot write, or an unknown type.
"""

import json
import math
import os
import re
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors import safe_open

from .architectures import SUPPORTED, check_architecture
from .atomic import write_path
from .gguf_pretokenizers import llama_cpp_name
from .jobs import ExportGgufConfig
from .protocol import BadInput, emit, log

QUANT = gguf.GGMLQuantizationType
TYPES = {
    "f16": (QUANT.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (QUANT.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (QUANT.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}
# Hugging Face architectures whose q/k rows are permuted for llama.cpp's rotary layout (see the docstring).
PERMUTED_QK = {"llama", "smollm3"}
# llama.cpp's SmolLM3 has no key for its layers without rotary: it leaves out every 4th (src/models/smollm3.cpp).
SMOLLM3_NO_ROPE_STEP = 4


def read_folder(path: str) -> tuple[dict, list[str]]:
    """config.json and the safetensors files of a model folder."""
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise BadInput(f"model folder {path} has no config.json", hint="pass a Hugging Face model folder")
    with open(config_path) as f:
        config = json.load(f)
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.isfile(os.path.join(path, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        raise BadInput(f"model folder {path} has no model.safetensors", hint="save the model with safetensors (transformers' default) and export again")
    return config, [os.path.join(path, f) for f in files]


def gguf_architecture(config: dict) -> tuple[str, gguf.MODEL_ARCH]:
    arch = check_architecture(config, "export --gguf")
    name = SUPPORTED[arch].get("gguf")
    if name is None:
        writable = ", ".join(sorted(a for a, e in SUPPORTED.items() if e.get("gguf")))
        raise BadInput(f"export --gguf cannot write {arch} ({SUPPORTED[arch]['family']}) yet", hint=f"it writes {writable}; export to ONNX without --gguf")
    if name == "smollm3":
        layers = config["num_hidden_layers"]
        expected = [int((i + 1) % SMOLLM3_NO_ROPE_STEP != 0) for i in range(layers)]
        if [int(bool(x)) for x in config.get("no_rope_layers", expected)] != expected:
            raise BadInput(
                f"export --gguf cannot write this SmolLM3: its no_rope_layers {config['no_rope_layers']} differ from llama.cpp's fixed pattern (every {SMOLLM3_NO_ROPE_STEP}th layer without rotary)",
                hint="export to ONNX without --gguf",
            )
    return name, next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == name)


def pre_tokenizer(tokenizer: dict) -> str:
    """llama.cpp's name for a byte-level BPE tokenizer's pre-tokenizer, or BadInput for one it does not know."""
    model = tokenizer.get("model", {})
    pre = tokenizer.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre])
    kinds = [s.get("type") for s in steps]
    if model.get("type") != "BPE" or "ByteLevel" not in kinds:
        raise BadInput(
            "export --gguf writes BPE tokenizers only, byte-level (GPT-2, Llama 3, Qwen2/3) or SentencePiece-style with byte fallback (Llama 2, Phi-3); this one is neither",
            hint="export to ONNX without --gguf",
        )
    name = llama_cpp_name(steps)
    if name is None:
        raise BadInput(
            f"export --gguf does not know this tokenizer's pre-tokenizer ({' + '.join(kinds)}), which llama.cpp needs by name",
            hint="it knows GPT-2's, SmolLM's, Llama 3's and Qwen2's",
        )
    return name


def byte_level_tokens(tokenizer: dict) -> dict[int, tuple[str, gguf.TokenType, float]]:
    tokens = {i: (t, gguf.TokenType.NORMAL, 0.0) for t, i in tokenizer["model"]["vocab"].items()}
    for added in tokenizer.get("added_tokens", []):
        tokens[added["id"]] = (added["content"], gguf.TokenType.CONTROL if added["special"] else gguf.TokenType.USER_DEFINED, 0.0)
    return tokens


def sentencepiece_tokens(folder: str, tokenizer: dict) -> dict[int, tuple[str, gguf.TokenType, float]]:
    """Texts and types from gguf-py's LlamaHfVocab; scores from the merges.

    llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined piece has the highest score, and
    LlamaHfVocab gives every piece the same score. A tokenizer.json converted from SentencePiece lists its merges in
    the order of the joined pieces' scores, so minus a piece's first merge rank orders pieces as their scores did;
    a piece no merge makes ranks below them all.
    """
    vocab = gguf.LlamaHfVocab(Path(folder))
    merges = tokenizer["model"].get("merges", [])
    ranks: dict[str, int] = {}
    for rank, merge in enumerate(merges):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        ranks.setdefault(left + right, rank)
    tokens = {}
    for i, (text, _, kind) in enumerate(vocab.all_tokens()):
        piece = text.decode("utf-8")
        tokens[i] = (piece, kind, -float(ranks.get(piece, len(merges))))
    # all_tokens() numbers the added tokens after the base vocabulary: check that those are their ids. Their types
    # come from tokenizer.json, as convert_hf_to_gguf.py sets them (Gemma's <start_of_turn> is special but in the base vocabulary).
    for added in tokenizer.get("added_tokens", []):
        if tokens.get(added["id"], ("",))[0] != added["content"]:
            raise BadInput(f"tokenizer.json's added token {added['content']!r} (id {added['id']}) is out of order", hint="export to ONNX without --gguf")
        piece, _, score = tokens[added["id"]]
        tokens[added["id"]] = (piece, gguf.TokenType.CONTROL if added["special"] else gguf.TokenType.USER_DEFINED, score)
    return tokens


def adds_space_prefix(tokenizer: dict) -> bool:
    """Whether a SentencePiece-style tokenizer.json puts ▁ before the text (Llama 2, Phi-3) or not (Gemma)."""
    steps = []
    for part in (tokenizer.get("normalizer"), tokenizer.get("pre_tokenizer")):
        part = part or {}
        steps += part.get("normalizers", part.get("pretokenizers", [part]))
    return any(s.get("type") == "Prepend" or (s.get("type") == "Metaspace" and s.get("prepend_scheme", "always") != "never") for s in steps)


def write_tokenizer(writer: gguf.GGUFWriter, folder: str, vocab_size: int) -> None:
    """Token list, types (and scores) from tokenizer.json, then merges, special tokens and chat template through gguf-py."""
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
        raise BadInput(f"model folder {folder} has no tokenizer.json", hint="save the model's tokenizer beside it (tokenizer.save_pretrained)")
    with open(path, encoding="utf-8") as f:
        tokenizer = json.load(f)
    # Byte fallback alone does not make a SentencePiece vocabulary: transformers' GGUF reader sets it on byte-level BPE
    # tokenizers too (SmolLM2's), and llama.cpp aborts on such a vocabulary written as SentencePiece (no <0x0A> token).
    byte_level = "ByteLevel" in json.dumps(tokenizer.get("pre_tokenizer"))
    sentencepiece = tokenizer.get("model", {}).get("type") == "BPE" and tokenizer["model"].get("byte_fallback", False) and not byte_level
    if sentencepiece:
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        tokens = sentencepiece_tokens(folder, tokenizer)
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre_tokenizer(tokenizer))
        tokens = byte_level_tokens(tokenizer)
    # Added tokens past the model's vocabulary (Gemma 3 1B's <image_soft_token>) have no embedding: llama.cpp's converter drops them too.
    added = {a["id"] for a in tokenizer.get("added_tokens", [])}
    tokens = {i: t for i, t in tokens.items() if i < vocab_size or i not in added}
    if max(tokens) >= vocab_size:
        raise BadInput(f"the tokenizer has token id {max(tokens)} but the model's vocab_size is {vocab_size}", hint="check config.json's vocab_size")
    # Rows of the embedding no token uses (models pad their vocabulary) get placeholder names, as llama.cpp's converter does.
    entries = [tokens.get(i, (f"[PAD{i}]", gguf.TokenType.UNUSED, -10000.0)) for i in range(vocab_size)]
    writer.add_token_list([t for t, _, _ in entries])
    writer.add_token_types([k for _, k, _ in entries])
    if sentencepiece:
        writer.add_token_scores([s for _, _, s in entries])
        # Gemma's normalizer only maps spaces to ▁ (no Prepend): llama.cpp must not add a leading space either.
        writer.add_add_space_prefix(adds_space_prefix(tokenizer))
    gguf.SpecialVocab(folder, load_merges=not sentencepiece, n_vocab=vocab_size).add_to_gguf(writer)


def rope_parameters(config: dict, layer_type: str = "full_attention") -> dict:
    # transformers 5 writes rope_parameters (per layer type for Gemma 3); earlier releases rope_theta and rope_scaling.
    rope = config.get("rope_parameters") or {**(config.get("rope_scaling") or {}), "rope_theta": config.get("rope_theta", 10000.0)}
    return rope.get(layer_type, rope)


def write_gemma3_parameters(writer: gguf.GGUFWriter, config: dict, head_dim: int) -> None:
    """Soft-capping, and the sliding-window layers as llama.cpp lays them out: every period-th layer global."""
    if config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(config["final_logit_softcapping"])
    # llama.cpp scales attention by 1/sqrt(head_dim), or by 1/sqrt(hidden/heads) for the 62-layer 27B (src/models/gemma3.cpp).
    scalar = config["hidden_size"] // config["num_attention_heads"] if config["num_hidden_layers"] == 62 else head_dim
    if config.get("query_pre_attn_scalar", scalar) != scalar:
        raise BadInput(
            f"export --gguf cannot write this Gemma 3: llama.cpp scales attention by {scalar}, not query_pre_attn_scalar {config['query_pre_attn_scalar']}",
            hint="export to ONNX without --gguf",
        )
    # transformers 5 lists layer_types; older configs give the period as sliding_window_pattern (Gemma 3: 6).
    pattern = config.get("sliding_window_pattern", config.get("_sliding_window_pattern", 6))
    default = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(config["num_hidden_layers"])]
    types = config.get("layer_types") or (default if config.get("sliding_window") else [])
    if "sliding_attention" not in types:
        return
    period = types.index("full_attention") + 1 if "full_attention" in types else len(types) + 1
    if types != ["full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(len(types))]:
        raise BadInput(
            f"export --gguf cannot write this Gemma 3: llama.cpp needs a global layer every n layers, not {types}", hint="export to ONNX without --gguf"
        )
    writer.add_sliding_window(config["sliding_window"])
    writer.add_sliding_window_pattern(period)
    writer.add_rope_freq_base_swa(rope_parameters(config, "sliding_attention").get("rope_theta", config.get("rope_local_base_freq", 10000.0)))


def llama3_rope_factors(rope: dict, head_dim: int) -> np.ndarray:
    """Llama 3.1's frequency scaling as the per-dimension factors llama.cpp reads from rope_freqs.weight."""
    freqs = 1.0 / (rope.get("rope_theta", 10000.0) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    factor, low, high = rope.get("factor", 8.0), rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for wavelength in 2 * math.pi / freqs:
        if wavelength < old_context / high:
            factors.append(1.0)
        elif wavelength > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def model_name(folder: str, arch_name: str) -> str:
    """The folder's name, as general.name. llama.cpp makes Phi-3's special tokens strip the whitespace after them
    (rstrip, as Phi-3's own tokenizer.json does) only when general.name says "phi3" or "phi-3" (src/llama-vocab.cpp):
    so for Phi-3 the name says it exactly when this tokenizer's special tokens rstrip."""
    name = os.path.basename(os.path.normpath(folder))
    if arch_name != "phi3" or not os.path.isfile(os.path.join(folder, "tokenizer.json")):
        return name
    with open(os.path.join(folder, "tokenizer.json"), encoding="utf-8") as f:
        added = json.load(f).get("added_tokens", [])
    rstrip = any(a["special"] and a.get("rstrip") for a in added)
    says = re.search(r"phi-?3", name, flags=re.IGNORECASE) is not None
    if rstrip and not says:
        return f"{name} (phi3)"
    return re.sub(r"phi-?3", "phi", name, flags=re.IGNORECASE) if says and not rstrip else name


def write_parameters(writer: gguf.GGUFWriter, config: dict, file_type, name: str) -> dict:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads", heads))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    rope = rope_parameters(config)
    # Phi-3/4's partial rotary: llama.cpp rotates the first rope_dims of each head, as transformers does.
    rotary = rope.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0))
    rope_dims = int(rotary * head_dim)
    writer.add_rope_dimension_count(rope_dims)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(file_type)
    writer.add_rope_freq_base(rope.get("rope_theta", 10000.0))
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    elif rope_type == "longrope" and writer.arch == "phi3":
        # As convert_hf_to_gguf.py's Phi3MiniModel: llama.cpp takes the short factors up to the original context and the
        # long ones past it (rope_factors_short/long tensors, written with the weights), both with this attention factor.
        original = rope.get("original_max_position_embeddings", config.get("original_max_position_embeddings"))
        if not original:
            raise BadInput("longrope scaling needs original_max_position_embeddings", hint="check config.json's rope_scaling")
        scale = config["max_position_embeddings"] / original
        writer.add_rope_scaling_orig_ctx_len(original)
        writer.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0)
        if not len(rope["long_factor"]) == len(rope["short_factor"]) == rope_dims // 2:
            raise BadInput(f"longrope factors must have {rope_dims // 2} entries each (half the rotary dimensions)", hint="check config.json's rope_scaling")
    elif rope_type not in ("default", "llama3"):
        raise BadInput(f"export --gguf cannot write RoPE scaling {rope_type!r} yet", hint="it writes none, linear, llama3 and (Phi-3) longrope")
    if writer.arch == "gemma3":
        write_gemma3_parameters(writer, config, head_dim)
    if writer.arch == "phi3":
        writer.add_sliding_window(config.get("sliding_window") or 0)  # 0 tells llama.cpp it is not Phi-4's sliding window
    return {"heads": heads, "kv_heads": config.get("num_key_value_heads", heads), "head_dim": head_dim, "rope_type": rope_type}


def permute_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Each head's rows from Hugging Face's [first half, second half] order to llama.cpp's interleaved pairs."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def tensor_type(gguf_name: str, data: np.ndarray, weight_type, out_type: str, output_layer: str):
    """The stored type of one tensor: norms and other 1-D tensors stay float32; in q4_0 the output layer (the token
    embedding when they are tied) stays Q8_0, as llama-quantize keeps it, since its error lands on every logit."""
    if data.ndim < 2:
        return QUANT.F32
    if out_type == "q4_0" and gguf_name == output_layer:
        return QUANT.Q8_0
    if weight_type in (QUANT.Q8_0, QUANT.Q4_0) and data.shape[-1] % gguf.GGML_QUANT_SIZES[weight_type][0] != 0:
        return QUANT.F16
    return weight_type


def has_output_layer(files: list[str]) -> bool:
    """Whether the weights hold an lm_head of their own; without one it is tied to the token embedding."""
    for file in files:
        with safe_open(file, framework="pt") as f:
            if any(k.endswith("lm_head.weight") for k in f.keys()):
                return True
    return False


def add_tensor(writer: gguf.GGUFWriter, name: str, data: np.ndarray, qtype) -> int:
    if qtype == QUANT.F32:
        writer.add_tensor(name, data.astype(np.float32))
    elif qtype == QUANT.F16:
        writer.add_tensor(name, data.astype(np.float16))
    else:
        writer.add_tensor(name, gguf.quants.quantize(data.astype(np.float32), qtype), raw_dtype=qtype)
    return data.size


def write_gguf(path: str, src: str, files: list[str], hf_config: dict, out_type: str) -> tuple[dict, int]:
    """Writes the whole file at `path`; returns how many tensors of each type and the parameter count."""
    arch_name, arch = gguf_architecture(hf_config)
    weight_type, file_type = TYPES[out_type]
    writer = gguf.GGUFWriter(path, arch_name)
    dims = write_parameters(writer, hf_config, file_type, model_name(src, arch_name))
    write_tokenizer(writer, src, hf_config["vocab_size"])
    emit("progress", step=1, total=3, message="metadata and tokenizer")

    names = gguf.get_tensor_name_map(arch, hf_config["num_hidden_layers"])
    counts: dict[str, int] = {}
    parameters = 0
    output_layer = "output.weight" if has_output_layer(files) else "token_embd.weight"
    for file in files:
        with safe_open(file, framework="pt") as f:
            for hf_name in f.keys():
                if hf_name.endswith("rotary_emb.inv_freq"):
                    continue  # recomputed from rope_theta by llama.cpp
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise BadInput(f"export --gguf has no llama.cpp name for tensor {hf_name} of {arch_name}", hint="export to ONNX without --gguf")
                weight = f.get_tensor(hf_name).float()
                if arch_name in PERMUTED_QK and hf_name.endswith("q_proj.weight"):
                    weight = permute_rows(weight, dims["heads"])
                elif arch_name in PERMUTED_QK and hf_name.endswith("k_proj.weight"):
                    weight = permute_rows(weight, dims["kv_heads"])
                if arch_name == "gemma3" and hf_name.endswith("norm.weight"):
                    weight = weight + 1  # Gemma3RMSNorm scales by (1 + weight); llama.cpp's RMSNorm by the weight
                data = weight.numpy()
                qtype = tensor_type(name, data, weight_type, out_type, output_layer)
                parameters += add_tensor(writer, name, data, qtype)
                counts[qtype.name] = counts.get(qtype.name, 0) + 1
    extra = {}
    if dims["rope_type"] == "llama3":
        extra[gguf.MODEL_TENSOR.ROPE_FREQS] = llama3_rope_factors(rope_parameters(hf_config), dims["head_dim"])
    elif dims["rope_type"] == "longrope":
        extra[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] = np.array(rope_parameters(hf_config)["long_factor"], dtype=np.float32)
        extra[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] = np.array(rope_parameters(hf_config)["short_factor"], dtype=np.float32)
    for tensor, factors in extra.items():
        add_tensor(writer, gguf.TENSOR_NAMES[tensor] + ".weight", factors, QUANT.F32)
        counts["F32"] = counts.get("F32", 0) + 1
    emit("progress", step=2, total=3, message=f"{sum(counts.values())} tensors: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return counts, parameters


def run(config: ExportGgufConfig) -> int:
    src, out, out_type = config["model"], config["out"], config["type"]
    if out_type not in TYPES:
        raise BadInput(f"GGUF type {out_type!r} is not supported", hint=f"use one of {', '.join(TYPES)}")
    if not os.path.isdir(src):
        raise BadInput(f"model folder {src} does not exist", hint="pass a local Hugging Face model folder")
    hf_config, files = read_folder(src)
    arch_name, _ = gguf_architecture(hf_config)
    emit("start", job="export_gguf", total_steps=3)
    counts, parameters = write_path(out, lambda tmp: write_gguf(tmp, src, files, hf_config, out_type))
    size = os.path.getsize(out)
    log(f"wrote {out}: {arch_name}, {out_type}, {size} bytes")
    emit("progress", step=3, total=3, message="written")
    emit("artifact", kind="gguf_model", path=out)
    emit("result", path=out, type=out_type, architecture=arch_name, bytes=size, parameters=parameters, tensor_types=counts)
    return 0
