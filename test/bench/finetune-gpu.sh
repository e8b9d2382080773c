#!/usr/bin/env bash
# GPU benchmark of `llmkit finetune --lora` against a plain Hugging Face Trainer + PEFT run, in one call:
# the same randomly initialised Qwen2.5-0.5B-shaped model (Qwen2ForCausalLM, hidden 896, 24 layers, 14 heads,
# 2 KV heads, vocab 151936, saved in bf16), the same data, LoRA r 16 / alpha 32 / dropout 0.05 on
# q/k/v/o/gate/up/down, batch 8, 512-token sequences, the same number of steps.
#
# Run from the repository root on a CUDA machine whose python3 has torch, transformers and peft, with Node on
# PATH and the CLI built (npm run build):
#
#   test/bench/finetune-gpu.sh [work-dir]       # default work dir: /tmp/llmkit-finetune-bench
#
# LLMKIT_PYTHON picks the interpreter (default python3); LLMKIT_CLI replaces `node bin/llmkit.js`, e.g. with
# `node .devpack/llmkit.js` from test/bench/device/pack.sh (docs/benchmarks.md has the whole device call).
# STEPS (default 40) sets the run length; both sides leave the first 5 steps out of tokens/s (llmkit's
# finetune.py TIMING_WARMUP_STEPS). ABLATIONS=1 adds llmkit runs without torch.compile and without packing.
# SHAPES (default "mixed long") picks the data sets, e.g. to split the run over two calls of a time-limited box.
# Two data sets: "mixed" (20..600 words an example, mostly shorter than 512 tokens, like instruction data)
# and "long" (every example fills the 512-token window, so padding and packing play no part).
# Prints a markdown table for docs/benchmarks.md; every JSON result and log stays in the work dir.
set -euo pipefail
work=${1:-/tmp/llmkit-finetune-bench}
export LLMKIT_PYTHON=${LLMKIT_PYTHON:-python3}
export LLMKIT_HOME=$work/home
read -r -a cli <<< "${LLMKIT_CLI:-node bin/llmkit.js}"
steps=${STEPS:-40}
mkdir -p "$work"

model=$work/qwen2-0.5b-shape
if [ ! -f "$model/model.safetensors" ]; then
  echo "making the model: $model"
  echo "{\"out\": \"$model\", \"seed\": 0, \"architecture\": \"qwen2\", \"dtype\": \"bfloat16\", \"hidden_size\": 896,
        \"intermediate_size\": 4864, \"num_hidden_layers\": 24, \"num_attention_heads\": 14, \"num_key_value_heads\": 2,
        \"max_position_embeddings\": 32768, \"model_vocab_size\": 151936}" \
    | PYTHONPATH=src/workers/python "$LLMKIT_PYTHON" -m llmkit_worker make_model > "$work/make_model.jsonl"
fi

run_llmkit() {  # name, data, extra flags...
  local name=$1 data=$2
  shift 2
  echo "llmkit finetune: $name"
  rm -rf "$work/runs/$name"
  "${cli[@]}" --json finetune "$model" --recipe recipes/qwen2/0.5b_lora_cuda.yaml --data "$data" --out "$work/runs/$name" \
    --max-steps "$steps" --batch-size 8 --max-seq-len 512 "$@" > "$work/$name.json" 2> "$work/$name.log"
}

read -r -a shapes <<< "${SHAPES:-mixed long}"
for shape in "${shapes[@]}"; do
  data=$work/$shape.jsonl
  case $shape in
    mixed) words=(--min-words 20 --max-words 600) ;;
    long) words=(--min-words 600 --max-words 600) ;;
  esac
  [ -f "$data" ] || "$LLMKIT_PYTHON" test/bench/make_bench_data.py --out "$data" --examples 3000 "${words[@]}"
  run_llmkit "llmkit-$shape" "$data"
  if [ "${ABLATIONS:-0}" = 1 ]; then
    run_llmkit "llmkit-$shape-no-compile" "$data" --no-compile
    run_llmkit "llmkit-$shape-no-packing" "$data" --no-packing
  fi
  echo "Trainer + PEFT: $shape"
  "$LLMKIT_PYTHON" test/bench/trainer_peft_baseline.py --model "$model" --data "$data" --steps "$steps" --warmup-steps 5 \
    --batch-size 8 --max-seq-len 512 --lora-r 16 --lora-alpha 32 --lora-dropout 0.05 > "$work/trainer-$shape.json" 2> "$work/trainer-$shape.log"
done

"$LLMKIT_PYTHON" - "$work" "${shapes[@]}" <<'EOF'
import glob, json, os, sys
import torch

work, shapes = sys.argv[1], sys.argv[2:]
def load(name):
    with open(os.path.join(work, name + ".json")) as f:
        r = json.loads(f.read().strip().splitlines()[-1])
    return (r["tokensPerSecond"], r["peakMemoryBytes"]) if "tokensPerSecond" in r else (r["tokens_per_s"], r["peak_memory_bytes"])

print(f"\nGPU: {torch.cuda.get_device_name()}, torch {torch.__version__}\n")
print("| data | run | tokens/s | peak GPU memory | tokens/s vs Trainer + PEFT |")
print("|---|---|---:|---:|---:|")
for shape in shapes:
    base, _ = load(f"trainer-{shape}")
    names = [f"trainer-{shape}", f"llmkit-{shape}"] + [n for n in (f"llmkit-{shape}-no-compile", f"llmkit-{shape}-no-packing")
                                                       if os.path.exists(os.path.join(work, n + ".json"))]
    for name in names:
        tps, peak = load(name)
        label = "Trainer + PEFT" if name.startswith("trainer") else "llmkit finetune" + name[len(f"llmkit-{shape}"):].replace("-", " ")
        print(f"| {shape} | {label} | {tps:,.0f} | {peak / 2**30:.2f} GiB | {tps / base:.2f}x |")
EOF
