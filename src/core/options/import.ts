import { defineCommand } from './define.js';
import { enumField, textField } from './fields.js';

export const IMPORT = defineCommand({
  name: 'import',
  description: 'turn a GGUF file, an Ollama model or a cached Hugging Face id into a Hugging Face model folder that every command takes',
  options: {
    model: {
      field: textField(),
      positional: true,
      required: true,
      help: 'a .gguf file, ollama:NAME[:TAG] (from $OLLAMA_MODELS or ~/.ollama/models), or a Hugging Face id (org/name[@revision]) from the local hub cache',
    },
    out: { field: textField(), value: '<dir>', help: 'the folder to write', defaultHelp: 'the import cache under LLMKIT_HOME/imported (what commands given MODEL use)' },
    dtype: { field: enumField(['float32', 'bfloat16', 'float16'] as const), value: '<type>', default: 'float32', help: 'precision of the written weights (GGUF weights are de-quantized)' },
  },
});
