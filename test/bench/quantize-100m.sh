#!/usr/bin/env bash
# The quantization benchmark of docs/benchmarks.md: a model of llmkit's tiny family (the 100m preset,
# tokenizer trained on Tiny Shakespeare) pretrained on Tiny Shakespeare, then exported and quantized
# to int8 and to int4, each measured against fp32 on the held-out tenth of the text.
#
#   test/bench/quantize-100m.sh                 # make, pretrain (STEPS), export, quantize
#   test/bench/quantize-100m.sh ./trained-100m  # export + quantize an already pretrained folder
#   PRESET=small STEPS=800 PRETRAIN_ARGS="--seq-len 128 --batch-size 16 --lr 2e-3 --eval-every 200 --threads 1" \
#     test/bench/quantize-100m.sh               # the CPU-sized run of docs/benchmarks.md
#
# Pretraining is test/bench/pretrain_tiny_family.py (its output folder holds heldout.txt, the eval
# text): minutes on a GPU, far too long for the 100m preset on a 2-core CPU. Outputs go to $OUT
# (default runs/bench-quantize-$PRESET): int8/ and int4/ with quantize-report.json, and int8.txt,
# int4.txt with the printed tables. LLMKIT_CLI replaces `node bin/llmkit.js` (e.g. `node
# .devpack/llmkit.js` from test/bench/device/pack.sh), LLMKIT_PYTHON the interpreter that pretrains
# (default: the worker environment's), DATA the text (default ../shared/data/tinyshakespeare.txt).
# QUANTIZE_ARGS are added to both quantize commands (e.g. "--threads 2").
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PRESET=${PRESET:-100m}
STEPS=${STEPS:-1000}
OUT=${OUT:-runs/bench-quantize-$PRESET}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
if [ -z "${LLMKIT_CLI:-}" ]; then npm run build --silent; fi
read -r -a cli <<< "${LLMKIT_CLI:-node bin/llmkit.js}"
mkdir -p "$OUT"

if [ $# -ge 1 ]; then
  trained=$1
else
  trained=$OUT/trained
  "${cli[@]}" make-model --preset "$PRESET" --corpus "$DATA" --out "$OUT/random"
  python=${LLMKIT_PYTHON:-$("${cli[@]}" env --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).python.python))')}
  # shellcheck disable=SC2086 # PRETRAIN_ARGS is a list of flags
  "$python" test/bench/pretrain_tiny_family.py "$OUT/random" "$DATA" "$STEPS" "$trained" ${PRETRAIN_ARGS:-} | tee "$OUT/pretrain.txt"
fi

"${cli[@]}" export "$trained" --out "$OUT/fp32"
for precision in int8 int4; do
  # shellcheck disable=SC2086 # QUANTIZE_ARGS is a list of flags
  "${cli[@]}" quantize "$OUT/fp32" --$precision --eval-data "$trained/heldout.txt" --eval-tokens 16384 \
    --out "$OUT/$precision" ${QUANTIZE_ARGS:-} | tee "$OUT/$precision.txt"
done
