"""Quantizes an exported fp32 decoder (a folder made by `export_onnx`) to int8 or int4 weights.

Every MatMul with a constant weight (attention, MLP, lm_head) becomes onnxruntime's MatMulNBits: weights in
blocks of `block_size` along the input dimension, one scale per block (plus a zero point when asymmetric), and
accuracy_level 4 by default, at which the CPU kernels quantize the activations to int8 per block and use integer
dot products (docs/quantize.md has what each choice costs). The token embedding (a Gather) becomes a
GatherBlockQuantized. The output layer and the embedding get `head_bits` (8 unless asked otherwise: on a real
model they are the most sensitive weights, and llama.cpp keeps them at 8 bits too; 16 keeps them as fp16 tables
computed in fp32, no activation rounding); when the model ties them, the export wrote the weight twice and the
quantized file holds it once, read by both operators.

Weights are rounded to nearest, or, given `calibration_data`, with GPTQ over the activations the fp32 model
produces on that text (gptq.py). The codes are written here (nbits.py), not by onnxruntime's
MatMulNBitsQuantizer, which can neither give one layer other bits nor take GPTQ's rounding.

The inputs and outputs are untouched (fp32 activations and KV cache), so DecoderSession and
transformers.js load the result like the fp32 export.

Config: model (exported fp32 folder), out, bits (8 or 4), block_size (16, 32, 64, 128; capped at the hidden
size), symmetric (bool), exclude (node names kept in fp32), accuracy_level (4, or 1 for fp32 activations),
head_bits (4, 8 or 16), scales ("fp32", or "fp16": half the scale bytes, compute in fp16 around each quantized operator),
calibration_data (a text file) and calibration_tokens.
Raises BadInput for a folder that is not an fp32 export, or an --exclude name that is not a weight node.
"""

import json
import os
import shutil

from .architectures import check_architecture
from .atomic import move_into_place, temp_folder
from .export_onnx import TOKENIZER_FILES, save_onnx
from .gptq import gptq, input_hessians
from .jobs import QuantizeConfig
from .nbits import pack, round_to_nearest
from .protocol import BadInput, emit, log

# MatMulNBits' CPU kernels quantize activations to int8 per block at level 4 (see the docstring); at 1 they
# dequantize the weights and multiply in fp32 (levels 2 and 3, fp16 and bf16, are GPU choices).
ACCURACY_LEVELS = (1, 4)
# --output-bits 16: the output layer and the embedding as fp16 tables, widened to fp32 when the session loads.
HALF_BITS = 16
# Tokens of calibration text per prefill.
CALIBRATION_WINDOW = 256


def weight_nodes(graph, initializers: dict) -> dict:
    """Node name -> op type for every node whose weight can be quantized: MatMul B and 2-D Gather data."""
    nodes = {}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in initializers:
            nodes[node.name] = node.op_type
        elif node.op_type == "Gather" and node.input[0] in initializers and len(initializers[node.input[0]].dims) == 2:
            nodes[node.name] = node.op_type
    return nodes


def matmul_nbits(node, codes, scales, zero_points, bits: int, block_size: int, accuracy_level: int, rows: int, cols: int):
    """A MatMul over a constant weight [cols, rows] as MatMulNBits over its codes (N = rows, K = cols)."""
    import numpy as np
    import onnx

    weight = node.input[1]
    tensors = [onnx.numpy_helper.from_array(pack(codes, bits), f"{weight}_q{bits}"), onnx.numpy_helper.from_array(scales, f"{weight}_scales")]
    if zero_points is not None:
        tensors.append(onnx.numpy_helper.from_array(pack(zero_points, bits).reshape(-1).astype(np.uint8), f"{weight}_zero_points"))
    attributes = {"K": cols, "N": rows, "bits": bits, "block_size": block_size, "accuracy_level": accuracy_level}
    op = onnx.helper.make_node(
        "MatMulNBits", [node.input[0]] + [t.name for t in tensors], list(node.output), name=f"{node.name}_Q{bits}", domain="com.microsoft", **attributes
    )
    return op, tensors


