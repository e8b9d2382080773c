import { IMPORTABLE_MODELS } from '../options/flag-values.js';
import { existsSync, statSync } from 'node:fs';
import type { TritonTarget } from '../triton/repository.js';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { WorkerEvent } from '../../workers/protocol.js';
import { loadExportedModel, type ExportedModel } from '../../engine/model-manifest.js';
import { UsageError } from '../../shared/errors.js';
import { recipesDir } from '../../shared/paths.js';
import { defineCommand } from '../options/define.js';
import { booleanField, intField, numberField, textField, textsField } from '../options/fields.js';
import { rejectOnnxFlags, type GgufTarget } from '../gguf/options.js';
import { TRITON_OPTIONS, tritonTarget } from '../triton/options.js';

export const PRECISIONS = ['int8', 'int4'] as const;
export type Precision = (typeof PRECISIONS)[number];
export const BLOCK_SIZES = [16, 32, 64, 128] as const;
/** MatMulNBits' compute on the CPU: 4 quantizes activations to int8 per block (integer dot products), 1 multiplies in fp32. */
export const ACCURACY_LEVELS = [1, 4] as const;
/**
 * Without --accuracy-level: int8 activations per block (integer dot products), the fast kernels. Level 1 (fp32
 * compute) makes greedy answers independent of batching and prefix reuse, but 8-bit weights (int8, and the 8-bit
 * output layer of int4) have no fast fp32 kernel on AVX2: int4 at level 1 decodes at 0.29× fp32 (docs/quantize.md).
 */
export const DEFAULT_ACCURACY_LEVEL = 4;
/** Eval tokens scored without --eval-tokens. */
export const DEFAULT_EVAL_TOKENS = 8192;

/**
 * Without --block-size, measured on a real model (docs/quantize.md): int8 16, whose finer activation blocks at level 4
 * halve the perplexity cost of 32 for 2.5 points of size; int4 32 (16 would cost more size than Q4_0's).
 */
export const DEFAULT_BLOCK_SIZE: Record<Precision, number> = { int8: 16, int4: 32 };
/**
 * Block scales' precision without --scales: int4 fp16, which makes blocks of 32 4.5 bits a weight (llama.cpp's Q4_0
 * size; fp32 scales are 5); int8 fp32, its fastest kernels (fp16 scales compute in fp16 between Casts).
 */
export const SCALE_TYPES = ['fp16', 'fp32'] as const;
export type ScaleType = (typeof SCALE_TYPES)[number];
export const DEFAULT_SCALES: Record<Precision, ScaleType> = { int8: 'fp32', int4: 'fp16' };
/**
 * Bits of the output layer and the token embedding (one shared copy when tied): 8 unless --output-bits says otherwise;
 * 16 stores them as fp16 and computes them in fp32 (int8 on a real model: top-1 96.5% → 97.5% at the same decode
 * speed, for 3 points of size; docs/quantize.md).
 */
export const OUTPUT_BITS = [4, 8, 16] as const;
export const DEFAULT_OUTPUT_BITS = 8;
/** Calibration tokens read without --calibration-tokens. */
export const DEFAULT_CALIBRATION_TOKENS = 8192;
/** The GGUF block type of each precision: llama.cpp's Q8_0 and Q4_0 are blocks of 32 weights with one scale, as --int8/--int4 are. */
const GGUF_TYPE = { int8: 'q8_0', int4: 'q4_0' } as const;
export const DEFAULT_EVAL_DATA = join(recipesDir, 'data', 'eval.txt');

