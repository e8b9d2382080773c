"""Rewrites an exported fp32 decoder into ONNX Runtime's fused operators, the way onnxruntime-genai's model
builder writes its graphs (`llmkit export --fused`):

- RMSNorm (Pow, ReduceMean, Add, Sqrt, Div, Mul, Mul) -> SimplifiedLayerNormalization, and a residual Add that
  feeds one -> SkipSimplifiedLayerNormalization, which also returns the sum for the next residual;
- rotate_half rotary (Slice, Slice, Neg, Concat, Mul, Mul, Add, per query and key) -> RotaryEmbedding over
  cos/sin tables of every position up to max_position_embeddings, computed by the export's own rotary subgraph
  (so scaled ropes come out as exported);
- MatMuls that read the same activations (q/k/v, gate/up) -> one MatMul over their concatenated weights and a
  Split, which `llmkit quantize` then turns into one MatMulNBits; where each adds its own bias (Qwen2's q/k/v), one
  Add of the concatenated biases before the Split, so the packed projections are whole (GroupQueryAttention can
  then read them packed, src/engine/fixed-cache/fixed-cache-graph.ts).

- the attention score scale -> the query's RotaryEmbedding tables; every layer's reading of the past's length
  -> one for the whole graph, with the duplicate nodes that leaves merged; the two Slices of the attention
  probabilities into past and new columns -> one Split (each node is a kernel per decode step).

By default attention stays llmkit's grouped-query attention over the past and the new keys separately, and
the inputs and outputs of the graph are unchanged, so the engine and transformers.js load it like any export.
With `attention_heads` (`llmkit export --gqa`, graph "fused-gqa") each layer's attention becomes one
GroupQueryAttention (fuse_attention): rotary stays a RotaryEmbedding, now over the [batch, sequence, hidden]
projections, the attention mask goes in as `attention_bias`, and every row gets the same `seqlens_k` (the
mask's width - 1), which is what makes the operator exact on llmkit's left-padded cache
(test/bench/gqa-cache-probe.py). That graph has no `new_key_values`: the engine reads `present.*`, and binds
them to its cache buffers for in-place decode steps (src/engine/decoder-session.ts).
"""

import numpy as np

from .onnx_graph import light_copy, prune_dead_nodes

FLOAT = 1  # onnx.TensorProto.FLOAT


