import { DEVICES } from './flag-values.js';
import { defineCommand } from './define.js';
import { enumField, textField } from './fields.js';

export const DEMO = defineCommand({
  name: 'demo',
  description: 'run the whole pipeline on the built-in tiny model and print what each step did',
  options: {
    workDir: { field: textField(), value: '<dir>', help: 'where the demo writes its outputs', defaultHelp: 'LLMKIT_HOME/demo' },
    device: { field: enumField(DEVICES), value: '<device>', default: 'auto', help: 'where the served model runs: auto (cuda, then webgpu, then cpu), cpu, cuda or webgpu' },
  },
});
