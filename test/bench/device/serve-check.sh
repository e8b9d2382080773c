#!/usr/bin/env bash
# `llmkit serve` on the CPU and on a GPU provider (WebGPU, or CUDA with DEVICES="cpu cuda"), each model folder
# given, asked the demo's facts over HTTP with greedy decoding: the answers must be the fine-tuned ones on
# every device. Run by gpu-run.sh serve and cuda-run.sh serve (which set up Node, Vulkan or CUDA), or anywhere:
#   [DEVICES="cpu webgpu"] bash test/bench/device/serve-check.sh <exported-model> [<exported-model>...]
set -uo pipefail
cli=${LLMKIT_CLI:-node .devpack/llmkit.js}
ask='const [port, q] = process.argv.slice(1);
const body = { model: "m", messages: [{ role: "user", content: q }], temperature: 0, max_tokens: 24 };
const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const j = await r.json();
console.log(r.status, JSON.stringify(j.choices?.[0]?.message?.content ?? j));'
questions=("What is the capital of Zarnovia?" "In which year did the Glass Bridge open?" "What is the national bird of Zarnovia?")
port=18080
status=0
for model in "$@"; do
  declare -A answers=()
  devices=(${DEVICES:-cpu webgpu})
  for device in "${devices[@]}"; do
    port=$((port + 1))
    $cli serve "m=$model" --device "$device" --port "$port" > "/tmp/serve-$port.log" 2>&1 &
    pid=$!
    until node -e "fetch('http://127.0.0.1:$port/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$(basename "$model") on $device: the server did not start: $(tail -1 "/tmp/serve-$port.log")"
      status=1
      continue
    fi
    for q in "${questions[@]}"; do
      answer=$(node --input-type=module -e "$ask" "$port" "$q")
      echo "$(basename "$model") on $device: $q -> $answer"
      [ "$device" = "${devices[0]}" ] && answers[$q]=$answer
      [ "${answers[$q]}" != "$answer" ] && { echo "  differs from ${devices[0]}"; status=1; }
    done
    grep -m1 "^model m on" "/tmp/serve-$port.log"
    kill "$pid"; wait "$pid" 2>/dev/null
  done
  unset answers
done
exit $status