def gather_block_quantized(node, data: str, scales: str, zero_points: str | None, bits: int, block_size: int):
    """A Gather over an embedding table as GatherBlockQuantized over its codes (rows of the table, blocks along them)."""
    import onnx

    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    if axis != 0:
        raise BadInput(f"embedding {node.name} gathers along axis {axis}; only axis 0 can be quantized", hint=f"keep it in fp32 with --exclude {node.name}")
    inputs = [data, node.input[1], scales] + ([zero_points] if zero_points else [])
    attributes = {"bits": bits, "block_size": block_size, "gather_axis": 0, "quantize_axis": 1}
    return onnx.helper.make_node("GatherBlockQuantized", inputs, list(node.output), name=f"{node.name}_Q{bits}", domain="com.microsoft", **attributes)


def quantized_table(node, table, bits: int, block_size: int, symmetric: bool):
    """An embedding of its own (not tied to the output layer): its codes trimmed to the row length GatherBlockQuantized expects."""
    import onnx

    weight = onnx.numpy_helper.to_array(table)
    codes, scales, zero_points = round_to_nearest(weight, bits, block_size, symmetric)
    codes = codes.reshape(weight.shape[0], -1)[:, : weight.shape[1]]
    tensors = [onnx.numpy_helper.from_array(pack(codes, bits), f"{table.name}_q{bits}"), onnx.numpy_helper.from_array(scales, f"{table.name}_scales")]
    if zero_points is not None:
        tensors.append(onnx.numpy_helper.from_array(pack(zero_points, bits), f"{table.name}_zero_points"))
    op = gather_block_quantized(node, tensors[0].name, tensors[1].name, tensors[2].name if zero_points is not None else None, bits, block_size)
    return [op], tensors


def shared_table(node, head: dict, bits: int, block_size: int):
    """The embedding read from the output layer's codes (a tied model's two weights are one): MatMulNBits keeps
    the weight as [vocab, blocks, bytes], GatherBlockQuantized takes it as [vocab, bytes] through a Reshape that
    onnxruntime folds when the session loads, so the file holds one copy."""
    import numpy as np
    import onnx

    codes, scales = head["tensors"][0], head["tensors"][1]
    vocab = codes.dims[0]
    shape = onnx.numpy_helper.from_array(np.array([vocab, -1], np.int64), f"{codes.name}_table_shape")
    reshape = onnx.helper.make_node("Reshape", [codes.name, shape.name], [f"{codes.name}_table"], name=f"{node.name}_table")
    return [reshape, gather_block_quantized(node, reshape.output[0], scales.name, None, bits, block_size)], [shape]


def half_precision_output(graph, head, weight) -> str:
    """The output layer's weight stored as an fp16 table [vocab, hidden] (the embedding's layout, so a tied embedding
    reads the same copy), multiplied in fp32 through a Cast and a Transpose that onnxruntime folds at load: the
    logits are computed as in the fp32 model, from weights rounded once to fp16. Returns the fp32 table's name."""
    import numpy as np
    import onnx

    fp16 = onnx.numpy_helper.from_array(np.ascontiguousarray(onnx.numpy_helper.to_array(weight).T).astype(np.float16), f"{weight.name}_fp16_table")
    table, transposed = f"{weight.name}_table", f"{weight.name}_fp32"
    ops = [
        onnx.helper.make_node("Cast", [fp16.name], [table], name=f"{head.name}_table", to=onnx.TensorProto.FLOAT),
        onnx.helper.make_node("Transpose", [table], [transposed], name=f"{head.name}_weight", perm=[1, 0]),
        onnx.helper.make_node("MatMul", [head.input[0], transposed], list(head.output), name=f"{head.name}_F16"),
    ]
    graph.initializer.append(fp16)
    insert_in_place_of(graph, head, ops)
    return table


