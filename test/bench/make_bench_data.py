"""Writes the GPU fine-tuning benchmark's synthetic data: JSONL `{"text": ...}` lines of random words from
llmkit's bundled corpus, with a seeded length distribution.

  python3 test/bench/make_bench_data.py --out data.jsonl --examples 3000 --min-words 20 --max-words 600

"mixed" lengths (20..600 words, about 30..900 tokens with the bench model's tokenizer) look like instruction
data, where padding a batch to its longest example wastes a large share of the work; "--min-words 600
--max-words 600" makes every example longer than the 512-token window, so nothing is padded or packed and the
comparison is kernel against kernel.
"""

import argparse
import json
import os
import random

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "src", "workers", "python", "llmkit_worker", "assets", "tiny_corpus.txt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--min-words", type=int, default=20)
    parser.add_argument("--max-words", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(CORPUS, encoding="utf-8") as f:
        words = f.read().split()
    rng = random.Random(args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        for _ in range(args.examples):
            n = rng.randint(args.min_words, args.max_words)
            f.write(json.dumps({"text": " ".join(rng.choice(words) for _ in range(n))}) + "\n")


if __name__ == "__main__":
    main()
