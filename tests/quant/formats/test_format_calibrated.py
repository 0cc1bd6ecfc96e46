"""Range-calibrated formats: integer with frac_width = "auto", and scaled integers (int).

Every result is compared bit for bit with the independent references of
formats_reference (exact rationals for the frac width and the rounding step).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.quant.formats.formats_reference import (
    assert_same_bits,
    auto_frac_ref,
    finite_range_ref,
    int_fit_ref,
    int_ref,
    integer_ref_exact,
)

from bitscout.errors import QuantConfigError
from bitscout.quant.formats import (
    IntegerFormat,
    IntFormat,
    auto_frac_width,
    finite_range,
    observe,
    parse_layer_config,
)


def _inputs(seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(300) * scale
    return x.astype(np.float32)


# ------------------------------------------------------------------ auto frac width


@pytest.mark.parametrize(
    ("width", "max_abs", "frac"),
    [
        (8, 1.0, 7),  # an exact power of two: ceil(log2(1)) = 0
        (8, 2.0, 6),
        (8, 0.5, 8),
        (8, 1.5, 6),  # ceil(log2(1.5)) = 1
        (8, 3.0, 5),
        (8, 4.0001, 4),
        (4, 100.0, -4),  # 2**7 = 128 >= 100 > 64: negative frac
        (8, 2.0**-20, 27),  # above the width
        (8, 0.0, 7),  # zero range: the range of |x| <= 1
        (1, 0.75, 0),
        (16, float.fromhex("0x1.000002p+3"), 11),  # one float32 ulp above 8
        (16, float.fromhex("0x1.fffffep+2"), 12),  # one float32 ulp below 8
    ],
)
def test_auto_frac_width_hand_computed(width: int, max_abs: float, frac: int) -> None:
    assert auto_frac_width(width, max_abs) == frac
    assert auto_frac_ref(width, max_abs) == frac


def test_auto_frac_width_matches_exact_reference_on_many_magnitudes() -> None:
    rng = np.random.default_rng(3)
    mags = np.concatenate([np.exp2(rng.uniform(-140, 120, 500)), np.exp2(np.arange(-149, 128, dtype=np.float64))])
    for m in mags.astype(np.float32).astype(np.float64).tolist():
        for width in (1, 4, 8, 32):
            assert auto_frac_width(width, m) == auto_frac_ref(width, m), (width, m)


@pytest.mark.parametrize("width", [2, 4, 8, 12])
@pytest.mark.parametrize("scale", [1e-3, 0.3, 1.0, 7.0, 5000.0])
def test_auto_quantize_is_integer_with_the_reference_frac(width: int, scale: float) -> None:
    x = _inputs(width, scale)
    x[:4] = [np.nan, np.inf, -np.inf, -0.0]  # never part of the range
    frac = auto_frac_ref(width, max(abs(v) for v in finite_range_ref(x)))
    got = IntegerFormat(width, "auto").quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, integer_ref_exact(x, width, frac))


def test_auto_power_of_two_max_saturates_one_step_and_negative_is_exact() -> None:
    fmt = IntegerFormat(4, "auto")
    got = fmt.quantize(torch.tensor([2.0, 0.3])).tolist()  # frac = 4 - 1 - 1 = 2
    assert got == [1.75, 0.25]
    got = fmt.quantize(torch.tensor([-2.0, 0.3])).tolist()
    assert got == [-2.0, 0.25]


def test_auto_zero_one_element_and_no_finite_element() -> None:
    fmt = IntegerFormat(8, "auto")
    assert_same_bits(fmt.quantize(torch.tensor([0.0, -0.0])).numpy(), np.array([0.0, -0.0], np.float32))
    assert fmt.quantize(torch.tensor([3.3])).tolist() == [3.3125]  # frac 5: 106 / 32
    out = fmt.quantize(torch.tensor([math.nan, math.inf, -math.inf]))
    # No finite element: frac = 7, so inf saturates to 127/128 and -inf to -1.
    assert math.isnan(out[0]) and out[1:].tolist() == [127 / 128, -1.0]


def test_auto_calibrated_resolves_to_fixed_and_na_is_unchanged() -> None:
    fmt = IntegerFormat(8, "auto")
    assert fmt.needs_calibration and fmt.bits == 8 and fmt.describe() == "int8.auto"
    assert fmt.calibrated(-5.0, 3.0) == IntegerFormat(8, 4)
    assert fmt.calibrated(0.0, 0.0) == IntegerFormat(8, 7)
    mase = IntegerFormat(8)  # MASE's "NA": width // 2, whatever the range
    assert mase.frac_width == 4 and not mase.needs_calibration and mase.calibrated(-100, 100) is mase


def test_auto_misspelled_is_refused_with_the_toml_path() -> None:
    with pytest.raises(QuantConfigError) as err:
        parse_layer_config(
            {"name": "integer", "data_in_width": 8, "data_in_frac_width": "atuo"},
            where="passes.quantize.default.config",
            tensors=("data_in",),
        )
    message = str(err.value)
    assert message.startswith("passes.quantize.default.config: field 'data_in_frac_width'")
    assert "'auto'" in message and "got 'atuo'" in message


# ---------------------------------------------------------------------- scaled int


@pytest.mark.parametrize("width", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 300.0])
def test_int_per_tensor_matches_reference(width: int, symmetric: bool, scale: float) -> None:
    x = _inputs(width + 10 * symmetric, scale) + (0.7 * scale if not symmetric else 0.0)
    x = x.astype(np.float32)
    x[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    s, z = int_fit_ref(*finite_range_ref(x), width, symmetric)
    got = IntFormat(width, symmetric).quantize(torch.from_numpy(x)).numpy()
    assert_same_bits(got, int_ref(x, width, symmetric, s, z))
    fixed = IntFormat(width, symmetric).calibrated(*finite_range_ref(x))
    assert fixed.scale == s and (fixed.zero_point or 0) == z
    assert_same_bits(fixed.quantize(torch.from_numpy(x)).numpy(), got)


def test_int_ties_round_half_to_even_and_saturate() -> None:
    fmt = IntFormat(4, True, scale=0.5)  # codes -7..7
    x = torch.tensor([0.25, 0.75, -0.25, -0.75, 1.25, 3.5, 3.75, 100.0, -100.0, -0.0])
    want = np.array([0.0, 1.0, -0.0, -1.0, 1.0, 3.5, 3.5, 3.5, -3.5, -0.0], np.float32)
    assert_same_bits(fmt.quantize(x).numpy(), want)
    asym = IntFormat(3, False, scale=1.0, zero_point=2)  # codes -4..3, minus 2: values -6..1
    got = asym.quantize(torch.tensor([-5.0, -1.5, -0.5, 0.5, 1.5, 9.0, -7.0, -0.0]))
    assert_same_bits(got.numpy(), np.array([-5.0, -2.0, 0.0, 0.0, 1.0, 1.0, -6.0, 0.0], np.float32))


def test_int_zero_range_and_one_element() -> None:
    fmt = IntFormat(8)
    assert fmt.fit(0.0, 0.0) == (1.0, 0)
    assert_same_bits(fmt.quantize(torch.zeros(3)).numpy(), np.zeros(3, np.float32))
    one = torch.tensor([-2.5])
    assert fmt.quantize(one).tolist() == [-2.5]  # the largest magnitude is a code: -127 * s
    assert IntFormat(8, False).quantize(torch.tensor([2.5])).tolist() == [2.5]


def test_int_per_channel_matches_reference_per_row() -> None:
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((6, 3, 3, 3)) * np.exp2(rng.integers(-4, 4, (6, 1, 1, 1)))).astype(np.float32)
    w[2] = 0.0  # a dead channel: scale 1, stays 0
    w[3, 0, 0, 0] = np.nan
    for symmetric in (True, False):
        got = IntFormat(4, symmetric, "channel").quantize(torch.from_numpy(w)).numpy()
        for c in range(6):
            s, z = int_fit_ref(*finite_range_ref(w[c]), 4, symmetric)
            assert_same_bits(got[c], int_ref(w[c], 4, symmetric, s, z))


def test_int_storage_overhead_and_describe() -> None:
    assert IntFormat(8).storage_overhead_bits((16, 8)) == 32
    assert IntFormat(8, granularity="channel").storage_overhead_bits((16, 8)) == 16 * 32
    assert IntFormat(4, False, "channel").storage_overhead_bits((16, 8)) == 16 * (32 + 4)
    assert IntFormat(8).describe() == "int8" and IntFormat(8, granularity="channel").describe() == "int8/ch"
    assert IntFormat(8, scale=0.5).describe() == "int8@0.5"


@pytest.mark.parametrize(
    ("raw", "op", "tensors", "field", "rule"),
    [
        ({"data_in_width": 8, "data_in_granularity": "channel"}, "linear", ("data_in",), "data_in_granularity", "per-channel scales are for weights"),
        ({"data_in_width": 8, "weight_width": 8, "weight_granularity": "channel"}, "add", ("data_in", "weight"), "weight_granularity", "no weight with output channels"),
        ({"weight_width": 8, "weight_granularity": "row"}, "linear", ("weight",), "weight_granularity", "must be 'tensor' or 'channel'"),
        ({"weight_width": 1}, "linear", ("weight",), "weight_width", "must be an integer in 2..32"),
        ({"weight_width": 8, "weight_scale": -1.0}, "linear", ("weight",), "weight_scale", "finite number > 0"),
        ({"weight_width": 8, "weight_zero_point": 3, "weight_scale": 0.1}, "linear", ("weight",), "weight_zero_point", "symmetric"),
    ],
)
def test_int_bad_fields_name_the_toml_path(raw, op, tensors, field, rule) -> None:
    where = "search.search_space.seed.fc1.config"
    with pytest.raises(QuantConfigError) as err:
        parse_layer_config({"name": "int", **raw}, where=where, tensors=tensors, op=op)
    assert str(err.value).startswith(f"{where}: field '{field}'") and rule in str(err.value)


def test_int_per_channel_weight_of_a_linear_is_accepted() -> None:
    cfg = parse_layer_config(
        {"name": "int", "data_in_width": 8, "weight_width": 8, "weight_granularity": "channel"},
        where="x", tensors=("data_in", "weight"), op="linear",
    )
    assert cfg is not None and cfg.weight == IntFormat(8, granularity="channel")


# ------------------------------------------------------------------------ observers


def test_observers_minmax_and_percentile_by_nearest_rank() -> None:
    x = torch.arange(1, 10001, dtype=torch.float32)  # 1 .. 10000
    x[0] = math.inf
    assert finite_range(x) == (2.0, 10000.0)
    assert observe(x, "minmax") == (2.0, 10000.0)
    # 9,999 finite values 2..10000, the k-th smallest is k + 1. Nearest rank:
    # ceil(0.9999 * 9999) = ceil(9998.0001) = 9999 and ceil(0.0001 * 9999) = 1;
    # ceil(0.99 * 9999) = ceil(9899.01) = 9900 and ceil(0.01 * 9999) = ceil(99.99) = 100.
    assert observe(x, "percentile", 99.99) == (2.0, 10000.0)
    assert observe(x, "percentile", 99.0) == (101.0, 9901.0)
    with pytest.raises(ValueError, match="unknown observer 'mse'"):
        observe(x, "mse")
    assert observe(torch.tensor([math.nan]), "percentile") == (0.0, 0.0)
