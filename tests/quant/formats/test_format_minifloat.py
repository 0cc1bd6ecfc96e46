"""Minifloat formats (saturating and IEEE-style) against enumerated grids and hardware casts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.quant.formats.formats_reference import (
    assert_same_bits,
    bfloat16_ref,
    minifloat_grid,
    minifloat_ref,
    values_around,
)

from bitscout.errors import QuantConfigError
from bitscout.quant.formats import MinifloatFormat, MinifloatIEEEFormat

# (width, exponent_width, exponent_bias or None for the default)
CASES = [
    (3, 1, None),
    (4, 2, None),
    (5, 2, 0),
    (6, 3, None),
    (8, 4, None),  # e4m3 with bias 7
    (8, 5, None),  # e5m2
    (8, 4, -3),
    (8, 3, 20),
    (10, 4, 5),
    (12, 5, None),
    (16, 5, None),  # float16's layout
    (10, 8, None),  # emax 128: beyond float32, computed in float64
    (12, 3, 130),  # smallest normal below float32's: float64 path
]


def _inputs(width: int, ew: int, bias: int, ieee: bool) -> np.ndarray:
    grid, _ = minifloat_grid(width, ew, bias, ieee)
    rng = np.random.default_rng(width * 31 + ew)
    top = np.abs(grid).max()
    rand = np.concatenate(
        [rng.standard_normal(300) * top / 4, rng.standard_normal(300) * grid[grid > 0].min() * 8]
    )
    return np.concatenate([values_around(grid, (top * 1.5, -top * 1.5)), rand]).astype(np.float32)


@pytest.mark.parametrize(("width", "ew", "bias"), CASES)
def test_minifloat_saturating_matches_enumerated_grid(width: int, ew: int, bias: int | None) -> None:
    fmt = MinifloatFormat(width, ew, bias)
    assert fmt.exponent_bias is not None
    x = _inputs(width, ew, fmt.exponent_bias, ieee=False)
    got = fmt.quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, minifloat_ref(x, width, ew, fmt.exponent_bias, ieee=False))


@pytest.mark.parametrize(("width", "ew", "bias"), [c for c in CASES if c[1] >= 2])
def test_minifloat_ieee_matches_enumerated_grid(width: int, ew: int, bias: int | None) -> None:
    fmt = MinifloatIEEEFormat(width, ew, bias)
    assert fmt.exponent_bias is not None
    x = _inputs(width, ew, fmt.exponent_bias, ieee=True)
    got = fmt.quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, minifloat_ref(x, width, ew, fmt.exponent_bias, ieee=True))


def _random_bit_patterns(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)


def test_minifloat_ieee_16_5_is_numpy_float16_cast() -> None:
    normal = (np.random.default_rng(2).standard_normal(5000) * 100).astype(np.float32)
    x = np.concatenate([_random_bit_patterns(20000, 1), normal])
    x = np.concatenate([x, values_around(np.array([6.0e-8, 1.0, 65504.0, 65520.0]))])
    got = MinifloatIEEEFormat(16, 5).quantize(torch.from_numpy(x)).numpy()
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).astype(np.float32)
    assert_same_bits(got, want)


def test_minifloat_ieee_16_8_is_bfloat16_rounding() -> None:
    x = np.concatenate([_random_bit_patterns(20000, 3), values_around(np.array([1.0, 3.3e38]))])
    got = MinifloatIEEEFormat(16, 8).quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, bfloat16_ref(x))


def test_minifloat_ieee_32_8_is_identity_on_float32() -> None:
    specials = np.array([np.inf, -np.inf, 1e-45, -0.0], dtype=np.float32)
    x = np.concatenate([_random_bit_patterns(20000, 4), specials])
    got = MinifloatIEEEFormat(32, 8).quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, x)


def test_minifloat_hand_computed_e4m3() -> None:
    fmt = MinifloatFormat(8, 4)  # m = 3, bias 7: max (2 - 1/8) * 2**8 = 480, subnormal step 2**-9
    x = torch.tensor([1.0625, 1.1875, 100.0, 1000.0, 2.0**-10, 3 * 2.0**-11, -(2.0**-11), -float("inf")])
    want = [1.0, 1.25, 96.0, 480.0, 0.0, 2.0**-9, -0.0, -480.0]
    assert_same_bits(fmt.quantize(x).numpy(), np.array(want, dtype=np.float32))
    ieee = MinifloatIEEEFormat(8, 4)  # max (2 - 1/8) * 2**7 = 240; 248 is the overflow midpoint
    y = torch.tensor([240.0, 247.9, 248.0, -1e30, float("inf"), float("nan")])
    got = ieee.quantize(y)
    assert got[:2].tolist() == [240.0, 240.0]
    assert got[2].item() == float("inf") and got[3].item() == -float("inf") and got[4].item() == float("inf")
    assert torch.isnan(got[5])


def test_minifloat_describe_and_bits() -> None:
    assert MinifloatFormat(8, 4).describe() == "fp8e4m3b7"
    assert MinifloatIEEEFormat(8, 5).describe() == "fp8e5m2b15-ieee"
    assert MinifloatFormat(8, 4).bits == 8
    assert MinifloatFormat(8, 4).max_value == 480.0
    assert MinifloatIEEEFormat(8, 4).max_value == 240.0


@pytest.mark.parametrize(
    ("cls", "kwargs", "field", "pattern"),
    [
        (MinifloatFormat, {"width": 8, "exponent_width": 7}, "exponent_width", r"must leave at least one mantissa bit \(1 <= exponent_width <= width - 2 = 6\); got 7"),
        (MinifloatFormat, {"width": 8, "exponent_width": 0}, "exponent_width", r"got 0"),
        (MinifloatFormat, {"width": 2, "exponent_width": 1}, "width", r"must be at least 3 .*; got 2"),
        (MinifloatFormat, {"width": 0, "exponent_width": 1}, "width", r"must be an integer in 1..32; got 0"),
        (MinifloatIEEEFormat, {"width": 8, "exponent_width": 1}, "exponent_width", r"\(2 <= exponent_width <= width - 2 = 6\); got 1"),
        (MinifloatFormat, {"width": 16, "exponent_width": 10, "exponent_bias": 5000}, "exponent_bias", r"float64's normal range.*got 5000"),
        (MinifloatFormat, {"width": 32, "exponent_width": 12}, "exponent_bias", r"got 2047"),
    ],
)
def test_minifloat_rejects_bad_fields(cls: type, kwargs: dict, field: str, pattern: str) -> None:
    with pytest.raises(QuantConfigError, match=rf"field '{field}' .*{pattern}"):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("cls", "width", "ew", "bias"),
    [(MinifloatFormat, *c) for c in CASES] + [(MinifloatIEEEFormat, *c) for c in CASES if c[1] >= 2],
)
def test_float32_and_float64_paths_agree(cls: type, width: int, ew: int, bias: int | None) -> None:
    fmt = cls(width, ew, bias)
    x = _inputs(width, ew, fmt.exponent_bias, cls is MinifloatIEEEFormat)
    from_f32 = fmt.quantize(torch.from_numpy(x)).numpy()
    with np.errstate(over="ignore"):
        from_f64 = fmt.quantize(torch.from_numpy(x).double()).numpy().astype(np.float32)
    assert_same_bits(from_f32, from_f64)
