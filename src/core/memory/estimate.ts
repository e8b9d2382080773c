/**
 * Will it fit? Peak memory of a training or serving run, estimated from the model's shape before anything loads.
 * The terms are the usual ones (weights, gradients, AdamW's two moments, saved activations, the logits and their
 * gradient, the KV cache); the constants are llmkit's own: fp32 master weights, the worker's imports, eager attention.
 * Training on CUDA has terms of its own (bf16 autocast, flash attention): cuda-training.ts. docs/inspect.md has the
 * estimates against measured peaks.
 */
import { hostCopiesAtOpen } from '../../engine/model-manifest.js';
import { estimateCudaTraining } from './cuda-training.js';

export interface ModelShape {
  parameters: number;
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  context: number;
  /** Parameters in the q/k/v/o and MLP projections that LoRA's default targets adapt: their (in, out) sizes, per layer. */
  projections: [number, number][];
}

export type Purpose = 'finetune' | 'lora' | 'distill' | 'serve';

export interface EstimateOptions {
  batchSize: number;
  maxSeqLen: number;
  device: 'cpu' | 'cuda';
  gradientCheckpointing?: boolean;
  loraR?: number;
  /** LoRA's input dropout: above 0, every adapted projection's input is kept again, dropped out. */
  loraDropout?: number;
  /** distill: the teacher, held for inference beside the student. */
  teacher?: ModelShape;
  /** serve: bytes of the ONNX weights (quantized ones are smaller than the parameter count says). */
  weightBytes?: number;
  /** serve: bytes per cached key/value element (the export's kv_dtype). */
  kvBytes?: number;
  /** serve: copies of the ONNX bytes in host memory while the session opens, besides the weights ONNX Runtime keeps. */
  openCopies?: number;
  /** serve: LoRA adapters' weights and the per-row tables a batch reads them from (host memory). */
  adapterBytes?: number;
}

/** The peak in parts, bytes. */
export interface MemoryEstimate {
  purpose: Purpose;
  device: 'cpu' | 'cuda';
  parts: Record<string, number>;
  /** Activations with the other gradient-checkpointing setting, for the advice. */
  activationsOtherWay?: number;
  total: number;
  /**
   * The part that does not depend on how long the rows really are (weights, gradients, optimizer state, runtime):
   * `total` assumes every row is --max-seq-len (or the full context) long, which short data or short chats never reach.
   */
  lengthIndependent: number;
}

/** Parts that grow with the rows' real lengths; the others are held whatever the data. */
const LENGTH_DEPENDENT = new Set(['kvCache', 'activations', 'logits', 'teacherLogits']);
const lengthIndependent = (parts: Record<string, number>) => sum(Object.fromEntries(Object.entries(parts).filter(([k]) => !LENGTH_DEPENDENT.has(k))));

/**
 * What the process holds before the model: on CPU the peak RSS counts the Python worker's imports (torch,
 * transformers, peft: ~700 MiB measured with torch 2.11) or Node with ONNX Runtime (~150 MiB); on CUDA torch's
 * peak counts tensors only, and the CUDA context (~500 MiB) is added for the fit.
 */
const RUNTIME = { train: { cpu: 700 * 2 ** 20, cuda: 500 * 2 ** 20 }, serve: { cpu: 150 * 2 ** 20, cuda: 500 * 2 ** 20 } };
const F32 = 4;

/**
 * Bytes saved for backward per token per decoder layer (fp32, transformers' default SDPA attention): the two norms'
 * inputs and outputs (4h), q/k/v (h + 2·kv) and q/k after rotary (h + kv), the attention output (h), the MLP's gate,
 * up, activation and product (4·I), and a seq-long row per head that SDPA keeps. The last term's size came from two
 * measured runs (docs/inspect.md); the rest is counted.
 */
