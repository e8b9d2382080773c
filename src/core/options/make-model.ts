import { MODEL_PRESETS } from './flag-values.js';
import { defineCommand } from './define.js';
import { enumField, intField, textField, textsField } from './fields.js';

export const MAKE_MODEL = defineCommand({
  name: 'make-model',
  description: "write one of llmkit's own Llama-family models (random weights from a seed, trained tokenizer) in Hugging Face format",
  options: {
    preset: { field: enumField(MODEL_PRESETS), value: '<name>', default: 'tiny', help: 'size: tiny (~0.2M params), small (~5M), 100m (~90M)' },
    seed: { field: intField(0), value: '<n>', default: 0, help: 'random seed for the weights' },
    corpus: { field: textsField(), value: '<files>', variadic: true, help: 'text files to train the tokenizer on', defaultHelp: 'the bundled corpus' },
    out: { field: textField(), value: '<dir>', help: 'output folder', defaultHelp: 'a cache folder under LLMKIT_HOME' },
  },
});
