"""The trainer core under the finetune and distill jobs (recipes that read top to bottom):

- data.py: JSONL rows, chat templates, answer-only targets, truncation, packing, the step plan, collation (pure)
- loss.py: chunked next-token cross-entropy and logit distillation (pure)
- context.py: RunContext, what one run shares (config, device, precision, ranks, padding, metrics)
- model.py: loading, LoRA, torch.compile, the model and its loss as one module, DDP/FSDP
- loop.py: optimizer, schedule, the train step, eval loss, the run of steps with Ctrl-C handling
- checkpoint.py: checkpoints, resume, and the trained adapter or model
- exact_match.py: greedy answers and exact match
"""
