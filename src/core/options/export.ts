import { UsageError } from '../../shared/errors.js';
import { GGUF_TYPES, parseGgufType, IMPORTABLE_MODELS } from './flag-values.js';
import { defineCommand } from './define.js';
import { booleanField, numberField, textField } from './fields.js';
import { rejectOnnxFlags, type GgufTarget } from '../gguf/options.js';
import { TRITON_OPTIONS, tritonTarget } from '../triton/options.js';

export const EXPORT = defineCommand({
  name: 'export',
  description: 'export a Hugging Face causal LM folder to an ONNX decoder with KV cache, checked against PyTorch',
  options: {
    model: { field: textField(), positional: true, required: true, help: `Hugging Face model folder (config.json + weights + tokenizer), or ${IMPORTABLE_MODELS}` },
    out: { field: textField(), value: '<dir>', required: true, help: 'output folder (ONNX model, tokenizer, llmkit.json manifest), or the .gguf file with --gguf' },
    fp16: { field: booleanField(), default: false, help: 'float16 weights and compute, for GPUs (inputs, outputs and the KV cache stay float32)' },
    fused: {
      field: booleanField(),
      default: false,
      help: "ONNX Runtime's fused operators (SkipSimplifiedLayerNormalization, RotaryEmbedding, fused q/k/v and gate/up MatMuls), as onnxruntime-genai's graphs use",
    },
    gqa: { field: booleanField(), default: false, help: "also fuse attention into GroupQueryAttention, which writes into the engine's cache buffers (implies --fused)" },
    tolerance: { field: numberField({ min: 0 }), value: '<x>', help: 'largest max-abs logit difference vs PyTorch that passes the check', defaultHelp: '1e-3, or 5e-2 with --fp16' },
    gguf: { field: booleanField(), default: false, help: 'write one GGUF file for llama.cpp and Ollama instead (weights, tokenizer, chat template; docs/export.md)' },
    // Checked by parseGgufType in finish, whose message says what each type is.
    type: { field: textField(), value: '<type>', default: 'f16', help: `GGUF weight type with --gguf: ${GGUF_TYPES.join(', ')}` },
    ...TRITON_OPTIONS,
  },
  finish: ({ model, out, fp16, fused, gqa, tolerance, gguf, type, ...rest }, typed) => {
    if (gguf) {
      rejectOnnxFlags(['fp16', 'fused', 'gqa', 'tolerance', 'triton'], typed, 'choose the GGUF weights with --type');
      return { gguf: true, model, out, type: parseGgufType(type) } satisfies GgufTarget;
    }
    if (type !== 'f16') throw new UsageError('--type is for --gguf', 'add --gguf, or drop --type (ONNX exports take --fp16)');
    const triton = tritonTarget(rest);
    // Triton's generate model (assets/triton_generate.py) reads the packed new_key_values, which a --gqa graph has not.
    if (gqa && triton) throw new UsageError('--gqa and --triton exclude each other', 'export for Triton with --fused');
    return { gguf: false as const, model, out, dtype: fp16 ? ('fp16' as const) : ('fp32' as const), fused: fused || gqa, gqa, tolerance, triton };
  },
});
