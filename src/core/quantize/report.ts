import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { TritonRepository } from '../triton/repository.js';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { formatBytes, formatTable } from '../../shared/format.js';
import { DecoderSession } from '../../engine/decoder-session.js';
import type { ExportedModel } from '../../engine/model-manifest.js';
import { onnxruntimeVersion } from '../../engine/onnx-runtime.js';
import { ModelTokenizer } from '../../engine/tokenizer.js';
import { LlmkitError } from '../../shared/errors.js';
import { compareNextTokenDistributions } from './accuracy.js';
import type { GgufScore, ScoringWindows } from './gguf-compare.js';
import { NODE_LLAMA_CPP } from '../gguf/llama-cpp.js';
import { measureDecodeSpeed, type SpeedPlan } from './speed.js';

/** What one run measures of a model, relative figures against a reference model (fp32, or the teacher). */
export interface MeasuredFigures {
  /** The ONNX files (model.onnx and its external data, if any). */
  bytes: number;
  sizeRatio: number;
  /** Null when the decode timing was skipped (quantize --no-speed). */
  decodeTokensPerSecond: number | null;
  speedup: number | null;
  perplexity: number;
  /** Relative: 0.004 is +0.4 %. */
  perplexityChange: number;
  /** How often the model's most likely next token is the reference's (1 for the reference). */
  top1Agreement: number;
  meanKl: number;
}

/** One row of the report: a model's measured figures, relative ones against the fp32 row. */
export interface ModelFigures extends MeasuredFigures {
  name: string;
  bits: number;
  path: string;
}

/** A GGUF file of the same weights as llama.cpp scores it; no decode speed (another runtime, not timed with ours). */
export interface GgufFigures {
  type: GgufScore['type'];
  runtime: string;
  bytes: number;
  tensorTypes: Record<string, number>;
  sizeRatio: number;
  perplexity: number;
  perplexityChange: number;
  top1Agreement: number;
}

/** quantize-report.json: everything measured in one run, and how. */
export interface QuantizeReport {
  version: 1;
  createdAt: string;
  machine: { cpu: string; cores: number; onnxruntimeNode: string; provider: 'cpu' };
  eval: { file: string; tokens: number; positions: number; windows: number; window: number };
  /** How decode was timed; null with --no-speed. */
  speed: { threads: number; prompts: number; promptTokens: number; newTokens: number; rounds: number; steps: number; statistic: string } | null;
  quantization: Record<string, unknown>;
  models: ModelFigures[];
  /** With --compare-gguf: llama.cpp's Q8_0 and Q4_0 of the same weights, scored on the same windows (relative to the fp32 row). */
  gguf?: GgufFigures[];
  /** With --triton: the repository written for the quantized model. */
  triton?: TritonRepository;
}

export interface MeasureOptions {
  evalData: string;
  evalTokens: number;
  threads: number;
  /** Time decode (default true). */
  speed?: boolean;
  /** Called as the measurement goes: a message and how far along it is. */
  progress: (message: string, done: number, total: number) => void;
  /** Scores other files of the same weights on the windows scored here (--compare-gguf: llama.cpp's GGUFs). */
  scorePeers?: (scoring: ScoringWindows) => Promise<GgufScore[]>;
}

/** Longest window of eval text scored in one prefill. */
const EVAL_WINDOW = 256;
const SPEED = { prompts: 3, promptTokens: 32, newTokens: 64, rounds: 2 };

function onnxBytes(model: ExportedModel): number {
  const folder = dirname(model.onnxPath);
  return readdirSync(folder).reduce((sum, f) => sum + statSync(join(folder, f)).size, 0);
}

/**
 * Measures the quantized model against its fp32 export on this machine's CPU: file size, batch-1
 * decode speed through onnxruntime-node (the engine `serve` uses) with the same thread count for
 * both, and perplexity, top-1 agreement and KL divergence on the eval text.
 */
