"""The contract with llmkit: for each job, the config it reads and the result it answers with.

src/workers/jobs.ts holds the same table as zod schemas, and test/workers/job-contract.test.ts keeps the
two equal (job names, fields, their kinds, which are optional). Each job is the module of its name,
with a `run(config) -> int`. Standard library only, so that listing the jobs loads no torch.
"""

from typing import Any, Literal, NotRequired, TypedDict


class DataFile(TypedDict):
    path: str
    format: str


class ExactMatchSample(TypedDict):
    question: str
    expected: str
    got: str
    correct: bool


class ExactMatch(TypedDict):
    value: float
    correct: int
    total: int
    samples: list[ExactMatchSample]


class ProbeConfig(TypedDict):
    pass


class PythonInfo(TypedDict):
    executable: str
    version: str


class PackageInfo(TypedDict):
    version: str | None
    error: NotRequired[str]


class GpuInfo(TypedDict):
    index: int
    name: str
    memory_bytes: int


class CudaInfo(TypedDict):
    available: bool
    gpus: list[GpuInfo]
    nccl: bool
    bf16: bool
    torch_cuda: NotRequired[str | None]
    gloo: NotRequired[bool]


class ProbeResult(TypedDict):
    python: PythonInfo
    packages: dict[str, PackageInfo]
    cuda: CudaInfo


class SelftestConfig(TypedDict):
    steps: NotRequired[int]
    out: NotRequired[str]
    stderr_lines: NotRequired[int]
    step_seconds: NotRequired[float]
    fail: NotRequired[str]
    fail_rank: NotRequired[int]


class SelftestResult(TypedDict):
    steps: int


class MakeModelConfig(TypedDict):
    out: str
    preset: str
    seed: int
    corpus: NotRequired[list[str]]
    architecture: NotRequired[str]
    dtype: NotRequired[str]
    model_vocab_size: NotRequired[int]
    tie_word_embeddings: NotRequired[bool]


class MakeModelResult(TypedDict):
    path: str
    parameters: int
    preset: str
    vocab_size: int
    config: dict[str, Any]


class FinetuneConfig(TypedDict):
    model: str
    data: list[DataFile]
    eval_data: list[DataFile] | None
    eval_split: float | None
    out: str
    lora: bool
    lora_r: int
    lora_alpha: float
    lora_dropout: float
    lora_targets: list[str] | None
    epochs: int | None
    max_steps: int | None
    batch_size: int
    grad_accum: int
    lr: float
    schedule: Literal["linear", "cosine"]
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    seed: int
    max_seq_len: int
    packing: bool
    train_on_prompt: bool
    gradient_checkpointing: bool
    eval_every: int | None
    save_every: int
    save_minutes: float
    keep_checkpoints: int
    resume: bool
    merge: bool
    precision: str
    compile: bool
    exact_match: int
    device: str
    fsdp: bool
    # Where metrics go besides metrics.jsonl: "tensorboard" (event files in out/tensorboard/).
    report_to: Literal["none", "tensorboard"]


class ExactMatchBeforeAfter(TypedDict):
    before: ExactMatch | None
    after: ExactMatch | None


class FinetuneResult(TypedDict):
    out: str
    method: Literal["lora", "full"]
    steps: int
    epochs: float  # fractional when max_steps stops inside a pass over the data
    first_loss: float | None
    last_loss: float | None
    eval_loss: float | None
    tokens_per_s: float | None
    train_tokens: int
    train_seconds: float
    peak_memory_bytes: int | None
    peak_memory_per_rank: list[int | None]
    processes: int
    memory_kind: Literal["cuda", "cpu_rss"] | None
    examples: int
    eval_examples: int
    truncated: int
    dropped: int
    trainable_parameters: int
    total_parameters: int
    device: str
    precision: str
    compiled: bool
    exact_match: ExactMatchBeforeAfter | None
    adapter: str | None
    merged: str | None
    model: str | None
    resumed_from: str | None