def half_precision_embedding(graph, node, table, head_table: str | None) -> list:
    """The embedding as a Gather from the output layer's fp16 table when tied, else from its own fp16 copy through a
    Cast that onnxruntime folds at load. Returns [node name] when it shares the output layer's table, else []."""
    import numpy as np
    import onnx

    ops, shared = [], head_table is not None
    if head_table is None:
        fp16 = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(table).astype(np.float16), f"{table.name}_fp16")
        head_table = f"{table.name}_table"
        ops.append(onnx.helper.make_node("Cast", [fp16.name], [head_table], name=f"{node.name}_table", to=onnx.TensorProto.FLOAT))
        graph.initializer.append(fp16)
    gather = onnx.helper.make_node("Gather", [head_table, node.input[1]], list(node.output), name=f"{node.name}_F16")
    gather.attribute.extend(node.attribute)
    insert_in_place_of(graph, node, ops + [gather])
    return [node.name] if shared else []


def output_layer(graph, candidates: dict, initializers: dict, vocab: int):
    """The MatMul that computes the logits: the one whose weight maps the hidden size onto the vocabulary."""
    heads = [n for n in graph.node if candidates.get(n.name) == "MatMul" and initializers[n.input[1]].dims[-1] == vocab]
    return heads[-1] if heads else None


def tied(embedding, head_weight: str, initializers: dict) -> bool:
    """Whether the embedding table is the output layer's weight, transposed (the export writes a tied weight twice)."""
    import numpy as np
    import onnx

    table, weight = initializers[embedding.input[0]], initializers[head_weight]
    if list(table.dims) != list(weight.dims)[::-1]:
        return False
    return bool(np.array_equal(onnx.numpy_helper.to_array(table), onnx.numpy_helper.to_array(weight).T))


def read_fp32_export(folder: str) -> dict:
    manifest_path = os.path.join(folder, "llmkit.json")
    if not os.path.isfile(manifest_path):
        raise BadInput(f"{folder} has no llmkit.json", hint="pass a folder made by `llmkit export`")
    with open(manifest_path) as f:
        manifest = json.load(f)
    check_architecture({"architectures": [manifest.get("architecture")]}, "quantize")
    if manifest.get("precision") != "fp32":
        raise BadInput(
            f"{folder} holds {manifest.get('precision')} weights: quantize starts from fp32",
            hint="pass its fp32 export (`llmkit export` without --fp16) or the Hugging Face folder",
        )
    return manifest


def calibration_feeds(src: str, manifest: dict, text_file: str, max_tokens: int) -> list:
    """The calibration text as prefills of up to CALIBRATION_WINDOW tokens, each from an empty cache."""
    import numpy as np
    from tokenizers import Tokenizer

    if not os.path.isfile(os.path.join(src, "tokenizer.json")):
        raise BadInput(f"{src} has no tokenizer.json to read the calibration text with", hint="export the model again with `llmkit export`")
    with open(text_file, encoding="utf-8") as f:
        tokens = Tokenizer.from_file(os.path.join(src, "tokenizer.json")).encode(f.read(), add_special_tokens=False).ids[:max_tokens]
    window = min(CALIBRATION_WINDOW, int(manifest["max_position_embeddings"]), len(tokens))
    if len(tokens) < 64:
        raise BadInput(
            f"--calibration-data {text_file} has only {len(tokens)} tokens", hint="pass a longer text (a few thousand tokens of the kind the model will see)"
        )
    empty = np.zeros((1, int(manifest["num_kv_heads"]), 0, int(manifest["head_dim"])), np.float32)
    feeds = []
    for start in range(0, len(tokens) - window + 1, window):
        ids = np.array([tokens[start : start + window]], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "position_ids": np.arange(window, dtype=np.int64)[None]}
        feed.update({name: empty for name in manifest["inputs"] if name.startswith("past_key_values.")})
        feeds.append(feed)
    return feeds


def calibrate(model, matmuls: list, feeds: list) -> tuple[dict, int]:
    """Runs the fp32 model over the calibration windows with every quantized MatMul's input as an extra output."""
    import onnx
    import onnxruntime

    names = list(dict.fromkeys(node.input[0] for node in matmuls))
    extra = [onnx.ValueInfoProto(name=name) for name in names]
    model.graph.output.extend(extra)
    try:
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    finally:
        for value in extra:
            model.graph.output.remove(value)
    return input_hessians(session, feeds, names)


