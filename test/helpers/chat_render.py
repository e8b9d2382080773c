"""What transformers (Python) makes of a model folder: for each conversation the rendered chat template (with the
generation prompt), its token ids, and the tokens finetune's answer-only loss trains on, as runs of consecutive
trained tokens (each token decoded alone, and the run decoded whole); the ids of plain texts; and PyTorch's greedy
continuation of the first conversation's prompt.

Usage: python chat_render.py MODEL_DIR  (stdin: {"conversations": [...], "texts": [...], "greedy": N}; JSON out)
"""

import json
import sys

out = sys.stdout  # llmkit_worker.protocol points sys.stdout at stderr when imported
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmkit_worker.trainer.data import chat, tokenize_rows

tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
request = json.load(sys.stdin)
results = []
for messages in request["conversations"]:
    prompt = messages[:-1] if messages[-1]["role"] == "assistant" else messages
    rendered = chat(tokenizer, prompt, generation_prompt=True)
    examples, _ = tokenize_rows([({"messages": messages}, "messages", "test")], tokenizer, {"train_on_prompt": False, "max_seq_len": 100000})
    runs = []
    for _ids, targets in examples:
        run = []
        for target in targets + [-100]:
            if target == -100 and run:
                runs.append({"tokens": [tokenizer.decode([t]) for t in run], "text": tokenizer.decode(run)})
                run = []
            elif target != -100:
                run.append(target)
    results.append(
        {
            "prompt": rendered,
            "prompt_ids": tokenizer(rendered, add_special_tokens=False)["input_ids"],
            "full": chat(tokenizer, messages),
            "trained": runs,
            "examples": len(examples),
        }
    )
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
prompt = torch.tensor([results[0]["prompt_ids"]])
with torch.no_grad():
    generated = model.generate(
        prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=request["greedy"], min_new_tokens=request["greedy"], pad_token_id=0
    )
print(
    json.dumps(
        {"conversations": results, "texts": [tokenizer(t)["input_ids"] for t in request["texts"]], "greedy": generated[0, prompt.shape[1] :].tolist()},
        ensure_ascii=False,
    ),
    file=out,
)