class Graph:
    """Who produces and who reads each tensor, rebuilt after each pass."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.model, self.graph = model, model.graph
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.readers: dict = {}
        for node in self.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in self.graph.output}
        self.weights = {t.name: t for t in self.graph.initializer}
        self.constants = {
            n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in self.graph.node if n.op_type == "Constant" and n.attribute[0].name == "value"
        }
        self.constants.update({name: numpy_helper.to_array(t) for name, t in self.weights.items() if len(t.dims) <= 1})

    def only_reader(self, tensor: str, op_type: str):
        readers = self.readers.get(tensor, [])
        if len(readers) == 1 and readers[0].op_type == op_type and tensor not in self.outputs:
            return readers[0]
        return None

    def made_by(self, tensor: str, op_type: str):
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op_type else None

    def other_input(self, node, tensor: str):
        """The input of a two-input node that is not `tensor` (None if `tensor` is not one of them)."""
        if len(node.input) == 2 and tensor in node.input:
            return node.input[1] if node.input[0] == tensor else node.input[0]
        return None

    def scalar(self, tensor: str):
        value = self.constants.get(tensor)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


def attribute(node, name: str, default=None):
    import onnx

    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def fuse_decoder(model, max_positions: int, attention_heads=None) -> dict:
    """Applies every rewrite to `model` in place; returns how many of each it made. `attention_heads`
    (num_heads, kv_num_heads) also fuses attention into GroupQueryAttention."""
    counts = {
        "no_ops_dropped": drop_no_ops(model),
        "simplified_layer_norm": fuse_rms_norms(model),
        "skip_simplified_layer_norm": fuse_skip_norms(model),
        "rotary_embedding": fuse_rotary(model, max_positions),
        "fused_matmuls": fuse_shared_input_matmuls(model),
    }
    if attention_heads:
        counts["group_query_attention"] = fuse_attention(model, *attention_heads)
    counts["scales_in_rotary"] = scale_queries(model)
    counts["shared_past_length"] = share_past_length(model)
    prune_dead_nodes(model.graph)
    counts["duplicates_dropped"] = dedupe_nodes(model)
    counts["probabilities_split"] = split_probabilities(model)
    prune_dead_nodes(model.graph)
    if not any(model.opset_import[i].domain == "com.microsoft" for i in range(len(model.opset_import))):
        import onnx

        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return counts


def drop_no_ops(model) -> int:
    """Identity nodes (the exporter's copies of weights it deduplicated, such as RMSNorm weights that are all
    ones) and Casts to float of tensors that are float already (around every RMSNorm and softmax): they hide
    the patterns below."""
    import onnx

    types = {}
    inferred = onnx.shape_inference.infer_shapes(light_copy(model))
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        types[info.name] = info.type.tensor_type.elem_type
    types.update({t.name: t.data_type for t in model.graph.initializer})
    g = Graph(model)
    renamed: dict[str, str] = {}
    kept = []
    for node in model.graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
        float_cast = node.op_type == "Cast" and attribute(node, "to") == FLOAT and types.get(node.input[0]) == FLOAT
        if (float_cast or node.op_type == "Identity") and node.output[0] not in g.outputs:
            renamed[node.output[0]] = node.input[0]
        else:
            kept.append(node)
    replace_nodes(model.graph, kept)
    return len(renamed)


def replace_nodes(graph, nodes) -> None:
    import onnx

    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
    graph.ClearField("node")
    graph.node.extend(copies)


def fuse_rms_norms(model) -> int:
    """x * 1/sqrt(mean(x^2) + eps) * weight -> SimplifiedLayerNormalization(x, weight)."""
    import onnx

    g = Graph(model)
    added = []
    for pow_node in [n for n in model.graph.node if n.op_type == "Pow" and g.scalar(n.input[1]) == 2.0]:
        x = pow_node.input[0]
        mean = g.only_reader(pow_node.output[0], "ReduceMean")
        add = mean is not None and attribute(mean, "axes") == [-1] and g.only_reader(mean.output[0], "Add")
        eps = add and g.scalar(g.other_input(add, mean.output[0]))
        sqrt = eps is not None and add and g.only_reader(add.output[0], "Sqrt")
        div = sqrt and g.only_reader(sqrt.output[0], "Div")
        if not div or not sqrt or div.input[1] != sqrt.output[0] or g.scalar(div.input[0]) != 1.0:
            continue
        scale = g.only_reader(div.output[0], "Mul")
        if scale is None or g.other_input(scale, div.output[0]) != x:
            continue
        weigh = g.only_reader(scale.output[0], "Mul")
        weight = weigh and g.other_input(weigh, scale.output[0])
        if not weight or weight not in g.weights:
            continue
        added.append(
            (
                weigh,
                onnx.helper.make_node(
                    "SimplifiedLayerNormalization", [x, weight], [weigh.output[0]], name=f"{weigh.name}_SimplifiedLayerNorm", axis=-1, epsilon=eps, stash_type=1
                ),
            )
        )
    insert_replacing(model.graph, added)
    return len(added)


def insert_replacing(graph, pairs) -> None:
    """Puts each new node where the old one was, and drops the old one (its inputs die with prune_dead_nodes)."""
    by_old = {id(old): new for old, new in pairs}
    replace_nodes(graph, [by_old.get(id(n), n) for n in graph.node])


def fuse_skip_norms(model) -> int:
    """Add(a, b) -> SimplifiedLayerNormalization, the sum read elsewhere too -> SkipSimplifiedLayerNormalization,
    whose fourth output is the sum."""
    import onnx

    g = Graph(model)
    fused, removed = {}, set()
    for norm in [n for n in model.graph.node if n.op_type == "SimplifiedLayerNormalization"]:
        add = g.made_by(norm.input[0], "Add")
        if add is None or any(i in g.weights or i in g.constants for i in add.input) or add.output[0] in g.outputs:
            continue
        total = add.output[0]
        rest = [n for n in g.readers[total] if n is not norm]
        fused[id(norm)] = onnx.helper.make_node(
            "SkipSimplifiedLayerNormalization",
            [add.input[0], add.input[1], norm.input[1]],
            [norm.output[0], "", "", total if rest else ""],
            name=f"{norm.name}_Skip",
            domain="com.microsoft",
            epsilon=attribute(norm, "epsilon"),
        )
        removed.add(id(add))
    replace_nodes(model.graph, [fused.get(id(n), n) for n in model.graph.node if id(n) not in removed])
    return len(fused)


def fuse_rotary(model, max_positions: int) -> int:
    """x * cos + rotate_half(x) * sin -> RotaryEmbedding(x, position_ids, cos_cache, sin_cache), x being
    [batch, heads, sequence, head_dim]."""
    import onnx

    g = Graph(model)
    matches = []
    for neg in [n for n in model.graph.node if n.op_type == "Neg"]:
        second = g.made_by(neg.input[0], "Slice")
        concat = g.only_reader(neg.output[0], "Concat")
        if second is None or concat is None or attribute(concat, "axis") != -1 or concat.input[0] != neg.output[0]:
            continue
        x = second.input[0]
        first = g.made_by(concat.input[1], "Slice")
        sin_mul = g.only_reader(concat.output[0], "Mul")
        add = sin_mul and g.only_reader(sin_mul.output[0], "Add")
        cos_mul = add and g.made_by(g.other_input(add, sin_mul.output[0]), "Mul")
        if first is None or first.input[0] != x or not cos_mul or x not in cos_mul.input:
            continue
        cos = unsqueezed_at_1(g, g.other_input(cos_mul, x))
        sin = unsqueezed_at_1(g, g.other_input(sin_mul, concat.output[0]))
        if cos and sin:
            matches.append((add, x, cos, sin))
    if not matches:
        return 0
    tables = rotary_tables(model, {(cos, sin) for _, _, cos, sin in matches}, max_positions)
    if tables is None:
        return 0
    caches: dict[tuple, list[str]] = {}
    for pair, (cos_table, sin_table) in tables.items():
        names = [f"rotary_{kind}_cache_{len(caches)}" for kind in ("cos", "sin")]
        model.graph.initializer.extend([onnx.numpy_helper.from_array(cos_table, names[0]), onnx.numpy_helper.from_array(sin_table, names[1])])
        caches[pair] = names
    insert_replacing(
        model.graph,
        [
            (
                add,
                onnx.helper.make_node(
                    "RotaryEmbedding",
                    [x, "position_ids", *caches[(cos, sin)]],
                    [add.output[0]],
                    name=f"{add.name}_Rotary",
                    domain="com.microsoft",
                    interleaved=0,
                ),
            )
            for add, x, cos, sin in matches
        ],
    )
    return len(matches)


def unsqueezed_at_1(g: Graph, tensor):
    """The [batch, sequence, head_dim] table behind an Unsqueeze on axis 1 (how attention broadcasts it over heads)."""
    node = tensor and g.made_by(tensor, "Unsqueeze")
    if node is None:
        return None
    axes = g.constants.get(node.input[1]) if len(node.input) > 1 else attribute(node, "axes")
    return node.input[0] if axes is not None and list(np.reshape(axes, -1)) == [1] else None


def rotary_tables(model, pairs, max_positions: int):
    """Each (cos, sin) tensor pair's [max_positions, head_dim / 2] tables, by running the nodes that compute them
    from position_ids for positions 0..max_positions-1; None when they depend on anything else, or when the two
    halves of a row differ (not rotate_half's layout)."""
    import onnx
    import onnxruntime as ort

    g = Graph(model)
    wanted = [name for pair in pairs for name in pair]
    needed, stack = {}, list(wanted)
    while stack:
        node = g.producer.get(stack.pop())
        if node is None or id(node) in needed:
            continue
        needed[id(node)] = node
        stack.extend(i for i in node.input if i and i not in g.weights)
    graph_inputs = {i.name for i in model.graph.input}
    reads = {i for n in needed.values() for i in n.input if i}
    if (reads & graph_inputs) - {"position_ids"}:
        return None
    nodes = [n for n in model.graph.node if id(n) in needed]
    sub = onnx.helper.make_graph(
        nodes,
        "rotary_tables",
        [onnx.helper.make_tensor_value_info("position_ids", onnx.TensorProto.INT64, [1, None])],
        [onnx.helper.make_tensor_value_info(name, FLOAT, None) for name in wanted],
        [t for t in model.graph.initializer if t.name in reads],
    )
    sub_model = onnx.helper.make_model(sub, opset_imports=list(model.opset_import))
    sub_model.ir_version = model.ir_version
    session = ort.InferenceSession(sub_model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip(wanted, session.run(wanted, {"position_ids": np.arange(max_positions, dtype=np.int64)[None]})))
    tables = {}
    for cos, sin in pairs:
        c, s = values[cos][0], values[sin][0]
        half = c.shape[-1] // 2
        if not (np.array_equal(c[:, :half], c[:, half:]) and np.array_equal(s[:, :half], s[:, half:])):
            return None
        tables[(cos, sin)] = (np.ascontiguousarray(c[:, :half]), np.ascontiguousarray(s[:, :half]))
    return tables


def fuse_shared_input_matmuls(model) -> int:
    """MatMuls of one activation by different constant 2-D weights -> one MatMul by their concatenation and a Split.
    Returns how many MatMuls went into fused ones."""
    import onnx

    g = Graph(model)
    groups: dict = {}
    for node in model.graph.node:
        weight = g.weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is not None and len(weight.dims) == 2 and weight.data_type == FLOAT and len(g.readers[weight.name]) == 1:
            groups.setdefault(node.input[0], []).append(node)
    replaced: dict[int, list] = {}
    fused = 0
    for x, nodes in groups.items():
        if len(nodes) < 2:
            continue
        arrays = [onnx.numpy_helper.to_array(g.weights[n.input[1]]) for n in nodes]
        name = fused_name([n.name for n in nodes])
        weight = onnx.numpy_helper.from_array(np.concatenate(arrays, axis=1), f"{name}.weight")
        sizes = onnx.numpy_helper.from_array(np.array([a.shape[1] for a in arrays], dtype=np.int64), f"{name}.sizes")
        model.graph.initializer.extend([weight, sizes])
        matmul = onnx.helper.make_node("MatMul", [x, weight.name], [f"{name}_output_0"], name=name)
        made, parts = [matmul], [n.output[0] for n in nodes]
        adds = bias_adds(g, nodes, arrays)
        if adds:
            bias = onnx.numpy_helper.from_array(np.concatenate([b for _, b in adds]), f"{name}.bias")
            model.graph.initializer.append(bias)
            made.append(onnx.helper.make_node("Add", [matmul.output[0], bias.name], [f"{name}_biased"], name=f"{name}_Add"))
            parts = [a.output[0] for a, _ in adds]
            replaced.update({id(a): [] for a, _ in adds})
        split = onnx.helper.make_node("Split", [made[-1].output[0], sizes.name], parts, name=f"{name}_Split", axis=-1)
        replaced[id(nodes[0])] = [*made, split]
        replaced.update({id(n): [] for n in nodes[1:]})
        fused += len(nodes)
    replace_nodes(model.graph, [m for n in model.graph.node for m in replaced.get(id(n), [n])])
    return fused


def bias_adds(g: Graph, nodes, arrays):
    """[(Add, bias)] when each MatMul's only reader adds a constant bias of its width, else None."""
    import onnx

    adds = []
    for node, array in zip(nodes, arrays):
        add = g.only_reader(node.output[0], "Add")
        bias = add and g.weights.get(g.other_input(add, node.output[0]) or "")
        if bias is None or bias.data_type != FLOAT or list(bias.dims) != [array.shape[1]]:
            return None
        adds.append((add, onnx.numpy_helper.to_array(bias)))
    return adds


def fused_name(names) -> str:
    """/a/b/q_proj/MatMul, /a/b/k_proj/MatMul -> /a/b/q_proj+k_proj/MatMul."""
    parts = [n.split("/") for n in names]
    if all(len(p) == len(parts[0]) and p[:-2] == parts[0][:-2] and p[-1] == parts[0][-1] for p in parts):
        return "/".join(parts[0][:-2] + ["+".join(p[-2] for p in parts), parts[0][-1]])
    return "+".join(names)


def fuse_attention(model, num_heads: int, kv_num_heads: int) -> int:
    """Each layer's attention (export_onnx.grouped_query_attention after fuse_rotary: query, key and value
    reshaped to heads and transposed, rotary on query and key, the past concatenated into `present`, scores
    against past and new keys scaled, masked, softmaxed and applied, heads merged for o_proj) ->
    RotaryEmbedding on the projections and one GroupQueryAttention that writes `present` itself. Drops the
    packed `new_key_values` output, which would keep the transposed keys alive. Raises BadInput when a layer
    does not match, rather than write a graph half fused."""
    import onnx

    from .protocol import BadInput

    g = Graph(model)
    layers = sorted({int(o.split(".")[1]) for o in g.outputs if o.startswith("present.")})
    common = attention_inputs(model)
    fused = []
    dropped: set[int] = set()
    for i in layers:
        prefix = f"/model/layers.{i}/gqa"
        parts = attention_parts(g, i, prefix)
        if parts is None:
            raise BadInput(f"--gqa: layer {i}'s attention is not the shape GroupQueryAttention replaces", hint="export with --fused alone")
        q3, k3, v3, rotary, scale, o_proj, merges = parts
        rotated = [
            onnx.helper.make_node(
                "RotaryEmbedding",
                [x, "position_ids", *rotary.input[2:4]],
                [f"{prefix}/{kind}_rotary"],
                name=f"{prefix}/{kind}_Rotary",
                domain="com.microsoft",
                interleaved=0,
                num_heads=heads,
            )
            for x, kind, heads in ((q3, "q", num_heads), (k3, "k", kv_num_heads))
        ]
        attention = onnx.helper.make_node(
            "GroupQueryAttention",
            [
                rotated[0].output[0],
                rotated[1].output[0],
                v3,
                f"past_key_values.{i}.key",
                f"past_key_values.{i}.value",
                common["seqlens_k"],
                common["total_sequence_length"],
                "",
                "",
                "",
                common["attention_bias"],
            ],
            [f"{prefix}/output", f"present.{i}.key", f"present.{i}.value"],
            name=f"{prefix}/GroupQueryAttention",
            domain="com.microsoft",
            num_heads=num_heads,
            kv_num_heads=kv_num_heads,
            scale=scale,
        )
        fused.append((o_proj, [*merges, *rotated, attention]))
        o_proj.input[0] = attention.output[0]
        dropped.update(id(g.producer[f"present.{i}.{kind}"]) for kind in ("key", "value"))
    dropped.add(id(g.producer["new_key_values"]))
    before = {id(o): new for o, new in fused}
    nodes = [m for n in model.graph.node if id(n) not in dropped for m in [*before.get(id(n), []), n]]
    replace_nodes(model.graph, common["nodes"] + nodes)
    outputs = [o for o in model.graph.output if o.name != "new_key_values"]
    model.graph.ClearField("output")
    model.graph.output.extend(outputs)
    return len(fused)


def attention_parts(g: Graph, layer: int, prefix: str):
    """(query, key, value as [batch, sequence, heads x head_dim], a RotaryEmbedding of the layer, the score
    scale, o_proj's MatMul, the Reshapes that make some of the first three), or None where the layer differs
    from export_onnx.grouped_query_attention."""
    import onnx

    merges: list[onnx.NodeProto] = []

    def heads_of(tensor):
        """[batch, sequence, heads x head_dim] behind Transpose(y), y being [batch, sequence, heads, head_dim]:
        x of y = Reshape(x), or a new Reshape of y (Qwen3 normalizes each head of q and k before the Transpose)."""
        transpose = g.made_by(tensor, "Transpose")
        if transpose is None or attribute(transpose, "perm") != [0, 2, 1, 3]:
            return None
        reshape = g.made_by(transpose.input[0], "Reshape")
        if reshape is not None:
            return reshape.input[0]
        merged = f"{prefix}/merge_{len(merges)}"
        if f"{prefix}/merge_shape" not in g.weights:
            g.weights[f"{prefix}/merge_shape"] = onnx.numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"{prefix}/merge_shape")
            g.model.graph.initializer.append(g.weights[f"{prefix}/merge_shape"])
        merges.append(onnx.helper.make_node("Reshape", [transpose.input[0], f"{prefix}/merge_shape"], [merged], name=merged))
        return merged

    concat_k, concat_v = (g.producer.get(f"present.{layer}.{kind}") for kind in ("key", "value"))
    if concat_k is None or concat_v is None or concat_k.op_type != "Concat" or concat_v.op_type != "Concat":
        return None
    k_rotary = g.made_by(concat_k.input[1], "RotaryEmbedding")
    v_heads = concat_v.input[1]
    # The scores against the new keys: MatMul(Reshape(q_rotary), Transpose(k_rotary)).
    k_t = next((n for n in g.readers.get(concat_k.input[1], []) if n.op_type == "Transpose"), None)
    scores = k_t and next((n for n in g.readers.get(k_t.output[0], []) if n.op_type == "MatMul"), None)
    q_reshape = scores and g.made_by(scores.input[0], "Reshape")
    q_rotary = q_reshape and g.made_by(q_reshape.input[0], "RotaryEmbedding")
    if k_rotary is None or q_rotary is None or not scores:
        return None
    concat = g.only_reader(scores.output[0], "Concat")
    mul = concat and g.only_reader(concat.output[0], "Mul")
    scale = mul and g.scalar(g.other_input(mul, concat.output[0]))
    # Scaled scores + mask straight into Softmax: a soft-capped or sliding-window layer has more in between,
    # which GroupQueryAttention would not compute.
    add = mul and g.only_reader(mul.output[0], "Add")
    if not (add and g.only_reader(add.output[0], "Softmax")):
        return None
    # The attention output: MatMul(probs, v) -> Add (past part + new part) -> Reshape -> Transpose -> Reshape -> o_proj.
    node = next((n for n in g.readers.get(v_heads, []) if n.op_type == "MatMul"), None)
    for op in ("Add", "Reshape", "Transpose", "Reshape"):
        node = node and g.only_reader(node.output[0], op)
    o_proj = node and g.only_reader(node.output[0], "MatMul")
    q3, k3, v3 = heads_of(q_rotary.input[0]), heads_of(k_rotary.input[0]), heads_of(v_heads)
    if not (scale and o_proj and o_proj.input[1] in g.weights and q3 and k3 and v3):
        return None
    return q3, k3, v3, k_rotary, scale, o_proj, merges


