"""Calibrated block-wise quantization: GPTQ (Frantar et al. 2022) over the fp32 export's own activations.

Round-to-nearest treats every weight alike; GPTQ quantizes a weight's input dimensions one at a time and moves
the rounding error onto the dimensions not yet quantized, weighted by how the calibration text's activations
correlate (the Hessian X^T X of each MatMul's input), so the layer's outputs on real text move least. Each
block's scale is taken when the block starts, from the weights as GPTQ has updated them, which keeps the result
in MatMulNBits' layout (one scale, and a zero point when asymmetric, per block along the input dimension).
"""

import numpy as np

from .nbits import block_scales, decode, encode

# Columns updated together before the rest of the weight is (the lazy batch of the paper); a multiple of every block size.
LAZY_BATCH = 128
# Added to the Hessian's diagonal, as a share of its mean, so that it can be inverted whatever the calibration text.
DAMPING = 0.01


def input_hessians(session, feeds, names: list[str]) -> tuple[dict, int]:
    """Σ x xᵀ over every position of the calibration windows, for each named MatMul input; and the positions seen."""
    sums: dict = {}
    positions = 0
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed)):
            x = value.reshape(-1, value.shape[-1]).astype(np.float32)
            sums[name] = sums.get(name, 0) + (x.T @ x).astype(np.float64)
        positions += int(feed["input_ids"].size)
    return sums, positions


def gptq(rows: np.ndarray, hessian: np.ndarray, bits: int, block_size: int, symmetric: bool):
    """Rows [N, K] of a weight (MatMul's B transposed) -> (codes [N, blocks, block_size], scales, zero points or None)."""
    import torch

    # Each column's update is a small rank-1 step: threads only add barrier waits (minutes on a loaded machine).
    torch.set_num_threads(1)
    count, cols = rows.shape
    padded = cols + (-cols % block_size)
    weight = torch.zeros(count, padded, dtype=torch.float32)
    weight[:, :cols] = torch.from_numpy(rows.astype(np.float32))
    h = torch.eye(padded, dtype=torch.float64)
    h[:cols, :cols] = torch.from_numpy(hessian)
    dead = torch.diag(h) == 0  # inputs the calibration text never drove: their weights cannot matter to it
    h[dead, dead] = 1
    weight[:, dead] = 0
    h += DAMPING * torch.mean(torch.diag(h)) * torch.eye(padded, dtype=torch.float64)
    inverse = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).float()

    blocks = padded // block_size
    codes = np.zeros((count, blocks, block_size), np.uint8)
    scales = np.zeros((count, blocks), np.float32)
    zero_points = None if symmetric else np.zeros((count, blocks), np.uint8)
    for start in range(0, padded, LAZY_BATCH):
        end = min(start + LAZY_BATCH, padded)
        batch, errors, batch_inverse = weight[:, start:end].clone(), torch.zeros(count, end - start), inverse[start:end, start:end]
        for i in range(end - start):
            column = start + i
            block, offset = divmod(column, block_size)
            if offset == 0:
                s, z = block_scales(batch[:, i : i + block_size].numpy()[:, None, :], bits, symmetric)
                scales[:, block] = s[:, 0]
                if zero_points is not None and z is not None:
                    zero_points[:, block] = z[:, 0]
            s, z = scales[:, block], None if zero_points is None else zero_points[:, block]
            code = encode(batch[:, i].numpy()[:, None], s, z, bits)
            codes[:, block, offset] = code[:, 0]
            error = (batch[:, i] - torch.from_numpy(decode(code, s, z, bits)[:, 0])) / batch_inverse[i, i]
            batch[:, i:].addr_(error, batch_inverse[i, i:], alpha=-1)
            errors[:, i] = error
        weight[:, end:] -= errors @ inverse[start:end, end:]
    return codes, scales, zero_points
