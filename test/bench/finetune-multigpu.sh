#!/usr/bin/env bash
# Multi-GPU scaling of `llmkit finetune` (docs/benchmarks.md, "Multi-GPU fine-tuning"): the randomly initialised
# Qwen2.5-0.5B-shaped model of finetune-gpu.sh, bf16, 512-token windows, the same global batch (GLOBAL_BATCH,
# default 16 sequences a step) and steps, LoRA and full fine-tuning, each with --gpus 1, --gpus 2 (DDP) and
# --gpus 2 --fsdp. Prints global tokens/s, scaling efficiency (2-GPU tokens/s ÷ (2 × 1-GPU tokens/s)), peak memory
# per GPU and how far each loss curve strays from the 1-GPU one.
#
# Run from the repository root on a machine with 2 CUDA GPUs, with Node on PATH and the CLI built:
#
#   test/bench/finetune-multigpu.sh [work-dir]       # default work dir: /tmp/llmkit-multigpu-bench
#
# LLMKIT_CLI and LLMKIT_PYTHON as in finetune-gpu.sh; STEPS (default 40) per run, the first 5 left out of tokens/s.
# MODEL (a local model folder), PROCS (default --gpus) and EXTRA (more flags) let the script's logic be tried on a
# CPU: MODEL=<tiny model> PROCS=--nproc EXTRA="--device cpu --precision fp32" STEPS=8 GLOBAL_BATCH=4.
# torch.compile is off unless COMPILE=1, which compiles the 1-GPU and DDP runs (FSDP does not take it); each
# comparison needs the same flags on both sides, so a compiled table leaves FSDP out (RUNS="lora-1gpu lora-ddp ...").
set -euo pipefail
work=${1:-/tmp/llmkit-multigpu-bench}
export LLMKIT_PYTHON=${LLMKIT_PYTHON:-python3}
export LLMKIT_HOME=$work/home
# NVLink multicast stays off (the device machines' rule; it can take shared GPUs out of service).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
read -r -a cli <<< "${LLMKIT_CLI:-node bin/llmkit.js}"
steps=${STEPS:-40}
batch=${GLOBAL_BATCH:-16}
mkdir -p "$work"

model=${MODEL:-$work/qwen2-0.5b-shape}
procs=${PROCS:---gpus}
read -r -a more <<< "${EXTRA:-}"
if [ ! -f "$model/model.safetensors" ]; then
  echo "{\"out\": \"$model\", \"seed\": 0, \"architecture\": \"qwen2\", \"dtype\": \"bfloat16\", \"hidden_size\": 896,
        \"intermediate_size\": 4864, \"num_hidden_layers\": 24, \"num_attention_heads\": 14, \"num_key_value_heads\": 2,
        \"max_position_embeddings\": 32768, \"model_vocab_size\": 151936}" \
    | PYTHONPATH=src/workers/python "$LLMKIT_PYTHON" -m llmkit_worker make_model > "$work/make_model.jsonl"
fi
# Enough examples that no run reaches the end of an epoch: its short last batch is a new shape, which compiled
# runs stop to recompile for (seconds), and that stall would land in one run's tokens/s and not another's.
examples=$(( steps * batch > 2000 ? steps * batch : 2000 ))
data=$work/long-$examples.jsonl
[ -f "$data" ] || "$LLMKIT_PYTHON" test/bench/make_bench_data.py --out "$data" --examples "$examples" --min-words 600 --max-words 600

run() {  # name, flags...
  local name=$1
  shift
  echo "llmkit finetune: $name"
  rm -rf "$work/runs/$name"
  "${cli[@]}" --json finetune "$model" --recipe recipes/qwen2/0.5b_lora_cuda.yaml --data "$data" --out "$work/runs/$name" \
    --max-steps "$steps" --batch-size "$batch" --max-seq-len 512 "${more[@]}" "$@" \
    > "$work/$name.json" 2> "$work/$name.log" || { echo "  failed: $(tail -n 3 "$work/$name.log")"; return 0; }
  # As it goes, so that a run cut short by a time limit still shows what finished.
  "$LLMKIT_PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1])); print("  tokens/s", round(r["tokensPerSecond"]), "peak GiB",
    [round(p / 2**30, 2) for p in r["peakMemoryPerProcess"]], "loss", round(r["firstLoss"], 4), "->", round(r["lastLoss"], 4))' "$work/$name.json"
}

# RUNS picks and orders them (default: all six).
runs=${RUNS:-lora-1gpu lora-ddp lora-fsdp full-1gpu full-ddp full-fsdp}
for name in $runs; do
  extra=(--lora-dropout 0)
  [[ $name = full-* ]] && extra=(--no-lora --lr 1e-5)
  if [[ ${COMPILE:-0} = 1 && $name != *-fsdp ]]; then extra+=(--compile); else extra+=(--no-compile); fi
  case $name in
    *-1gpu) run "$name" "$procs" 1 "${extra[@]}" ;;
    *-ddp) run "$name" "$procs" 2 "${extra[@]}" ;;
    *-fsdp) run "$name" "$procs" 2 --fsdp "${extra[@]}" ;;
  esac
done

"$LLMKIT_PYTHON" - "$work" "$runs" <<'EOF'
import json, os, sys
import torch

work, runs = sys.argv[1], sys.argv[2].split()
def load(name):
    path = os.path.join(work, name + ".json")
    metrics = os.path.join(work, "runs", name, "metrics.jsonl")
    if not os.path.exists(metrics) or not open(path).read().strip():
        return None
    r = json.loads(open(path).read().strip().splitlines()[-1])
    if "tokensPerSecond" not in r:
        return None
    with open(metrics) as f:
        r["curve"] = [m["loss"] for m in map(json.loads, f) if "loss" in m]
    return r

gpus = f"{torch.cuda.device_count()} × {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "none"
print(f"\nGPUs: {gpus}, torch {torch.__version__}\n")
print("| method | run | global tokens/s | scaling efficiency | peak memory per GPU | loss first → last | max loss diff vs 1 GPU |")
print("|---|---|---:|---:|---:|---|---:|")
for method in ("lora", "full"):
    one = load(f"{method}-1gpu")
    for run, label in (("1gpu", "--gpus 1"), ("ddp", "--gpus 2 (DDP)"), ("fsdp", "--gpus 2 --fsdp")):
        if f"{method}-{run}" not in runs:
            continue
        r = load(f"{method}-{run}")
        if r is None:
            print(f"| {method} | {label} | failed | | | | |")
            continue
        tps = r["tokensPerSecond"]
        eff = "" if run == "1gpu" or one is None else f"{tps / (2 * one['tokensPerSecond']):.2f}"
        mem = ", ".join(f"{p / 2**30:.2f}" for p in r["peakMemoryPerProcess"]) + " GiB"
        diff = max(abs(a - b) for a, b in zip(r["curve"], one["curve"])) if one else float("nan")
        label += " (compiled)" if r.get("compiled") else ""
        print(f"| {method} | {label} | {tps:,.0f} | {eff} | {mem} | {r['firstLoss']:.4f} → {r['lastLoss']:.4f} | {diff:.4f} |")
EOF
