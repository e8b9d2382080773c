"""pytest for the Python jobs' own pieces (losses, packing, tokenization, student building).

`npm test` runs these through test/workers/python-units.test.ts, which makes the tiny model and
passes its folder in LLMKIT_TINY_MODEL. By hand, after `npm run build`:
    LLMKIT_TINY_MODEL=$(node bin/llmkit.js make-model --json | jq -r .path) \\
      PYTHONPATH=src/workers/python <worker python> -m pytest test/python
"""

import os

import pytest


@pytest.fixture(scope="session")
def tiny_model() -> str:
    path = os.environ.get("LLMKIT_TINY_MODEL")
    if not path:
        pytest.skip("set LLMKIT_TINY_MODEL to the tiny model's folder (llmkit make-model)")
    return path
