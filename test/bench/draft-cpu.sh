#!/usr/bin/env bash
# A distilled draft for SmolLM2-135M-Instruct made and measured on the CPU (issue 28: >= 1.5x batch-1 decode at 2
# threads, same output), in steps that each can be rerun (docs/benchmarks.md, "Speculative decoding"):
#   data     draft-data.js: instructions over WikiText-2 paragraphs, $TRAIN for training, 8 held out
#   answers  the teacher's greedy answers through llmkit's own engine (draft-answers.js; PyTorch generate was far
#            slower on this machine), each row written as it comes, so a run stopped early keeps what it made
#   distill  `llmkit distill --for-draft --draft-vocab $VOCAB --alpha 0`: a student of 4 of the 30 layers, fine-tuned
#            on those answers (sequence-level distillation; the teacher does not run again), its output layer kept
#            to the $VOCAB tokens most frequent in them; then exported
#   bench    what a draft token costs against a target step (draft-cost.js), then the draft against plain decoding
#            on the held-out prompts (speculative.js) with the output layer cut to each of $VOCABS tokens
#   agreement how often the draft's greedy token is the teacher's on the teacher's answers to the held-out prompts
#            (draft-agreement.py): the acceptance speculative.js will measure, in a minute (docs/benchmarks.md)
#   bash test/bench/draft-cpu.sh data|answers|distill|bench|agreement  WORK  TARGET_ONNX  TEACHER_HF
# Env: TRAIN (384), NEW (96, answer tokens), STEPS (60), VOCAB (8192), VOCABS ("8192 4096 full"), ROUNDS (2).
set -euo pipefail
step=$1 work=$2 target=$3 teacher=${4:-}
cli="node bin/llmkit.js"
mkdir -p "$work"
case $step in
  data) node test/bench/draft-data.js "$work" --train "${TRAIN:-384}" --held-out 8 ;;
  answers) node test/bench/draft-answers.js --model "$target" --data "$work/train.jsonl" --out "$work/answered.jsonl" --new "${NEW:-96}" --threads 2 ;;
  distill)
    $cli --json distill --teacher "$teacher" --for-draft --draft-vocab "${VOCAB:-8192}" --alpha 0 --data "$work/answered.jsonl" \
      --max-steps "${STEPS:-60}" --batch-size 8 --lr 5e-4 --warmup-ratio 0.05 --max-seq-len 384 --exact-match 0 --no-report \
      --out "$work/draft" > "$work/distill.json"
    $cli export "$work/draft/model" --out "$work/draft-onnx" > /dev/null
    grep -o '"coverage": [0-9.]*' "$work/draft-onnx/draft-vocab.json" ;;
  bench)
    node test/bench/draft-cost.js --model "$target" --draft "$work/draft-onnx" --rounds 4 --threads 2
    for n in ${VOCABS:-8192 4096 full}; do
      # The ranked list's first n tokens (draft-vocab.json is most frequent first); `full`: no list, every token.
      dir=$work/draft-onnx-$n && rm -rf "$dir" && mkdir "$dir"
      for f in "$work"/draft-onnx/*; do [ "${f##*/}" = draft-vocab.json ] || ln -s "$f" "$dir/"; done
      [ "$n" = full ] || node -e "const fs = require('fs'); const d = JSON.parse(fs.readFileSync('$work/draft-onnx/draft-vocab.json')); fs.writeFileSync('$dir/draft-vocab.json', JSON.stringify({ ...d, ids: d.ids.slice(0, $n) }))"
      echo "== draft output layer: $n tokens"
      node test/bench/speculative.js --model "$target" --draft "$dir" --threads 2 --rounds "${ROUNDS:-2}" --new 128 --prompts "$work/prompts.json"
    done ;;
  agreement)
    node test/bench/draft-answers.js --model "$target" --data "$work/held-out.jsonl" --out "$work/held-out-answered.jsonl" --new 128 --threads 2
    python=${LLMKIT_PYTHON:-$($cli env --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).python.python))')}
    PYTHONPATH=src/workers/python "$python" test/bench/draft-agreement.py "$work/draft/model" "$work/held-out-answered.jsonl" "$work/draft-onnx/draft-vocab.json" ;;
  *) echo "usage: draft-cpu.sh data|answers|distill|bench|agreement WORK TARGET_ONNX [TEACHER_HF]"; exit 2 ;;
esac