export async function measureQuantization(fp32: ExportedModel, quantized: ExportedModel, fp32Path: string, opts: MeasureOptions): Promise<QuantizeReport> {
  const tokenizer = await ModelTokenizer.load(fp32.dir);
  const tokens = tokenizer.encode(readFileSync(opts.evalData, 'utf8')).slice(0, opts.evalTokens);
  if (tokens.length < 64) {
    throw new LlmkitError(`--eval-data ${opts.evalData} has only ${tokens.length} tokens`, 'pass a longer text (a few thousand tokens measure well)');
  }
  const window = Math.min(EVAL_WINDOW, fp32.manifest.max_position_embeddings, tokens.length);
  const newTokens = Math.min(SPEED.newTokens, fp32.manifest.max_position_embeddings - SPEED.promptTokens);
  const plan: SpeedPlan = {
    prompts: Array.from({ length: SPEED.prompts }, (_, i) => {
      const start = Math.floor((i * (tokens.length - SPEED.promptTokens)) / SPEED.prompts);
      return tokens.slice(start, start + SPEED.promptTokens);
    }),
    newTokens,
    rounds: SPEED.rounds,
  };

  // Accuracy does not depend on the thread count, so it uses all cores; timing uses opts.threads for both.
  const accuracy = await withDecoders([fp32, quantized], undefined, ([reference, candidate]) =>
    compareNextTokenDistributions(reference, candidate, tokens, window, (done, total) => opts.progress(`perplexity and agreement, window ${done}/${total}`, done, total)),
  );
  const speeds =
    opts.speed === false
      ? null
      : await withDecoders([fp32, quantized], opts.threads, (decoders) => measureDecodeSpeed(decoders, plan, (done, total) => opts.progress(`decode timing, run ${done}/${total}`, done, total)));
  const sizes = [onnxBytes(fp32), onnxBytes(quantized)];
  const windows = Array.from({ length: accuracy.windows }, (_, w) => tokens.slice(w * window, (w + 1) * window));
  const peers = opts.scorePeers ? await opts.scorePeers({ windows, referenceTop1: accuracy.referenceTop1, threads: opts.threads }) : undefined;
  const scored = [accuracy.reference, accuracy.candidate];
  const models = [fp32, quantized].map(
    (model, i): ModelFigures => ({
      name: model.manifest.precision,
      bits: i === 0 ? 32 : Number(model.manifest.quantization?.bits),
      path: i === 0 ? fp32Path : model.dir,
      bytes: sizes[i],
      sizeRatio: sizes[i] / sizes[0],
      decodeTokensPerSecond: speeds ? speeds[i].tokensPerSecond : null,
      speedup: speeds ? speeds[i].tokensPerSecond / speeds[0].tokensPerSecond : null,
      perplexity: scored[i].perplexity,
      perplexityChange: scored[i].perplexity / scored[0].perplexity - 1,
      top1Agreement: scored[i].top1Agreement,
      meanKl: scored[i].meanKl,
    }),
  );
  return {
    version: 1,
    createdAt: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, onnxruntimeNode: onnxruntimeVersion, provider: 'cpu' },
    eval: { file: opts.evalData, tokens: tokens.length, positions: accuracy.positions, windows: accuracy.windows, window },
    speed: speeds && {
      threads: opts.threads,
      prompts: plan.prompts.length,
      promptTokens: SPEED.promptTokens,
      newTokens,
      rounds: plan.rounds,
      steps: speeds[1].steps,
      statistic: 'median cached decode step, batch 1, warm-up excluded',
    },
    quantization: quantized.manifest.quantization ?? {},
    models,
    ...(peers && {
      gguf: peers.map((g) => ({
        type: g.type,
        runtime: `llama.cpp (node-llama-cpp ${NODE_LLAMA_CPP})`,
        bytes: g.bytes,
        tensorTypes: g.tensorTypes,
        sizeRatio: g.bytes / sizes[0],
        perplexity: g.perplexity,
        perplexityChange: g.perplexity / accuracy.reference.perplexity - 1,
        top1Agreement: g.top1Agreement,
      })),
    }),
  };
}

/** Opens the models on the CPU, runs `use` and releases them, whatever happens. */
async function withDecoders<T>(models: ExportedModel[], threads: number | undefined, use: (decoders: DecoderSession[]) => Promise<T>): Promise<T> {
  const decoders: DecoderSession[] = [];
  try {
    for (const model of models) decoders.push(await DecoderSession.open(model, { device: 'cpu', threads }));
    return await use(decoders);
  } finally {
    await Promise.all(decoders.map((d) => d.release()));
  }
}

/** e.g. `4-bit (output 8-bit), GPTQ, int8 compute`. */
function precisionLabel(bits: number, q: Record<string, unknown>): string {
  const output = q.head_bits !== undefined && q.head_bits !== bits ? ` (output ${q.head_bits}-bit)` : '';
  const calibrated = q.calibration ? ', GPTQ' : '';
  return `${bits}-bit${output}${calibrated}, ${q.accuracy_level === 4 ? 'int8' : 'fp32'} compute`;
}

const percent = (x: number, digits = 1) => `${(100 * x).toFixed(digits)}%`;
const signed = (x: number) => `${x >= 0 ? '+' : ''}${percent(x, 2)}`;

/** The report as the table the CLI and the demo print. */
export function formatReportTable(report: QuantizeReport): string {
  const rows = report.models.map((m, i) => [
    m.name,
    i === 0 ? `${m.bits}-bit` : precisionLabel(m.bits, report.quantization),
    `${formatBytes(m.bytes)} (${percent(m.sizeRatio)})`,
    m.decodeTokensPerSecond === null ? '-' : `${m.decodeTokensPerSecond.toFixed(1)} tok/s (${m.speedup?.toFixed(2)}×)`,
    i === 0 ? m.perplexity.toFixed(3) : `${m.perplexity.toFixed(3)} (${signed(m.perplexityChange)})`,
    percent(m.top1Agreement),
    i === 0 ? '0' : m.meanKl.toExponential(2),
  ]);
  for (const g of report.gguf ?? []) {
    rows.push([`GGUF ${g.type}`, g.runtime, `${formatBytes(g.bytes)} (${percent(g.sizeRatio)})`, '-', `${g.perplexity.toFixed(3)} (${signed(g.perplexityChange)})`, percent(g.top1Agreement), '-']);
  }
  const table = formatTable(['model', 'precision', 'size', 'decode speed', 'perplexity', 'top-1 agreement', 'mean KL'], rows);
  const e = report.eval;
  const s = report.speed;
  return [
    table,
    `perplexity, agreement and KL over ${e.positions} positions of ${e.file} (${e.windows} windows of ${e.window} tokens); ` +
      (s ? `decode speed: ${s.prompts} prompts × ${s.newTokens} tokens × ${s.rounds} rounds, batch 1, ${s.threads} threads, CPU (${report.machine.cpu})` : 'decode speed: not timed (--no-speed)'),
  ].join('\n');
}
