"""The JSON-line event protocol between a job and llmkit (mirrored in src/workers/protocol.ts).

A job reads its config as one JSON object on stdin and writes events, one JSON object a line, on
stdout. Everything else a job or its libraries print goes to stderr, which llmkit keeps in a log
file. Events: start, progress, metric, log, artifact, result, interrupted, error.

Under torchrun (WORLD_SIZE > 1) every rank shares the same stdout: only rank 0's events go out, except
`error`, which any rank sends with its `rank`, so the failure that brought the job down names where it began.
Under torchrun the config comes from the file named by LLMKIT_WORKER_CONFIG, since all ranks share one stdin.
"""

import json
import os
import signal
import sys

# Libraries print to stdout too (warnings, progress bars); only events may go there, so keep the
# real stdout for events and point sys.stdout at stderr.
_events_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
sys.stdout = sys.stderr
RANK = int(os.environ.get("RANK", "0"))
DISTRIBUTED = int(os.environ.get("WORLD_SIZE", "1")) > 1


def emit(event: str, **fields) -> None:
    if event == "error" and DISTRIBUTED:
        fields["rank"] = RANK
    elif RANK != 0:
        return
    _events_out.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    _events_out.flush()


def log(message: str, level: str = "info") -> None:
    emit("log", level=level, message=message)


def first_line(text: str) -> str:
    """The first line that says something: some messages (safetensors' shared-tensor error) begin with a newline."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


class BadInput(Exception):
    """Input the user must fix (a data line, a model folder); `where` is e.g. "train.jsonl:12"."""

    def __init__(self, message: str, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.where = where
        self.hint = hint


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag that training loops poll, so they can checkpoint and exit."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame):
        self.requested = True


def read_config() -> dict:
    path = os.environ.get("LLMKIT_WORKER_CONFIG")
    if path:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    text = sys.stdin.read()
    return json.loads(text) if text.strip() else {}