class DistillConfig(FinetuneConfig):
    teacher: str
    student_config: dict[str, Any] | None
    student_layers: list[int] | None
    mode: Literal["logits", "sequence"]
    # Logits mode's; None in sequence mode.
    temperature: float | None
    alpha: float | None
    top_k: int
    # Sequence mode's; None in logits mode.
    max_new_tokens: int | None
    # A draft's output layer: the N most frequent tokens of its training answers (draft-vocab.json); 0: every token.
    draft_vocab: int


class LoraToolsConfig(TypedDict):
    base: str
    adapter: str
    out: str


class LoraToolsResult(TypedDict):
    out: str


class ExportOnnxConfig(TypedDict):
    model: str
    out: str
    dtype: Literal["fp32", "fp16"]
    tolerance: NotRequired[float]
    fused: bool
    gqa: NotRequired[bool]
    opset: NotRequired[int]


class ExportOnnxResult(TypedDict):
    path: str
    parity: dict[str, float]
    onnx_bytes: int
    manifest: dict[str, Any]


class QuantizeConfig(TypedDict):
    model: str
    out: str
    bits: int
    block_size: int
    symmetric: bool
    exclude: list[str]
    accuracy_level: int
    head_bits: NotRequired[int]
    scales: NotRequired[Literal["fp32", "fp16"]]
    calibration_data: NotRequired[str]
    calibration_tokens: NotRequired[int]


class QuantizeResult(TypedDict):
    path: str
    quantization: dict[str, Any]


class ExportGgufConfig(TypedDict):
    model: str
    out: str
    type: Literal["f16", "q8_0", "q4_0"]


class ExportGgufResult(TypedDict):
    path: str
    type: Literal["f16", "q8_0", "q4_0"]
    architecture: str
    bytes: int
    parameters: int
    tensor_types: dict[str, int]


class ImportGgufConfig(TypedDict):
    gguf: str
    out: str
    dtype: Literal["float32", "bfloat16", "float16"]


class ImportGgufResult(TypedDict):
    path: str
    architecture: str
    model_type: str
    parameters: int
    dtype: Literal["float32", "bfloat16", "float16"]
    tensor_types: dict[str, int]
    special_tokens: dict[str, str]
    chat_template: bool


class HfDownloadConfig(TypedDict):
    repo: str
    revision: str


class HfDownloadResult(TypedDict):
    path: str


class ExportTritonConfig(TypedDict):
    model: str
    out: str
    name: str
    device: NotRequired[Literal["cpu", "gpu"]]


class ExportTritonResult(TypedDict):
    path: str
    decoder: str
    generate: str
    device: Literal["cpu", "gpu"]


class CudaProviderConfig(TypedDict):
    version: str
    dest: str
    cache: str
    source: str | None
    offline: bool


class CudaProviderResult(TypedDict):
    version: str
    source: str
    provider_files: list[str]
    library_dirs: list[str]


JOBS: dict[str, tuple[type, type]] = {
    "probe": (ProbeConfig, ProbeResult),
    "selftest": (SelftestConfig, SelftestResult),
    "make_model": (MakeModelConfig, MakeModelResult),
    "finetune": (FinetuneConfig, FinetuneResult),
    "distill": (DistillConfig, FinetuneResult),
    "lora_tools": (LoraToolsConfig, LoraToolsResult),
    "export_onnx": (ExportOnnxConfig, ExportOnnxResult),
    "quantize": (QuantizeConfig, QuantizeResult),
    "export_gguf": (ExportGgufConfig, ExportGgufResult),
    "import_gguf": (ImportGgufConfig, ImportGgufResult),
    "hf_download": (HfDownloadConfig, HfDownloadResult),
    "export_triton": (ExportTritonConfig, ExportTritonResult),
    "cuda_provider": (CudaProviderConfig, CudaProviderResult),
}
