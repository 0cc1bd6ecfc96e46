"""The integer (signed fixed-point) format against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.quant.formats.formats_reference import (
    assert_same_bits,
    integer_grid,
    integer_ref_enum,
    integer_ref_exact,
    values_around,
)

from bitscout.errors import QuantConfigError
from bitscout.quant.formats import IntegerFormat

# (width, frac_width): ordinary, width 1, negative frac, frac above the width, and the
# widths where float32 can no longer hold the clamp bounds.
ENUM_CASES = [(1, 0), (1, 3), (2, 1), (3, 0), (4, 2), (8, 4), (8, 0), (8, -3), (6, 9), (10, 12), (12, 6)]
EXACT_CASES = [(16, 8), (24, 12), (24, 0), (25, 3), (31, 10), (32, 16), (32, 0), (32, -5), (32, 40), (8, 126), (8, -126), (8, 127), (8, -200), (8, 300), (4, 5000)]


def _random_inputs(rng: np.random.Generator, scale: float) -> np.ndarray:
    return np.concatenate(
        [rng.standard_normal(400) * scale, rng.uniform(-4, 4, 200) * scale]
    ).astype(np.float32)


@pytest.mark.parametrize(("width", "frac"), ENUM_CASES)
def test_integer_matches_enumerated_grid(width: int, frac: int) -> None:
    grid, _ = integer_grid(width, frac)
    rng = np.random.default_rng(width * 100 + frac)
    x = np.concatenate([values_around(grid), _random_inputs(rng, 2.0 ** (width - 1 - frac))])
    got = IntegerFormat(width, frac).quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, integer_ref_enum(x, width, frac))


@pytest.mark.parametrize(("width", "frac"), ENUM_CASES[:6] + EXACT_CASES)
def test_integer_matches_exact_rational_reference(width: int, frac: int) -> None:
    rng = np.random.default_rng(abs(7 + width * 1000 + frac))
    scale = 2.0 ** max(-100, min(100, width - 1 - frac))
    step = 2.0 ** max(-140, min(100, -frac))
    ties = (np.arange(-40, 40) + 0.5) * step
    edges = np.array([2.0 ** (width - 1) - 1.5, 2.0 ** (width - 1) - 0.5, -(2.0 ** (width - 1)) - 0.5,
                      -(2.0 ** (width - 1)) + 0.5, 2.0 ** (width - 1) + 1]) * step
    specials = values_around(np.array([0.0, step]))
    x = np.concatenate([_random_inputs(rng, scale), ties, edges, specials]).astype(np.float32)
    got = IntegerFormat(width, frac).quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, integer_ref_exact(x, width, frac))


def test_integer_hand_computed() -> None:
    fmt = IntegerFormat(width=4, frac_width=1)  # levels -8..7 halves: -4.0 .. 3.5
    x = torch.tensor([0.25, 0.75, 1.25, -0.25, -0.75, 3.4, 3.75, 100.0, -4.25, -100.0])
    want = [0.0, 1.0, 1.0, -0.0, -1.0, 3.5, 3.5, 3.5, -4.0, -4.0]
    assert_same_bits(fmt.quantize(x).numpy(), np.array(want, dtype=np.float32))


def test_integer_special_values() -> None:
    fmt = IntegerFormat(8, 4)
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, -0.01])
    got = fmt.quantize(x)
    assert torch.isnan(got[0])
    assert got[1].item() == 127 / 16 and got[2].item() == -128 / 16
    assert torch.equal(torch.signbit(got[3:]), torch.tensor([True, False, True]))


def test_integer_frac_width_defaults_to_half_width() -> None:
    assert IntegerFormat(8).frac_width == 4
    assert IntegerFormat(7).frac_width == 3
    assert IntegerFormat(8) == IntegerFormat(8, 4)
    assert hash(IntegerFormat(8)) == hash(IntegerFormat(8, 4))


def test_integer_32_bit_top_level_rounds_once_to_float32() -> None:
    # 2**31 - 1 needs 31 significant bits; float32 holds 24, so the exact level rounds
    # (once) to 2**31; float64 inputs keep it exactly.
    fmt = IntegerFormat(32, 0)
    assert fmt.quantize(torch.tensor([1e30])).item() == 2.0**31
    assert fmt.quantize(torch.tensor([1e30], dtype=torch.float64)).item() == 2.0**31 - 1
    assert fmt.quantize(torch.tensor([2.0**30 + 3.0], dtype=torch.float64)).item() == 2.0**30 + 3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_integer_other_dtypes_round_exact_result_once(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(3)
    x32 = (rng.standard_normal(500) * 8).astype(np.float32)
    x = torch.from_numpy(x32).to(dtype)
    got = IntegerFormat(8, 3).quantize(x)
    assert got.dtype == dtype
    # The levels of int8.3 are exact in every one of these dtypes.
    want = integer_ref_exact(x.float().numpy(), 8, 3)
    assert_same_bits(got.float().numpy(), want)


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"width": 0}, "width", 0),
        ({"width": 33}, "width", 33),
        ({"width": 8.0}, "width", 8.0),
        ({"width": True}, "width", True),
        ({"width": 8, "frac_width": 2.5}, "frac_width", 2.5),
        ({"width": 8, "frac_width": "4"}, "frac_width", "4"),
    ],
)
def test_integer_rejects_bad_fields(kwargs: dict, field: str, value: object) -> None:
    with pytest.raises(QuantConfigError, match=rf"field '{field}' must be an integer.*got {value!r}"):
        IntegerFormat(**kwargs)
