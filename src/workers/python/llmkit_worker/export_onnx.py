"""Exports a Hugging Face causal LM to an ONNX decoder with an explicit KV cache, and checks it.

The decoder takes input_ids, attention_mask (over past + new tokens), position_ids and each layer's
past keys/values, and returns logits, each layer's present keys/values (the names transformers.js
and optimum use) and new_key_values, what llmkit's engine reads: this pass's keys and values alone, all
layers in one tensor [2 x layers x batch, kv_heads, sequence, head_dim] (layer 0's keys for every row, then
its values, then layer 1's...). Batch, past length and new-token length are dynamic. We use the TorchScript
exporter around a small wrapper that fills a DynamicCache: with the pinned torch/transformers it is
exact, while the dynamo exporter still trips over transformers' mask code. Its shape arithmetic (a chain of
tiny kernels around every reshape, run at every decode step) is then folded to constants where shape inference
proves it (fold_static_shapes).

Every export is checked against PyTorch in onnxruntime (CPU): a left-padded batch prefill and several
cached decode steps; a max abs logit difference over `tolerance` fails the export.

dtype "fp16" (for GPUs) converts weights and compute to float16 with onnxruntime's converter but keeps
the inputs and outputs, KV cache included, in float32, so the engine reads every export alike; the
float16 graph is what gets checked against PyTorch's fp32, with a tolerance that allows for rounding.

fused (bool) rewrites the decoder into ONNX Runtime's fused operators (fuse_graph.py) before the check, and the
manifest says `graph: "fused"`; gqa (bool, implies fused) also fuses attention into GroupQueryAttention, without
the packed new_key_values output (the engine reads `present.*`), and the manifest says `graph: "fused-gqa"`.

Config: model (HF folder), out, opset (17), dtype ("fp32" or "fp16"), tolerance (1e-3 for fp32, 5e-2 for fp16),
fused (false), gqa (false).
Raises BadInput for a folder without config/weights or an unsupported architecture.
"""

import json
import os
import shutil

from .architectures import check_architecture
from .atomic import move_into_place, temp_folder
from .jobs import ExportOnnxConfig
from .onnx_graph import light_copy, prune_dead_nodes
from .protocol import BadInput, emit, log

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "config.json",
    "chat_template.jinja",
    "chat_template.json",
    # Not the tokenizer's, but travels with it: a draft's output tokens (distill.py), read by llmkit's ModelDrafter.
    "draft-vocab.json",
)
# Largest max-abs logit difference vs PyTorch fp32 that passes, by dtype: fp16 rounds every weight.
DEFAULT_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model_folder(path: str) -> dict:
    if not os.path.isdir(path):
        raise BadInput(f"model folder {path} does not exist", hint="pass a local Hugging Face model folder")
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise BadInput(f"model folder {path} has no config.json", hint="pass a Hugging Face model folder")
    if not any(os.path.isfile(os.path.join(path, f)) for f in WEIGHT_FILES):
        raise BadInput(f"model folder {path} has no weights (model.safetensors or pytorch_model.bin)", hint="pass a Hugging Face model folder with its weights")
    with open(config_path) as f:
        config = json.load(f)
    check_architecture(config, "export")
    return config


# Each layer's (past keys, past values, new keys, new values) in the forward being traced, keyed by layer index.
# Attention reads these rather than their concatenation, so the Concat that makes `present` feeds only the
# `present` outputs. ONNX Runtime runs it anyway, fetched or not; the engine opens the graph without those
# outputs and their Concats (src/engine/graph-pruning.ts), so it never pays for them.
TRACED_CACHE: dict = {}
# The traced forward's query positions (position_ids) and each key column's true position, for sliding windows.
TRACED_POSITIONS: dict = {}


