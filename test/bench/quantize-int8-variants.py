"""Compares ways to make an int8 model on this CPU: the measurement behind `--int8`'s method (docs/quantize.md).

    PYTHONPATH=src/workers/python python3 test/bench/quantize-int8-variants.py FP32_EXPORT EVAL_TEXT OUT_DIR

FP32_EXPORT is a folder from `llmkit export`. Variants, all with the token embedding quantized too:
  dynamic      onnxruntime quantize_dynamic: per-channel int8 weights, activations quantized per tensor
               at run time (MatMulInteger / DynamicQuantizeMatMul); embedding as a per-tensor int8 Gather
  nbits8-B     llmkit's --int8: MatMulNBits 8-bit, blocks of B, accuracy_level 4 (int8 compute);
               embedding as GatherBlockQuantized
  nbits4-32    llmkit's --int4 default, for scale
Each is measured against fp32 in onnxruntime (Python, CPU, 2 threads): file size, batch-1 decode speed
(median step over interleaved runs of the same prompts, warm-up excluded), perplexity, top-1 agreement
and mean KL over 256-token windows of EVAL_TEXT (at most 8192 tokens). The table is printed and
written to OUT_DIR/int8-variants.md.
"""

import json
import logging
import math
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic
from tokenizers import Tokenizer

from llmkit_worker import quantize as llmkit_quantize

THREADS, WINDOW, MAX_TOKENS = 2, 256, 8192
PROMPTS, PROMPT_TOKENS, NEW_TOKENS, ROUNDS = 3, 32, 48, 3


def make_variants(fp32: str, out: str) -> dict:
    paths = {"fp32": os.path.join(fp32, "onnx", "model.onnx")}
    logging.disable(logging.WARNING)
    dynamic = os.path.join(out, "dynamic.onnx")
    if not os.path.exists(dynamic):
        quantize_dynamic(
            paths["fp32"],
            dynamic,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gather"],
            extra_options={"MatMulConstBOnly": True},
        )
    paths["dynamic"] = dynamic
    for name, bits, block in (("nbits8-128", 8, 128), ("nbits8-64", 8, 64), ("nbits8-32", 8, 32), ("nbits4-32", 4, 32)):
        folder = os.path.join(out, name)
        if not os.path.exists(folder):
            llmkit_quantize.run({"model": fp32, "out": folder, "bits": bits, "block_size": block, "symmetric": True})
        paths[name] = os.path.join(folder, "onnx", "model.onnx")
    return paths


class Decoder:
    def __init__(self, path: str, manifest: dict):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.layers, self.kv = manifest["num_layers"], (manifest["num_kv_heads"], manifest["head_dim"])

    def forward(self, ids: np.ndarray, past: list | None, start: int):
        batch, n = ids.shape
        if past is None:
            past = [np.zeros((batch, *self.kv[:1], 0, self.kv[1]), np.float32)] * (2 * self.layers)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones((batch, start + n), np.int64),
            "position_ids": np.tile(np.arange(start, start + n, dtype=np.int64), (batch, 1)),
        }
        for i in range(self.layers):
            feeds[f"past_key_values.{i}.key"], feeds[f"past_key_values.{i}.value"] = past[2 * i], past[2 * i + 1]
        out = self.session.run(None, feeds)
        return out[0], out[1:]

    def decode_steps(self, prompt: list, steps: int) -> list:
        logits, past = self.forward(np.array([prompt], np.int64), None, 0)
        times = []
        for i in range(steps):
            token = np.array([[int(logits[0, -1].argmax())]], np.int64)
            started = time.perf_counter()
            logits, past = self.forward(token, past, len(prompt) + i)
            times.append(time.perf_counter() - started)
        return times


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))


def main() -> None:
    fp32, eval_text, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    manifest = json.load(open(os.path.join(fp32, "llmkit.json")))
    tokens = Tokenizer.from_file(os.path.join(fp32, "tokenizer.json")).encode(open(eval_text).read()).ids[:MAX_TOKENS]
    windows = np.array(tokens[: len(tokens) // WINDOW * WINDOW], np.int64).reshape(-1, WINDOW)
    paths = make_variants(fp32, out)
    decoders = {name: Decoder(path, manifest) for name, path in paths.items()}

    reference = [log_softmax(decoders["fp32"].forward(w[None], None, 0)[0][0]) for w in windows]
    rows = {}
    for name, decoder in decoders.items():
        nll = agree = kl = 0.0
        count = 0
        for w, ref in zip(windows, reference):
            lp = log_softmax(decoder.forward(w[None], None, 0)[0][0])[:-1]
            r = ref[:-1]
            nll -= lp[np.arange(WINDOW - 1), w[1:]].sum()
            agree += (lp.argmax(-1) == r.argmax(-1)).sum()
            kl += (np.exp(r) * (r - lp)).sum()
            count += WINDOW - 1
        rows[name] = {"bytes": os.path.getsize(paths[name]), "perplexity": math.exp(nll / count), "agreement": agree / count, "kl": kl / count}

    prompts = [tokens[i * len(tokens) // PROMPTS :][:PROMPT_TOKENS] for i in range(PROMPTS)]
    times = {name: [] for name in decoders}
    for decoder in decoders.values():
        decoder.decode_steps(prompts[0], 4)
    for r in range(ROUNDS):
        for prompt in prompts:
            for name in list(decoders) if r % 2 == 0 else reversed(list(decoders)):
                times[name] += decoders[name].decode_steps(prompt, NEW_TOKENS)
    base = rows["fp32"]
    base_speed = 1 / np.median(times["fp32"])
    lines = [
        f"{len(windows)} windows of {WINDOW} tokens; decode: {PROMPTS} prompts x {NEW_TOKENS} steps x {ROUNDS} rounds, {THREADS} threads, median step",
        "",
        "| variant | size | decode tok/s | perplexity | top-1 agreement | mean KL |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        speed = 1 / np.median(times[name])
        lines.append(
            f"| {name} | {row['bytes'] / 2**20:.1f} MiB ({100 * row['bytes'] / base['bytes']:.1f}%) | "
            f"{speed:.1f} ({speed / base_speed:.2f}x) | {row['perplexity']:.3f} "
            f"({100 * (row['perplexity'] / base['perplexity'] - 1):+.2f}%) | {100 * row['agreement']:.2f}% | "
            f"{row['kl']:.2e} |"
        )
    with open(os.path.join(out, "int8-variants.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # llmkit_worker's protocol points sys.stdout at stderr (its events own stdout); the table is for people.
    print("\n".join(lines), file=sys.__stdout__)


if __name__ == "__main__":
    main()
