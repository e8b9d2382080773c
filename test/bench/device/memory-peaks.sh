#!/usr/bin/env bash
# inspect --for's training estimates against CUDA peaks (torch.cuda.max_memory_allocated) on the lent GPU: the rows of
# test/bench/memory-estimates.js (tiny and 100m-shaped models made there from a fixed seed, no network) run with
# --device cuda. After test/bench/device/pack.sh, one device call (carry .devnode), about 5 minutes:
#   bash test/bench/device/memory-peaks.sh
# Prints the table for docs/inspect.md; it also lands in $OUT/memory-peaks.txt.
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
source test/bench/device/with-node.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/memory-peaks.txt"
# The estimate's `workspace` part: cuBLAS workspaces from torch's caching allocator, one per thread that runs a
# matmul (the forward's, autograd's backward thread). Allocated after one small matmul each way, less its tensors.
"$LLMKIT_PYTHON" - <<'PY' 2>&1 | tee -a "$out/memory-peaks.txt"
import torch
x = torch.randn(256, 256, device="cuda", requires_grad=True)
(x @ x).sum().backward()
torch.cuda.synchronize()
tensors = 2 * x.numel() * x.element_size()
print(f"cuBLAS workspaces (forward + backward thread): {(torch.cuda.memory_allocated() - tensors) / 2**20:.1f} MiB")
PY
LLMKIT_CLI="$cli" node test/bench/memory-estimates.js --cuda 2>&1 | tee -a "$out/memory-peaks.txt"
