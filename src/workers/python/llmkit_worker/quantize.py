"""Quantizes an exported fp32 decoder (a folder made by `export_onnx`) to int8 or int4 weights.

Every MatMul with a constant weight (attention, MLP, lm_head) becomes onnxruntime's MatMulNBits:
weights in blocks of `block_size` along the input dimension, one scale per block (plus a zero point
when asymmetric), and accuracy_level 4, which lets the CPU kernels quantize the activations to int8 on
the fly and use integer dot products. Measured on a 2-core AVX2 CPU, this 8-bit path decodes as fast
as quantize_dynamic's per-channel int8 at the same size and is 15x closer to fp32 by KL, and it is the
same operator for int8 and int4 (docs/quantize.md has the numbers). The token embedding (a Gather, which
the MatMulNBits quantizer only handles at 4 bits and by raising the model to opset 21) becomes a
GatherBlockQuantized with the same bits and blocks, written here.

The inputs and outputs are untouched (fp32 activations and KV cache), so DecoderSession and
transformers.js load the result like the fp32 export.

Config: model (exported fp32 folder), out, bits (8 or 4), block_size (32, 64, 128; capped at the hidden
size), symmetric (bool), exclude (node names kept in fp32), accuracy_level (4, or 1 for fp32 activations).
Raises BadInput for a folder that is not an fp32 export, or an --exclude name that is not a weight node.
"""

import json
import logging
import os
import shutil

from .architectures import check_architecture
from .atomic import move_into_place, temp_folder
from .export_onnx import TOKENIZER_FILES, save_onnx
from .jobs import QuantizeConfig
from .protocol import BadInput, emit, log

# MatMulNBits' CPU kernels quantize activations to int8 per block at level 4 (see the docstring); at 1 they
# dequantize the weights and multiply in fp32 (levels 2 and 3, fp16 and bf16, are GPU choices).
ACCURACY_LEVELS = (1, 4)


def weight_nodes(graph, initializers: dict) -> dict:
    """Node name -> op type for every node whose weight can be quantized: MatMul B and 2-D Gather data."""
    nodes = {}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in initializers:
            nodes[node.name] = node.op_type
        elif node.op_type == "Gather" and node.input[0] in initializers and len(initializers[node.input[0]].dims) == 2:
            nodes[node.name] = node.op_type
    return nodes


def quantize_blocks(weight, bits: int, block_size: int, symmetric: bool):
    """Row-wise blocks of `block_size` along the last axis -> (uint8 codes, fp32 scales, uint8 zero points or None)."""
    import numpy as np

    rows, cols = weight.shape
    blocks = np.pad(weight, ((0, 0), (0, -cols % block_size))).reshape(rows, -1, block_size)
    if symmetric:
        # Codes are stored unsigned around GatherBlockQuantized's default zero point 2^(bits-1).
        qmax = 2 ** (bits - 1) - 1
        scales = np.abs(blocks).max(-1) / qmax
        scales[scales == 0] = 1.0
        codes = np.clip(np.rint(blocks / scales[..., None]), -qmax, qmax) + 2 ** (bits - 1)
        zero_points = None
    else:
        low, high = np.minimum(blocks.min(-1), 0), np.maximum(blocks.max(-1), 0)
        scales = (high - low) / (2**bits - 1)
        scales[scales == 0] = 1.0
        zero_points = np.clip(np.rint(-low / scales), 0, 2**bits - 1)
        codes = np.clip(np.rint(blocks / scales[..., None]) + zero_points[..., None], 0, 2**bits - 1)
    codes = codes.reshape(rows, -1)[:, :cols].astype(np.uint8)
    return codes, scales.astype(np.float32), None if zero_points is None else zero_points.astype(np.uint8)


def pack(codes, bits: int):
    """GatherBlockQuantized packs sub-byte codes along the last axis, low-order bits first."""
    if bits == 8:
        return codes
    import numpy as np

    codes = np.pad(codes, ((0, 0), (0, codes.shape[1] % 2)))
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)