export interface QuantizeOptions {
  /** A Hugging Face model folder (exported to fp32 ONNX on the way) or a folder made by `llmkit export`. */
  model: string;
  /** The quantized model folder; quantize-report.json is written into it. */
  out: string;
  precision: Precision;
  /** Weights per scale along each weight's input dimension (default: DEFAULT_BLOCK_SIZE). */
  blockSize?: number;
  /** Symmetric blocks (no zero points) are smaller; asymmetric ones fit skewed weights better. Default true. */
  symmetric?: boolean;
  /** ONNX node names (MatMul or Gather) whose weights stay in fp32. */
  exclude?: string[];
  /** Bits of the output layer and token embedding (OUTPUT_BITS, default 8; never more than the model's). */
  outputBits?: number;
  /** Precision of the block scales (SCALE_TYPES; default DEFAULT_SCALES). */
  scales?: string;
  /** Text whose activations GPTQ calibrates the rounding with; without it, weights are rounded to nearest. */
  calibrationData?: string;
  /** At most this many calibration tokens (default DEFAULT_CALIBRATION_TOKENS). */
  calibrationTokens?: number;
  /** MatMulNBits accuracy level (ACCURACY_LEVELS; default 4). */
  accuracyLevel?: number;
  /** Text for perplexity, agreement and KL (default: recipes/data/eval.txt). */
  evalData?: string;
  /** At most this many eval tokens are scored (default 8192). */
  evalTokens?: number;
  /** CPU threads of both models while timing decode (default: all of this machine's); accuracy uses all cores. */
  threads?: number;
  /** Time batch-1 decode of both models (default true); without it the report has sizes and accuracy only. */
  speed?: boolean;
  /** Export check when the input is a Hugging Face folder (default: export's, 1e-3). */
  tolerance?: number;
  /** Also score llama.cpp's Q8_0 and Q4_0 GGUF files of the same weights on the same text (needs the Hugging Face weights). */
  compareGguf?: boolean;
  /** Also write a Triton model repository for the quantized model. */
  triton?: TritonTarget;
  onEvent?: (e: WorkerEvent) => void;
  stopSignal?: AbortSignal;
}

/** Options checked and completed: everything the run needs, decided before any long work starts. */
export interface ResolvedQuantizeOptions {
  /** The fp32 export to quantize, or null when the input is a Hugging Face folder to export first. */
  exported: ExportedModel | null;
  model: string;
  out: string;
  precision: Precision;
  bits: 8 | 4;
  blockSize: number;
  symmetric: boolean;
  exclude: string[];
  outputBits: number;
  scales: ScaleType;
  calibrationData?: string;
  calibrationTokens: number;
  accuracyLevel: number;
  evalData: string;
  evalTokens: number;
  threads: number;
  speed: boolean;
  tolerance?: number;
  /** With --compare-gguf: the Hugging Face folder the GGUF files are written from; else null. */
  compareGguf: string | null;
}

