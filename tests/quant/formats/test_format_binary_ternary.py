"""Binary and ternary formats and their scaling rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.quant.formats.formats_reference import assert_same_bits, binary_ref, ternary_ref

from bitscout.errors import QuantConfigError
from bitscout.quant.formats import BinaryFormat, TernaryFormat

SPECIALS = np.array([0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, np.nan, np.inf, -np.inf], dtype=np.float32)


def _inputs(seed: int, n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([(rng.standard_normal(n) * 0.3).astype(np.float32), SPECIALS[[0, 1, 2, 3, 6, 7, 8]]])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [None, 0.5, 3])
def test_binary_matches_reference(seed: int, scale: float | None) -> None:
    x = _inputs(seed, n=2002).reshape(-1, 7)
    got = BinaryFormat(scale=scale).quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, binary_ref(x, scale))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("threshold", "scale"), [(None, None), (0.1, None), (None, 0.25), (0.2, 1.0), (0, 2)])
def test_ternary_matches_reference(seed: int, threshold: float | None, scale: float | None) -> None:
    x = _inputs(seed + 10)
    got = TernaryFormat(threshold=threshold, scale=scale).quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, ternary_ref(x, threshold, scale))


def test_binary_hand_computed() -> None:
    x = torch.tensor([1.0, -2.0, 0.0, -0.0, 3.0, float("inf"), float("nan")])
    got = BinaryFormat().quantize(x)  # mean |x| over finite values: 6 / 5 = 1.2
    s = np.float32(1.2)
    assert_same_bits(got[:6].numpy(), np.array([s, -s, s, s, s, s], dtype=np.float32))
    assert torch.isnan(got[6])
    assert BinaryFormat(scale=0.5).quantize(torch.tensor([-3.0, 0.0])).tolist() == [-0.5, 0.5]
    assert BinaryFormat().quantize(torch.tensor([float("inf")])).tolist() == [0.0]


def test_ternary_hand_computed() -> None:
    # mean |x| = 4 / 5 = 0.8, threshold 0.56: {-1.2, 1.5} are above, scale (1.2 + 1.5) / 2 = 1.35.
    x = torch.tensor([0.5, -1.2, 1.5, -0.3, 0.5])
    s = np.float32(1.35)
    want = np.array([0.0, -s, s, 0.0, 0.0], dtype=np.float32)
    assert_same_bits(TernaryFormat().quantize(x).numpy(), want)
    fixed = TernaryFormat(threshold=0.5, scale=2.0).quantize(x)
    assert_same_bits(fixed.numpy(), np.array([0.0, -2.0, 2.0, 0.0, 0.0], dtype=np.float32))


def test_descriptions_and_bits() -> None:
    assert BinaryFormat().bits == 1 and TernaryFormat().bits == 2
    assert BinaryFormat().describe() == "bin(s=mean|x|)"
    assert BinaryFormat(scale=0.5).describe() == "bin(s=0.5)"
    assert TernaryFormat().describe() == "ter(t=0.7mean|x|,s=mean)"
    assert TernaryFormat(threshold=0.1, scale=2).describe() == "ter(t=0.1,s=2)"


@pytest.mark.parametrize(
    ("cls", "kwargs", "field", "value"),
    [
        (BinaryFormat, {"width": 2}, "width", 2),
        (BinaryFormat, {"scale": 0}, "scale", 0),
        (BinaryFormat, {"scale": -1.0}, "scale", -1.0),
        (BinaryFormat, {"scale": float("inf")}, "scale", float("inf")),
        (BinaryFormat, {"scale": "big"}, "scale", "big"),
        (TernaryFormat, {"width": 1}, "width", 1),
        (TernaryFormat, {"threshold": -0.1}, "threshold", -0.1),
        (TernaryFormat, {"scale": True}, "scale", True),
    ],
)
def test_binary_ternary_reject_bad_fields(cls: type, kwargs: dict, field: str, value: object) -> None:
    with pytest.raises(QuantConfigError, match=rf"field '{field}' .*; got {value!r}$"):
        cls(**kwargs)
