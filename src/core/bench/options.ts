import { UsageError } from '../../shared/errors.js';
import { DEVICES, IMPORTABLE_MODELS } from '../options/flag-values.js';
import { defineCommand } from '../options/define.js';
import { booleanField, enumField, intField, intListField, textField } from '../options/fields.js';

export const BENCH = defineCommand({
  name: 'bench',
  description: 'benchmark serving: bare engine loop, transformers.js on the same model, then the server at several concurrency levels',
  options: {
    model: { field: textField(), positional: true, required: true, help: `exported model folder (from \`llmkit export\` or \`quantize\`), or ${IMPORTABLE_MODELS} (exported once)` },
    concurrency: { field: intListField(1), value: '<list>', default: [1, 4, 8, 16], help: 'concurrent streaming clients per level, comma-separated' },
    maxTokens: { field: intField(1), value: '<n>', default: 128, help: 'new tokens per request (EOS ignored, so every request makes exactly this many)' },
    rounds: { field: intField(1), value: '<n>', default: 4, help: 'measured rounds (after a warm-up); each visits every contender and level, each client sending one request' },
    device: { field: enumField(DEVICES), value: '<device>', default: 'cpu', help: 'auto, cpu, cuda or webgpu (engine and server)' },
    threads: { field: intField(1), value: '<n>', help: 'ONNX Runtime intra-op threads', defaultHelp: 'one per physical core' },
    url: { field: textField(), value: '<url>', help: 'drive this running server (serving the model as "bench") instead of starting one' },
    apiKey: { field: textField(), value: '<key>', help: 'API key for --url' },
    chart: { field: textField(), value: '<file>', path: true, help: 'also write the concurrency table as an SVG chart (tokens/s, TTFT, inter-token latency by concurrency)' },
    baseline: { field: booleanField(), default: true, help: 'compare with transformers.js on the same model', negate: 'skip the transformers.js comparison' },
  },
  finish: (o) => {
    if (!o.concurrency.includes(1)) throw new UsageError('--concurrency must include 1: the other levels are compared with it');
    return o;
  },
});
