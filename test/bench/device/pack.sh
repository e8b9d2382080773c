#!/usr/bin/env bash
# Packs what a GPU device call needs to run the llmkit CLI there (the GPU machine has Python and
# PyTorch but no Node and no network): one esbuild bundle of the CLI, onnxruntime-node's linux/x64
# files, and Node itself (../shared/tools/device-node). All go in ignored folders that the call
# carries: .devnode (node.xz, devpack.tar.xz) and .gl (the Vulkan loader; see docs/benchmarks.md).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exclude=$(git rev-parse --git-path info/exclude)
for d in .devpack .devnode .gl .whl; do grep -qx "/$d/" "$exclude" 2>/dev/null || echo "/$d/" >> "$exclude"; done
npx tsc -p .
rm -rf .devpack && mkdir -p .devpack/node_modules/onnxruntime-node/bin/napi-v6/linux
# bin/llmkit.js itself, so that the CLI restarts with the CUDA libraries on the loader path there as it does here.
npx --yes esbuild@0.25 bin/llmkit.js --bundle --platform=node --format=esm --outfile=.devpack/llmkit.js \
  --external:onnxruntime-node --external:onnxruntime-web --external:sharp --external:react-devtools-core --log-level=warning \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
for script in engine-gpu engine-profile speculative multi-lora device/engine-vs-loop; do
  npx --yes esbuild@0.25 test/bench/$script.js --bundle --platform=node --format=esm --outfile=.devpack/$(basename $script).mjs \
    --external:onnxruntime-node --external:onnxruntime-web --external:sharp --external:react-devtools-core --log-level=warning \
    --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
done
ort=node_modules/onnxruntime-node
cp -r $ort/package.json $ort/dist .devpack/node_modules/onnxruntime-node/
cp -r $ort/bin/napi-v6/linux/x64 .devpack/node_modules/onnxruntime-node/bin/napi-v6/linux/
cp -r node_modules/onnxruntime-common .devpack/node_modules/
# ink imports its optional devtools hook statically; the device runs no TUI, so an empty module does.
# Likewise transformers.js imports sharp (images) and onnxruntime-web (browsers), which llmkit never calls.
for stub in react-devtools-core sharp onnxruntime-web; do
  mkdir -p .devpack/node_modules/$stub
  echo "{\"name\":\"$stub\",\"type\":\"module\",\"main\":\"index.js\"}" > .devpack/node_modules/$stub/package.json
  echo 'export default {}; export const env = {}; export const InferenceSession = {}; export const Tensor = class {};' > .devpack/node_modules/$stub/index.js
done
# Uncompressed, onnxruntime's libraries alone pass the 64 MiB a call may carry.
mkdir -p .devnode
tar -cJf .devnode/devpack.tar.xz .devpack
[ -s .devnode/node.xz ] || bash ../shared/tools/device-node
cp ../shared/data/tinyshakespeare.txt .devnode/
du -sh .devnode/*
