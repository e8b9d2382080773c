"""Hugging Face `generate` on a GPU: the baseline of the CUDA engine figures in docs/benchmarks.md.

Same measurements as test/bench/engine-gpu.js, on the same Hugging Face folder that llmkit exported:
prefill tokens/s of a 256-token prompt (median of 3), greedy decode tokens/s at batch 1 (64 tokens,
time after the first token) and at batch 8 (8 prompts of 16 + 8b tokens, left-padded, all tokens over
the whole call), eager attention and the default dynamic cache, as most users run it.

    python3 test/bench/hf-generate.py MODEL_FOLDER [--dtype bfloat16|float16|float32] [--prompt 256] [--tokens 64] [--batch 8]
"""

import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def timed(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype), attn_implementation="eager").cuda().eval()
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(4, vocab, (1, n), generator=gen)  # noqa: E731
    # Greedy to the end: no EOS may stop a row early, so every row makes exactly `tokens` tokens.
    settings = dict(do_sample=False, eos_token_id=None, pad_token_id=0)

    def generate(input_ids, mask, new_tokens):
        model.generate(input_ids=input_ids.cuda(), attention_mask=mask.cuda(), max_new_tokens=new_tokens, min_new_tokens=new_tokens, **settings)

    with torch.inference_mode():
        warm = ids(args.prompt)
        generate(warm, torch.ones_like(warm), 4)
        prefill = statistics.median(timed(lambda x=ids(args.prompt): model(x.cuda())) for _ in range(3))
        single = ids(16)
        first = statistics.median(timed(lambda: generate(single, torch.ones_like(single), 1)) for _ in range(3))
        whole = timed(lambda: generate(single, torch.ones_like(single), args.tokens))
        rows = [ids(16 + 8 * b)[0] for b in range(args.batch)]
        width = max(len(r) for r in rows)
        batch_ids = torch.stack([torch.cat([torch.zeros(width - len(r), dtype=torch.long), r]) for r in rows])
        batch_mask = torch.stack([torch.cat([torch.zeros(width - len(r), dtype=torch.long), torch.ones(len(r), dtype=torch.long)]) for r in rows])
        batch_time = timed(lambda: generate(batch_ids, batch_mask, args.tokens))
    result = {
        "engine": f"transformers {__import__('transformers').__version__} generate, eager, {args.dtype}",
        "gpu": torch.cuda.get_device_name(0),
        "prefillTokensPerSecond": args.prompt / prefill,
        "decodeTokensPerSecond": (args.tokens - 1) / (whole - first),
        "batchDecodeTokensPerSecond": args.batch * args.tokens / batch_time,
    }
    print(
        f"hf {args.dtype}: prefill {result['prefillTokensPerSecond']:.0f} tokens/s ({args.prompt}-token prompt), "
        f"decode {result['decodeTokensPerSecond']:.1f} tokens/s (batch 1), {result['batchDecodeTokensPerSecond']:.1f} tokens/s (batch {args.batch})"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
