"""Per-node accuracy levels of an int8 export, without quantizing again: copies of a level-4 folder in which the
MatMulNBits nodes whose names contain any of the given words compute at level 1 (fp32 activations), then batch-1
decode speed of each copy and of the fp32 export, interleaved round by round, 2 threads. Score the copies with
measure.py.

    python levels.py --int8 INT8_FOLDER --fp32 FP32_FOLDER --out /tmp/levels v_proj v_proj,down_proj fp32:v_proj ...
    python levels.py --speed FP32_FOLDER FOLDER... [--rounds 4 --new 32]
"""

import argparse
import json
import os
import shutil
import time

import numpy as np
import onnx
import onnxruntime as ort


def variant(src: str, fp32: str, out: str, words: list[str]) -> int:
    """`src` copied to `out` with the matching MatMulNBits nodes at level 1, or, for words written `fp32:WORD`, as
    fp32 MatMuls over the fp32 export's weights; the number of nodes changed."""
    model = onnx.load(f"{src}/onnx/model.onnx")
    level1 = [w for w in words if not w.startswith("fp32:")]
    full = [w.removeprefix("fp32:") for w in words if w.startswith("fp32:")]
    reference = onnx.load(f"{fp32}/onnx/model.onnx") if full else None
    changed = 0
    for index, node in enumerate(list(model.graph.node)):
        if node.op_type != "MatMulNBits":
            continue
        if any(w in node.name for w in full):
            original = next(n for n in reference.graph.node if n.name == node.name.rsplit("_Q", 1)[0])
            weight = next(t for t in reference.graph.initializer if t.name == original.input[1])
            model.graph.initializer.append(weight)
            model.graph.node.insert(index, onnx.helper.make_node("MatMul", [node.input[0], weight.name], list(node.output), name=original.name))
            model.graph.node.remove(node)
            changed += 1
        elif any(w in node.name for w in level1):
            for attribute in node.attribute:
                if attribute.name == "accuracy_level":
                    attribute.i = 1
                    changed += 1
    if "fp16-output" in words:
        changed += fp16_output(model, onnx.load(f"{fp32}/onnx/model.onnx"))
    used = {name for node in model.graph.node for name in node.input}
    for tensor in [t for t in model.graph.initializer if t.name not in used]:
        model.graph.initializer.remove(tensor)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("model.onnx"))
    onnx.save(model, f"{out}/onnx/model.onnx")
    return changed


def fp16_output(model, reference) -> int:
    """The tied embedding / output layer as one fp16 table [vocab, hidden]: the embedding a Gather on it, the output
    layer a MatMul on its transpose, each through a Cast to fp32 that onnxruntime folds when the session loads."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    head = next(n for n in reference.graph.node if n.name == "/model/lm_head/MatMul")
    weight = numpy_helper.to_array(next(t for t in reference.graph.initializer if t.name == head.input[1]))
    model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight.T).astype(np.float16), "output_table_fp16"))
    nodes = [
        helper.make_node("Cast", ["output_table_fp16"], ["output_table"], name="output_table_fp32", to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["output_table"], ["output_weight"], name="output_weight", perm=[1, 0]),
    ]
    for node in list(model.graph.node):
        if node.name == "/model/lm_head/MatMul_Q8":
            nodes.append(helper.make_node("MatMul", [node.input[0], "output_weight"], list(node.output), name="/model/lm_head/MatMul"))
            model.graph.node.remove(node)
        elif node.name == "/model/model/embed_tokens/Gather_Q8":
            nodes.append(helper.make_node("Gather", ["output_table", node.input[1]], list(node.output), name="/model/model/embed_tokens/Gather"))
            model.graph.node.remove(node)
        elif node.name == "/model/model/embed_tokens/Gather_table":
            model.graph.node.remove(node)
    for index, node in enumerate(nodes):
        model.graph.node.insert(index, node)
    return 2


def decode_seconds(session, manifest: dict, prompt: int, new: int) -> float:
    """Seconds per decoded token after a `prompt`-token prefill, batch 1, greedy."""
    heads, dim = manifest["num_kv_heads"], manifest["head_dim"]
    past = {name: np.zeros((1, heads, 0, dim), np.float32) for name in manifest["inputs"] if name.startswith("past_key_values.")}
    outputs = [o.name for o in session.get_outputs()]
    ids = np.arange(100, 100 + prompt, dtype=np.int64)[None]
    length, start = 0, 0.0
    for step in range(new + 1):
        if step == 1:
            start = time.perf_counter()
        feed = {"input_ids": ids, "attention_mask": np.ones((1, length + ids.shape[1]), np.int64)}
        feed["position_ids"] = np.arange(length, length + ids.shape[1], dtype=np.int64)[None]
        result = dict(zip(outputs, session.run(None, {**feed, **past})))
        length += ids.shape[1]
        past = {name: result[name.replace("past_key_values", "present")] for name in past}
        ids = result["logits"][:, -1].argmax(-1)[:, None].astype(np.int64)
    return (time.perf_counter() - start) / new


def speed(folders: list[str], rounds: int, prompt: int, new: int) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    sessions = [ort.InferenceSession(f"{f}/onnx/model.onnx", options, providers=["CPUExecutionProvider"]) for f in folders]
    manifests = [json.load(open(f"{f}/llmkit.json")) for f in folders]
    times: list[list[float]] = [[] for _ in folders]
    for _ in range(rounds):
        for i, (session, manifest) in enumerate(zip(sessions, manifests)):
            times[i].append(decode_seconds(session, manifest, prompt, new))
    for folder, t in zip(folders, times):
        ratios = [base / own for base, own in zip(times[0], t)]
        print(
            f"{os.path.basename(folder):24s} {1000 * float(np.median(t)):7.1f} ms/token  ×fp32 median {np.median(ratios):.2f} "
            f"({min(ratios):.2f}–{max(ratios):.2f}) [{rounds} rounds, {new} tokens after {prompt}]",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--int8")
    parser.add_argument("--fp32")
    parser.add_argument("--out")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args()
    if args.speed:
        speed(args.rest, args.rounds, args.prompt, args.new)
        return
    for spec in args.rest:
        out = os.path.join(args.out, "l1-" + spec.replace(",", "+").replace("/", "_"))
        print(out, variant(args.int8, args.fp32, out, spec.split(",")), "nodes at level 1", flush=True)


if __name__ == "__main__":
    main()
