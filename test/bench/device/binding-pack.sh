#!/usr/bin/env bash
# Packs the four carries of test/bench/device/binding-run.sh into DIR (an ignored folder of the checkout the
# device tool sends): cuda130 and cuda131 (ONNX Runtime 1.30's and 1.31.1's CUDA providers, sm_90 code only,
# ../shared/tools/device-cuda-provider), whl (onnxruntime-genai-cuda 0.18.0 and onnxruntime-gpu 1.31.1 for the
# device's Python 3.12, its CUDA provider left out: cuda131 brings the pruned one), node (Node, the CLI bundle of
# test/bench/device/pack.sh, and dist/ with the native addon).
#   usage, in this checkout after `npm run build`: bash test/bench/device/binding-pack.sh DIR
set -euo pipefail
dir=$(realpath -m "$1"); root=$(pwd); mkdir -p "$dir"/{cuda130,cuda131,whl,node}
provider() { # VERSION FOLDER: the tool packs into ./.devcuda of a git checkout
  local tmp; tmp=$(mktemp -d); (cd "$tmp" && git init -q && cp "$root/package.json" . && bash "$root/../shared/tools/device-cuda-provider" "$1" >/dev/null && mv .devcuda/* "$2/")
  rm -rf "$tmp"
}
[ -s "$dir/cuda130/libonnxruntime_providers_cuda.so.xz" ] || provider 1.30.0 "$dir/cuda130"
[ -s "$dir/cuda131/libonnxruntime_providers_cuda.so.xz" ] || provider 1.31.1 "$dir/cuda131"
if ! ls "$dir"/whl/onnxruntime_gpu-*.whl >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 -d "$tmp" onnxruntime-genai-cuda==0.18.0 onnxruntime-gpu==1.31.1
  mv "$tmp"/onnxruntime_genai*.whl "$dir/whl/"
  # The wheel without its providers (the CUDA one alone is 272 MB); binding-run.sh genai puts cuda131's beside its core.
  (cd "$tmp" && mkdir x && cd x && unzip -q ../onnxruntime_gpu-*.whl && rm -f onnxruntime/capi/libonnxruntime_providers_{cuda,tensorrt}.so &&
    zip -q -r -9 "$dir/whl/$(basename ../onnxruntime_gpu-*.whl)" .)
  rm -rf "$tmp"
fi
bash test/bench/device/pack.sh >/dev/null
cp .devnode/node.xz .devnode/devpack.tar.xz "$dir/node/"
tar -cJf "$dir/node/dist.tar.xz" dist
du -sh "$dir"/*
