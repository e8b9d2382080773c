"""Does ONNX Runtime's GroupQueryAttention (CPU) compute attention over llmkit's KV cache layout?

llmkit's batches are left-padded, and DecoderSession.decodeInPlace keeps spare columns after each row's cache
(mask 0 on both). GroupQueryAttention reads each row's keys from column 0 to its `seqlens_k`; this gives every
row the same `seqlens_k` and passes the mask as `attention_bias`, then checks against NumPy (1) with separate
past and present, and (2) with past and present bound to one buffer of spare columns, where the operator must
write the new keys into the next column and leave the others alone. docs/export.md ("--fused") says what the
engine would need to use it. Run with the worker venv's python: python test/bench/gqa-cache-probe.py
"""

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

B, S, P, H, KV, D, CAPACITY = 2, 1, 6, 4, 2, 8, 10

names = ["query", "key", "value", "past_key", "past_value", "seqlens_k", "total_sequence_length", "", "", "", "attention_bias"]
types = dict.fromkeys(names, TensorProto.FLOAT) | {"seqlens_k": TensorProto.INT32, "total_sequence_length": TensorProto.INT32}
node = helper.make_node("GroupQueryAttention", names, ["output", "present_key", "present_value"], domain="com.microsoft", num_heads=H, kv_num_heads=KV)
graph = helper.make_graph(
    [node],
    "gqa",
    [helper.make_tensor_value_info(n, types[n], None) for n in names if n],
    [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in node.output],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
model.ir_version = 8
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((B, S, n * D)).astype(np.float32) for n in (H, KV, KV))
past_k, past_v = (rng.standard_normal((B, KV, P, D)).astype(np.float32) for _ in range(2))
mask = np.ones((B, P + S), np.float32)
mask[1, :3] = 0  # row 1 is left-padded
mask[0, 4] = 0  # and row 0 has a masked column mid-cache
bias = np.where(mask > 0, 0, -1e9).astype(np.float32)[:, None, None, :]
lengths = {"seqlens_k": np.full(B, P + S - 1, np.int32), "total_sequence_length": np.array(P + S, np.int32)}

heads = lambda x, n: x.reshape(B, S, n, D).transpose(0, 2, 1, 3)  # noqa: E731
keys, values = np.concatenate([past_k, heads(k, KV)], 2), np.concatenate([past_v, heads(v, KV)], 2)
scores = heads(q, H) @ np.repeat(keys, H // KV, 1).transpose(0, 1, 3, 2) / np.sqrt(D) + bias
probs = np.exp(scores - scores.max(-1, keepdims=True))
reference = ((probs / probs.sum(-1, keepdims=True)) @ np.repeat(values, H // KV, 1)).transpose(0, 2, 1, 3).reshape(B, S, H * D)

out, present_k, _ = session.run(None, {"query": q, "key": k, "value": v, "past_key": past_k, "past_value": past_v, "attention_bias": bias, **lengths})
print(
    f"onnxruntime {ort.__version__}, separate past/present: max |output - reference| {np.abs(out - reference).max():.1e}, "
    f"present = past + new: {np.array_equal(present_k, keys)}"
)

buffers = [np.zeros((B, KV, CAPACITY, D), np.float32) for _ in range(2)]
buffers[0][:, :, :P], buffers[1][:, :, :P] = past_k, past_v
cache_k, cache_v = (ort.OrtValue.ortvalue_from_numpy(b) for b in buffers)
binding = session.io_binding()
for name, array in {"query": q, "key": k, "value": v, "attention_bias": bias, **lengths}.items():
    binding.bind_cpu_input(name, array)
binding.bind_ortvalue_input("past_key", cache_k)
binding.bind_ortvalue_input("past_value", cache_v)
binding.bind_output("output")
binding.bind_ortvalue_output("present_key", cache_k)
binding.bind_ortvalue_output("present_value", cache_v)
session.run_with_iobinding(binding)
shared = binding.copy_outputs_to_cpu()[0]
written = cache_k.numpy()
print(
    f"shared buffer of {CAPACITY} columns: max |output - reference| {np.abs(shared - reference).max():.1e}, "
    f"new keys in column {P}: {np.array_equal(written[:, :, P], keys[:, :, P])}, "
    f"columns after it untouched: {not written[:, :, P + 1 :].any()}"
)
