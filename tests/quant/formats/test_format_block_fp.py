"""Block floating point against a block-by-block numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.quant.formats.formats_reference import assert_same_bits, block_fp_ref

from bitscout.errors import QuantConfigError
from bitscout.quant.formats import BlockFPFormat

CASES = [
    # width, exponent_width, bias, block_size, block_dim, shape
    (8, 8, None, 16, -1, (6, 64)),
    (4, 8, None, 4, -1, (5, 13)),  # 13 is not a multiple of 4: padded last block
    (2, 4, None, 3, 0, (7, 5)),
    (6, 3, 2, 5, 1, (3, 11, 2)),  # narrow shared exponent: clamps at both ends
    (5, 5, None, 1, -1, (40,)),  # one element per block: a 1-sign, 4-bit-mantissa float
    (3, 8, 127, 32, -2, (4, 70, 3)),
    (24, 8, None, 8, -1, (3, 40)),
    (32, 8, None, 8, -1, (2, 24)),
    (8, 7, None, 32, -1, (4, 96)),  # shared exponents -63..64: the float32 path
    (25, 6, None, 4, 1, (3, 9, 2)),
    (4, 8, 126, 2, -1, (30,)),  # -126..129: float64
]


def _inputs(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-12, 12, shape))
    flat = x.reshape(-1)
    specials = [0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, np.nan, np.inf, -np.inf, 1e-45]
    # Put specials and exact ties at spread positions (so most blocks stay ordinary).
    for i, v in enumerate(specials):
        flat[(i * 37) % flat.size] = v
    return x.astype(np.float32)


@pytest.mark.parametrize(("width", "ew", "bias", "bs", "dim", "shape"), CASES)
def test_block_fp_matches_reference(width, ew, bias, bs, dim, shape) -> None:
    x = _inputs(shape, seed=width * 7 + bs)
    fmt = BlockFPFormat(width, ew, bias, bs, dim)
    got = fmt.quantize(torch.from_numpy(x)).numpy()
    assert got.shape == x.shape
    assert_same_bits(got, block_fp_ref(x, width, ew, fmt.exponent_bias, bs, dim))


def test_block_fp_ties_and_saturation_hand_computed() -> None:
    fmt = BlockFPFormat(width=4, exponent_width=8, block_size=4)  # k in -7..7, scale 2**(E-2)
    # Block max 3.0 -> E = 1, step 0.5: 0.25 and 0.75 are ties (to even: 0, 1.0), 3.9 -> 3.5 (k=7).
    # Second block: max 5 -> E = 2, step 1: 2.5 -> 2 (tie to even), -0.4 -> -0.0, 1.5 -> 2.
    x = torch.tensor([[0.25, 0.75, 3.0, 3.9], [2.5, -0.4, 1.5, 5.0]])
    want = np.array([[0.0, 1.0, 3.0, 3.5], [2.0, -0.0, 2.0, 5.0]], dtype=np.float32)
    assert_same_bits(fmt.quantize(x).numpy(), want)


def test_block_fp_exponent_clamps_and_specials() -> None:
    # Shared exponent in -2..5 (e = 3, bias 2); elements width 3: k in -3..3, scale 2**(E-1).
    fmt = BlockFPFormat(width=3, exponent_width=3, exponent_bias=2, block_size=2)
    x = torch.tensor([0.01, 0.1, 1000.0, 1.0, float("nan"), 0.75, float("inf"), 60.0])
    got = fmt.quantize(x)
    # [0.01, 0.1]: E clamps up to -2, step 2**-3: 0 and 0.125.
    # [1000, 1]: E clamps down to 5, step 16: 1000 saturates to 3 * 16 = 48, 1 -> 0.
    # [nan, 0.75]: NaN ignored, E = -1, step 0.25: 0.75 stays; NaN stays NaN.
    # [inf, 60]: E = 5: inf -> 48, 60 -> 48.
    assert got[[0, 1, 2, 3, 5, 6, 7]].tolist() == [0.0, 0.125, 48.0, 0.0, 0.75, 48.0, 48.0]
    assert torch.isnan(got[4])


def test_block_fp_bits_amortise_the_shared_exponent() -> None:
    assert BlockFPFormat(8, 8, block_size=32).bits == 8.25
    assert BlockFPFormat(4, 8, block_size=1).bits == 12
    assert BlockFPFormat(8).describe() == "bfp8e8b127x16d-1"


def test_block_fp_zero_dim_tensor_is_one_block() -> None:
    fmt = BlockFPFormat(3, 8, block_size=4)
    assert fmt.quantize(torch.tensor(0.8)).item() == 0.75  # E = -1, k = round(3.2) = 3


def test_block_fp_block_dim_out_of_range_is_an_error() -> None:
    with pytest.raises(QuantConfigError, match=r"field 'block_dim' must name a dimension .*shape \(2, 3\).*got 2"):
        BlockFPFormat(8, block_dim=2).quantize(torch.zeros(2, 3))


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"width": 1}, "width", 1),
        ({"width": 33}, "width", 33),
        ({"width": 8, "block_size": 0}, "block_size", 0),
        ({"width": 8, "exponent_width": 0}, "exponent_width", 0),
        ({"width": 8, "exponent_width": 12}, "exponent_width", 12),
        ({"width": 8, "exponent_width": 8, "exponent_bias": 2000}, "exponent_bias", 2000),
        ({"width": 8, "block_dim": 1.5}, "block_dim", 1.5),
    ],
)
def test_block_fp_rejects_bad_fields(kwargs: dict, field: str, value: object) -> None:
    with pytest.raises(QuantConfigError, match=rf"field '{field}' .*; got {value!r}$"):
        BlockFPFormat(**kwargs)


@pytest.mark.parametrize(("width", "ew", "bias", "bs", "dim", "shape"), CASES)
def test_block_fp_float32_and_float64_paths_agree(width, ew, bias, bs, dim, shape) -> None:
    x = torch.from_numpy(_inputs(shape, seed=width + bs))
    fmt = BlockFPFormat(width, ew, bias, bs, dim)
    with np.errstate(over="ignore"):
        from_f64 = fmt.quantize(x.double()).numpy().astype(np.float32)
    assert_same_bits(fmt.quantize(x).numpy(), from_f64)
