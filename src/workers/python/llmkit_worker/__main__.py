"""Entry point: `python -m llmkit_worker <job>`, config as JSON on stdin, events on stdout.

Maps failures to one `error` event with a kind llmkit turns into a one-line message:
bad_input, missing_package, oom, crash.
"""

import importlib
import sys
import traceback

from .jobs import JOBS
from .protocol import BadInput, emit, first_line, read_config


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1].replace("-", "_") not in JOBS:
        emit("error", kind="bad_input", message=f"unknown job {sys.argv[1:2]}; jobs: {', '.join(JOBS)}")
        return 2
    job = sys.argv[1].replace("-", "_")
    try:
        module = importlib.import_module(f"llmkit_worker.{job}")
        return module.run(read_config()) or 0
    except BadInput as e:
        emit("error", kind="bad_input", message=str(e), where=e.where, hint=e.hint)
        return 3
    except ModuleNotFoundError as e:
        emit("error", kind="missing_package", message=f"Python package {e.name!r} is not installed", package=e.name)
        return 4
    except Exception as e:  # noqa: BLE001 - every failure must reach llmkit as one event
        if type(e).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(e):
            emit("error", kind="oom", message=first_line(str(e)))
            return 5
        traceback.print_exc()
        said = first_line(str(e))
        emit("error", kind="crash", message=f"{type(e).__name__}: {said}" if said else type(e).__name__)
        return 1


if __name__ == "__main__":
    sys.exit(main())
