"""Writes a Triton Inference Server model repository for a model folder made by `llmkit export` or `quantize`.

    REPO/<name>/config.pbtxt            the decoder, for Triton's onnxruntime backend
    REPO/<name>/1/model.onnx[.data]     the exported graph (hard-linked when the file system allows, else copied)
    REPO/<name>-generate/config.pbtxt   decoupled Python-backend model: the generation loop, streaming token ids
    REPO/<name>-generate/1/model.py     assets/triton_generate.py
    REPO/<name>-generate/1/             llmkit.json and the tokenizer files, so `llmkit serve --engine triton` can
                                        tokenize from this folder alone

The decoder's config is read from the ONNX graph itself (names, element types, dimensions; a symbolic or missing
dimension becomes -1), with max_batch_size 0 since the batch is an explicit dimension of every input. llmkit checks
it again afterwards against ONNX Runtime's own view of the file (src/core/triton/repository.ts).

Config: model (exported folder), out, name, device ("cpu" or "gpu": the instance group's kind).
Raises BadInput for a folder that is not an llmkit export or a name Triton would not accept.
"""

import json
import os
import re
import shutil

from .protocol import BadInput, emit

GENERATE_SUFFIX = "-generate"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "config.json")
# ONNX TensorProto element types → Triton data types (model_config.proto).
TRITON_TYPES = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    16: "TYPE_BF16",
}
# The generate model's inputs: (name, type, dims, optional). Everything but the prompt has a default.
GENERATE_INPUTS = (
    ("input_ids", "TYPE_INT64", "[ -1 ]", False),
    ("max_tokens", "TYPE_INT32", "[ 1 ]", True),
    ("temperature", "TYPE_FP32", "[ 1 ]", True),
    ("top_p", "TYPE_FP32", "[ 1 ]", True),
    ("top_k", "TYPE_INT32", "[ 1 ]", True),
    ("seed", "TYPE_INT64", "[ 1 ]", True),
    ("repetition_penalty", "TYPE_FP32", "[ 1 ]", True),
    ("frequency_penalty", "TYPE_FP32", "[ 1 ]", True),
    ("presence_penalty", "TYPE_FP32", "[ 1 ]", True),
    ("ignore_eos", "TYPE_BOOL", "[ 1 ]", True),
)
GENERATE_OUTPUTS = (("token_id", "TYPE_INT64", "[ 1 ]"), ("finish_reason", "TYPE_STRING", "[ 1 ]"))
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def entry(name: str, data_type: str, dims: str, optional: bool = False) -> str:
    extra = "    optional: true\n" if optional else ""
    return f'  {{\n    name: "{name}"\n    data_type: {data_type}\n    dims: {dims}\n{extra}  }}'


def graph_entries(values) -> str:
    entries = []
    for v in values:
        tensor = v.type.tensor_type
        if tensor.elem_type not in TRITON_TYPES:
            raise BadInput(f"{v.name} has ONNX element type {tensor.elem_type}, which Triton's onnxruntime backend has no type for")
        dims = [str(d.dim_value) if d.HasField("dim_value") else "-1" for d in tensor.shape.dim]
        entries.append(entry(v.name, TRITON_TYPES[tensor.elem_type], f"[ {', '.join(dims)} ]"))
    return ",\n".join(entries)


def instance_group(device: str) -> str:
    return f"instance_group [ {{ count: 1, kind: {'KIND_GPU' if device == 'gpu' else 'KIND_CPU'} }} ]\n"


def decoder_config(name: str, graph, device: str) -> str:
    return (
        f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: 0\n'
        f"input [\n{graph_entries(graph.input)}\n]\noutput [\n{graph_entries(graph.output)}\n]\n{instance_group(device)}"
    )


def generate_config(name: str, decoder: str, device: str) -> str:
    inputs = ",\n".join(entry(*i) for i in GENERATE_INPUTS)
    outputs = ",\n".join(entry(*o) for o in GENERATE_OUTPUTS)
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
        "model_transaction_policy { decoupled: true }\n"
        f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
        f'parameters: {{ key: "decoder_model" value: {{ string_value: "{decoder}" }} }}\n'
        f"{instance_group(device)}"
    )


def place(src: str, dst: str) -> None:
    """Hard link (the weights are stored once) or copy across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy(src, dst)


def run(config: dict) -> int:
    import onnx

    src, out, name, device = config["model"], config["out"], config["name"], config.get("device", "cpu")
    manifest_path = os.path.join(src, "llmkit.json")
    if not os.path.isfile(manifest_path):
        raise BadInput(f"{src} has no llmkit.json (not an exported model)", hint="export it first with `llmkit export`")
    if not NAME.match(name):
        raise BadInput(f"Triton model name {name!r} has characters Triton does not accept", hint="use letters, digits, '.', '_' and '-'")
    with open(manifest_path) as f:
        manifest = json.load(f)
    emit("start", job="export_triton", total_steps=2)
    onnx_path = os.path.join(src, manifest["onnx"])
    graph = onnx.load(onnx_path, load_external_data=False).graph

    tmp = f"{out}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    decoder_dir = os.path.join(tmp, name, "1")
    generate_dir = os.path.join(tmp, name + GENERATE_SUFFIX, "1")
    os.makedirs(decoder_dir)
    os.makedirs(generate_dir)
    place(onnx_path, os.path.join(decoder_dir, "model.onnx"))
    # External weights keep the file name the graph refers to, beside model.onnx.
    for location in {t.external_data[0].value for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}:
        place(os.path.join(os.path.dirname(onnx_path), location), os.path.join(decoder_dir, location))
    with open(os.path.join(tmp, name, "config.pbtxt"), "w") as f:
        f.write(decoder_config(name, graph, device))
    emit("progress", step=1, total=2, message="decoder model")

    shutil.copy(os.path.join(os.path.dirname(__file__), "assets", "triton_generate.py"), os.path.join(generate_dir, "model.py"))
    with open(os.path.join(generate_dir, "llmkit.json"), "w") as f:
        json.dump({**manifest, "onnx": f"../../{name}/1/model.onnx"}, f, indent=2)
    for file in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(src, file)):
            shutil.copy(os.path.join(src, file), os.path.join(generate_dir, file))
    with open(os.path.join(tmp, name + GENERATE_SUFFIX, "config.pbtxt"), "w") as f:
        f.write(generate_config(name + GENERATE_SUFFIX, name, device))
    emit("progress", step=2, total=2, message="generate model")

    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    emit("artifact", kind="triton_repository", path=out)
    emit("result", path=out, decoder=name, generate=name + GENERATE_SUFFIX, device=device)
    return 0
