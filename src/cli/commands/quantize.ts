import { join } from 'node:path';
import { Command } from 'commander';
import { precisionFromFlags } from '../../core/quantize/options.js';
import { action } from '../action.js';
import { parseInteger, parseNumber } from '../flags.js';
import { stopOnCtrlC, type GlobalFlags } from '../output.js';
import { rejectOnnxFlags, writeGgufFile } from '../gguf-export.js';
import { ProgressView } from '../progress.js';
import { parseTritonFlags, tritonLine, withTritonOptions, type TritonFlags } from '../triton-flags.js';

interface QuantizeFlags extends TritonFlags {
  out: string;
  int8?: boolean;
  int4?: boolean;
  blockSize?: string;
  asymmetric?: boolean;
  exclude?: string[];
  accuracyLevel?: string;
  evalData?: string;
  evalTokens: string;
  threads?: string;
  tolerance?: string;
  gguf?: boolean;
}

/** The GGUF block type of each precision: llama.cpp's Q8_0 and Q4_0 are blocks of 32 weights with one scale, as --int8/--int4 are. */
const GGUF_TYPE = { int8: 'q8_0', int4: 'q4_0' } as const;

export function quantizeCommand(): Command {
  // The Triton flags come last in --help: they are added to the finished command.
  return withTritonOptions(
    new Command('quantize')
      .description('quantize a model to int8 or int4 ONNX (a Hugging Face folder is exported first) and measure size, speed and accuracy against fp32')
      .argument('<model>', 'Hugging Face model folder, or an fp32 folder made by `llmkit export`')
      .requiredOption('--out <dir>', 'output folder (quantized ONNX model, tokenizer, llmkit.json, quantize-report.json)')
      .option('--int8', '8-bit weights (block-wise MatMulNBits, int8 compute on CPU): ~26% of the fp32 size')
      .option('--int4', '4-bit weights (block-wise MatMulNBits): ~16% of the fp32 size')
      .option('--block-size <n>', 'weights per scale: 32, 64 or 128 (default: 128 for --int8, 32 for --int4)')
      .option('--asymmetric', 'blocks with a zero point as well as a scale (default: symmetric, which is smaller)')
      .option('--exclude <nodes...>', 'ONNX node names to keep in fp32, e.g. /model/lm_head/MatMul')
      .option('--accuracy-level <n>', 'MatMulNBits compute on the CPU: 4 = int8 activations and integer dot products, 1 = fp32 (default: 4)')
      .option('--eval-data <file>', 'text for perplexity, top-1 agreement and KL (default: the bundled recipes/data/eval.txt)')
      .option('--eval-tokens <n>', 'score at most this many tokens of the eval text', '8192')
      .option('--threads <n>', 'CPU threads of both models while timing decode (default: all cores)')
      .option('--tolerance <x>', 'export check for a Hugging Face input: largest max-abs logit difference vs PyTorch (default: 1e-3)')
      .option('--gguf', 'write a GGUF file for llama.cpp and Ollama instead (--int8: Q8_0, --int4: Q4_0; --out names the .gguf file)')
      .action(
        action(async (opts: QuantizeFlags, flags: GlobalFlags, [model]) => {
          const precision = precisionFromFlags(opts);
          if (opts.gguf) {
            const onnxOnly = (['blockSize', 'asymmetric', 'exclude', 'accuracyLevel', 'evalData', 'threads', 'tolerance', 'triton'] as const).filter((k) => opts[k] !== undefined);
            rejectOnnxFlags(onnxOnly, 'GGUF blocks are 32 weights with one scale each: drop those flags');
            return writeGgufFile('quantize', model, opts.out, GGUF_TYPE[precision], flags);
          }
          const { formatReportTable } = await import('../../core/quantize/report.js');
          const { REPORT_FILE, runQuantize } = await import('../../core/quantize/run.js');
          const options = {
            model,
            out: opts.out,
            precision,
            blockSize: opts.blockSize === undefined ? undefined : parseInteger(opts.blockSize, '--block-size'),
            symmetric: !opts.asymmetric,
            exclude: opts.exclude,
            accuracyLevel: opts.accuracyLevel === undefined ? undefined : parseInteger(opts.accuracyLevel, '--accuracy-level'),
            evalData: opts.evalData,
            evalTokens: parseInteger(opts.evalTokens, '--eval-tokens', 64),
            threads: opts.threads === undefined ? undefined : parseInteger(opts.threads, '--threads'),
            tolerance: opts.tolerance === undefined ? undefined : parseNumber(opts.tolerance, '--tolerance', { min: 0 }),
            triton: parseTritonFlags(opts),
          };
          const view = new ProgressView(flags, 'quantize');
          const stop = stopOnCtrlC();
          try {
            const report = await runQuantize({ ...options, onEvent: view.onEvent, stopSignal: stop.signal });
            view.stop();
            if (flags.json) process.stdout.write(JSON.stringify(report) + '\n');
            else process.stdout.write(`${formatReportTable(report)}\nreport: ${join(opts.out, REPORT_FILE)}\n${report.triton ? tritonLine(report.triton) : ''}`);
          } finally {
            stop.dispose();
          }
        }),
      ),
  );
}
