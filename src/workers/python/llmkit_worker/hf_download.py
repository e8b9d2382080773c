"""Fetches a Hugging Face model id into the local hub cache with huggingface_hub, for a command given an id that
the cache does not hold (llmkit looks in the cache first, without Python). Config: repo, revision.
Raises BadInput, in one line, when the hub cannot be reached or does not have the model."""

from .protocol import BadInput, emit, first_line

# What a causal LM folder needs; a repository's other files (original checkpoints, ONNX, GGUF copies) are left.
FILES = ["*.json", "*.safetensors", "tokenizer*", "*.jinja", "*.model", "*.txt"]


def run(config: dict) -> int:
    from huggingface_hub import snapshot_download

    repo, revision = config["repo"], config.get("revision", "main")
    emit("start", job="hf_download", total_steps=1)
    try:
        path = snapshot_download(repo, revision=revision, allow_patterns=FILES)
    except Exception as e:  # noqa: BLE001 - offline, unknown repository, gated: all the same to the user
        said = first_line(str(e)) or type(e).__name__
        raise BadInput(
            f"{repo} is not a folder, nor a model in the local Hugging Face cache, and could not be downloaded: {said}",
            hint="pass a model folder, or download it where the hub is reachable (HF_HUB_CACHE names the cache)",
        ) from e
    emit("result", path=path)
    return 0