def attention_inputs(model) -> dict:
    """The nodes computing GroupQueryAttention's shared inputs from attention_mask [batch, total] and input_ids
    [batch, sequence]: seqlens_k (total - 1 for every row, int32 [batch]), total_sequence_length (int32 scalar)
    and attention_bias [batch, 1, sequence, total] (0 where the mask is 1, -60000 where it is 0: still finite in
    float16, and far below any score)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    p = "/model/gqa_inputs"
    constants = {
        f"{p}/one": np.array([1], np.int64),
        f"{p}/axis0": np.array([0], np.int64),
        f"{p}/axes12": np.array([1, 2], np.int64),
        f"{p}/one_f": np.array(1.0, np.float32),
        f"{p}/masked": np.array(60000.0, np.float32),
    }
    model.graph.initializer.extend([numpy_helper.from_array(v, k) for k, v in constants.items()])
    n = onnx.helper.make_node
    nodes = [
        n("Shape", ["attention_mask"], [f"{p}/batch"], end=1),
        n("Shape", ["attention_mask"], [f"{p}/total"], start=1, end=2),
        n("Shape", ["input_ids"], [f"{p}/sequence"], start=1, end=2),
        n("Sub", [f"{p}/total", f"{p}/one"], [f"{p}/last"]),
        n("Cast", [f"{p}/last"], [f"{p}/last32"], to=TensorProto.INT32),
        n("Expand", [f"{p}/last32", f"{p}/batch"], [f"{p}/seqlens_k"]),
        n("Squeeze", [f"{p}/total", f"{p}/axis0"], [f"{p}/total_scalar"]),
        n("Cast", [f"{p}/total_scalar"], [f"{p}/total_sequence_length"], to=TensorProto.INT32),
        n("Cast", ["attention_mask"], [f"{p}/mask"], to=FLOAT),
        n("Sub", [f"{p}/mask", f"{p}/one_f"], [f"{p}/mask_minus_one"]),
        n("Mul", [f"{p}/mask_minus_one", f"{p}/masked"], [f"{p}/bias2"]),
        n("Unsqueeze", [f"{p}/bias2", f"{p}/axes12"], [f"{p}/bias4"]),
        n("Concat", [f"{p}/batch", f"{p}/one", f"{p}/sequence", f"{p}/total"], [f"{p}/bias_shape"], axis=0),
        n("Expand", [f"{p}/bias4", f"{p}/bias_shape"], [f"{p}/attention_bias"]),
    ]
    return {"nodes": nodes, "seqlens_k": f"{p}/seqlens_k", "total_sequence_length": f"{p}/total_sequence_length", "attention_bias": f"{p}/attention_bias"}


def scale_queries(model) -> int:
    """(q . k^T) * scale -> (scale * q) . k^T with the scale inside the query's RotaryEmbedding tables, which are
    the only thing it multiplies q by (rotary is cos * x + sin * rotate_half(x)): one Mul fewer a layer, and the
    same numbers where the scale is a power of two (1/sqrt(head_dim) for head_dim 64 or 256), else within a
    rounding. Matches export_onnx.grouped_query_attention's Concat of the past and new scores, then the Mul."""
    import onnx

    g = Graph(model)
    tables: dict[tuple, list[str]] = {}
    dropped: set[int] = set()
    renamed: dict[str, str] = {}
    for mul in [n for n in model.graph.node if n.op_type == "Mul"]:
        concat = g.made_by(mul.input[0], "Concat")
        scale = g.scalar(mul.input[1])
        if concat is None or scale is None or g.only_reader(concat.output[0], "Mul") is not mul or mul.output[0] in g.outputs:
            continue
        scores = [g.made_by(x, "MatMul") for x in concat.input]
        query = scores[0] and scores[0].input[0]
        reshape = query and g.made_by(query, "Reshape")
        rotary = reshape and g.made_by(reshape.input[0], "RotaryEmbedding")
        if not (rotary and all(s is not None and s.input[0] == query for s in scores)):
            continue
        # The query alone must read the rotary output and its tables (the key's rotary shares them otherwise).
        if len(g.readers[rotary.output[0]]) != 1 or {n.op_type for n in g.readers[query]} != {"MatMul"} or attribute(rotary, "rotary_embedding_dim", 0):
            continue
        key = (rotary.input[2], rotary.input[3], scale)
        if key not in tables:
            names = [f"{name}_scaled_{len(tables)}" for name in key[:2]]
            arrays = [onnx.numpy_helper.to_array(g.weights[name]) * np.float32(scale) for name in key[:2]]
            model.graph.initializer.extend(onnx.numpy_helper.from_array(a.astype(np.float32), n) for a, n in zip(arrays, names))
            tables[key] = names
        rotary.input[2], rotary.input[3] = tables[key]
        renamed[mul.output[0]] = concat.output[0]
        dropped.add(id(mul))
    for node in model.graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
    replace_nodes(model.graph, [n for n in model.graph.node if id(n) not in dropped])
    return len(dropped)


