"""Block-wise weights (nbits.py) and GPTQ (gptq.py) against plain numpy: codes land on the grid their scale
says, 4-bit codes pack two a byte low bits first, and GPTQ's rounding moves a layer's outputs on correlated
inputs less than rounding to nearest does, at the same bits and blocks."""

import numpy as np
import pytest

from llmkit_worker.gptq import gptq
from llmkit_worker.nbits import decode, pack, round_to_nearest


@pytest.mark.parametrize(("bits", "symmetric"), [(8, True), (4, True), (4, False), (8, False)])
def test_round_to_nearest_is_within_half_a_step_of_every_weight(bits, symmetric):
    rows = np.random.default_rng(0).standard_normal((24, 96)).astype(np.float32)
    codes, scales, zero_points = round_to_nearest(rows, bits, 32, symmetric)
    assert codes.shape == (24, 3, 32) and scales.shape == (24, 3)
    assert codes.max() <= 2**bits - 1
    steps = np.abs(decode(codes, scales, zero_points, bits).reshape(24, 96) - rows) / np.abs(scales).repeat(32, 1)
    # Half a step, but for a symmetric block's weights of the other sign than its largest one: its codes reach
    # one step less that way (the extreme takes the range's extra negative step), so those may be clipped by a step.
    assert steps.max() <= 1 + 1e-5
    assert np.mean(steps <= 0.5 + 1e-5) > 0.99


def test_four_bit_codes_pack_low_bits_first():
    assert pack(np.array([[1, 2, 15, 0, 7]], np.uint8), 4).tolist() == [[0x21, 0x0F, 0x07]]
    assert pack(np.array([[200, 3]], np.uint8), 8).tolist() == [[200, 3]]


@pytest.mark.parametrize("bits", [4, 8])
def test_gptq_moves_outputs_on_correlated_inputs_less_than_rounding(bits):
    rng = np.random.default_rng(1)
    # Inputs with a few strong directions and an outlier channel, as a transformer's are.
    x = rng.standard_normal((2048, 8)) @ rng.standard_normal((8, 128)) + 0.1 * rng.standard_normal((2048, 128))
    x[:, 5] *= 20
    rows = rng.standard_normal((64, 128)).astype(np.float32)
    hessian = x.T @ x

    def output_error(codes, scales, zero_points):
        weights = decode(codes, scales, zero_points, bits).reshape(64, 128)
        return float(np.linalg.norm(x @ (weights - rows).T))

    nearest = output_error(*round_to_nearest(rows, bits, 32, True))
    calibrated = output_error(*gptq(rows, hessian, bits, 32, True))
    assert calibrated < 0.7 * nearest, (calibrated, nearest)