export const QUANTIZE = defineCommand({
  name: 'quantize',
  description: 'quantize a model to int8 or int4 ONNX (a Hugging Face folder is exported first) and measure size, speed and accuracy against fp32',
  options: {
    model: { field: textField(), positional: true, required: true, help: `Hugging Face model folder, an fp32 folder made by \`llmkit export\`, or ${IMPORTABLE_MODELS}` },
    out: { field: textField(), value: '<dir>', required: true, help: 'output folder (quantized ONNX model, tokenizer, llmkit.json, quantize-report.json)' },
    int8: { field: booleanField(), default: false, help: '8-bit weights (block-wise MatMulNBits, int8 compute on CPU): ~26% of the fp32 size' },
    int4: { field: booleanField(), default: false, help: '4-bit weights (block-wise MatMulNBits, fp16 scales): ~14% of the fp32 size' },
    blockSize: {
      field: intField(1),
      value: '<n>',
      help: `weights per scale: ${BLOCK_SIZES.join(', ')}`,
      defaultHelp: `${DEFAULT_BLOCK_SIZE.int8} for --int8, ${DEFAULT_BLOCK_SIZE.int4} for --int4`,
    },
    asymmetric: { field: booleanField(), default: false, help: 'blocks with a zero point as well as a scale (default: symmetric, which is smaller)' },
    exclude: { field: textsField(), value: '<nodes>', variadic: true, help: 'ONNX node names to keep in fp32, e.g. /model/lm_head/MatMul' },
    outputBits: {
      field: intField(1),
      value: '<n>',
      default: DEFAULT_OUTPUT_BITS,
      help: 'bits of the output layer (lm_head) and token embedding, one copy when tied: 8, 16 (fp16, fp32 compute) for the most accurate int8, or 4 for the smallest int4 file',
    },
    scales: {
      field: textField(),
      value: '<type>',
      help: `block scales: ${SCALE_TYPES.join(' or ')} (fp16: smaller, computed in fp16 around each quantized operator)`,
      defaultHelp: `${DEFAULT_SCALES.int4} for --int4, ${DEFAULT_SCALES.int8} for --int8`,
    },
    calibrationData: { field: textField(), value: '<file>', help: 'text to calibrate with (GPTQ): rounding chosen so layer outputs on it move least', defaultHelp: 'none: round to nearest' },
    calibrationTokens: { field: intField(256), value: '<n>', default: DEFAULT_CALIBRATION_TOKENS, help: 'read at most this many tokens of the calibration text' },
    accuracyLevel: {
      field: intField(1),
      value: '<n>',
      help: 'MatMulNBits compute on the CPU: 4 = int8 activations and integer dot products (fastest), 1 = fp32 (answers independent of batching)',
      default: DEFAULT_ACCURACY_LEVEL,
    },
    evalData: { field: textField(), value: '<file>', help: 'text for perplexity, top-1 agreement and KL', defaultHelp: 'the bundled recipes/data/eval.txt' },
    evalTokens: { field: intField(64), value: '<n>', default: DEFAULT_EVAL_TOKENS, help: 'score at most this many tokens of the eval text' },
    threads: { field: intField(1), value: '<n>', help: 'CPU threads of both models while timing decode', defaultHelp: 'all cores' },
    speed: {
      field: booleanField(),
      default: true,
      help: 'time batch-1 decode of both models (a minute or more for int4 at --accuracy-level 1)',
      negate: 'skip the decode timing: the report has sizes and accuracy only',
    },
    tolerance: { field: numberField({ min: 0 }), value: '<x>', help: 'export check for a Hugging Face input: largest max-abs logit difference vs PyTorch', defaultHelp: '1e-3' },
    compareGguf: {
      field: booleanField(),
      default: false,
      help: "also write llama.cpp's Q8_0 and Q4_0 GGUF files of the same weights and score them on the same text (node-llama-cpp): rows of the report",
    },
    gguf: { field: booleanField(), default: false, help: 'write a GGUF file for llama.cpp and Ollama instead (--int8: Q8_0, --int4: Q4_0; --out names the .gguf file)' },
    ...TRITON_OPTIONS,
  },
  finish: ({ int8, int4, asymmetric, triton, tritonName, tritonDevice, gguf, ...rest }, typed): GgufTarget | (QuantizeOptions & { gguf: false }) => {
    if (int8 && int4) throw new UsageError('--int8 and --int4 exclude each other', 'pass one of them');
    if (!int8 && !int4) throw new UsageError('pass --int8 or --int4', 'e.g. `llmkit quantize ./model --int8 --out ./model-int8`');
    const precision = int8 ? 'int8' : 'int4';
    if (gguf) {
      const onnxOnly = [
        'blockSize',
        'asymmetric',
        'exclude',
        'outputBits',
        'scales',
        'calibrationData',
        'calibrationTokens',
        'accuracyLevel',
        'evalData',
        'threads',
        'speed',
        'tolerance',
        'triton',
        'compareGguf',
      ];
      rejectOnnxFlags(onnxOnly, typed, 'GGUF blocks are 32 weights with one scale each: drop those flags');
      return { gguf: true, model: rest.model, out: rest.out, type: GGUF_TYPE[precision] };
    }
    return { ...rest, gguf: false, precision, symmetric: !asymmetric, triton: tritonTarget({ triton, tritonName, tritonDevice }) };
  },
});