def share_past_length(model) -> int:
    """Each layer reads the past's length from its own cache input (a Shape of past_key_values.{i}.*, which splits
    the softmax into past and new columns); the inputs share that dim's name, so every layer can read layer 0's,
    and dedupe_nodes then leaves one Shape, Gather and Unsqueeze for the whole graph instead of one a layer."""
    pasts = {i.name: i for i in model.graph.input if i.name.startswith("past_key_values.")}
    first = "past_key_values.0.key"
    lengths = {p.type.tensor_type.shape.dim[2].dim_param for p in pasts.values() if len(p.type.tensor_type.shape.dim) == 4}
    if first not in pasts or len(lengths) != 1 or "" in lengths:
        return 0
    shared = 0
    for node in model.graph.node:
        if node.op_type == "Shape" and node.input[0] in pasts and node.input[0] != first:
            node.input[0] = first
            shared += 1
    return shared


def dedupe_nodes(model) -> int:
    """Drops each node that repeats an earlier one (same operator, attributes and inputs; Constants by value) and
    points its readers at the earlier one's outputs. Leaves graphs with subgraphs (If, Loop) alone."""
    import onnx

    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in model.graph.node for a in n.attribute):
        return 0
    outputs = {o.name for o in model.graph.output}
    seen: dict = {}
    renamed: dict[str, str] = {}
    kept = []
    nodes = list(model.graph.node)
    for node in nodes:
        node.input[:] = [renamed.get(i, i) for i in node.input]
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            value = onnx.numpy_helper.to_array(node.attribute[0].t)
            key = ("Constant", value.dtype.str, value.shape, value.tobytes())
        else:
            key = (node.domain, node.op_type, tuple(node.input), tuple(a.SerializeToString() for a in node.attribute))
        first = seen.get(key)
        if first is not None and not outputs.intersection(node.output):
            renamed.update(zip(node.output, first.output))
            continue
        seen.setdefault(key, node)
        kept.append(node)
    replace_nodes(model.graph, kept)
    return len(nodes) - len(kept)


