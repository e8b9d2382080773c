"""Training losses: next-token cross-entropy and logit distillation.

A loss is called as `loss(model, batch)` with the causal LM (its decoder and output layer are used, not its
forward) and a batch from data.collate, and returns the *sum* over the batch's target tokens; the loop divides
by the target tokens of the whole step. Both compute the output layer themselves, a chunk of rows at a time, so
the [tokens, vocab] fp32 logits of a large vocabulary never exist at once, and only at the positions that carry
the loss; so they apply the model's final logit soft-capping (Gemma 2/3) themselves too.
"""

import torch
from torch.utils.checkpoint import checkpoint

# Logits computed at once: 2**28 fp32 values are 1 GiB (1766 rows of Qwen's 151936-token vocabulary).
CHUNK_ELEMENTS = 1 << 28


def hidden_at_targets(decoder, batch: dict):
    """The decoder's last hidden state at the positions that carry the loss."""
    hidden = decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).last_hidden_state
    return hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["picked"])


def softcap_of(model):
    return getattr(model.config, "final_logit_softcapping", None)


def softcapped(logits, cap):
    """Final logit soft-capping, for configs that set it: logits = cap · tanh(logits / cap)."""
    return torch.tanh(logits / cap) * cap if cap else logits


def cross_entropy_chunk(logits, targets, grads: bool, cap):
    """Summed loss of one chunk of logits and, with grads, d(loss)/d(logits) = softmax - one-hot, in the logits'
    dtype. Written as plain elementwise math and reductions so that torch.compile fuses it into a couple of
    passes over the chunk (eager PyTorch makes about ten)."""
    x = logits.float()
    if cap:
        t = torch.tanh(x / cap)
        x = t * cap
    lse = torch.logsumexp(x, -1, keepdim=True)
    picked = x.gather(1, targets[:, None])
    loss = (lse - picked).sum()
    if not grads:
        return loss, None
    onehot = torch.arange(x.shape[1], device=x.device)[None, :] == targets[:, None]
    grad = torch.exp(x - lse) - onehot.float()
    return loss, (grad * (1 - t * t) if cap else grad).to(logits.dtype)


class CausalLMLoss:
    """Cross-entropy of each target token. With gradients, each chunk's gradient (softmax minus one-hot) is made
    in the forward pass and its logits dropped, so nothing is recomputed in the backward pass.

    `compiled` (--compile on CUDA) runs the chunk through torch.compile; `cuda_graphs` says the decoder layers
    replay as CUDA graphs, whose outputs a new micro-batch must release first."""

    def __init__(self, compiled: bool = False, cuda_graphs: bool = False, chunk_elements: int = CHUNK_ELEMENTS):
        self.chunk = torch.compile(cross_entropy_chunk, dynamic=True) if compiled else cross_entropy_chunk
        self.cuda_graphs = cuda_graphs
        self.chunk_elements = chunk_elements

    def __call__(self, model, batch: dict):
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        hidden = hidden_at_targets(model.get_decoder(), batch)
        return self.linear_cross_entropy(hidden, model.get_output_embeddings().weight, batch["targets"], softcap_of(model))

    def linear_cross_entropy(self, hidden, weight, targets, cap=None):
        """sum(cross_entropy(softcapped(hidden @ weight.T), targets)), a chunk of rows at a time."""
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
        if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
            return _LinearCrossEntropy.apply(hidden, weight, targets, dtype, cap, self)
        return self.chunked(hidden, weight, targets, dtype, cap, grads=False)[0]

    def chunked(self, hidden, weight, targets, dtype, cap, grads: bool):
        with torch.autocast(hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            grad_h = torch.empty_like(h) if grads else None
            grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device) if grads and weight.requires_grad else None
            rows = max(1, self.chunk_elements // w.shape[0])
            for s in range(0, h.shape[0], rows):
                hs = h[s : s + rows]
                loss, g = self.chunk(hs @ w.T, targets[s : s + rows], grads, cap)
                total += loss
                if grad_h is not None:
                    grad_h[s : s + rows] = g @ w
                    if grad_w is not None:
                        grad_w += (g.T @ hs).float()
        return total, grad_h, grad_w


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, dtype, cap, loss: CausalLMLoss):
        total, grad_h, grad_w = loss.chunked(hidden, weight, targets, dtype, cap, grads=True)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        grad_weight = (grad_w * grad_out).to(ctx.dtypes[1]) if grad_w is not None else None
        return (grad_h * grad_out).to(ctx.dtypes[0]), grad_weight, None, None, None, None


def kl_divergence(teacher_logp, student_logp):
    """Summed KL(teacher ‖ student) over rows of log-probabilities."""
    return (teacher_logp.exp() * (teacher_logp - student_logp)).sum()


class DistillationLoss:
    """Logit distillation: for each target token alpha · T² · KL(teacher ‖ student, both at temperature T) +
    (1 − alpha) · cross-entropy on the label, optionally against the teacher's top-k logits only (renormalised
    over those k). The teacher runs without gradients.

    Only the first `vocabulary` logits (the tokenizer's) count: models pad their output layer past it, by
    different amounts within one family. The student's logits are remade in the backward pass, so they never
    all exist at once; the teacher's log-probabilities (or its top-k) stay until the backward pass, which is what
    top_k shrinks."""

    def __init__(self, teacher, vocabulary: int, temperature: float, alpha: float, top_k: int, chunk_elements: int = CHUNK_ELEMENTS):
        self.teacher, self.vocabulary = teacher, vocabulary
        self.temperature, self.alpha, self.top_k = temperature, alpha, top_k
        self.chunk_elements = chunk_elements

    def __call__(self, model, batch: dict):
        teacher, vocabulary, temperature = self.teacher, self.vocabulary, self.temperature
        t_weight, t_cap, cap = teacher.get_output_embeddings().weight[:vocabulary], softcap_of(teacher), softcap_of(model)
        with torch.no_grad():
            t_hidden = hidden_at_targets(teacher.get_decoder(), batch)
        hidden = hidden_at_targets(model.get_decoder(), batch)
        weight = model.get_output_embeddings().weight[:vocabulary]
        rows = max(1, self.chunk_elements // vocabulary)
        total = torch.zeros((), device=hidden.device)
        for s in range(0, hidden.shape[0], rows):
            part = slice(s, s + rows)
            with torch.no_grad():
                logits = softcapped((t_hidden[part] @ t_weight.T).float(), t_cap)
                ids = logits.topk(self.top_k, dim=-1).indices if self.top_k else None
                teacher_logp = torch.log_softmax((logits if ids is None else logits.gather(1, ids)) / temperature, -1)
            total = total + checkpoint(
                distillation_chunk, hidden[part], weight, teacher_logp, ids, batch["targets"][part], cap, temperature, self.alpha, use_reentrant=False
            )
        return total


def distillation_chunk(hidden, weight, teacher_logp, teacher_ids, targets, cap, temperature: float, alpha: float):
    logits = softcapped((hidden @ weight.T).float(), cap)
    student_logp = torch.log_softmax(logits / temperature, -1)
    if teacher_ids is not None:
        # KL over the teacher's top k only: the student's probabilities there, normalised over the whole vocabulary.
        student_logp = student_logp.gather(1, teacher_ids)
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    # T² keeps the soft targets' gradients on the scale of the hard ones whatever the temperature (Hinton et al., 2015).
    return alpha * temperature**2 * kl_divergence(teacher_logp, student_logp) + (1 - alpha) * ce
