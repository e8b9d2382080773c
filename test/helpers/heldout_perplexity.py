"""Perplexity of Hugging Face model folders (PyTorch, fp32) on a text none of them was trained on: 256-token windows,
each from an empty cache, as `llmkit quantize` scores its eval text.

Usage: python heldout_perplexity.py TEXT_FILE MODEL_DIR...  (a JSON list of perplexities on stdout)
"""

import json
import math
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

WINDOW = 256

with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
perplexities = []
for folder in sys.argv[2:]:
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    nll, positions = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, WINDOW):
            window = ids[start : start + WINDOW].unsqueeze(0)
            if window.shape[1] < 2:
                continue
            nll += float(model(window, labels=window).loss) * (window.shape[1] - 1)
            positions += window.shape[1] - 1
    perplexities.append(math.exp(nll / positions))
print(json.dumps(perplexities))
