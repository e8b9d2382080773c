#!/usr/bin/env bash
# The serving benchmark of docs/benchmarks.md ("Serving (CPU)"): llmkit's 100m preset (~90M
# parameters, random weights: throughput does not care what the weights say), exported to ONNX, then
# `llmkit bench` (bare engine loop, transformers.js on the same folder, the server at concurrency
# 1, 4, 8, 16; 8 rounds). Extra arguments go to `llmkit bench` and override those:
#
#   test/bench/serve-100m.sh                         # what `npm run bench` runs
#   test/bench/serve-100m.sh --concurrency 1,8 --max-tokens 128
#   npm run bench -- --device cuda                   # the --gqa export on the fixed-cache decode path
#
# Outputs in $OUT (default runs/bench-serve): the model folders and bench.txt (the printed report).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
OUT=${OUT:-runs/bench-serve}
LLMKIT=${LLMKIT:-node bin/llmkit.js}
npm run build --silent
mkdir -p "$OUT"
[ -f "$OUT/m100/config.json" ] || $LLMKIT make-model --preset 100m --out "$OUT/m100"
# Exported again whenever the exporter changed since: the engine reads what the current one writes.
# On CUDA, the --gqa export: the engine's fixed-cache decode path (KV cache in place, a CUDA graph per bucket) takes it.
folder=m100-onnx; export_flags=()
if [[ " $* " == *" --device cuda "* ]]; then folder=m100-gqa; export_flags=(--gqa); fi
if [ src/workers/python/llmkit_worker/export_onnx.py -nt "$OUT/$folder/llmkit.json" ]; then
  $LLMKIT export "$OUT/m100" --out "$OUT/$folder" "${export_flags[@]}"
fi
# 8 rounds: ratios between levels move by several percent from run to run on a small shared machine with 4.
$LLMKIT bench "$OUT/$folder" --rounds 8 "$@" | tee "$OUT/bench.txt"
