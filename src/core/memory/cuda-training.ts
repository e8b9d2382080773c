/**
 * Training's peak on CUDA, as torch.cuda.max_memory_allocated counts it, from what the worker really holds there:
 * bf16 autocast (its default on any GPU with bf16) over fp32 master weights, a LoRA base in bf16, transformers' SDPA
 * attention (no mask: flash attention, which keeps no seq × seq scores), the chunked cross-entropy of
 * trainer/loss.py and fused AdamW. Each term below is counted from that code; docs/inspect.md has the
 * estimates against peaks measured on an H100.
 */
import type { EstimateOptions, ModelShape, Purpose } from './estimate.js';

const F32 = 4;
const BF16 = 2;
const MiB = 2 ** 20;
/** Logit values the worker's loss makes at once (trainer/loss.py CHUNK_ELEMENTS). */
const LOSS_CHUNK_ELEMENTS = 2 ** 28;
/**
 * cuBLAS workspaces: torch takes them from its caching allocator, so max_memory_allocated counts them. One per thread
 * that runs matmuls (Python's for the forward pass, autograd's for the backward), 32 MiB each on Hopper (torch's
 * default there; 8 MiB before Hopper, where this errs 48 MiB high). A small model's peak is mostly these.
 */
const CUBLAS_WORKSPACES = 2 * 32 * MiB;

/**
 * Bytes saved for backward per token per decoder layer under bf16 autocast. Both ways attention is flash attention:
 * q, k, v and its output in bf16 and an fp32 log-sum-exp per head (o_proj's input is that same output).
 *
 * Full fine-tuning (fp32 residual stream): each RMSNorm keeps its fp32 input and normalized output; autocast casts
 * the normed input to bf16 once per projection that reads it (q, k, v, gate, up: casts of activations are not
 * cached); the MLP keeps gate, SiLU(gate), up and their product in bf16.
 *
 * LoRA (bf16 base, frozen, so its projections keep no input): each RMSNorm keeps an fp32 copy of its bf16 input;
 * each adapter keeps its input cast to bf16 again (peft casts it to the adapter's fp32, autocast back), its rank-r
 * output, and with dropout a one-byte mask; the MLP keeps gate, SiLU(gate) and up (their product is down's adapter
 * input).
 */
export function layerActivationsCuda(s: ModelShape, lora: boolean, dropout: boolean, r: number): number {
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  const attention = BF16 * (2 * q + 2 * kv) + F32 * s.heads;
  if (!lora) return 2 * 2 * F32 * s.hidden + 5 * BF16 * s.hidden + attention + 4 * BF16 * s.intermediate;
  const adapters = s.projections.reduce((n, [inputs]) => n + BF16 * inputs + BF16 * r + (dropout ? inputs : 0), 0);
  return 2 * F32 * s.hidden + adapters + attention + 3 * BF16 * s.intermediate;
}

export interface CudaTrainingEstimate {
  parts: Record<string, number>;
  total: number;
  activationsOtherWay: number;
  /** The peak with rows of no length: what is held, and the larger of autocast's copies and the gradients. */
  lengthIndependent: number;
}

/**
 * The parts, and the peak: weights, optimizer state and workspaces are held throughout; the gradients fill in the
 * backward pass as the activations are freed layer by layer, so the peak is the larger of the end of the forward
 * pass (activations, the loss's tensors, autocast's weight copies) and the end of the backward pass (all gradients
 * and the first layer's activations, recomputed with checkpointing).
 */
export function estimateCudaTraining(purpose: Purpose, s: ModelShape, o: EstimateOptions, trainable: number, runtime: number): CudaTrainingEstimate {
  const lora = purpose === 'lora';
  const tokens = o.batchSize * o.maxSeqLen;
  const perLayer = layerActivationsCuda(s, lora, (o.loraDropout ?? 0.05) > 0, o.loraR ?? 16);
  // The residual stream is fp32 under fp32 master weights, bf16 over a bf16 base: checkpointing keeps each layer's
  // input. The final RMSNorm keeps what a layer's norm keeps; over a frozen base the first layer's input norm keeps
  // nothing (the embedding's output needs no gradient), which the final norm makes up.
  const residual = (lora ? BF16 : F32) * s.hidden;
  const finalNorm = lora ? 0 : 2 * F32 * s.hidden;
  const full = tokens * (s.layers * perLayer + finalNorm);
  const checkpointed = tokens * (s.layers * residual + perLayer + finalNorm);
  const activations = o.gradientCheckpointing ? checkpointed : full;
  const projectionWeights = s.layers * s.projections.reduce((n, [inputs, outputs]) => n + inputs * outputs, 0);
  // Autocast's bf16 copy of every fp32 weight a matmul reads (the adapters' only, over a bf16 base): cached for the
  // forward pass and kept by the backward until each layer's turn.
  const castCopies = BF16 * (lora ? trainable : projectionWeights);
  // The loss (trainer/loss.py): the hidden rows at the targets (full: fp32 and their bf16 cast) and their gradient,
  // kept for backward; per chunk row, bf16 logits, their fp32 copy, exp, the one-hot as bool and as float, and the
  // gradient (19 bytes a vocabulary entry); the output layer's bf16 copy and, trained, its fp32 gradient. Distill's
  // chunked KL holds about as much (its teacher log-probs are teacherLogits).
  const chunkRows = Math.min(tokens, Math.max(1, Math.floor(LOSS_CHUNK_ELEMENTS / s.vocab)));
  const outputLayer = s.vocab * s.hidden * (BF16 + (lora ? 0 : F32));
  const logits = tokens * (lora ? 2 * BF16 : F32 + 2 * BF16) * s.hidden + chunkRows * 19 * s.vocab + outputLayer;
  const parts: Record<string, number> = {
    weights: lora ? s.parameters * BF16 + trainable * F32 : s.parameters * F32,
    gradients: trainable * F32,
    optimizer: 2 * trainable * F32,
    activations,
    logits,
    castCopies,
    workspace: CUBLAS_WORKSPACES,
    runtime,
  };
  if (purpose === 'distill' && o.teacher) {
    // The teacher runs forward only, in bf16 on a GPU; its log-probabilities at every target stay until the backward pass.
    parts.teacher = o.teacher.parameters * BF16;
    parts.teacherLogits = tokens * (o.teacher.vocab * F32 + o.teacher.hidden * BF16);
  }
  const forwardEnd = castCopies + activations + logits + (parts.teacherLogits ?? 0);
  const backwardEnd = parts.gradients + tokens * perLayer + castCopies / s.layers;
  const held = parts.weights + parts.optimizer + (parts.teacher ?? 0) + CUBLAS_WORKSPACES + runtime;
  return {
    parts,
    total: held + Math.max(forwardEnd, backwardEnd),
    activationsOtherWay: o.gradientCheckpointing ? full : checkpointed,
    lengthIndependent: held + Math.max(castCopies, parts.gradients + castCopies / s.layers),
  };
}
