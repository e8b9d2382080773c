"""Triton Python-backend model: llmkit's generation loop over the exported decoder, streamed token by token.

Copied by `llmkit export --triton DIR` into DIR/<name>-generate/1/model.py. Decoupled: each request gets one
response per generated token (`token_id`, shape [1]) and a final one with `finish_reason` ("stop", "length" or
"cancelled") and no token. Inputs (only `input_ids` is required; the others are optional, shape [1]):
  input_ids INT64 [n]   the prompt, already tokenized (llmkit serve tokenizes, so quotas and context checks stay there)
  max_tokens INT32, temperature FP32, top_p FP32, top_k INT32, seed INT64,
  repetition_penalty FP32, frequency_penalty FP32, presence_penalty FP32, ignore_eos BOOL
Stop token ids are the manifest's EOS ids; stop strings are matched on text by llmkit serve, which then
cancels the request here (a cancelled request leaves the loop at its next token).

The decoder runs with onnxruntime on the ONNX file of the sibling `<name>` model (the one Triton's onnxruntime
backend serves), so the weights are stored once. The KV cache is preallocated for prompt + max_tokens columns and
each decode step writes its new column in place (unused columns are masked out), like llmkit's own engine.
Sampling (xoshiro128** seeded per request, then temperature/top-k/top-p) follows src/engine/sampling.ts, so greedy
output is the same token for token. Needs numpy and onnxruntime importable by the backend's stub.
"""

import json
import os
import sys
import threading

# The backend's stub embeds an interpreter that ignores PYTHONPATH; honour it here, so numpy and onnxruntime can
# come from a venv (llmkit's Triton set-up) as well as from the system (NVIDIA's container).
sys.path.extend(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path)

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

M32 = 0xFFFFFFFF


class Random:
    """xoshiro128** seeded with splitmix32: the twin of src/engine/random.ts (same seed, same stream of floats).
    Change both; test/serve/triton.test.ts compares seeded answers with the in-process engine's."""

    def __init__(self, seed: int):
        x = (seed & M32) ^ (seed >> 32 & M32)
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B9) & M32
            z = x
            z = ((z ^ (z >> 16)) * 0x85EBCA6B) & M32
            z = ((z ^ (z >> 13)) * 0xC2B2AE35) & M32
            self.s.append((z ^ (z >> 16)) & M32)

    def next(self) -> float:
        s = self.s
        result = (_rotl((s[1] * 5) & M32, 7) * 9) & M32
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 11)
        return result / 2**32


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & M32


class Sampler:
    """Penalties, then greedy or temperature/top-k/top-p sampling: the twin of TokenSampler in src/engine/sampling.ts.
    Change both; test/serve/triton.test.ts compares seeded answers with the in-process engine's."""

    def __init__(self, params: dict, prompt: np.ndarray):
        self.p = params
        seed = params.get("seed")
        self.random = Random(int(seed) if seed is not None else int.from_bytes(os.urandom(4), "little"))
        self.counts: dict[int, int] = {}
        self.seen = set(prompt.tolist()) if params["repetition_penalty"] != 1 else None

    def sample(self, logits: np.ndarray) -> int:
        p = self.p
        logits = logits.astype(np.float64)
        if self.seen:
            ids = np.fromiter(self.seen, dtype=np.int64)
            logits[ids] = np.where(logits[ids] > 0, logits[ids] / p["repetition_penalty"], logits[ids] * p["repetition_penalty"])
        if p["frequency_penalty"] or p["presence_penalty"]:
            for t, n in self.counts.items():
                logits[t] -= n * p["frequency_penalty"] + p["presence_penalty"]
        t, k = p["temperature"], p["top_k"]
        token = int(np.argmax(logits)) if t == 0 or k == 1 else self._draw(logits, t, k, p["top_p"])
        self.counts[token] = self.counts.get(token, 0) + 1
        if self.seen is not None:
            self.seen.add(token)
        return token

    def _draw(self, logits: np.ndarray, t: float, k: int, top_p: float) -> int:
        v = logits.shape[0]
        k = min(k, v) if k > 0 else v
        weights = np.exp((logits - logits.max()) / t)
        if k == v and top_p >= 1:
            order = np.arange(v)
        else:
            # Largest first, ties by lower id (the engine's heap order).
            order = np.lexsort((np.arange(v), -logits))[:k]
        w = weights[order]
        target = top_p * w.sum() if k < v else top_p * weights.sum()
        kept = min(len(w), int(np.searchsorted(np.cumsum(w), target)) + 1) if top_p < 1 else len(w)
        r = self.random.next() * w[:kept].sum()
        j = int(np.searchsorted(np.cumsum(w[:kept]), r, side="right"))
        return int(order[min(j, kept - 1)])


