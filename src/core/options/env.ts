import { UsageError } from '../../shared/errors.js';
import { defineCommand } from './define.js';
import { booleanField, textField } from './fields.js';

export const ENV = defineCommand({
  name: 'env',
  description: 'show the machine, ONNX Runtime providers and the Python worker environment; --setup creates it',
  options: {
    setup: { field: booleanField(), default: false, help: 'create the Python worker environment (a venv under LLMKIT_HOME) if it is missing' },
    python: { field: textField(), value: '<path>', help: 'with --setup: use this existing interpreter instead of a venv (e.g. a GPU box with torch installed)' },
    cuda: { field: booleanField(), default: false, help: "with --setup: ONNX Runtime's CUDA provider for onnxruntime-node, from the PyPI wheel onnxruntime-gpu of the same version" },
    cudaFrom: {
      field: textField(),
      value: '<path>',
      help: 'with --setup --cuda: take the wheel (or a folder with it, or its unpacked provider libraries) from here instead of PyPI',
    },
    triton: { field: booleanField(), default: false, help: 'with --setup: also a local Triton Inference Server (PyPI nvidia-pytriton, its own venv) for `serve --engine triton`' },
  },
  finish: (o) => {
    if (o.python && !o.setup) throw new UsageError('--python goes with --setup', 'run `llmkit env --setup --python PATH`');
    if ((o.cuda || o.cudaFrom) && !o.setup) throw new UsageError('--cuda goes with --setup', 'run `llmkit env --setup --cuda`');
    if (o.cudaFrom && !o.cuda) throw new UsageError('--cuda-from goes with --cuda', 'run `llmkit env --setup --cuda --cuda-from PATH`');
    if (o.triton && !o.setup) throw new UsageError('--triton goes with --setup', 'run `llmkit env --setup --triton`');
    return o;
  },
});
