"""fuse_graph's clean-up passes on small graphs: the same outputs from fewer nodes."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from llmkit_worker.fuse_graph import dedupe_nodes, fuse_shared_input_matmuls, share_past_length, split_probabilities


def run(model, feeds):
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def attention_like_model():
    """Two layers that each read the past's length from their own past and cut their own probabilities there with
    two Slices."""
    n = helper.make_node
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])]
    inputs += [helper.make_tensor_value_info(f"past_key_values.{i}.key", TensorProto.FLOAT, ["batch", 2, "past", 4]) for i in range(2)]
    inputs.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2, "sequence", "total"]))
    nodes, outputs = [], []
    for i in range(2):
        p = f"/layers.{i}"
        nodes += [
            n("Shape", [f"past_key_values.{i}.key"], [f"{p}/shape"]),
            n("Constant", [], [f"{p}/two"], value=numpy_helper.from_array(np.array(2, np.int64))),
            n("Gather", [f"{p}/shape", f"{p}/two"], [f"{p}/past"], axis=0),
            n("Constant", [], [f"{p}/axes0"], value=numpy_helper.from_array(np.array([0], np.int64))),
            n("Unsqueeze", [f"{p}/past", f"{p}/axes0"], [f"{p}/past1"]),
            n("Constant", [], [f"{p}/zero"], value=numpy_helper.from_array(np.array([0], np.int64))),
            n("Constant", [], [f"{p}/end"], value=numpy_helper.from_array(np.array([2**63 - 1], np.int64))),
            n("Constant", [], [f"{p}/axis"], value=numpy_helper.from_array(np.array([3], np.int64))),
            n("Constant", [], [f"{p}/scale"], value=numpy_helper.from_array(np.array(i + 1.0, np.float32))),
            n("Mul", ["probs", f"{p}/scale"], [f"{p}/probs"]),
            n("Slice", [f"{p}/probs", f"{p}/zero", f"{p}/past1", f"{p}/axis"], [f"{p}/old"]),
            n("Slice", [f"{p}/probs", f"{p}/past1", f"{p}/end", f"{p}/axis"], [f"{p}/new"]),
        ]
        outputs += [helper.make_tensor_value_info(f"{p}/{part}", TensorProto.FLOAT, None) for part in ("old", "new")]
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_one_past_length_and_one_split_give_the_same_outputs():
    model = attention_like_model()
    rng = np.random.default_rng(0)
    feeds = {"input_ids": np.zeros((1, 3), np.int64), "probs": rng.standard_normal((1, 2, 3, 8)).astype(np.float32)}
    feeds.update({f"past_key_values.{i}.key": np.zeros((1, 2, 5, 4), np.float32) for i in range(2)})
    before = run(model, feeds)

    assert share_past_length(model) == 1
    dropped = dedupe_nodes(model)
    assert split_probabilities(model) == 2
    ops = [node.op_type for node in model.graph.node]
    # One Shape/Gather/Unsqueeze chain (and its Constants) left of two; the four Slices are two Splits.
    assert dropped == 9
    assert (ops.count("Shape"), ops.count("Gather"), ops.count("Unsqueeze"), ops.count("Slice"), ops.count("Split")) == (2, 1, 1, 0, 2)
    after = run(model, feeds)
    assert [a.shape for a in after] == [(1, 2, 3, 5), (1, 2, 3, 3)] * 2
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_dedupe_keeps_a_node_that_makes_a_graph_output():
    n = helper.make_node
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    graph = helper.make_graph(
        [n("Neg", ["x"], ["a"]), n("Neg", ["x"], ["b"]), n("Add", ["a", "b"], ["c"])],
        "g",
        [x],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2]) for name in ("b", "c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert dedupe_nodes(model) == 0
    assert [node.op_type for node in model.graph.node] == ["Neg", "Neg", "Add"]
    np.testing.assert_array_equal(run(model, {"x": np.array([1, 2], np.float32)})[1], [-2, -4])


def test_projections_with_biases_become_one_matmul_one_add_and_a_split():
    """Qwen2's q/k/v: three MatMuls of one input, each adding its own bias -> MatMul, Add, Split (the packed
    projections whole, for GroupQueryAttention to read)."""
    rng = np.random.default_rng(1)
    n = helper.make_node
    widths = {"q": 8, "k": 4, "v": 4}
    weights = [numpy_helper.from_array(rng.standard_normal((6, w)).astype(np.float32), f"{p}.weight") for p, w in widths.items()]
    biases = [numpy_helper.from_array(rng.standard_normal(w).astype(np.float32), f"{p}.bias") for p, w in widths.items()]
    nodes = [
        node for p in widths for node in (n("MatMul", ["x", f"{p}.weight"], [f"{p}/mm"], name=f"/{p}_proj/MatMul"), n("Add", [f"{p}.bias", f"{p}/mm"], [p]))
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6])],
        [helper.make_tensor_value_info(p, TensorProto.FLOAT, None) for p in widths],
        initializer=weights + biases,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": rng.standard_normal((1, 3, 6)).astype(np.float32)}
    before = run(model, feeds)

    assert fuse_shared_input_matmuls(model) == 3
    assert [node.op_type for node in model.graph.node] == ["MatMul", "Add", "Split"]
    for a, b in zip(before, run(model, feeds)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
