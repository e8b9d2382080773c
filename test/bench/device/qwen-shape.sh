# Sourced by the device scripts: makes $qwen, a randomly initialised model of Qwen2.5-0.5B's shape
# (24 layers, hidden 896, 14 query and 2 key/value heads, vocabulary 151,936), with the worker on python3.
qwen=/tmp/qwen2-0.5b-shape
[ -f $qwen/model.safetensors ] || echo '{"out": "'$qwen'", "seed": 0, "architecture": "qwen2", "dtype": "float32", "hidden_size": 896,
  "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
  "max_position_embeddings": 32768, "model_vocab_size": 151936}' | PYTHONPATH=src/workers/python python3 -m llmkit_worker make_model >/dev/null