export function resolveQuantizeOptions(opts: QuantizeOptions): ResolvedQuantizeOptions {
  const model = resolve(opts.model);
  const out = resolve(opts.out);
  if (!existsSync(model) || !statSync(model).isDirectory()) {
    throw new UsageError(`model folder ${opts.model} does not exist`, 'pass a Hugging Face model folder or one made by `llmkit export`');
  }
  if (out === model) throw new UsageError('--out must differ from the model folder', 'pass a new folder, e.g. --out ./model-int8');
  let exported: ExportedModel | null = null;
  if (existsSync(join(model, 'llmkit.json'))) {
    exported = loadExportedModel(model);
    if (exported.manifest.precision !== 'fp32') {
      throw new UsageError(`${opts.model} holds ${exported.manifest.precision} weights: quantize starts from fp32`, 'pass its fp32 export (`llmkit export` without --fp16) or the Hugging Face folder');
    }
  } else if (!existsSync(join(model, 'config.json'))) {
    throw new UsageError(`${opts.model} has neither config.json nor llmkit.json`, 'pass a Hugging Face model folder or one made by `llmkit export`');
  }
  // The GGUF files are written from the Hugging Face weights: the model's own, or those its export names as its source.
  const ggufSource = opts.compareGguf ? (exported ? exported.manifest.source : model) : undefined;
  if (opts.compareGguf && (!ggufSource || !existsSync(join(ggufSource, 'config.json')))) {
    throw new UsageError(
      `--compare-gguf writes GGUF files from the Hugging Face weights, and the folder ${opts.model} was exported from is gone`,
      'pass the Hugging Face folder (or .gguf file) instead',
    );
  }
  const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE[opts.precision];
  if (!(BLOCK_SIZES as readonly number[]).includes(blockSize)) {
    throw new UsageError(`--block-size must be one of ${BLOCK_SIZES.join(', ')} (got ${blockSize})`);
  }
  const accuracyLevel = opts.accuracyLevel ?? DEFAULT_ACCURACY_LEVEL;
  if (!(ACCURACY_LEVELS as readonly number[]).includes(accuracyLevel)) {
    throw new UsageError(`--accuracy-level must be one of ${ACCURACY_LEVELS.join(', ')} (got ${accuracyLevel})`, '4 computes with int8 activations, 1 with fp32 ones');
  }
  const outputBits = opts.outputBits ?? DEFAULT_OUTPUT_BITS;
  if (!(OUTPUT_BITS as readonly number[]).includes(outputBits)) {
    throw new UsageError(`--output-bits must be one of ${OUTPUT_BITS.join(', ')} (got ${outputBits})`, '8 keeps the output layer accurate, 16 more so, 4 makes the smallest int4 file');
  }
  const scales = (opts.scales ?? DEFAULT_SCALES[opts.precision]) as ScaleType;
  if (!SCALE_TYPES.includes(scales)) {
    throw new UsageError(`--scales must be one of ${SCALE_TYPES.join(', ')} (got ${opts.scales})`, 'fp16 makes the smaller file, fp32 the faster int8 kernels');
  }
  const calibrationData = opts.calibrationData === undefined ? undefined : resolve(opts.calibrationData);
  if (calibrationData && (!existsSync(calibrationData) || !statSync(calibrationData).isFile())) {
    throw new UsageError(`--calibration-data ${opts.calibrationData} does not exist`, 'pass a plain text file of the kind the model will see (not the eval text)');
  }
  const evalData = resolve(opts.evalData ?? DEFAULT_EVAL_DATA);
  if (!existsSync(evalData) || !statSync(evalData).isFile()) {
    throw new UsageError(`--eval-data ${opts.evalData ?? evalData} does not exist`, 'pass a plain text file');
  }
  return {
    exported,
    model,
    out,
    precision: opts.precision,
    bits: opts.precision === 'int8' ? 8 : 4,
    blockSize,
    symmetric: opts.symmetric ?? true,
    exclude: opts.exclude ?? [],
    outputBits,
    scales,
    calibrationData,
    calibrationTokens: opts.calibrationTokens ?? DEFAULT_CALIBRATION_TOKENS,
    accuracyLevel,
    evalData,
    evalTokens: opts.evalTokens ?? DEFAULT_EVAL_TOKENS,
    threads: opts.threads ?? availableParallelism(),
    speed: opts.speed ?? true,
    tolerance: opts.tolerance,
    compareGguf: ggufSource ?? null,
  };
}