def grouped_query_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """transformers' eager attention without repeat_kv, over the past and the new keys/values separately (from
    TRACED_CACHE; `key` and `value`, their concatenation, go unused).

    Each KV head's query heads become rows of one matmul against that head's keys and values, so the graph reads
    the cache once per KV head instead of copying it once per query head (in batched CPU decoding with a few
    hundred cached tokens, those copies cost as much as all the weight matmuls)."""
    import torch

    past_k, past_v, new_k, new_v = TRACED_CACHE[module.layer_idx]
    # Head counts from the config, not from tensor shapes: traced shapes become Shape/Gather chains in the graph.
    kv_heads = module.config.num_key_value_heads
    groups = module.config.num_attention_heads // kv_heads
    rows = query.reshape(query.shape[0], kv_heads, -1, module.head_dim)
    scores = torch.cat([torch.matmul(rows, past_k.transpose(2, 3)), torch.matmul(rows, new_k.transpose(2, 3))], dim=-1) * scaling
    if kwargs.get("softcap"):  # attention logit soft-capping, for models whose attention passes it (as eager does)
        scores = torch.tanh(scores / kwargs["softcap"]) * kwargs["softcap"]
    if attention_mask is not None:
        # The mask is [batch, 1, q_len, keys]; each KV head's rows are its query heads' q_len rows in turn.
        scores = scores + attention_mask.repeat(1, 1, groups, 1)
    window = kwargs.get("sliding_window")
    if window:
        # Sliding-window layers (Gemma 3, SmolLM3, Mistral): a key is in the window by its true position, not its
        # column. The engine's cache has columns that hold no token (a row's left padding, and spare columns
        # between the cache and the new tokens that decode steps fill in place); a window counted in columns
        # would shrink by them. Key positions come from the mask (the count of real tokens before each column).
        # Split like the scores: past columns (positions from the mask), then the new tokens (their position_ids).
        query_pos = TRACED_POSITIONS["query"]
        key_pos = torch.cat([TRACED_POSITIONS["key"][:, : past_k.shape[2]], query_pos], dim=-1)
        far = (query_pos[:, :, None] - key_pos[:, None, :]) >= window
        scores = scores.masked_fill(far[:, None].repeat(1, 1, groups, 1), torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    past_len = past_k.shape[2]
    out = torch.matmul(probs[..., :past_len], past_v) + torch.matmul(probs[..., past_len:], new_v)
    return out.reshape(query.shape).transpose(1, 2).contiguous(), None


def load_for_export(src: str):
    """The model with grouped_query_attention, registered under its own name with eager's additive mask (causal
    only: sliding windows are applied in the attention, by position)."""
    import torch
    from transformers import AttentionInterface, AutoModelForCausalLM
    from transformers.masking_utils import AttentionMaskInterface, causal_mask_function, eager_mask

    def causal_mask(*args, local_size=None, **kwargs):
        # Sliding-window layers get the plain causal mask; grouped_query_attention applies their window by position.
        if local_size is not None:
            kwargs["mask_function"] = causal_mask_function
        return eager_mask(*args, **kwargs)

    AttentionInterface.register("llmkit_gqa", grouped_query_attention)
    AttentionMaskInterface.register("llmkit_gqa", causal_mask)
    return AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="llmkit_gqa").eval()


