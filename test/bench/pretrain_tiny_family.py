"""Pretrains a model of llmkit's tiny family on a text file, so quantization is measured on trained weights.

    python3 test/bench/pretrain_tiny_family.py MODEL_DIR TEXT_FILE STEPS OUT_DIR [--seq-len 256] [--batch-size 32]

MODEL_DIR is a folder from `llmkit make-model` (its tokenizer trained on TEXT_FILE, its weights random).
The last `--holdout` fraction of TEXT_FILE (cut at a line break) is never trained on: it is written to
OUT_DIR/heldout.txt, the text to pass to `llmkit quantize --eval-data`. OUT_DIR is a Hugging Face folder
(weights, config, tokenizer files) holding the weights with the lowest held-out loss seen.

Plain torch + transformers, so it runs with any `python3` that has them: a GPU machine (bf16 autocast)
or a CPU (use --threads to leave cores to others). Written atomically: OUT_DIR appears when done.
"""

import argparse
import math
import os
import shutil
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja")


def split_text(path: str, holdout: float) -> tuple[str, str]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    cut = text.rfind("\n", 0, int(len(text) * (1 - holdout))) + 1
    return text[:cut], text[cut:]


def held_out_loss(model, ids: torch.Tensor, seq_len: int, batch_size: int, device: str) -> float:
    """Mean next-token loss over consecutive windows of the held-out tokens."""
    windows = ids[: len(ids) // seq_len * seq_len].view(-1, seq_len)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        for i in range(0, len(windows), batch_size):
            batch = windows[i : i + batch_size].to(device)
            total += model(input_ids=batch, labels=batch).loss.item() * len(batch)
            count += len(batch)
    model.train()
    return total / count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir")
    p.add_argument("text_file")
    p.add_argument("steps", type=int)
    p.add_argument("out_dir")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--holdout", type=float, default=0.1, help="fraction of the text kept out of training")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).to(device)
    train_text, heldout_text = split_text(args.text_file, args.holdout)
    train_ids = torch.tensor(tokenizer(train_text)["input_ids"])
    heldout_ids = torch.tensor(tokenizer(heldout_text)["input_ids"])
    params = sum(p.numel() for p in model.parameters())
    print(f"{params / 1e6:.1f}M parameters on {device}; {len(train_ids)} training tokens, {len(heldout_ids)} held-out tokens", flush=True)

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, args.steps // 20)
    # Linear warm-up, then cosine decay to a tenth of the peak rate.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    )
    tmp = args.out_dir.rstrip("/") + ".tmp"
    best = float("inf")
    start = time.time()
    model.train()
    for step in range(1, args.steps + 1):
        starts = torch.randint(0, len(train_ids) - args.seq_len - 1, (args.batch_size,))
        batch = torch.stack([train_ids[s : s + args.seq_len] for s in starts]).to(device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % args.eval_every == 0 or step == args.steps:
            val = held_out_loss(model, heldout_ids, args.seq_len, args.batch_size, device)
            print(
                f"step {step}/{args.steps} train loss {loss.item():.3f} held-out loss {val:.3f} (perplexity {math.exp(val):.1f}) {time.time() - start:.0f}s",
                flush=True,
            )
            # A small corpus overfits a large model: keep the weights that generalise best.
            if val < best:
                best = val
                shutil.rmtree(tmp, ignore_errors=True)
                model.save_pretrained(tmp, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(args.model_dir, name)):
            shutil.copy(os.path.join(args.model_dir, name), os.path.join(tmp, name))
    with open(os.path.join(tmp, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write(heldout_text)
    shutil.rmtree(args.out_dir, ignore_errors=True)
    os.rename(tmp, args.out_dir)
    print(f"saved {args.out_dir} (best held-out loss {best:.3f}, perplexity {math.exp(best):.1f})", flush=True)


if __name__ == "__main__":
    main()
