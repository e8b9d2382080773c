"""llmkit's Python jobs. Each job is one file in this package; run one with `python -m llmkit_worker <job>`."""
