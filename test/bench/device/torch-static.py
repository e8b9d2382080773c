"""The PyTorch peers of issue 24's device benchmark: a static KV cache (transformers' StaticCache) with one
greedy decode step replayed as a CUDA graph (captured by hand, sdpa), and the same step under
torch.compile(mode="reduce-overhead"). Prompts of one length (random ids, fixed seed), so every row's cache
position is the same and the step's shapes never change. Prints one JSON line per (engine, batch, round):
prefill tokens/s and time to first token (the prompt's forward + argmax), decode tokens/s after the first token,
the tokens.

    python3 test/bench/device/torch-static.py MODEL_FOLDER [--engines graph,compile] [--batches 1,8]
        [--prompt 256] [--tokens 64] [--rounds 2] [--dtype bfloat16]
"""

import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM, StaticCache


def static_cache(model, batch: int, length: int, dtype):
    try:  # transformers 4.4x-4.5x
        return StaticCache(config=model.config, max_batch_size=batch, max_cache_len=length, device="cuda", dtype=dtype)
    except TypeError:  # later releases size the cache from the first update
        return StaticCache(config=model.config, max_cache_len=length)


def run(model, engine: str, batch: int, prompt: int, tokens: int, rounds: int, dtype) -> None:
    vocab = model.config.vocab_size
    cache = static_cache(model, batch, prompt + tokens + 1, dtype)
    ids = torch.zeros(batch, 1, dtype=torch.long, device="cuda")
    position = torch.zeros(1, dtype=torch.long, device="cuda")

    def step(ids, position):
        logits = model(input_ids=ids, past_key_values=cache, cache_position=position, position_ids=position.expand(ids.shape[0], 1), use_cache=True).logits
        return logits[:, -1].argmax(-1, keepdim=True)

    def prefill(prompts):
        cache.reset()
        positions = torch.arange(prompt, device="cuda")
        logits = model(input_ids=prompts, past_key_values=cache, cache_position=positions, use_cache=True).logits
        return logits[:, -1].argmax(-1, keepdim=True)

    gen = torch.Generator().manual_seed(batch)
    warm = torch.randint(4, vocab, (batch, prompt), generator=gen).cuda()
    if engine == "graph":
        ids.copy_(prefill(warm))
        position.fill_(prompt)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step(ids, position)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = step(ids, position)

        def decode_step():
            graph.replay()
            return captured
    else:
        compiled = torch.compile(step, mode="reduce-overhead", fullgraph=False)
        for _ in range(2):  # compile, then record the graph
            ids.copy_(prefill(warm))
            position.fill_(prompt)
            for i in range(4):
                ids.copy_(compiled(ids, position))
                position.fill_(prompt + 1 + i)

        def decode_step():
            return compiled(ids, position)

    for round_ in range(rounds):
        prompts = torch.randint(4, vocab, (batch, prompt), generator=gen).cuda()
        torch.cuda.synchronize()
        started = time.perf_counter()
        first = prefill(prompts)
        torch.cuda.synchronize()
        prefill_s = time.perf_counter() - started
        out = [first]
        ids.copy_(first)
        started = time.perf_counter()
        for i in range(tokens - 1):
            position.fill_(prompt + i)
            nxt = decode_step()
            ids.copy_(nxt)
            out.append(nxt.clone())
        torch.cuda.synchronize()
        decode_s = time.perf_counter() - started
        rows = torch.cat(out, dim=1).tolist()
        print(
            json.dumps(
                {
                    "engine": f"torch-{engine}",
                    "round": round_,
                    "batch": batch,
                    "prefillTokPerS": batch * prompt / prefill_s,
                    "timeToFirstTokenMs": prefill_s * 1000,
                    "decodeTokPerS": batch * (tokens - 1) / decode_s,
                    "tokens": rows,
                }
            ),
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--engines", default="graph,compile")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dtype", default="bfloat16")
    args = p.parse_args()
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation="sdpa").cuda().eval()
    with torch.inference_mode():
        for engine in args.engines.split(","):
            for batch in map(int, args.batches.split(",")):
                try:
                    run(model, engine, batch, args.prompt, args.tokens, args.rounds, dtype)
                except Exception as e:  # one engine failing must not cost the others' figures
                    print(json.dumps({"engine": f"torch-{engine}", "batch": batch, "error": str(e).splitlines()[0][:300]}), flush=True)


if __name__ == "__main__":
    main()