def make_wrapper(model, num_layers: int):
    import torch
    from transformers.cache_utils import DynamicCache

    class DecoderWithCache(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = DynamicCache()
            for i in range(num_layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            append = cache.update

            def update(keys, values, layer_idx, *args, **kwargs):
                TRACED_CACHE[layer_idx] = (past[2 * layer_idx], past[2 * layer_idx + 1], keys, values)
                return append(keys, values, layer_idx, *args, **kwargs)

            cache.update = update
            TRACED_POSITIONS.update(query=position_ids, key=attention_mask.cumsum(-1) - 1)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, past_key_values=cache, use_cache=True)
            present = []
            for layer in out.past_key_values.layers:
                present += [layer.keys, layer.values]
            # Along the batch axis, as one Concat: stacking on a new axis adds an Unsqueeze kernel per tensor.
            new = torch.cat([t for i in range(num_layers) for t in TRACED_CACHE[i][2:]])
            return (out.logits, *present, new)

    return DecoderWithCache()


def io_names(num_layers: int):
    past = [n for i in range(num_layers) for n in (f"past_key_values.{i}.key", f"past_key_values.{i}.value")]
    present = [n for i in range(num_layers) for n in (f"present.{i}.key", f"present.{i}.value")]
    # One output for all layers' new keys/values: each fetched output costs a GPU -> host copy of its own on
    # WebGPU (~0.5 ms each on an H200), more than the Concat that packs them.
    return ["input_ids", "attention_mask", "position_ids", *past], ["logits", *present, "new_key_values"]


def context_length(config) -> int:
    """How many positions the export serves. Longrope (Phi-3) picks its short or long rotary factors by a Python
    branch on the sequence length, which tracing bakes in with the short ones: the graph is exact up to the original
    context only."""
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type")) == "longrope":
        original = rope.get("original_max_position_embeddings") or getattr(config, "original_max_position_embeddings", None)
        if original:
            return min(int(original), config.max_position_embeddings)
    return config.max_position_embeddings


def dims(config) -> dict:
    heads = config.num_attention_heads
    return {
        "num_layers": config.num_hidden_layers,
        "num_attention_heads": heads,
        "num_kv_heads": getattr(config, "num_key_value_heads", None) or heads,
        "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
        "hidden_size": config.hidden_size,
        "vocab_size": config.vocab_size,
        "max_position_embeddings": context_length(config),
    }


def left_padded_batch(lengths, total, vocab, generator):
    """Random token rows of the given real lengths, left-padded to `total`, with true positions."""
    import torch

    ids = torch.randint(3, vocab, (len(lengths), total), generator=generator)
    mask = torch.zeros(len(lengths), total, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, total - n :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def check_parity(model, onnx_path: str, d: dict, tolerance: float) -> dict:
    """Prefill a left-padded batch, then decode 3 cached steps; compare logits with PyTorch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    wrapper = make_wrapper(model, d["num_layers"])
    g = torch.Generator().manual_seed(0)
    ids, mask, pos = left_padded_batch([7, 4], 7, d["vocab_size"], g)
    empty = [torch.zeros(2, d["num_kv_heads"], 0, d["head_dim"]) for _ in range(2 * d["num_layers"])]
    diffs = {}
    past_t, past_o = empty, [e.numpy() for e in empty]
    for step in range(4):
        with torch.no_grad():
            out_t = wrapper(ids, mask, pos, *past_t)
        feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "position_ids": pos.numpy()}
        names_in, _ = io_names(d["num_layers"])
        feeds.update({name: p for name, p in zip(names_in[3:], past_o)})
        out_o = session.run(None, feeds)
        # Padding rows' logits are meaningless; compare only real positions.
        real = mask[:, -ids.shape[1] :].bool().numpy()
        diff = float(np.abs(out_t[0].numpy() - out_o[0])[real].max())
        diffs["prefill" if step == 0 else f"decode_{step}"] = diff
        if diff > tolerance:
            raise RuntimeError(
                f"ONNX export does not match PyTorch: max abs logit diff {diff:.2e} "
                f"at {'prefill' if step == 0 else f'decode step {step}'} (tolerance {tolerance:g})"
            )
        present = slice(1, 1 + 2 * d["num_layers"])
        past_t, past_o = list(out_t[present]), list(out_o[present])
        ids = out_t[0][:, -1:].argmax(-1)
        mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], dim=1)
        pos = pos[:, -1:] + 1
    return diffs


def run(config: ExportOnnxConfig) -> int:
    src, out = os.path.abspath(config["model"]), os.path.abspath(config["out"])
    hf_config = check_model_folder(src)
    # Imported after the folder check, which should fail in a blink rather than after torch loads.
    import torch
    from transformers import AutoConfig

    dtype = config.get("dtype", "fp32")
    if dtype not in DEFAULT_TOLERANCE:
        raise BadInput(f"dtype {dtype!r} is not supported", hint=f"use one of {', '.join(DEFAULT_TOLERANCE)}")
    tolerance = float(DEFAULT_TOLERANCE[dtype] if config.get("tolerance") is None else config["tolerance"])
    opset = int(config.get("opset", 17))
    emit("start", job="export_onnx", total_steps=3)

    model = load_for_export(src)
    d = dims(AutoConfig.from_pretrained(src))
    tmp = temp_folder(out)
    os.makedirs(os.path.join(tmp, "onnx"))
    onnx_path = os.path.join(tmp, "onnx", "model.onnx")

    names_in, names_out = io_names(d["num_layers"])
    g = torch.Generator().manual_seed(0)
    ids, mask, pos = left_padded_batch([5, 3], 5, d["vocab_size"], g)
    past = [torch.randn(2, d["num_kv_heads"], 3, d["head_dim"], generator=g) for _ in range(2 * d["num_layers"])]
    mask = torch.cat([torch.ones(2, 3, dtype=torch.long), mask], dim=1)
    pos = pos + 3
    # "batch_size" is the name transformers.js gives the batch when it makes the empty past (any other name
    # makes it 0 rows, which a Concat ignores but GroupQueryAttention refuses).
    dynamic = {
        "input_ids": {0: "batch_size", 1: "sequence"},
        "attention_mask": {0: "batch_size", 1: "total_sequence"},
        "position_ids": {0: "batch_size", 1: "sequence"},
        "logits": {0: "batch_size", 1: "sequence"},
    }
    dynamic.update({n: {0: "batch_size", 2: "past_sequence"} for n in names_in[3:]})
    dynamic.update({n: {0: "batch_size", 2: "total_sequence"} for n in names_out if n.startswith("present.")})
    dynamic["new_key_values"] = {0: "layers_x_batch", 2: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            make_wrapper(model, d["num_layers"]),
            (ids, mask, pos, *past),
            onnx_path,
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    gqa = bool(config.get("gqa"))
    fused = "fused-gqa" if gqa else "fused" if config.get("fused") else None
    heads = (d["num_attention_heads"], d["num_kv_heads"]) if gqa else None
    removed, fusions = consolidate(onnx_path, d["max_position_embeddings"] if fused else None, heads)
    log(f"folded shape arithmetic: {removed} nodes removed" + (f"; fused: {fusions}" if fused else ""))
    if dtype == "fp16":
        to_float16(onnx_path)
    emit("progress", step=1, total=3, message="exported")

    # The reference is transformers' own eager attention, so the check also covers grouped_query_attention.
    model.set_attn_implementation("eager")
    diffs = check_parity(model, onnx_path, d, tolerance)
    log(f"parity: {diffs}")
    emit("progress", step=2, total=3, message="checked against PyTorch")

    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(tmp, name))
    carry_chat_template(src, tmp)
    if gqa:
        names_out = [n for n in names_out if n != "new_key_values"]
    manifest = write_manifest(tmp, src, hf_config, d, names_in, names_out, diffs, dtype, fused)
    move_into_place(tmp, out)
    emit("progress", step=3, total=3, message="written")
    emit("artifact", kind="onnx_model", path=out)
    onnx_dir = os.path.join(out, "onnx")
    # model.onnx and, above ~1.8 GB, the model.onnx.data beside it.
    onnx_bytes = sum(os.path.getsize(os.path.join(onnx_dir, f)) for f in os.listdir(onnx_dir))
    emit("result", path=out, parity=diffs, onnx_bytes=onnx_bytes, manifest=manifest)
    return 0


def consolidate(onnx_path: str, fuse_positions, attention_heads=None) -> tuple:
    """Replaces the exporter's one-file-per-tensor output with save_onnx's layout, shape arithmetic folded, and
    fused (fuse_graph.py) when `fuse_positions` (the rotary tables' length) is given. Returns how many nodes the
    folding removed and what the fusion did (None without it)."""
    import onnx

    from .fuse_graph import fuse_decoder

    model = onnx.load(onnx_path)
    removed = fold_static_shapes(model)
    fusions = fuse_decoder(model, fuse_positions, attention_heads) if fuse_positions else None
    folder = os.path.dirname(onnx_path)
    for f in os.listdir(folder):
        if f != "model.onnx":
            os.remove(os.path.join(folder, f))
    save_onnx(model, onnx_path)
    return removed, fusions


# Dims the engine never feeds as zero (a batch row, a new token). A Reshape may leave one of its dims to be
# inferred (-1) only when all its other dims are known not to be zero: ONNX cannot infer a dim of a tensor
# with zero elements, and a zero-length past is how transformers.js starts.
NONZERO_DIMS = {"batch_size", "sequence"}


def fold_static_shapes(model) -> int:
    """Replaces the Shape -> Gather -> Unsqueeze -> Concat chains that the TorchScript exporter writes for every
    traced shape with constants where shape inference proves them: a Reshape's target becomes literal sizes, 0
    (keep the input's dim) and at most one -1; a Shape, or one dim gathered from it, that is static becomes a
    number (onnxruntime folds what follows when it loads the model). Each chain is a dozen tiny kernels, run at
    every decode step on every layer; on WebGPU each is also a trip between providers. Returns the nodes removed."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    dims = symbolic_dims(model)
    values = constant_values(model)
    graph = model.graph
    constants = []

    def constant(name, array):
        # A Constant node, not an initializer: saved with external data, initializers may leave the file, and
        # onnxruntime must read a shape input while it loads the graph.
        tensor = numpy_helper.from_array(np.asarray(array, dtype=np.int64), name)
        constants.append(onnx.helper.make_node("Constant", [], [name], name=name, value=tensor))
        values[name] = np.asarray(array)
        return name

    renamed: dict = {}
    shape_of = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Shape" and not n.attribute}
    for node in graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
        out = node.output[0] if node.output else None
        if node.op_type == "Reshape" and node.input[1] not in values:
            target = reshape_target(dims.get(node.input[0]), dims.get(out))
            if target is not None:
                node.input[1] = constant(f"{out}__shape", target)
        elif node.op_type == "Shape" and out in shape_of and all(isinstance(d, int) for d in dims.get(node.input[0]) or [None]):
            renamed[out] = constant(f"{out}__value", dims[node.input[0]])
        elif node.op_type == "Gather" and node.input[0] in shape_of and values.get(node.input[1], np.zeros(2)).ndim == 0:
            source = dims.get(shape_of[node.input[0]]) or []
            index = int(values[node.input[1]])
            if -len(source) <= index < len(source) and isinstance(source[index], int):
                renamed[out] = constant(f"{out}__value", source[index])
    for output in graph.output:
        if output.name in renamed:
            raise RuntimeError(f"graph output {output.name} folded to a constant")
    nodes = constants + [onnx.NodeProto.FromString(n.SerializeToString()) for n in graph.node]
    graph.ClearField("node")
    graph.node.extend(nodes)
    return prune_dead_nodes(graph) - len(constants)


def reshape_target(source, target):
    """A Reshape's constant target for symbolic input and output shapes, or None where one cannot be proven."""
    if not source or not target or any(d is None for d in target):
        return None
    sizes = [d if isinstance(d, int) else 0 if i < len(source) and source[i] == d else -1 for i, d in enumerate(target)]
    inferred = [i for i, s in enumerate(sizes) if s == -1]
    if len(inferred) > 1:
        return None
    if inferred and any(isinstance(d, str) and d not in NONZERO_DIMS for i, d in enumerate(target) if i != inferred[0]):
        return None
    return sizes


def symbolic_dims(model) -> dict:
    """Tensor name -> list of dims (int, symbol string, or None), by onnxruntime's symbolic shape inference on a
    copy whose weights are graph inputs (so it never serializes gigabytes of them)."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    inferred = SymbolicShapeInference.infer_shapes(light_copy(model), auto_merge=True)
    dims = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        shape = info.type.tensor_type.shape if info.type.tensor_type.HasField("shape") else None
        if shape is not None:
            dims[info.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None for d in shape.dim]
    return dims


def constant_values(model) -> dict:
    """Name -> numpy value of every small initializer and Constant node output (the candidates for shape inputs)."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if len(t.dims) <= 1 and (not t.dims or t.dims[0] <= 8)}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def to_float16(onnx_path: str) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # The converter's own shape inference serializes the model, which fails past protobuf's 2 GB (any fp32
    # model from ~0.5B parameters); inference from the file handles external data.
    onnx.shape_inference.infer_shapes_path(onnx_path)
    model = convert_float_to_float16(onnx.load(onnx_path), keep_io_types=True, disable_shape_infer=True)
    save_onnx(model, onnx_path)


def save_onnx(model, onnx_path: str) -> None:
    """Keeps weights inside model.onnx below 2 GB (protobuf's limit) and in one model.onnx.data file above it
    (a data file left from an earlier, larger save of the same path is removed)."""
    import onnx

    large = sum(t.ByteSize() for t in model.graph.initializer) > 1_800_000_000
    data = os.path.join(os.path.dirname(onnx_path), "model.onnx.data")
    onnx.save(model, onnx_path, save_as_external_data=large, all_tensors_to_one_file=True, location="model.onnx.data")
    if not large and os.path.exists(data):
        os.remove(data)


def read_chat_template(folder: str):
    """The folder's chat template: transformers 5 (and current model repositories) keep it in chat_template.jinja
    (or chat_template.json) beside tokenizer_config.json, older folders inside tokenizer_config.json."""
    jinja, as_json = os.path.join(folder, "chat_template.jinja"), os.path.join(folder, "chat_template.json")
    if os.path.isfile(jinja):
        with open(jinja, encoding="utf-8") as f:
            return f.read()
    if os.path.isfile(as_json):
        with open(as_json, encoding="utf-8") as f:
            return json.load(f).get("chat_template")
    with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
        return json.load(f).get("chat_template")


def carry_chat_template(src: str, out: str) -> None:
    """Writes the source's chat template into the export's tokenizer_config.json, the only place transformers.js
    (and so llmkit's engine) reads it from."""
    template = read_chat_template(src)
    path = os.path.join(out, "tokenizer_config.json")
    if template is None or not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        tok_config = json.load(f)
    tok_config["chat_template"] = template
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tok_config, f, indent=2, ensure_ascii=False)


def write_manifest(folder, src, hf_config, d, names_in, names_out, diffs, dtype, fused) -> dict:
    gen_path = os.path.join(src, "generation_config.json")
    gen = json.load(open(gen_path)) if os.path.isfile(gen_path) else {}
    eos = gen.get("eos_token_id", hf_config.get("eos_token_id"))
    manifest = {
        "format": "llmkit-onnx-decoder",
        "version": 1,
        "architecture": hf_config["architectures"][0],
        "model_type": hf_config.get("model_type"),
        **d,
        "onnx": "onnx/model.onnx",
        "inputs": names_in,
        "outputs": names_out,
        "dtype": "float16" if dtype == "fp16" else "float32",
        "kv_dtype": "float32",
        "precision": dtype,
        # "fused": ONNX Runtime's fused operators (com.microsoft domain), "fused-gqa": those and
        # GroupQueryAttention, "traced": the exporter's own.
        "graph": fused or "traced",
        "eos_token_ids": eos if isinstance(eos, list) else [eos],
        "pad_token_id": gen.get("pad_token_id", hf_config.get("pad_token_id")),
        "bos_token_id": hf_config.get("bos_token_id"),
        "chat_template": read_chat_template(src),
        "source": src,
        "export_check": diffs,
    }
    with open(os.path.join(folder, "llmkit.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest
