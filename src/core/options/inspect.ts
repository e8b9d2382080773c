import { defineCommand } from './define.js';
import { textField } from './fields.js';

export const INSPECT = defineCommand({
  name: 'inspect',
  description: 'show what a model folder is (architecture, size, context, tokenizer, chat template) and which commands take it',
  options: {
    model: { field: textField(), positional: true, required: true, help: 'Hugging Face model folder or a folder made by `llmkit export`' },
  },
});
