"""Writes a PEFT LoRA adapter of a base model with random, non-zero weights (a trained adapter's stand-in: PEFT
starts B at zero, which would make every adapter the base), saved as `finetune --lora` saves one.

Usage: python lora_adapter.py BASE OUT SEED RANK TARGETS(comma-separated) [DTYPE: float32|bfloat16]
"""

import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

base, out, seed, rank, targets = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(",")
dtype = sys.argv[6] if len(sys.argv) > 6 else "float32"
torch.manual_seed(seed)
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, bias="none", task_type="CAUSAL_LM"))
with torch.no_grad():
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.copy_(torch.randn_like(p) * (0.3 / p.shape[-1] ** 0.5))
model.to(getattr(torch, dtype))
model.save_pretrained(out)
