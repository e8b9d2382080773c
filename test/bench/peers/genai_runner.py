"""One contender of test/bench/peers.js: onnxruntime-genai on a folder its model builder wrote. Reads one JSON
request a line on stdin ({prompts: [[ids]], newTokens}; prompts of one length) and answers one JSON line like
llmkit-runner.js: prefill time (to the first token), decode tokens/s after it, aggregate tokens/s, the tokens.
Threads come from the folder's genai_config.json (set by peers.sh). Usage: python genai_runner.py <folder>"""

import json
import sys
import time

import numpy as np
import onnxruntime_genai as og

model = og.Model(sys.argv[1])
for line in sys.stdin:
    request = json.loads(line)
    prompts, new_tokens = request["prompts"], request["newTokens"]
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(prompts[0]) + new_tokens, batch_size=len(prompts))
    started = time.perf_counter()
    generator = og.Generator(model, params)
    generator.append_tokens(np.array(prompts, dtype=np.int32))
    tokens, times = [], []
    while len(tokens) < new_tokens:
        # After append_tokens (which runs the prompt), get_next_tokens would return the prompt's last token.
        generator.generate_next_token()
        tokens.append(generator.get_next_tokens().tolist())
        times.append(time.perf_counter())
    ended = time.perf_counter()
    rows = [list(t) for t in zip(*tokens)]
    print(
        json.dumps(
            {
                "prefillMs": 1000 * (times[0] - started),
                "decodeTokPerS": [(len(times) - 1) / (times[-1] - times[0])] * len(prompts),
                "totalTokPerS": len(prompts) * len(tokens) / (ended - started),
                "tokens": rows,
            }
        ),
        flush=True,
    )