def quantize_embedding(graph, node, initializers: dict, bits: int, block_size: int, symmetric: bool):
    """Replaces a Gather over a 2-D weight by GatherBlockQuantized (the unused fp32 table is dropped later)."""
    import onnx

    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    if axis != 0:
        raise BadInput(f"embedding {node.name} gathers along axis {axis}; only axis 0 can be quantized", hint=f"keep it in fp32 with --exclude {node.name}")
    table = initializers[node.input[0]]
    codes, scales, zero_points = quantize_blocks(onnx.numpy_helper.to_array(table), bits, block_size, symmetric)
    tensors = [onnx.numpy_helper.from_array(pack(codes, bits), f"{table.name}_q{bits}"), onnx.numpy_helper.from_array(scales, f"{table.name}_scales")]
    if zero_points is not None:
        tensors.append(onnx.numpy_helper.from_array(pack(zero_points, bits), f"{table.name}_zero_points"))
    graph.initializer.extend(tensors)
    inputs = [tensors[0].name, node.input[1], tensors[1].name] + [t.name for t in tensors[2:]]
    return onnx.helper.make_node(
        "GatherBlockQuantized",
        inputs,
        list(node.output),
        name=f"{node.name}_Q{bits}",
        domain="com.microsoft",
        bits=bits,
        block_size=block_size,
        gather_axis=0,
        quantize_axis=1,
    )


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


def run(config: QuantizeConfig) -> int:
    import onnx
    import onnxruntime
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    src, out = os.path.abspath(config["model"]), os.path.abspath(config["out"])
    bits, block_size = int(config["bits"]), int(config.get("block_size", 32))
    symmetric, exclude = bool(config.get("symmetric", True)), list(config.get("exclude") or [])
    accuracy_level = int(config.get("accuracy_level", 4))
    if accuracy_level not in ACCURACY_LEVELS:
        raise BadInput(f"accuracy level {accuracy_level} is not one the CPU kernels use", hint="use 4 (int8 activations) or 1 (fp32 activations)")
    manifest = read_fp32_export(src)
    # Blocks longer than a weight's input dimension are zero-padded: on a small model that costs more than
    # it saves, so cap them at the hidden size (rounded down to a power of two, as MatMulNBits needs).
    largest = 1 << (int(manifest["hidden_size"]).bit_length() - 1)
    if block_size > largest:
        log(f"block size {block_size} is longer than the hidden size {manifest['hidden_size']}; using {largest}")
        block_size = largest
    emit("start", job="quantize", total_steps=3)

    model = onnx.load(os.path.join(src, manifest["onnx"]))
    initializers = {t.name: t for t in model.graph.initializer}
    candidates = weight_nodes(model.graph, initializers)
    for name in exclude:
        if name not in candidates:
            names = list(candidates)
            examples = ", ".join(dict.fromkeys([names[0], names[1], names[-1]] if len(names) > 2 else names))
            raise BadInput(
                f"--exclude {name}: no MatMul or Gather weight node has that name", hint=f"names look like {examples} ({len(names)} weight nodes in all)"
            )
    embeddings = [n for n in model.graph.node if candidates.get(n.name) == "Gather" and n.name not in exclude]
    for node in embeddings:
        index = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(index, quantize_embedding(model.graph, node, initializers, bits, block_size, symmetric))
    emit("progress", step=1, total=3, message="embedding quantized")

    # The quantizer logs every node it visits at INFO; its warnings still reach the log file.
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=bits,
        block_size=block_size,
        is_symmetric=symmetric,
        accuracy_level=accuracy_level,
        nodes_to_exclude=exclude,
        op_types_to_quantize=("MatMul",),
    )
    quantizer.process()  # also drops the fp32 initializers nothing uses any more
    model = quantizer.model.model
    emit("progress", step=2, total=3, message="matmuls quantized")

    tmp = temp_folder(out)
    os.makedirs(os.path.join(tmp, "onnx"))
    save_onnx(model, os.path.join(tmp, "onnx", "model.onnx"))
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(tmp, name))
    details = {
        "method": "MatMulNBits + GatherBlockQuantized (weight-only, block-wise)",
        "tool": f"onnxruntime {onnxruntime.__version__} MatMulNBitsQuantizer",
        "bits": bits,
        "block_size": block_size,
        "symmetric": symmetric,
        "accuracy_level": accuracy_level,
        "quantized_nodes": sum(n.op_type in ("MatMulNBits", "GatherBlockQuantized") for n in model.graph.node),
        "excluded": exclude,
    }
    manifest.update(precision=f"int{bits}", onnx="onnx/model.onnx", quantization=details)
    with open(os.path.join(tmp, "llmkit.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    move_into_place(tmp, out)
    emit("progress", step=3, total=3, message="written")
    emit("artifact", kind="onnx_model", path=out)
    emit("result", path=out, quantization=details)
    return 0
