#!/usr/bin/env bash
# The peer benchmark of docs/benchmarks.md (`npm run bench:peers`): llmkit's CPU engine against
# onnxruntime-genai and llama.cpp on the same weights (llmkit's 100m preset, random weights), at fp32,
# int8 and int4. Installs the peers in a scratch folder, cached, outside the project's dependencies
# ($LLMKIT_PEERS, default ~/.cache/llmkit/peers):
#   - onnxruntime-genai (PyPI) in a venv that also sees the worker venv's packages (torch, transformers),
#     whose model builder writes its graphs (its --help crashes; options read from builder.py);
#   - node-llama-cpp 3.21.1 (npm, prebuilt CPU binaries) and the llama.cpp source it bundles
#     (llama/gitRelease.bundle), whose convert_hf_to_gguf.py writes F32 / Q8_0 / Q4_0 GGUF files
#     (test/bench/peers/convert_gguf.py says how).
# Then test/bench/peers.js runs the interleaved rounds. Extra arguments go to peers.js:
#   test/bench/peers.sh --rounds 8 --threads 2 --llama-threads 1
#   LLAMA=0 test/bench/peers.sh --only 'llmkit --gqa,llmkit --fused,onnxruntime-genai' --reference 'llmkit --gqa'
# Outputs in $OUT (default runs/bench-peers): the model folders and peers.txt (the printed report).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
OUT=${OUT:-runs/bench-peers}
PEERS=${LLMKIT_PEERS:-$HOME/.cache/llmkit/peers}
LLMKIT=${LLMKIT:-node bin/llmkit.js}
THREADS=${THREADS:-2}
npm run build --silent
mkdir -p "$OUT" "$PEERS"
WORKER_PY=$(node -e "import('./dist/workers/python-env.js').then(async (m) => console.log((await m.requirePythonEnv()).python))")

if [ ! -f "$PEERS/genai-venv/.ready" ]; then
  python3 -m venv "$PEERS/genai-venv"
  site=$("$PEERS/genai-venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')
  "$WORKER_PY" -c 'import site; print(site.getsitepackages()[0])' > "$site/llmkit-worker.pth"
  "$PEERS/genai-venv/bin/python" -m pip install -q onnxruntime-genai==0.18.0 sentencepiece
  touch "$PEERS/genai-venv/.ready"
fi
# LLAMA=0: no llama.cpp (its set-up and GGUF files are the slow part); peers.js then leaves it out.
if [ "${LLAMA:-1}" = 1 ] && [ ! -f "$PEERS/llama/node_modules/node-llama-cpp/package.json" ]; then
  mkdir -p "$PEERS/llama"
  (cd "$PEERS/llama" && echo '{"private":true}' > package.json && npm install --no-audit --no-fund node-llama-cpp@3.21.1)
fi
[ "${LLAMA:-1}" = 0 ] || [ -d "$PEERS/llama.cpp" ] || git clone -q "$PEERS/llama/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$PEERS/llama.cpp"

[ -f "$OUT/m100/config.json" ] || $LLMKIT make-model --preset 100m --out "$OUT/m100"
# Models are remade whenever the exporter or the quantizer changed since.
for graph in "" fused gqa; do
  dir="$OUT/llmkit-${graph:+$graph-}fp32"
  if [ ! -f "$dir/llmkit.json" ] || [ src/workers/python/llmkit_worker/export_onnx.py -nt "$dir/llmkit.json" ] || [ src/workers/python/llmkit_worker/fuse_graph.py -nt "$dir/llmkit.json" ]; then
    $LLMKIT export "$OUT/m100" --out "$dir" ${graph:+--$graph}
  fi
  for bits in 8 4; do
    q="${dir%fp32}int$bits"
    if [ ! -f "$q/llmkit.json" ] || [ "$dir/llmkit.json" -nt "$q/llmkit.json" ] || [ src/workers/python/llmkit_worker/quantize.py -nt "$q/llmkit.json" ] ||
      [ src/core/quantize/options.ts -nt "$q/llmkit.json" ]; then
      # What `llmkit quantize --intN` makes, with its own defaults (block size, scales, output-layer bits): the
      # model a user serves. Its accuracy report is kept short: random weights make it moot.
      rm -rf "$q"
      $LLMKIT quantize "$dir" --int$bits --no-speed --eval-tokens 256 --out "$q" > "$OUT/quantize-$(basename "$q").log" 2>&1
    fi
  done
done
for precision in fp32 int8 int4; do
  dir="$OUT/genai-$precision"
  if [ ! -f "$dir/genai_config.json" ]; then
    "$PEERS/genai-venv/bin/python" -m onnxruntime_genai.models.builder -i "$OUT/m100" -o "$dir" -p $precision -e cpu -c "$OUT/genai-cache" > "$OUT/genai-$precision.log" 2>&1
  fi
  # The same intra-op threads as llmkit's sessions.
  "$PEERS/genai-venv/bin/python" - "$dir/genai_config.json" "$THREADS" <<'PY'
import json, sys
path, threads = sys.argv[1], int(sys.argv[2])
config = json.load(open(path))
config["model"]["decoder"]["session_options"].update(intra_op_num_threads=threads, inter_op_num_threads=1)
json.dump(config, open(path, "w"), indent=2)
PY
done
for type in f32 q8_0 q4_0; do
  [ "${LLAMA:-1}" = 0 ] || [ -f "$OUT/$type.gguf" ] || "$PEERS/genai-venv/bin/python" test/bench/peers/convert_gguf.py "$PEERS/llama.cpp" "$OUT/m100" \
    --outtype $type --outfile "$OUT/$type.gguf" > "$OUT/gguf-$type.log" 2>&1
done

node test/bench/peers.js --models "$OUT" --scratch "$PEERS" --threads "$THREADS" "$@" | tee "$OUT/peers.txt"
