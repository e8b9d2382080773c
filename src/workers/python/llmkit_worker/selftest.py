"""A job that exercises the protocol without a model, for `llmkit env --check` and the runner's tests.

Config: steps, step_seconds, fail ("exit", "kill", "bad_input", "oom", "missing_package" or null),
fail_rank (under torchrun, only that rank fails; default every rank), stderr_lines, out (folder for the checkpoint written when stopped).
"""

import json
import os
import sys
import time

from .jobs import SelftestConfig
from .protocol import RANK, BadInput, StopRequest, emit, log


def run(config: SelftestConfig) -> int:
    stop = StopRequest()
    steps = int(config.get("steps", 5))
    out = config.get("out")
    for i in range(int(config.get("stderr_lines", 0))):
        print(f"selftest stderr line {i}", file=sys.stderr, flush=True)
    emit("start", job="selftest", total_steps=steps)
    log("selftest started")
    for step in range(1, steps + 1):
        time.sleep(float(config.get("step_seconds", 0.0)))
        if stop.requested:
            checkpoint = os.path.join(out, f"checkpoint-{step - 1}") if out else None
            if checkpoint:
                os.makedirs(checkpoint, exist_ok=True)
                with open(os.path.join(checkpoint, "state.json"), "w") as f:
                    json.dump({"step": step - 1}, f)
            emit("interrupted", step=step - 1, checkpoint=checkpoint)
            return 130
        emit("progress", step=step, total=steps, loss=1.0 / step, tokens_per_s=100.0 * step)
    fail = config.get("fail") if config.get("fail_rank") in (None, RANK) else None
    if fail == "kill":
        os.kill(os.getpid(), 9)
    if fail == "exit":
        print("selftest: failing on purpose", file=sys.stderr, flush=True)
        os._exit(7)
    if fail == "bad_input":
        raise BadInput("line is not JSON", where="data.jsonl:3", hint="fix the line or remove it")
    if fail == "oom":
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    if fail == "missing_package":
        import llmkit_no_such_package  # noqa: F401
    emit("metric", name="selftest_score", value=1.0)
    if out:
        emit("artifact", kind="folder", path=out)
    emit("result", steps=steps)
    return 0
