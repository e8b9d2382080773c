"""Block-wise n-bit weights in the layouts of onnxruntime's MatMulNBits and GatherBlockQuantized (numpy only).

Both operators store a weight as rows of codes, `block_size` codes per scale along the row, 4-bit codes packed
two a byte (low-order bits first), symmetric codes around the default zero point 2^(bits-1). A MatMul weight B
[K, N] is stored transposed (N rows of K), which is the layout of an embedding table [vocab, hidden]: that is what
lets a tied embedding and output layer share one quantized copy.
"""

import numpy as np


def block_view(rows: np.ndarray, block_size: int) -> np.ndarray:
    """[R, C] -> [R, ceil(C / block_size), block_size], zero-padded at the end of each row."""
    count, cols = rows.shape
    return np.pad(rows, ((0, 0), (0, -cols % block_size))).reshape(count, -1, block_size)


def block_scales(blocks: np.ndarray, bits: int, symmetric: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """One scale per block (and a zero point when asymmetric) that covers the block's range. A symmetric block's
    scale is negative, its largest weight over -2^(bits-1): that weight lands on the code range's one extra
    negative step, so the other codes are 2^(bits-1) - 1 steps on either side (llama.cpp's Q4_0 does the same)."""
    if symmetric:
        extreme = np.take_along_axis(blocks, np.abs(blocks).argmax(-1)[..., None], -1)[..., 0]
        scales = extreme / -(2 ** (bits - 1))
        scales[scales == 0] = 1.0
        return scales.astype(np.float32), None
    low, high = np.minimum(blocks.min(-1), 0), np.maximum(blocks.max(-1), 0)
    scales = (high - low) / (2**bits - 1)
    scales[scales == 0] = 1.0
    return scales.astype(np.float32), np.clip(np.rint(-low / scales), 0, 2**bits - 1).astype(np.uint8)


def encode(values: np.ndarray, scales: np.ndarray, zero_points: np.ndarray | None, bits: int) -> np.ndarray:
    """Codes of `values` ([..., block]) on the grid of their block's scale (and zero point)."""
    if zero_points is None:
        half = 2 ** (bits - 1)
        return (np.clip(np.rint(values / scales[..., None]), -half, half - 1) + half).astype(np.uint8)
    return np.clip(np.rint(values / scales[..., None]) + zero_points[..., None], 0, 2**bits - 1).astype(np.uint8)


def decode(codes: np.ndarray, scales: np.ndarray, zero_points: np.ndarray | None, bits: int) -> np.ndarray:
    zero = 2 ** (bits - 1) if zero_points is None else zero_points[..., None].astype(np.float32)
    return (codes.astype(np.float32) - zero) * scales[..., None]


def round_to_nearest(rows: np.ndarray, bits: int, block_size: int, symmetric: bool):
    """Rows [R, C] -> (codes [R, blocks, block_size], scales [R, blocks], zero points [R, blocks] or None)."""
    blocks = block_view(rows.astype(np.float32), block_size)
    scales, zero_points = block_scales(blocks, bits, symmetric)
    return encode(blocks, scales, zero_points, bits), scales, zero_points


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Codes [..., n] -> bytes [..., n * bits / 8]: 4-bit codes two a byte, low-order bits first."""
    if bits == 8:
        return codes.astype(np.uint8)
    if codes.shape[-1] % 2:
        codes = np.concatenate([codes, np.zeros((*codes.shape[:-1], 1), np.uint8)], -1)
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