def _scalar(request, name, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else tensor.as_numpy().reshape(-1)[0].item()


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        here = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(here, "llmkit.json")) as f:
            self.manifest = json.load(f)
        decoder_dir = os.path.join(os.path.dirname(os.path.abspath(args["model_repository"])), params["decoder_model"], "1")
        options = ort.SessionOptions()
        threads = int(params.get("intra_op_threads", "0"))
        if threads:
            options.intra_op_num_threads = threads
        providers: list[str | tuple[str, dict]] = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(args.get("model_instance_device_id", "0"))}))
        self.session = ort.InferenceSession(os.path.join(decoder_dir, "model.onnx"), options, providers=providers)
        m = self.manifest
        self.layers, self.kv_heads, self.head_dim = m["num_layers"], m["num_kv_heads"], m["head_dim"]
        self.context = m["max_position_embeddings"]
        self.kv_dtype = np.float16 if m["kv_dtype"] == "float16" else np.float32
        self.eos = set(m["eos_token_ids"])
        self.logger = pb_utils.Logger

    def execute(self, requests):
        # Decoupled: each request streams from its own thread; ONNX Runtime releases the GIL while it runs.
        for request in requests:
            threading.Thread(target=self._serve, args=(request,), daemon=True).start()
        return None

    def _serve(self, request):
        sender = request.get_response_sender()
        try:
            reason, produced = self._generate(request, sender)
        except Exception as e:  # noqa: BLE001 - the client must get an answer, not a hang
            self.logger.log_error(f"generation failed: {e}")
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e))), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return
        # Operators (and llmkit's tests) read from Triton's log where a request ended and why.
        self.logger.log_info(f"llmkit-generate {request.request_id() or '-'}: {reason} after {produced} tokens")
        final = pb_utils.Tensor("finish_reason", np.array([reason.encode()], dtype=np.object_))
        sender.send(pb_utils.InferenceResponse(output_tensors=[final]), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def _generate(self, request, sender) -> tuple[str, int]:
        prompt = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy().reshape(-1).astype(np.int64)
        if prompt.size == 0:
            raise ValueError("input_ids is empty")
        if prompt.size >= self.context:
            raise ValueError(f"the prompt has {prompt.size} tokens; the context is {self.context}")
        max_tokens = min(int(_scalar(request, "max_tokens", self.context - prompt.size)), self.context - prompt.size)
        params = {
            "temperature": float(_scalar(request, "temperature", 0.0)),
            "top_p": float(_scalar(request, "top_p", 1.0)),
            "top_k": int(_scalar(request, "top_k", 0)),
            "seed": _scalar(request, "seed", None),
            "repetition_penalty": float(_scalar(request, "repetition_penalty", 1.0)),
            "frequency_penalty": float(_scalar(request, "frequency_penalty", 0.0)),
            "presence_penalty": float(_scalar(request, "presence_penalty", 0.0)),
        }
        stop_ids = set() if bool(_scalar(request, "ignore_eos", False)) else self.eos
        sampler = Sampler(params, prompt)

        # Prefill: an empty past, every prompt token at once.
        n = prompt.size
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), dtype=self.kv_dtype)
        logits, fresh = self._run(prompt[None, :], np.ones((1, n), np.int64), np.arange(n, dtype=np.int64)[None, :], [empty] * (2 * self.layers))
        capacity = n + max_tokens
        cache = [np.zeros((1, self.kv_heads, capacity, self.head_dim), dtype=self.kv_dtype) for _ in range(2 * self.layers)]
        for i, part in enumerate(fresh):
            cache[i][:, :, :n] = part
        mask = np.zeros((1, capacity + 1), np.int64)
        mask[0, :n] = 1
        mask[0, capacity] = 1
        length = n
        for produced in range(max_tokens):
            if request.is_cancelled():
                return "cancelled", produced
            token = sampler.sample(logits[0, -1])
            sender.send(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("token_id", np.array([token], dtype=np.int64))]))
            if token in stop_ids:
                return "stop", produced + 1
            if produced == max_tokens - 1:
                break
            logits, fresh = self._run(np.array([[token]], np.int64), mask, np.array([[length]], np.int64), cache)
            for i, part in enumerate(fresh):
                cache[i][:, :, length] = part[:, :, 0]
            length += 1
            mask[0, length - 1] = 1
        return "length", max_tokens

    def _run(self, input_ids, mask, positions, past):
        feeds = {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}
        for i in range(self.layers):
            feeds[f"past_key_values.{i}.key"] = past[2 * i]
            feeds[f"past_key_values.{i}.value"] = past[2 * i + 1]
        logits, packed = self.session.run(["logits", "new_key_values"], feeds)
        # new_key_values: [2 x layers x batch, kv_heads, new, head_dim], layer i's key then value.
        return logits, [packed[j : j + 1] for j in range(2 * self.layers)]

    def finalize(self):
        self.session = None
