"""Derives the fixed-cache decode graph of test/bench/device/fixed-cache-decode.js from an `llmkit export --gqa`
folder (fp16 or fp32): every shape in a decode step is then fixed, so ONNX Runtime can capture the step as one
CUDA graph and replay it.

- GroupQueryAttention reads `seqlens_k` (int32 [batch]) and `total_sequence_length` (int32 scalar) from inputs
  instead of computing them from attention_mask (whose width grows every step); its attention bias goes: each row's
  tokens start at column 0 of its cache and `seqlens_k` bounds them, so there is no padding to mask;
- `past_key_values.*` and `present.*` take GroupQueryAttention's own dtype (the fp16 export casts them to fp32 at
  its boundary), so one device buffer can be both and the operator writes the new token's keys into it in place;
- the output layer reads only the last position (as src/engine/last-position-logits.ts does), and an ArgMax
  after it gives `next_token` (int64 [batch, 1, 1]): greedy sampling on the device, so only token ids cross;
- where query, key and value are the parts of one Split and rotary is a plain RotaryEmbedding of query and key,
  GroupQueryAttention takes the packed projections and rotates them itself (`do_rotary`), as
  src/engine/fixed-cache/fixed-cache-graph.ts does (--unpacked keeps the RotaryEmbedding nodes, to compare).

Usage: python3 fixed-cache-graph.py <export-folder> <out.onnx> [--unpacked]
"""

import sys

import onnx
from onnx import TensorProto, helper


def main(folder: str, out: str, packed: bool) -> None:
    model = onnx.load(f"{folder}/onnx/model.onnx")
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    inputs = {i.name: i for i in graph.input}
    outputs = {o.name: o for o in graph.output}
    dropped = set()
    cache_type = None
    for node in graph.node:
        if node.op_type != "GroupQueryAttention":
            continue
        for slot in (3, 4):  # past key, past value: straight from the graph input, without the Cast
            cast = producer.get(node.input[slot])
            if cast is not None and cast.op_type == "Cast" and cast.input[0] in inputs:
                dropped.add(id(cast))
                cache_type = helper.get_attribute_value(cast.attribute[0])
                node.input[slot] = cast.input[0]
        for slot in (1, 2):  # present key, value: the graph output itself
            cast = next((r for r in readers.get(node.output[slot], []) if r.op_type == "Cast" and r.output[0] in outputs), None)
            if cast is not None:
                dropped.add(id(cast))
                node.output[slot] = cast.output[0]
        node.input[5] = "seqlens_k"
        node.input[6] = "total_sequence_length"
        del node.input[7:]
        rotary = packed and packed_rotary(node, producer, readers)
        if rotary:
            split, q, k = rotary
            dropped.update(id(n) for n in rotary)
            node.input[0:3] = [split.input[0], "", ""]
            node.input.extend(q.input[2:4])
            node.attribute.append(helper.make_attribute("do_rotary", 1))
    if cache_type is not None:
        for value in list(graph.input) + list(graph.output):
            if value.name.startswith(("past_key_values.", "present.")):
                value.type.tensor_type.elem_type = cache_type
    keep = [n for n in graph.node if id(n) not in dropped and not any(o.startswith("/model/gqa_inputs/") for o in n.output)]
    keep = last_position_only(keep, graph)
    keep.append(helper.make_node("ArgMax", ["logits"], ["next_token"], name="next_token/ArgMax", axis=-1, keepdims=1))
    graph.ClearField("node")
    graph.node.extend(keep)
    graph.input.remove(inputs["attention_mask"])
    graph.input.extend(
        [
            helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch_size"]),
            helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
        ]
    )
    graph.output.append(helper.make_tensor_value_info("next_token", TensorProto.INT64, ["batch_size", 1, 1]))
    onnx.save(model, out, save_as_external_data=True, location=out.split("/")[-1] + ".data")
    print(f"wrote {out}: cache dtype {TensorProto.DataType.Name(cache_type) if cache_type else 'float'}, {len(keep)} nodes")


def packed_rotary(attention, producer, readers):
    """(Split, query RotaryEmbedding, key RotaryEmbedding) where GroupQueryAttention can read the Split's input and
    rotate it itself, else None."""
    q, k = (producer.get(x) for x in attention.input[0:2])
    if q is None or k is None or q.op_type != "RotaryEmbedding" or k.op_type != "RotaryEmbedding":
        return None
    split = producer.get(q.input[0])
    if split is None or split.op_type != "Split" or list(split.output) != [q.input[0], k.input[0], attention.input[2]]:
        return None
    if list(q.input[1:]) != list(k.input[1:]):
        return None
    if any(a.name in ("interleaved", "rotary_embedding_dim") and a.i for r in (q, k) for a in r.attribute):
        return None
    only = lambda tensor, reader: all(r is reader for r in readers.get(tensor, []))  # noqa: E731
    if not (only(q.output[0], attention) and only(k.output[0], attention) and only(attention.input[2], attention)):
        return None
    if not (only(q.input[0], q) and only(k.input[0], k)):
        return None
    return split, q, k


def last_position_only(nodes, graph):
    """The output layer's MatMul (behind any Casts) reads a Slice of its input's last position."""
    producer = {o: n for n in nodes for o in n.output}
    node = producer["logits"]
    while node.op_type == "Cast":
        node = producer[node.input[0]]
    hidden = node.input[0]
    last = f"{hidden}/last_position"
    graph.initializer.extend(
        [
            helper.make_tensor(f"{last}/starts", TensorProto.INT64, [1], [-1]),
            helper.make_tensor(f"{last}/ends", TensorProto.INT64, [1], [2**63 - 1]),
            helper.make_tensor(f"{last}/axes", TensorProto.INT64, [1], [1]),
        ]
    )
    node.input[0] = last
    index = nodes.index(node)
    return [*nodes[:index], helper.make_node("Slice", [hidden, f"{last}/starts", f"{last}/ends", f"{last}/axes"], [last], name=last), *nodes[index:]]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--unpacked" not in sys.argv[3:])
