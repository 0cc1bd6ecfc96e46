"""The log (signed power of two) format against an enumerated grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.quant.formats.formats_reference import assert_same_bits, log_grid, log_ref, values_around

from bitscout.errors import QuantConfigError
from bitscout.quant.formats import LogFormat

CASES = [(2, None), (3, None), (4, None), (4, 0), (5, 10), (6, -3), (8, None), (8, 200), (10, 300)]


@pytest.mark.parametrize(("width", "bias"), CASES)
def test_log_matches_enumerated_grid(width: int, bias: int | None) -> None:
    fmt = LogFormat(width, bias)
    assert fmt.exponent_bias is not None
    grid = log_grid(width, fmt.exponent_bias)
    with np.errstate(over="ignore"):
        finite32 = grid[np.isfinite(grid.astype(np.float32))]
    rng = np.random.default_rng(width)
    rand = rng.standard_normal(500) * np.exp2(rng.uniform(-20, 20, 500))
    x = np.concatenate([values_around(finite32), rand.astype(np.float32)])
    got = fmt.quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, log_ref(x, width, fmt.exponent_bias))


def test_log_hand_computed() -> None:
    fmt = LogFormat(4)  # bias 4: exponents -3..3, values 0, ±1/8 .. ±8
    x = torch.tensor([1.5, 1.49, 2.9, 3.0, 0.0625, 0.0624, -0.1, 100.0, -float("inf"), -0.0, -1e-30])
    want = [2.0, 1.0, 2.0, 4.0, 0.125, 0.0, -0.125, 8.0, -8.0, -0.0, -0.0]
    assert_same_bits(fmt.quantize(x).numpy(), np.array(want, dtype=np.float32))
    assert torch.isnan(fmt.quantize(torch.tensor([float("nan")]))).all()


def test_log_defaults_and_describe() -> None:
    assert LogFormat(4).exponent_bias == 4
    assert LogFormat(4).exponent_range == (-3, 3)
    assert LogFormat(2).exponent_range == (0, 0)
    assert LogFormat(6, 1).describe() == "log6b1"
    assert LogFormat(6).bits == 6


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"width": 1}, "width", 1),
        ({"width": 0}, "width", 0),
        ({"width": 40}, "width", 40),
        ({"width": 16}, "exponent_bias", 16384),
        ({"width": 4, "exponent_bias": 2000}, "exponent_bias", 2000),
        ({"width": 4, "exponent_bias": "NA"}, "exponent_bias", "NA"),
    ],
)
def test_log_rejects_bad_fields(kwargs: dict, field: str, value: object) -> None:
    with pytest.raises(QuantConfigError, match=rf"field '{field}' .*; got {value!r}$"):
        LogFormat(**kwargs)
