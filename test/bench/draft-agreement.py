"""How often a draft's greedy token is the teacher's, teacher-forced on the teacher's own answers (docs/benchmarks.md,
"Speculative decoding"): the per-token acceptance a greedy draft can reach at best, measured in a minute without
speculative decoding. On held-out prompts it matched speculative.js's acceptance (12.7 % here, 12.8 % there), where
the training loss did not: a student's answers it trained on say what it memorised, not what it will draft.
  PYTHONPATH=src/workers/python <worker venv>/bin/python test/bench/draft-agreement.py DRAFT_HF ANSWERS.jsonl [DRAFT_VOCAB_JSON]
ANSWERS.jsonl: messages rows whose assistant turn is the teacher's greedy answer (test/bench/draft-answers.js);
DRAFT_VOCAB_JSON: the draft's output tokens (draft-vocab.json), whose argmax the engine proposes from."""

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmkit_worker.trainer.data import IGNORE, read_rows, tokenize_rows


def main(draft: str, answers: str, vocab_file: str | None) -> None:
    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(draft)
    model = AutoModelForCausalLM.from_pretrained(draft, dtype=torch.float32).eval()
    examples, _ = tokenize_rows(read_rows([{"path": answers, "format": "messages"}]), tokenizer, {"train_on_prompt": False, "max_seq_len": 4096})
    keep = torch.tensor(json.load(open(vocab_file))["ids"]) if vocab_file else torch.arange(model.config.vocab_size)
    loss = agreed = tokens = 0.0
    with torch.no_grad():
        for ids, targets in examples:
            logits = model(input_ids=torch.tensor([ids])).logits[0]
            answer = torch.tensor(targets) != IGNORE
            logits, wanted = logits[answer], torch.tensor(targets)[answer]
            loss += torch.nn.functional.cross_entropy(logits, wanted, reduction="sum").item()
            agreed += int((keep[logits[:, keep].argmax(-1)] == wanted).sum())
            tokens += int(answer.sum())
    print(json.dumps({"draft": draft, "answers": answers, "tokens": int(tokens), "loss": loss / tokens, "agreement": agreed / tokens}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
