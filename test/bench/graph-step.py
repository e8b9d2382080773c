"""One decode step of several decoder graphs in one ONNX Runtime, without anything onnxruntime-node adds: ONNX
Runtime's Python API with I/O binding, so no output is copied, and an onnxruntime-genai graph (its model builder's
folder) runs as onnxruntime-genai runs it, past and present sharing one buffer of `--capacity` columns. An llmkit
export runs as llmkit's engine runs it: without its `present.*` outputs, `--spare` masked columns after the past.
Contenders alternate run by run within each round, so load from other work hits all of them alike; the figures are
medians over rounds of each round's median, CPU time of this process (all its threads) and wall time.

Usage (the worker venv's onnxruntime is llmkit's version; onnxruntime-genai's venv has its own):
  python test/bench/graph-step.py NAME=FOLDER NAME=FOLDER... [--batch 1] [--past 256] [--spare 16]
         [--capacity 384] [--threads 1] [--runs 40] [--rounds 3]
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "workers", "python"))
from llmkit_worker.onnx_graph import prune_dead_nodes  # noqa: E402


def contender(folder: str, args):
    """A session and its I/O binding for one decode step over `args.past` cached tokens."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    genai = os.path.isfile(os.path.join(folder, "genai_config.json"))
    if genai:
        config = json.load(open(os.path.join(folder, "genai_config.json")))["model"]["decoder"]
        session = ort.InferenceSession(os.path.join(folder, config["filename"]), options, providers=["CPUExecutionProvider"])
        layers, kv_heads, head_dim = config["num_hidden_layers"], config["num_key_value_heads"], config["head_size"]
        columns = args.capacity
    else:
        manifest = json.load(open(os.path.join(folder, "llmkit.json")))
        model = onnx.load(os.path.join(folder, manifest["onnx"]))
        kept = [o for o in model.graph.output if not o.name.startswith("present.")]
        model.graph.ClearField("output")
        model.graph.output.extend(kept)
        prune_dead_nodes(model.graph)
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        layers, kv_heads, head_dim = manifest["num_layers"], manifest["num_kv_heads"], manifest["head_dim"]
        columns = args.past + args.spare
    batch, binding, keep = args.batch, session.io_binding(), []
    binding.bind_cpu_input("input_ids", np.full((batch, 1), 5, np.int64))
    rng = np.random.default_rng(0)
    for i in range(layers):
        for kind in ("key", "value"):
            past = ort.OrtValue.ortvalue_from_numpy(rng.standard_normal((batch, kv_heads, columns, head_dim), np.float32))
            keep.append(past)
            binding.bind_ortvalue_input(f"past_key_values.{i}.{kind}", past)
            if genai:
                binding.bind_ortvalue_output(f"present.{i}.{kind}", past)
    if genai:
        binding.bind_cpu_input("attention_mask", np.ones((batch, args.past + 1), np.int64))
    else:
        mask = np.zeros((batch, columns + 1), np.int64)
        mask[:, : args.past] = mask[:, -1] = 1
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_cpu_input("position_ids", np.full((batch, 1), args.past, np.int64))
    for name in [o.name for o in session.get_outputs() if not o.name.startswith("present.")]:
        binding.bind_output(name)
    return session, binding, keep


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("contenders", nargs="+", help="NAME=FOLDER")
    for name, default in (("batch", 1), ("past", 256), ("spare", 16), ("capacity", 384), ("threads", 1), ("runs", 40), ("rounds", 3)):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    names = [c.split("=", 1)[0] for c in args.contenders]
    runs = [contender(c.split("=", 1)[1], args) for c in args.contenders]
    for session, binding, _ in runs:
        for _ in range(5):
            session.run_with_iobinding(binding)
    cpu, wall = ({n: [] for n in names} for _ in range(2))
    for _ in range(args.rounds):
        times = {n: [] for n in names}
        for _ in range(args.runs):
            for name, (session, binding, _) in zip(names, runs):
                c, w = time.process_time(), time.perf_counter()
                session.run_with_iobinding(binding)
                times[name].append((1000 * (time.process_time() - c), 1000 * (time.perf_counter() - w)))
        for name in names:
            cpu[name].append(float(np.median([t[0] for t in times[name]])))
            wall[name].append(float(np.median([t[1] for t in times[name]])))

    def figure(xs):
        return f"{np.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"

    print(f"onnxruntime {ort.__version__}, {args.threads} thread(s), batch {args.batch}, {args.past} cached tokens, {args.rounds} rounds × {args.runs} runs")
    print(f"| graph | CPU ms a step | wall ms a step | CPU ÷ {names[0]} |")
    print("|---|---|---|---|")
    for name in names:
        ratio = [a / b for a, b in zip(cpu[name], cpu[names[0]])]
        print(f"| {name} | {figure(cpu[name])} | {figure(wall[name])} | {np.median(ratio):.2f}× ({min(ratio):.2f}–{max(ratio):.2f}) |")


if __name__ == "__main__":
    main()
