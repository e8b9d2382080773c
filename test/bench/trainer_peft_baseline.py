"""The baseline of llmkit's GPU fine-tuning benchmark: a plain Hugging Face Trainer + PEFT LoRA run, written the
way the transformers and peft docs show it (bf16=True, the model loaded as saved, LoRA on the same modules,
DataCollatorForLanguageModeling padding each batch to its longest example).

  python3 test/bench/trainer_peft_baseline.py --model DIR --data data.jsonl --steps 40 --batch-size 8 \
      --max-seq-len 512 --lora-r 16 --lora-alpha 32 --lora-dropout 0.05

Prints one JSON line: tokens_per_s counts real (unpadded) tokens, over the steps after the first
--warmup-steps, with the GPU synchronised at both ends; peak_memory_bytes is torch.cuda.max_memory_allocated.
"""

import argparse
import json
import tempfile
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Texts(torch.utils.data.Dataset):
    def __init__(self, path: str, tokenizer, max_seq_len: int):
        with open(path, encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f if line.strip()]
        self.items = [tokenizer(t + tokenizer.eos_token, truncation=True, max_length=max_seq_len) for t in texts]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class Timer(TrainerCallback):
    """Times the steps after the warm-up; the collator records each batch's real tokens in order."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            torch.cuda.synchronize()
            self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == state.max_steps:
            torch.cuda.synchronize()
            self.end = time.perf_counter()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=float, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=2e-4)
    a = p.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model)
    model = get_peft_model(model, LoraConfig(r=a.lora_r, lora_alpha=a.lora_alpha, lora_dropout=a.lora_dropout, target_modules=TARGETS, task_type="CAUSAL_LM"))
    dataset = Texts(a.data, tokenizer, a.max_seq_len)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    batch_tokens = []

    def collate(features):
        batch = collator(features)
        batch_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    timer = Timer(a.warmup_steps)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=a.batch_size,
            max_steps=a.steps,
            learning_rate=a.lr,
            lr_scheduler_type="cosine",
            warmup_steps=0.03,
            bf16=True,
            logging_steps=10,
            save_strategy="no",
            report_to=[],
            seed=0,
        )
        Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate, callbacks=[timer]).train()
    tokens = sum(batch_tokens[a.warmup_steps : a.steps])
    seconds = timer.end - timer.start
    print(
        json.dumps(
            {
                "tokens_per_s": tokens / seconds,
                "timed_steps": a.steps - a.warmup_steps,
                "timed_tokens": tokens,
                "seconds": seconds,
                "peak_memory_bytes": torch.cuda.max_memory_allocated(),
            }
        )
    )


if __name__ == "__main__":
    main()
