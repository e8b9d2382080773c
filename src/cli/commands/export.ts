import { Command } from 'commander';
import { GGUF_TYPES, parseGgufType } from '../../core/choices.js';
import { UsageError } from '../../shared/errors.js';
import { action } from '../action.js';
import { rejectOnnxFlags, writeGgufFile } from '../gguf-export.js';
import { parseNumber } from '../flags.js';
import { formatBytes, stopOnCtrlC, type GlobalFlags } from '../output.js';
import { ProgressView } from '../progress.js';
import { parseTritonFlags, tritonLine, withTritonOptions, type TritonFlags } from '../triton-flags.js';

interface ExportFlags extends TritonFlags {
  out: string;
  fp16: boolean;
  fused: boolean;
  gqa: boolean;
  tolerance?: string;
  gguf: boolean;
  type: string;
}

export function exportCommand(): Command {
  // The Triton flags come last in --help: they are added to the finished command.
  return withTritonOptions(
    new Command('export')
      .description('export a Hugging Face causal LM folder to an ONNX decoder with KV cache, checked against PyTorch')
      .argument('<model>', 'Hugging Face model folder (config.json + weights + tokenizer)')
      .requiredOption('--out <dir>', 'output folder (ONNX model, tokenizer, llmkit.json manifest), or the .gguf file with --gguf')
      .option('--fp16', 'float16 weights and compute, for GPUs (inputs, outputs and the KV cache stay float32)', false)
      .option('--fused', "ONNX Runtime's fused operators (SkipSimplifiedLayerNormalization, RotaryEmbedding, fused q/k/v and gate/up MatMuls), as onnxruntime-genai's graphs use", false)
      .option('--gqa', "also fuse attention into GroupQueryAttention, which writes into the engine's cache buffers (implies --fused)", false)
      .option('--tolerance <x>', 'largest max-abs logit difference vs PyTorch that passes the check (default: 1e-3, or 5e-2 with --fp16)')
      .option('--gguf', 'write one GGUF file for llama.cpp and Ollama instead (weights, tokenizer, chat template; docs/export.md)', false)
      .option('--type <type>', `GGUF weight type with --gguf: ${GGUF_TYPES.join(', ')}`, 'f16')
      .action(
        action(async (opts: ExportFlags, flags: GlobalFlags, [model]) => {
          if (opts.gguf) {
            rejectOnnxFlags([...(['fp16', 'fused', 'gqa', 'tolerance'] as const).filter((k) => opts[k]), ...(opts.triton ? ['triton'] : [])], 'choose the GGUF weights with --type');
            return writeGgufFile('export', model, opts.out, parseGgufType(opts.type), flags);
          }
          if (opts.type !== 'f16') throw new UsageError('--type is for --gguf', 'add --gguf, or drop --type (ONNX exports take --fp16)');
          const { exportModel } = await import('../../core/export.js');
          const tolerance = opts.tolerance === undefined ? undefined : parseNumber(opts.tolerance, '--tolerance', { min: 0 });
          const triton = parseTritonFlags(opts);
          // Triton's generate model (assets/triton_generate.py) reads the packed new_key_values, which a --gqa graph has not.
          if (opts.gqa && triton) throw new UsageError('--gqa and --triton exclude each other', 'export for Triton with --fused');
          const view = new ProgressView(flags, 'export');
          const stop = stopOnCtrlC();
          try {
            const report = await exportModel({
              model,
              out: opts.out,
              dtype: opts.fp16 ? 'fp16' : 'fp32',
              fused: opts.fused || opts.gqa,
              gqa: opts.gqa,
              tolerance,
              triton,
              onEvent: view.onEvent,
              stopSignal: stop.signal,
            });
            view.stop();
            if (flags.json) process.stdout.write(JSON.stringify(report) + '\n');
            else {
              const worst = Math.max(...Object.values(report.parity));
              process.stdout.write(`exported ${model} → ${report.path} (${formatBytes(report.onnxBytes)}); max |Δlogit| vs PyTorch ${worst.toExponential(1)} over prefill + 3 decode steps\n`);
              if (report.triton) process.stdout.write(tritonLine(report.triton));
            }
          } finally {
            stop.dispose();
          }
        }),
      ),
  );
}
