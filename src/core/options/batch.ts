import { DEVICES, IMPORTABLE_MODELS } from './flag-values.js';
import { defineCommand } from './define.js';
import { booleanField, enumField, intField, textField } from './fields.js';

export const BATCH = defineCommand({
  name: 'batch',
  description: 'run an OpenAI batch input file (JSONL of /v1/chat/completions and /v1/completions requests) to an output file, in this process or against a server; resumes where it stopped',
  options: {
    model: { field: textField(), positional: true, help: `exported model folder (or ${IMPORTABLE_MODELS}), PATH or NAME=PATH (NAME is what the lines' model says; default: the folder's name)` },
    input: { field: textField(), short: 'i', value: '<file>', required: true, help: 'batch input: one {custom_id, method, url, body} request a line, as for OpenAI' },
    output: {
      field: textField(),
      short: 'o',
      value: '<file>',
      required: true,
      help: "results in OpenAI's batch output format, one line per request as it finishes; kept between runs, so a stopped run goes on",
    },
    url: { field: textField(), value: '<url>', help: 'run against this OpenAI-compatible server instead of a model folder' },
    apiKey: { field: textField(), value: '<key>', help: 'API key for --url', defaultHelp: '$OPENAI_API_KEY' },
    concurrency: { field: intField(1), value: '<n>', help: 'requests in flight', defaultHelp: 'twice --max-batch in process, 16 with --url' },
    restart: { field: booleanField(), default: false, help: 'start over: drop the lines already in the output' },
    device: { field: enumField(DEVICES), value: '<device>', default: 'auto', help: 'auto (cuda, then webgpu, then cpu), cpu, cuda or webgpu' },
    threads: { field: intField(1), value: '<n>', help: 'ONNX Runtime intra-op threads', defaultHelp: 'one per physical core' },
    maxBatch: { field: intField(1), value: '<n>', default: 16, help: 'requests decoded together (in process)' },
  },
  rules: { exclusive: [['model', 'url']] },
  finish: ({ apiKey, ...rest }) => ({ ...rest, apiKey: apiKey ?? process.env.OPENAI_API_KEY }),
});