def run(config: QuantizeConfig) -> int:
    import onnx
    import onnxruntime

    src, out = os.path.abspath(config["model"]), os.path.abspath(config["out"])
    bits, block_size = int(config["bits"]), int(config.get("block_size", 32))
    head_bits = int(config.get("head_bits") or bits)
    symmetric, exclude = bool(config.get("symmetric", True)), list(config.get("exclude") or [])
    half = HalfPrecision() if config.get("scales") == "fp16" else None
    accuracy_level = int(config.get("accuracy_level", 4))
    calibration = config.get("calibration_data")
    if accuracy_level not in ACCURACY_LEVELS:
        raise BadInput(f"accuracy level {accuracy_level} is not one the CPU kernels use", hint="use 4 (int8 activations) or 1 (fp32 activations)")
    manifest = read_fp32_export(src)
    # Blocks longer than a weight's input dimension are zero-padded: on a small model that costs more than
    # it saves, so cap them at the hidden size (rounded down to a power of two, as MatMulNBits needs).
    largest = 1 << (int(manifest["hidden_size"]).bit_length() - 1)
    if block_size > largest:
        log(f"block size {block_size} is longer than the hidden size {manifest['hidden_size']}; using {largest}")
        block_size = largest
    emit("start", job="quantize", total_steps=4)

    model = onnx.load(os.path.join(src, manifest["onnx"]))
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    candidates = weight_nodes(graph, initializers)
    for name in exclude:
        if name not in candidates:
            names = list(candidates)
            examples = ", ".join(dict.fromkeys([names[0], names[1], names[-1]] if len(names) > 2 else names))
            raise BadInput(
                f"--exclude {name}: no MatMul or Gather weight node has that name", hint=f"names look like {examples} ({len(names)} weight nodes in all)"
            )
    matmuls = [n for n in graph.node if candidates.get(n.name) == "MatMul" and n.name not in exclude]
    embeddings = [n for n in graph.node if candidates.get(n.name) == "Gather" and n.name not in exclude]
    head = output_layer(graph, candidates, initializers, int(manifest["vocab_size"]))
    head_name, head_weight = (head.name, head.input[1]) if head is not None else (None, None)
    half_head = None
    if head_bits == HALF_BITS and head_name in [n.name for n in matmuls]:
        matmuls.remove(head)
        half_head = half_precision_output(graph, head, initializers[head_weight])

    hessians: dict = {}
    positions = 0
    if calibration:
        feeds = calibration_feeds(src, manifest, calibration, int(config.get("calibration_tokens") or 8192))
        hessians, positions = calibrate(model, matmuls, feeds)
    emit("progress", step=1, total=4, message=f"calibrated on {positions} tokens" if calibration else "round-to-nearest (no calibration)")

    quantized_head = None
    for index, node in enumerate(matmuls):
        node_bits = head_bits if node.name == head_name else bits
        weight = onnx.numpy_helper.to_array(initializers[node.input[1]])
        rows = weight.T
        if hessians:
            codes, scales, zero_points = gptq(rows, hessians[node.input[0]], node_bits, block_size, symmetric)
        else:
            codes, scales, zero_points = round_to_nearest(rows, node_bits, block_size, symmetric)
        op, tensors = matmul_nbits(node, codes, scales, zero_points, node_bits, block_size, accuracy_level, rows.shape[0], rows.shape[1])
        ops = half.wrap([op], tensors, tensors[1].name) if half else [op]
        graph.initializer.extend(tensors)
        insert_in_place_of(graph, node, ops)
        if node.name == head_name:
            quantized_head = {"bits": node_bits, "tensors": tensors}
        if index % 10 == 9:
            emit("progress", step=2, total=4, message=f"{index + 1}/{len(matmuls)} matmuls quantized")
    emit("progress", step=2, total=4, message="matmuls quantized")

    shared = []
    for node in embeddings:
        table = initializers[node.input[0]]
        if head_bits == HALF_BITS:
            tied_to_head = half_head is not None and head_weight is not None and tied(node, head_weight, initializers)
            shared += half_precision_embedding(graph, node, table, half_head if tied_to_head else None)
            continue
        share = symmetric and table.dims[1] % block_size == 0 and head_weight is not None and tied(node, head_weight, initializers)
        if quantized_head is not None and share:
            ops, tensors = shared_table(node, quantized_head, head_bits, block_size)
            shared.append(node.name)
        else:
            ops, tensors = quantized_table(node, table, head_bits, block_size, symmetric)
        if half:
            ops = half.wrap(ops, tensors, ops[-1].input[2])
        graph.initializer.extend(tensors)
        insert_in_place_of(graph, node, ops)
    drop_unused_initializers(graph)
    emit("progress", step=3, total=4, message="embedding quantized")

    tmp = temp_folder(out)
    os.makedirs(os.path.join(tmp, "onnx"))
    save_onnx(model, os.path.join(tmp, "onnx", "model.onnx"))
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(tmp, name))
    details = {
        "method": f"MatMulNBits + GatherBlockQuantized (weight-only, block-wise, {'GPTQ' if calibration else 'round-to-nearest'})",
        "tool": f"llmkit quantize (onnxruntime {onnxruntime.__version__} operators)",
        "bits": bits,
        "head_bits": head_bits,
        "block_size": block_size,
        "symmetric": symmetric,
        "scales": "fp16" if half else "fp32",
        "accuracy_level": accuracy_level,
        "calibration": {"algorithm": "gptq", "file": os.path.abspath(calibration), "tokens": positions} if calibration else None,
        "quantized_nodes": sum(n.op_type in ("MatMulNBits", "GatherBlockQuantized") for n in graph.node),
        "shared_embedding": shared,
        "excluded": exclude,
    }
    manifest.update(precision=f"int{bits}", onnx="onnx/model.onnx", quantization=details)
    with open(os.path.join(tmp, "llmkit.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    move_into_place(tmp, out)
    emit("progress", step=4, total=4, message="written")
    emit("artifact", kind="onnx_model", path=out)
    emit("result", path=out, quantization=details)
    return 0


class HalfPrecision:
    """fp16 block scales (2 bytes a block instead of 4: blocks of 32 at 4 bits take 4.5 bits a weight, as llama.cpp's
    Q4_0). MatMulNBits and GatherBlockQuantized take their scales in their activations' type, so each quantized
    operator computes in fp16 between two Casts; an input that several operators read (q, k and v) is cast once."""

    def __init__(self) -> None:
        self.casts: dict[str, str] = {}

    def wrap(self, ops: list, tensors: list, scales: str | None) -> list:
        """`ops` (the last one quantized, reading `scales` if given, which is converted here) in fp16 compute."""
        import numpy as np
        import onnx

        for index, tensor in enumerate(tensors):
            if tensor.name == scales:
                tensors[index] = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(tensor).astype(np.float16), tensor.name)
        op = ops[-1]
        before = []
        if op.op_type == "MatMulNBits":
            source = op.input[0]
            if source not in self.casts:
                self.casts[source] = f"{source}_fp16"
                before.append(onnx.helper.make_node("Cast", [source], [self.casts[source]], name=f"{op.name}_input_fp16", to=onnx.TensorProto.FLOAT16))
            op.input[0] = self.casts[source]
        output = op.output[0]
        op.output[0] = f"{output}_fp16"
        after = onnx.helper.make_node("Cast", [op.output[0]], [output], name=f"{op.name}_output_fp32", to=onnx.TensorProto.FLOAT)
        return before + ops + [after]


def insert_in_place_of(graph, node, ops: list) -> None:
    index = list(graph.node).index(node)
    for offset, op in enumerate(ops):
        graph.node.insert(index + offset, op)
    graph.node.remove(node)


def drop_unused_initializers(graph) -> None:
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
