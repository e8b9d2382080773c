"""Perplexity, top-1 agreement and mean KL of quantized ONNX exports against their fp32 export, as `llmkit quantize`
reports them (consecutive 256-token windows of the eval text, each a prefill from an empty cache), in onnxruntime's
Python API so that many variants can be scored against one cached fp32 pass. Also writes the token windows and the
fp32 log-probabilities (ids.json, ref_lp.bin in --work) that gguf-measure.mjs scores llama.cpp against.

    python measure.py --fp32 FP32_EXPORT --eval recipes/data/eval.txt --work /tmp/qr VARIANT_FOLDER...
"""

import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

WINDOW = 256


def windows(fp32: str, eval_file: str) -> np.ndarray:
    with open(eval_file) as f:
        ids = Tokenizer.from_file(f"{fp32}/tokenizer.json").encode(f.read(), add_special_tokens=False).ids[:8192]
    n = len(ids) // WINDOW
    return np.array(ids[: n * WINDOW], dtype=np.int64).reshape(n, WINDOW)


def log_probs(folder: str, ids: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(f"{folder}/onnx/model.onnx", options, providers=["CPUExecutionProvider"])
    with open(f"{folder}/llmkit.json") as f:
        manifest = json.load(f)
    empty = np.zeros((1, manifest["num_kv_heads"], 0, manifest["head_dim"]), np.float32)
    out = []
    for row in ids:
        feed = {"input_ids": row[None], "attention_mask": np.ones((1, WINDOW), np.int64), "position_ids": np.arange(WINDOW, dtype=np.int64)[None]}
        feed.update({name: empty for name in manifest["inputs"] if name.startswith("past_key_values.")})
        logits = session.run(["logits"], feed)[0][0, :-1].astype(np.float64)
        logits -= logits.max(-1, keepdims=True)
        out.append((logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(np.float32))
    return np.stack(out)


def onnx_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, "onnx", f)) for f in os.listdir(os.path.join(folder, "onnx")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fp32", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("variants", nargs="*")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    ids = windows(args.fp32, args.eval)
    cached = os.path.join(args.work, "ref_lp.bin")
    if not os.path.exists(cached):
        log_probs(args.fp32, ids).tofile(cached)
        with open(os.path.join(args.work, "ids.json"), "w") as f:
            json.dump(ids.tolist(), f)
    reference = np.fromfile(cached, np.float32).reshape(ids.shape[0], WINDOW - 1, -1)
    following = ids[:, 1:, None]
    perplexity = lambda lp: float(np.exp(-np.take_along_axis(lp, following, -1).mean()))  # noqa: E731
    base = perplexity(reference)
    for folder in args.variants:
        start = time.time()
        lp = log_probs(folder, ids)
        ppl = perplexity(lp)
        top1 = float((lp.argmax(-1) == reference.argmax(-1)).mean())
        kl = float((np.exp(reference) * (reference - lp)).sum(-1).mean())
        size = onnx_bytes(folder)
        print(
            f"{os.path.basename(folder):24s} {size / 2**20:7.1f} MiB ({100 * size / onnx_bytes(args.fp32):5.1f}%) perplexity {ppl:.3f} "
            f"({100 * (ppl / base - 1):+.2f}%) top-1 {100 * top1:.1f}% KL {kl:.2e} [{ids.shape[0] * (WINDOW - 1)} positions, fp32 {base:.3f}, {time.time() - start:.0f} s]",
            flush=True,
        )


if __name__ == "__main__":
    main()
