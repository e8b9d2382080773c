"""Byte-level BPE pre-tokenizers as tokenizer.json spells them and as llama.cpp names them (tokenizer.ggml.pre).

llama.cpp splits text with regexes it keeps per name (src/llama-vocab.cpp); a GGUF carries only the name. Writing a
GGUF (export_gguf) needs the name of a tokenizer.json's pre-tokenizer; reading one (import_gguf) needs the steps back,
which transformers' GGUF reader does not rebuild (it gives SmolLM2 plain GPT-2 splitting, without its single digits).
"""

LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
# The steps before the byte mapping, by llama.cpp name. "smollm": each digit on its own, then GPT-2's regex (the
# ByteLevel step's own); "llama-bpe", "qwen2": one Split regex, the ByteLevel step without its regex.
STEPS = {
    "gpt-2": [],
    "smollm": [{"type": "Digits", "individual_digits": True}],
    "llama-bpe": [{"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False}],
    "qwen2": [{"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False}],
}


def llama_cpp_name(steps: list[dict]) -> str | None:
    """The llama.cpp name of a byte-level pre-tokenizer's steps (ByteLevel last), or None for one it does not know."""
    *before, byte_level = steps
    if byte_level.get("type") != "ByteLevel":
        return None
    for name, known in STEPS.items():
        splits = any(s["type"] == "Split" for s in known)
        if len(before) == len(known) and all(same_step(a, b) for a, b in zip(before, known)) and byte_level.get("use_regex", True) != splits:
            return name
    return None


def same_step(step: dict, known: dict) -> bool:
    if known["type"] == "Split":
        return step.get("type") == "Split" and step.get("pattern", {}).get("Regex") == known["pattern"]["Regex"]
    return all(step.get(k) == v for k, v in known.items())


def tokenizer_json_steps(name: str) -> dict | None:
    """The tokenizer.json pre_tokenizer for a llama.cpp name, or None for a name not in STEPS."""
    if name not in STEPS:
        return None
    splits = any(s["type"] == "Split" for s in STEPS[name])
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": not splits}
    return {"type": "Sequence", "pretokenizers": [*STEPS[name], byte_level]}
