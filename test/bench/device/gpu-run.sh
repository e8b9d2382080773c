#!/usr/bin/env bash
# The GPU benchmarks of docs/benchmarks.md, as run on the lent H100 through the device tool after
# test/bench/device/pack.sh (carry .devnode and .gl). One part per call keeps each under its time limit:
#   bash test/bench/device/gpu-run.sh finetune   # llmkit finetune --lora vs Trainer + PEFT (issue 3)
#   bash test/bench/device/gpu-run.sh quantize   # pretrain the 100m model on the GPU, quantize on this CPU (issue 4)
#   bash test/bench/device/gpu-run.sh engine     # greedy decode on WebGPU vs CPU through the engine (issue 5)
#   bash test/bench/device/gpu-run.sh engine-qwen  # the same on a Qwen2.5-0.5B-shaped model: logits at every position vs the last; fp16
#   bash test/bench/device/gpu-run.sh serve      # the demo there, then llmkit serve --device webgpu vs cpu on its models
#   bash test/bench/device/gpu-run.sh multigpu   # finetune --gpus 1 / 2 / 2 --fsdp, LoRA and full (issue 9; nvidia-h200-x2)
# Results land in $OUT (the device tool's return folder) or ./gpu-results.
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
source test/bench/device/with-node.sh

case ${1:-} in
  finetune)
    LLMKIT_CLI="$cli" STEPS=${STEPS:-40} bash test/bench/finetune-gpu.sh /tmp/finetune-bench 2>&1 | tee "$out/finetune-gpu.txt"
    cp /tmp/finetune-bench/*.json "$out/" 2>/dev/null ;;
  quantize)
    LLMKIT_CLI="$cli" OUT=/tmp/bench-quantize STEPS=${STEPS:-1500} bash test/bench/quantize-100m.sh 2>&1 | tee "$out/quantize-100m.txt"
    cp /tmp/bench-quantize/int8/quantize-report.json "$out/quantize-int8.json"
    cp /tmp/bench-quantize/int4/quantize-report.json "$out/quantize-int4.json" ;;
  engine)
    model=/tmp/bench-quantize/fp32
    [ -f $model/llmkit.json ] || { $cli make-model --preset 100m --out /tmp/random-100m && $cli export /tmp/random-100m --out $model; }
    node .devpack/engine-gpu.mjs $model --devices cpu,webgpu 2>&1 | tee "$out/engine-gpu.txt" ;;
  engine-qwen)
    source test/bench/device/qwen-shape.sh; model=$qwen
    [ -f $model-onnx/llmkit.json ] || $cli export $model --out $model-onnx
    [ -f $model-fp16/llmkit.json ] || $cli export $model --fp16 --out $model-fp16
    { for logits in all last; do node .devpack/engine-gpu.mjs $model-onnx --devices cpu,webgpu --tokens ${TOKENS:-32} --logits $logits; done
      node .devpack/engine-gpu.mjs $model-fp16 --devices cpu,webgpu --tokens ${TOKENS:-32}; } 2>&1 | tee "$out/engine-qwen.txt" ;;
  serve)
    $cli demo --work-dir /tmp/demo > "$out/demo.txt" 2>&1
    [ -f /tmp/demo-fp32/llmkit.json ] || $cli export /tmp/demo/finetune/merged --out /tmp/demo-fp32
    bash test/bench/device/serve-check.sh /tmp/demo-fp32 /tmp/demo/tiny-int8 2>&1 | tee "$out/serve-check.txt" ;;
  multigpu)
    LLMKIT_CLI="$cli" bash test/bench/finetune-multigpu.sh /tmp/multigpu-bench 2>&1 | tee "$out/multigpu.txt"
    cp /tmp/multigpu-bench/*.json /tmp/multigpu-bench/*.log "$out/" 2>/dev/null ;;
  *) echo "usage: gpu-run.sh finetune|quantize|engine|engine-qwen|serve|multigpu" >&2; exit 2 ;;
esac