def split_probabilities(model) -> int:
    """Slice(p, 0, past) and Slice(p, past, end) on one axis of one tensor (grouped_query_attention's probabilities,
    whose columns are the past's and then the new tokens') -> one Split by [past, new tokens], those sizes computed
    once for the whole graph (after dedupe_nodes, every layer reads the same `past`). Were a tensor's columns
    anything else, the Split would fail the check against PyTorch rather than compute something else."""
    import onnx

    g = Graph(model)
    if "input_ids" not in {i.name for i in model.graph.input}:
        return 0

    def axis_of(node):
        """The one axis a Slice with step 1 cuts, else None."""
        axes, steps = (g.constants.get(node.input[k]) if len(node.input) > k and node.input[k] else None for k in (3, 4))
        one_step = steps is None or list(np.reshape(steps, -1)) == [1]
        return int(axes.reshape(-1)[0]) if axes is not None and axes.size == 1 and one_step else None

    def is_past_length(tensor):
        """Unsqueeze(Gather(Shape(past_key_values.*), 2)): the past's length as a 1-element tensor."""
        unsqueeze = g.made_by(tensor, "Unsqueeze")
        gather = unsqueeze and g.made_by(unsqueeze.input[0], "Gather")
        shape = gather and g.made_by(gather.input[0], "Shape")
        return bool(shape and shape.input[0].startswith("past_key_values.") and g.scalar(gather.input[1]) == 2 and not shape.attribute)

    pairs = []
    for tensor, readers in g.readers.items():
        slices = [n for n in readers if n.op_type == "Slice" and axis_of(n) is not None]
        head = next((n for n in slices if g.scalar(n.input[1]) == 0 and is_past_length(n.input[2])), None)
        tail = next((n for n in slices if head is not None and n.input[1] == head.input[2] and (g.scalar(n.input[2]) or 0) >= 2**62), None)
        if len(slices) == 2 and head and tail and axis_of(head) == axis_of(tail) and tensor not in g.outputs:
            pairs.append((tensor, head, tail))
    sizes: dict[str, str] = {}
    after = {}
    for past in dict.fromkeys(head.input[2] for _, head, _ in pairs):
        p = f"/model/attention_split_{len(sizes)}"
        sizes[past] = f"{p}/sizes"
        # Right after the node that makes `past`, so the graph stays in topological order.
        after[g.producer[past].output[0]] = [
            onnx.helper.make_node("Shape", ["input_ids"], [f"{p}/new"], name=f"{p}/Shape", start=1, end=2),
            onnx.helper.make_node("Concat", [past, f"{p}/new"], [sizes[past]], name=f"{p}/Concat", axis=0),
        ]
    splits = {
        id(head): onnx.helper.make_node(
            "Split", [tensor, sizes[head.input[2]]], [head.output[0], tail.output[0]], name=f"{head.name or head.output[0]}_Split", axis=axis_of(head)
        )
        for tensor, head, tail in pairs
    }
    dropped = {id(tail) for _, _, tail in pairs}
    out = []
    for node in model.graph.node:
        if id(node) in dropped:
            continue
        out.append(splits.get(id(node), node))
        for name in node.output:
            out += after.get(name, [])
    replace_nodes(model.graph, out)
    return len(pairs)
