#!/usr/bin/env bash
# The CUDA figures of docs/benchmarks.md ("Engine on CUDA"), on the lent H200 through the device tool.
# ONNX Runtime's CUDA provider (../shared/tools/device-cuda-provider -> .devcuda, ~50 MB) and Node
# (test/bench/device/pack.sh -> .devnode, ~38 MB) do not fit one call's 64 MiB, so the work is split
# into calls made back to back while the machine stays warm (files under /tmp stay while it is held):
#   bash test/bench/device/cuda-run.sh prep     # carry .devcuda: provider to /tmp/devcuda; Qwen2.5-0.5B-shaped
#                                               # model, its exports (fp32; fused fp32 and fp16), Hugging Face generate on it
#   bash test/bench/device/cuda-run.sh engine   # carry .devnode: llmkit env --setup --cuda --cuda-from /tmp/devcuda,
#                                               # CUDA vs CPU greedy parity and speed, fused and fp16 agreement, profiled steps
#   bash test/bench/device/cuda-run.sh serve    # carry .devnode: int8/int4 on CUDA, llmkit demo, serve --device cuda
#                                               # answering the openai client, llmkit bench's concurrency table
#   bash test/bench/device/cuda-run.sh versus   # carry .devnode, after prep: HF generate and the fused exports in
#                                               # interleaved rounds (ratios per round); int4 CUDA vs CPU; bench on 100m
#   bash test/bench/device/cuda-run.sh gqa      # carry .devnode, after `GQA=1 FUSED_ONLY=1 ... prep`: HF generate, fused fp16
#                                               # and --gqa fp16 in interleaved rounds; their greedy agreement
# Results land in $OUT (the device tool's return folder) or ./gpu-results.
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out" /tmp/prof
export PYTHONUNBUFFERED=1
source test/bench/device/qwen-shape.sh
export_with_worker() { # the export job on python3 alone (Node arrives with the next call)
  [ -f "$2/llmkit.json" ] || echo "{\"model\": \"$qwen\", \"out\": \"$2\", \"dtype\": \"$1\", \"fused\": ${3:-false}, \"gqa\": ${4:-false}}" |
    PYTHONPATH=src/workers/python python3 -m llmkit_worker export_onnx | grep -E '"(result|error)"'
}
# The bench scripts run node directly, not through bin/llmkit.js, so they get the recorded folders here.
cuda_loader_path() { node -p "require('$LLMKIT_HOME/cuda/provider.json').libraryDirs.join(':')"; }