function layerActivations(s: ModelShape, seq: number): number {
  const kv = s.kvHeads * s.headDim;
  return F32 * (4 * s.hidden + (s.hidden + 2 * kv) + (s.hidden + kv) + s.hidden + 4 * s.intermediate + s.heads * seq);
}

export function estimateMemory(purpose: Purpose, s: ModelShape, o: EstimateOptions): MemoryEstimate {
  const tokens = o.batchSize * o.maxSeqLen;
  if (purpose === 'serve') {
    const kvCache = 2 * s.layers * s.kvHeads * s.headDim * o.maxSeqLen * o.batchSize * (o.kvBytes ?? F32);
    // One prefill chunk's activations and logits are transient; ONNX Runtime's arena keeps the largest it saw.
    const scratch = Math.min(256, s.context) * (layerActivations(s, Math.min(256, s.context)) + 2 * s.vocab * F32);
    const weights = o.weightBytes ?? s.parameters * F32;
    // The copies at load are gone (ONNX Runtime's parse freed, the JS buffers collected) before the KV cache fills:
    // the peak is the larger of the two, measured per precision in docs/inspect.md. On CUDA they are host memory.
    const loading = o.device === 'cpu' ? (o.openCopies ?? hostCopiesAtOpen()) * weights : 0;
    const parts = { weights, loading, kvCache, scratch, adapters: o.adapterBytes ?? 0, runtime: RUNTIME.serve[o.device] };
    const total = sum(parts) - Math.min(loading, kvCache + scratch);
    return { purpose, device: o.device, parts, total, lengthIndependent: lengthIndependent(parts) };
  }
  const trainable = purpose === 'lora' ? loraParameters(s, o.loraR ?? 16) : s.parameters;
  if (o.device === 'cuda') {
    return { purpose, device: o.device, ...estimateCudaTraining(purpose, s, o, trainable, RUNTIME.train.cuda) };
  }
  const perLayer = layerActivations(s, o.maxSeqLen) + (purpose === 'lora' && (o.loraDropout ?? 0.05) > 0 ? loraDropoutCopies(s) : 0);
  const full = s.layers * tokens * perLayer;
  // Checkpointing keeps each layer's input and recomputes one layer at a time in backward.
  const checkpointed = s.layers * tokens * s.hidden * F32 + tokens * perLayer;
  const activations = o.gradientCheckpointing ? checkpointed : full;
  // Logits, their log-softmax for the loss, and their gradient: three vocab-wide tensors per token.
  const logits = 3 * tokens * s.vocab * F32;
  const parts: Record<string, number> = {
    weights: s.parameters * F32 + (purpose === 'lora' ? trainable * F32 : 0),
    gradients: trainable * F32,
    optimizer: 2 * trainable * F32,
    activations,
    logits,
    runtime: RUNTIME.train[o.device],
  };
  if (purpose === 'distill' && o.teacher) {
    // The teacher runs without gradients: its weights and its logits for the batch (the soft targets).
    parts.teacher = o.teacher.parameters * F32;
    parts.teacherLogits = tokens * o.teacher.vocab * F32;
  }
  const activationsOtherWay = o.gradientCheckpointing ? full : checkpointed;
  return { purpose, device: o.device, parts, activationsOtherWay, total: sum(parts), lengthIndependent: lengthIndependent(parts) };
}

/**
 * Bytes per token and layer that LoRA's dropout adds: each adapted projection's input again, and as much for its mask
 * (fitted to one measured run, docs/inspect.md: counted as two fp32 copies of the seven inputs).
 */
function loraDropoutCopies(s: ModelShape): number {
  return 2 * F32 * s.projections.reduce((n, [inputs]) => n + inputs, 0);
}

function loraParameters(s: ModelShape, r: number): number {
  return s.layers * s.projections.reduce((n, [inputs, outputs]) => n + r * (inputs + outputs), 0);
}

const sum = (parts: Record<string, number>) => Object.values(parts).reduce((a, b) => a + b, 0);
