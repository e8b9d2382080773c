"""A GGUF requantized (python requant.py IN.gguf OUT.gguf q8_0|q4_0, with gguf-py on PYTHONPATH) to Q8_0 / Q4_0 (llama-quantize's choice: a tied token_embd whose rows are not a multiple of 256 stays Q8_0)."""

import sys

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter

src, out, kind = sys.argv[1], sys.argv[2], sys.argv[3]
r = GGUFReader(src)
arch = r.fields["general.architecture"]
arch = bytes(arch.parts[arch.data[0]]).decode()
w = GGUFWriter(out, arch)
for name, f in r.fields.items():
    if name.startswith("GGUF.") or name == "general.architecture":
        continue
    t = f.types[0]
    if name == "general.file_type":
        w.add_uint32(name, 7 if kind == "q8_0" else 2)
        continue
    if t == gguf.GGUFValueType.ARRAY:
        st = f.types[1]
        if st == gguf.GGUFValueType.STRING:
            w.add_array(name, [bytes(f.parts[i]).decode("utf-8", "surrogateescape") for i in f.data])
        else:
            w.add_array(name, [f.parts[i][0].item() for i in f.data])
    elif t == gguf.GGUFValueType.STRING:
        w.add_key_value(name, bytes(f.parts[f.data[0]]).decode(), t)
    else:
        w.add_key_value(name, f.parts[f.data[0]][0].item(), t)
names = [t.name for t in r.tensors]
for t in r.tensors:
    data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    shape = data.shape
    if data.ndim < 2 or t.tensor_type == Q.F32:
        w.add_tensor(t.name, data)
        continue
    qt = Q.Q8_0 if kind == "q8_0" else Q.Q4_0
    if t.name == "output.weight" or (t.name == "token_embd.weight" and "output.weight" not in names):
        if kind == "q4_0":
            qt = Q.Q8_0
    w.add_tensor(t.name, gguf.quants.quantize(data, qt), raw_dtype=qt)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print("wrote", out)