case ${1:-} in
  prep)
    mkdir -p /tmp/devcuda
    xz -dc .devcuda/libonnxruntime_providers_cuda.so.xz > /tmp/devcuda/libonnxruntime_providers_cuda.so
    cp .devcuda/libonnxruntime_providers_{shared,tensorrt}.so /tmp/devcuda/
    { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
      # FUSED_ONLY=1: just what `versus` needs
      [ -n "${FUSED_ONLY:-}" ] || { python3 test/bench/hf-generate.py $qwen --dtype bfloat16; export_with_worker fp32 $qwen-onnx; }
      export_with_worker fp32 $qwen-fused true
      export_with_worker fp16 $qwen-fused16 true
      [ -z "${GQA:-}" ] || export_with_worker fp16 $qwen-gqa16 true true; } 2>&1 | tee "$out/prep.txt" ;;
  engine)
    source test/bench/device/with-node.sh
    [ -f /tmp/devcuda/libonnxruntime_providers_cuda.so ] || { echo "run 'prep' first, in a call just before this one"; exit 3; }
    { $cli env --setup --python python3 --cuda --cuda-from /tmp/devcuda && $cli env
      export LD_LIBRARY_PATH=$(cuda_loader_path)
      node .devpack/engine-gpu.mjs $qwen-onnx --devices cpu,cuda --tokens 64 | tee /tmp/fp32.txt
      for m in fused fused16; do
        node .devpack/engine-gpu.mjs $qwen-$m --devices cuda --tokens 64 | tee /tmp/$m.txt
        node test/bench/device/agreement.js /tmp/fp32.txt cuda /tmp/$m.txt cuda
      done
      for m in onnx fused fused16; do
        for b in 1 8; do node .devpack/engine-profile.mjs $qwen-$m --device cuda --batch $b --past 256 --runs 30 --profile /tmp/prof | head -14; done
      done
    } 2>&1 | tee "$out/engine.txt" ;;
  serve)
    source test/bench/device/with-node.sh
    [ -f "$LLMKIT_HOME/cuda/provider.json" ] || { echo "run 'prep' and 'engine' first, in calls just before this one"; exit 3; }
    { for bits in int8 int4; do
        [ -f $qwen-$bits/llmkit.json ] || $cli quantize $qwen-fused --$bits --out $qwen-$bits --eval-tokens 512 2>&1 | tail -2
        LD_LIBRARY_PATH=$(cuda_loader_path) node .devpack/engine-gpu.mjs $qwen-$bits --devices cuda --tokens 64 | tee /tmp/$bits.txt
        node test/bench/device/agreement.js /tmp/fp32.txt cuda /tmp/$bits.txt cuda
      done
      $cli demo --work-dir /tmp/demo --device cuda
      [ -f /tmp/demo-fp32/llmkit.json ] || $cli export /tmp/demo/finetune/merged --out /tmp/demo-fp32
      DEVICES="cpu cuda" bash test/bench/device/serve-check.sh /tmp/demo-fp32 /tmp/demo/tiny-int8
      $cli bench $qwen-fused16 --device cuda --rounds 2
    } 2>&1 | tee "$out/serve.txt" ;;
  versus)
    source test/bench/device/with-node.sh
    [ -f /tmp/devcuda/libonnxruntime_providers_cuda.so ] || { echo "run 'prep' first, in a call just before this one"; exit 3; }
    { $cli env --setup --python python3 --cuda --cuda-from /tmp/devcuda >/dev/null && export LD_LIBRARY_PATH=$(cuda_loader_path)
      rm -f /tmp/*.jsonl
      for round in 1 2 3; do
        python3 test/bench/hf-generate.py $qwen --dtype bfloat16 | tail -1 >> /tmp/hf.jsonl
        for m in fused fused16; do node .devpack/engine-gpu.mjs $qwen-$m --devices cuda --tokens 64 | tail -1 >> /tmp/$m.jsonl; done
      done
      node test/bench/device/versus.js /tmp/hf.jsonl fused-fp32=/tmp/fused.jsonl fused-fp16=/tmp/fused16.jsonl
      $cli quantize $qwen-fused --int4 --out $qwen-int4 --eval-tokens 512 | tail -4
      node .devpack/engine-gpu.mjs $qwen-int4 --devices cpu,cuda --tokens 32 | grep -v '^\['
      $cli make-model --preset 100m --out /tmp/random-100m >/dev/null && $cli export /tmp/random-100m --fused --fp16 --out /tmp/100m-gpu >/dev/null
      $cli bench /tmp/100m-gpu --device cuda --rounds 2
    } 2>&1 | tee "$out/versus.txt" ;;
  gqa)
    source test/bench/device/with-node.sh
    [ -f $qwen-gqa16/llmkit.json ] || { echo "run 'GQA=1 FUSED_ONLY=1 cuda-run.sh prep' first, in a call just before this one"; exit 3; }
    { $cli env --setup --python python3 --cuda --cuda-from /tmp/devcuda >/dev/null && export LD_LIBRARY_PATH=$(cuda_loader_path)
      rm -f /tmp/*.jsonl
      for round in 1 2 3; do
        python3 test/bench/hf-generate.py $qwen --dtype bfloat16 | tail -1 >> /tmp/hf.jsonl
        for m in fused16 gqa16; do node .devpack/engine-gpu.mjs $qwen-$m --devices cuda --tokens 64 | tee /tmp/$m.txt | tail -1 >> /tmp/$m.jsonl; done
      done
      node test/bench/device/versus.js /tmp/hf.jsonl fused-fp16=/tmp/fused16.jsonl gqa-fp16=/tmp/gqa16.jsonl
      node test/bench/device/agreement.js /tmp/fused16.txt cuda /tmp/gqa16.txt cuda
      for m in fused16 gqa16; do
        for b in 1 8; do node .devpack/engine-profile.mjs $qwen-$m --device cuda --batch $b --past 256 --runs 30 --profile /tmp/prof | head -14; done
      done
    } 2>&1 | tee "$out/gqa.txt" ;;
  *) echo "usage: cuda-run.sh prep|engine|serve|versus|gqa" >&2; exit 2 ;;
esac
