"""Runs llama.cpp's convert_hf_to_gguf.py (from the source node-llama-cpp bundles) on an llmkit-made model.

The converter recognises a BPE pre-tokenizer by hashing what it makes of a fixed text, and refuses hashes it
does not know; llmkit's byte-level tokenizer splits like GPT-2's, so it is told that. The converter writes
F32 or Q8_0 but not Q4_0 (llama-quantize does, a C++ build of its own): `--outtype q4_0` here writes the tensors
the converter would make Q8_0 as Q4_0 instead (gguf-py's reference quantizer, blocks of 32, one scale each;
every 2-D weight, the embedding and the output layer included, like llama-quantize --pure). Usage:
python convert_gguf.py <llama.cpp source> <converter arguments...>
"""

import runpy
import sys
from pathlib import Path

source = Path(sys.argv[1])
sys.path[:0] = [str(source), str(source / "gguf-py")]
import conversion.base as base  # noqa: E402 (importable only once the source is on the path)

for cls in vars(base).values():
    if isinstance(cls, type) and "get_vocab_base_pre" in vars(cls):
        cls.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
import gguf  # noqa: E402

args = sys.argv[2:]
if "q4_0" in args:
    args[args.index("q4_0")] = "q8_0"
    Q8, Q4 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0
    quantize, add_tensor, add_file_type = gguf.quants.quantize, gguf.GGUFWriter.add_tensor, gguf.GGUFWriter.add_file_type
    shape_of = gguf.quant_shape_from_byte_shape
    gguf.quants.quantize = lambda data, qtype: quantize(data, Q4 if qtype == Q8 else qtype)
    gguf.quant_shape_from_byte_shape = lambda shape, qtype: shape_of(shape, Q4 if qtype == Q8 else qtype)
    gguf.GGUFWriter.add_tensor = lambda self, name, tensor, raw_shape=None, raw_dtype=None, **kw: add_tensor(
        self, name, tensor, raw_shape, Q4 if raw_dtype == Q8 else raw_dtype, **kw
    )
    gguf.GGUFWriter.add_file_type = lambda self, ftype: add_file_type(self, gguf.LlamaFileType.MOSTLY_Q4_0)
sys.argv = [str(source / "convert_hf_to_gguf.py"), *args]
runpy.run_path(sys.argv[0], run_name="__main__")
