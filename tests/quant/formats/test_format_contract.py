"""The contract every registered format keeps (see TensorFormat's docstring).

A new format must add examples to EXAMPLES: test_every_registered_format_has_examples
fails until it does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tests.quant.formats.formats_reference import (
    assert_same_bits,
    auto_frac_ref,
    finite_range_ref,
    int_fit_ref,
    integer_grid,
    log_grid,
    minifloat_grid,
)

from bitscout.quant.formats import (
    BinaryFormat,
    BlockFPFormat,
    IntegerFormat,
    IntFormat,
    LayerQuantConfig,
    LogFormat,
    MinifloatFormat,
    MinifloatIEEEFormat,
    TensorFormat,
    TernaryFormat,
    fake_quantize,
    format_names,
    get_format,
    parse_layer_config,
)

EXAMPLES: dict[str, list[TensorFormat]] = {
    "integer": [
        IntegerFormat(8, 4),
        IntegerFormat(1, 0),
        IntegerFormat(4, -2),
        IntegerFormat(6, 9),
        IntegerFormat(8, "auto"),
        IntegerFormat(3, "auto"),
    ],
    "int": [
        IntFormat(8),
        IntFormat(4, symmetric=False),
        IntFormat(6, granularity="channel"),
        IntFormat(3, symmetric=False, granularity="channel"),
        IntFormat(6, scale=0.05),
        IntFormat(5, symmetric=False, scale=0.1, zero_point=3),
    ],
    "minifloat": [MinifloatFormat(8, 4), MinifloatFormat(5, 2, 0)],
    "minifloat_ieee": [MinifloatIEEEFormat(8, 5), MinifloatIEEEFormat(6, 3, 1)],
    "block_fp": [BlockFPFormat(6, 8, block_size=8), BlockFPFormat(3, 4, 3, 5, 0)],
    "log": [LogFormat(4), LogFormat(6, 10)],
    "binary": [BinaryFormat(), BinaryFormat(scale=0.25)],
    "ternary": [TernaryFormat(), TernaryFormat(threshold=0.2, scale=0.5)],
}

#: Formats that fit themselves to the tensor they quantize and may refit differently to
#: their own output (documented on each format): not idempotent in general.
REFITTING = {IntegerFormat(8, "auto"), IntegerFormat(3, "auto"), IntFormat(4, symmetric=False), IntFormat(3, symmetric=False, granularity="channel")}

ALL = [pytest.param(fmt, id=f"{name}-{i}") for name, fmts in EXAMPLES.items() for i, fmt in enumerate(fmts)]


def _grid(fmt: TensorFormat, x: torch.Tensor) -> np.ndarray | None:
    """Every value the format can produce for x (None where that depends on a block)."""
    if isinstance(fmt, IntegerFormat):
        frac = fmt.frac_width
        if frac == "auto":
            frac = auto_frac_ref(fmt.width, max(abs(v) for v in finite_range_ref(x.numpy())))
        return integer_grid(fmt.width, frac)[0]  # type: ignore[arg-type]
    if isinstance(fmt, IntFormat) and fmt.granularity == "tensor":
        if fmt.scale is not None:
            scale, zero = fmt.scale, fmt.zero_point or 0
        else:
            scale, zero = int_fit_ref(*finite_range_ref(x.numpy()), fmt.width, fmt.symmetric)
        lo, hi = fmt.codes
        return (np.arange(lo, hi + 1, dtype=np.float64) - zero) * scale
    if isinstance(fmt, MinifloatFormat):
        grid = minifloat_grid(fmt.width, fmt.exponent_width, fmt.exponent_bias, isinstance(fmt, MinifloatIEEEFormat))[0]  # type: ignore[arg-type]
        return np.concatenate([grid, [np.inf, -np.inf]]) if isinstance(fmt, MinifloatIEEEFormat) else grid
    if isinstance(fmt, LogFormat):
        return log_grid(fmt.width, fmt.exponent_bias)  # type: ignore[arg-type]
    return None


def _inputs() -> torch.Tensor:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 40)) * np.exp2(rng.integers(-6, 6, (8, 40)))
    x[0, :6] = [0.0, -0.0, 1e30, -1e30, 1e-30, 0.5]
    return torch.from_numpy(x.astype(np.float32))


def test_every_registered_format_has_examples() -> None:
    assert sorted(EXAMPLES) == format_names()
    for name, fmts in EXAMPLES.items():
        assert get_format(name) is type(fmts[0])
        assert all(f.name == name for f in fmts)


@pytest.mark.parametrize("fmt", ALL)
def test_frozen_hashable_and_rebuildable(fmt: TensorFormat) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        fmt.width = 3  # type: ignore[misc]
    rebuilt = type(fmt)(**fmt.params())
    assert rebuilt == fmt and hash(rebuilt) == hash(fmt)
    assert len({fmt, rebuilt}) == 1
    assert fmt.bits > 0
    assert fmt.describe() and str(fmt) == fmt.describe()


@pytest.mark.parametrize("fmt", ALL)
def test_quantize_keeps_shape_dtype_input_and_is_idempotent(fmt: TensorFormat) -> None:
    x = _inputs()
    before = x.clone()
    q = fmt.quantize(x)
    assert torch.equal(x, before)
    assert q.shape == x.shape and q.dtype == x.dtype and q is not x
    if fmt in REFITTING:
        # Idempotent once fitted: the format calibrated to x's range keeps q.
        fitted = fmt.calibrated(*finite_range_ref(x.numpy()))
        if fitted is not fmt:
            assert_same_bits(fitted.quantize(q).numpy(), q.numpy())
    else:
        assert_same_bits(fmt.quantize(q).numpy(), q.numpy())


@pytest.mark.parametrize("fmt", ALL)
def test_output_is_on_the_grid(fmt: TensorFormat) -> None:
    x = _inputs()
    q = fmt.quantize(x).numpy().astype(np.float64)
    grid = _grid(fmt, x)
    if grid is not None:
        assert np.isin(q, grid.astype(np.float32).astype(np.float64)).all()
    elif isinstance(fmt, IntFormat):  # per channel: each row on its own grid
        for row, xr in zip(q, x.numpy()):
            scale, zero = int_fit_ref(*finite_range_ref(xr), fmt.width, fmt.symmetric)
            lo, hi = fmt.codes
            grid = ((np.arange(lo, hi + 1, dtype=np.float64) - zero) * scale).astype(np.float32)
            assert np.isin(row, grid.astype(np.float64)).all()
    elif isinstance(fmt, (BinaryFormat, TernaryFormat)):
        values = set(np.unique(np.abs(q)).tolist())
        assert len(values - {0.0}) == 1
        assert (0.0 in values) == isinstance(fmt, TernaryFormat)
    else:
        assert isinstance(fmt, BlockFPFormat)
        kmax = 2 ** (fmt.width - 1) - 1
        lo, hi = fmt.exponent_range
        # Each value is k * 2**(E - width + 2) with |k| <= kmax for a shared exponent E in range.
        on = np.zeros(q.shape, dtype=bool)
        for e in range(lo, hi + 1):
            k = q / 2.0 ** (e - fmt.width + 2)
            on |= (k == np.round(k)) & (np.abs(k) <= kmax)
        assert on.all()


@pytest.mark.parametrize("fmt", ALL)
def test_nan_stays_nan(fmt: TensorFormat) -> None:
    x = _inputs()
    x[3, 7] = float("nan")
    q = fmt.quantize(x)
    assert torch.isnan(q[3, 7]) and torch.isnan(q).sum() == 1


@pytest.mark.parametrize("fmt", ALL)
def test_fake_quantize_forward_bits_and_identity_gradient(fmt: TensorFormat) -> None:
    x = _inputs().requires_grad_(True)
    y = fake_quantize(x, fmt)
    assert y.requires_grad
    assert_same_bits(y.detach().numpy(), fmt.quantize(x.detach()).numpy())
    g = torch.from_numpy(np.random.default_rng(1).standard_normal(x.shape).astype(np.float32))
    y.backward(g)
    assert x.grad is not None and torch.equal(x.grad, g)
    with torch.no_grad():
        z = fake_quantize(x, fmt)
    assert z.grad_fn is None and not z.requires_grad
    assert_same_bits(z.numpy(), y.detach().numpy())


@pytest.mark.parametrize("fmt", ALL)
def test_layer_config_round_trip(fmt: TensorFormat) -> None:
    # Per-channel scales apply to weights only: inputs and biases take per-tensor ones.
    per_tensor = dataclasses.replace(fmt, granularity="tensor") if getattr(fmt, "granularity", None) == "channel" else fmt
    cfg = LayerQuantConfig(fmt.name, data_in=per_tensor, weight=fmt, bias=per_tensor)
    raw = cfg.to_dict()
    assert raw["name"] == fmt.name
    assert set(raw) == {"name"} | {f"{t}_{p}" for t in ("data_in", "weight", "bias") for p in fmt.field_names()}
    assert parse_layer_config(raw, where="layer", op="linear") == cfg
    assert hash(parse_layer_config(raw, where="layer")) == hash(cfg)
    fmt = per_tensor
    only_in = LayerQuantConfig(fmt.name, data_in=fmt)
    assert parse_layer_config(only_in.to_dict(), where="relu", tensors=("data_in",)) == only_in
    assert cfg.describe().startswith(fmt.name + "(") and fmt.describe() in cfg.describe()


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", ALL)
def test_cuda_matches_cpu_bit_for_bit(fmt: TensorFormat) -> None:
    x = _inputs()
    x[3, 7] = float("nan")
    x[4, 9] = float("inf")
    on_gpu = fmt.quantize(x.cuda()).cpu()
    assert on_gpu.device.type == "cpu"
    assert_same_bits(on_gpu.numpy(), fmt.quantize(x).numpy())
