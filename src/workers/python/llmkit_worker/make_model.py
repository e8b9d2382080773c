"""Writes a Llama-architecture model folder in Hugging Face format from a fixed seed.

Because no model hub is reachable, the tests, the demo and the benchmarks use models llmkit makes:
a byte-level BPE tokenizer trained on a corpus (the bundled assets/tiny_corpus.txt by default), a
ChatML chat template in tokenizer_config.json (where transformers.js reads it), and a randomly
initialised LlamaForCausalLM whose size is set by a preset or explicit dimensions.

Config: out, seed, preset ("tiny", "small", "100m"), corpus (list of text files), vocab_size,
and any of hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
num_key_value_heads, max_position_embeddings to override the preset. For stand-ins of real models
(the GPU benchmark's Qwen2.5-0.5B shape): architecture ("llama", the default, or "qwen2":
Qwen2ForCausalLM, with q/k/v biases and tied embeddings), model_vocab_size (rows of the embedding,
default the tokenizer's size; real models pad it), tie_word_embeddings, dtype ("float32" or "bfloat16").
Raises BadInput for a missing corpus file or an unknown architecture.
"""

import json
import os
from typing import Any

from .atomic import move_into_place, temp_folder
from .jobs import MakeModelConfig
from .protocol import BadInput, emit

PRESETS = {
    "tiny": dict(
        hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, vocab_size=1024
    ),
    "small": dict(
        hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024, vocab_size=4096
    ),
    "100m": dict(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        vocab_size=8192,
    ),
}
SPECIAL_TOKENS = ["<|end_of_text|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
DEFAULT_CORPUS = os.path.join(os.path.dirname(__file__), "assets", "tiny_corpus.txt")


def train_tokenizer(corpus_files: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train(corpus_files, trainer)
    return tokenizer


def write_tokenizer_files(tokenizer, folder: str) -> dict:
    tokenizer.save(os.path.join(folder, "tokenizer.json"))
    ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 1 << 30,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|pad|>",
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {
            str(i): {"content": t, "special": True, "lstrip": False, "rstrip": False, "normalized": False, "single_word": False} for t, i in ids.items()
        },
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config, f, indent=2)
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump({"eos_token": "<|im_end|>", "pad_token": "<|pad|>"}, f, indent=2)
    return ids


def run(config: MakeModelConfig) -> int:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    architectures = {"llama": (LlamaConfig, LlamaForCausalLM, False), "qwen2": (Qwen2Config, Qwen2ForCausalLM, True)}
    preset = config.get("preset", "tiny")
    if preset not in PRESETS:
        raise BadInput(f"unknown preset {preset!r}", hint=f"use one of {', '.join(PRESETS)}")
    architecture = config.get("architecture", "llama")
    if architecture not in architectures:
        raise BadInput(f"unknown architecture {architecture!r}", hint=f"use one of {', '.join(architectures)}")
    config_class, model_class, tied = architectures[architecture]
    dims: dict[str, Any] = {**PRESETS[preset], **{k: v for k, v in config.items() if k in PRESETS["tiny"] and v is not None}}
    corpus = config.get("corpus") or [DEFAULT_CORPUS]
    for path in corpus:
        if not os.path.isfile(path):
            raise BadInput(f"corpus file {path} does not exist", hint="pass text files with --corpus")
    out = os.path.abspath(config["out"])
    tmp = temp_folder(out)
    emit("start", job="make_model", total_steps=2)

    tokenizer = train_tokenizer(corpus, dims["vocab_size"])
    ids = write_tokenizer_files(tokenizer, tmp)
    emit("progress", step=1, total=2, message="tokenizer trained")

    torch.manual_seed(int(config.get("seed", 0)))
    model_config = config_class(
        **{**dims, "vocab_size": config.get("model_vocab_size") or tokenizer.get_vocab_size()},
        rms_norm_eps=1e-5,
        tie_word_embeddings=config.get("tie_word_embeddings", tied),
        rope_theta=10000.0,
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|pad|>"],
    )
    model = model_class(model_config).to(getattr(torch, config.get("dtype", "float32")))
    model.save_pretrained(tmp, safe_serialization=True)
    GenerationConfig(eos_token_id=[ids["<|im_end|>"], ids["<|end_of_text|>"]], pad_token_id=ids["<|pad|>"], do_sample=False).save_pretrained(tmp)
    move_into_place(tmp, out)
    params = sum(p.numel() for p in model.parameters())
    emit("progress", step=2, total=2, message="model written")
    emit("artifact", kind="model", path=out)
    emit(
        "result", path=out, parameters=params, preset=preset, vocab_size=model_config.vocab_size, config={k: getattr(model_config, k) for k in PRESETS["tiny"]}
    )
    return 0
