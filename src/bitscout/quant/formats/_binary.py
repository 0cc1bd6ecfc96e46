"""Binary ({-s, +s}) and ternary ({-s, 0, +s}) formats with their scaling rules."""

from __future__ import annotations

import dataclasses
import math
import numbers

import torch
from torch import Tensor

from bitscout.quant.formats._base import TensorFormat, check_floating, register_format

__all__ = ["BinaryFormat", "TernaryFormat", "TWN_THRESHOLD_FACTOR"]

TWN_THRESHOLD_FACTOR = 0.7
"""Ternary weight networks' threshold: 0.7 times the mean magnitude (Li et al., 2016)."""


def _finite_abs_mean(a: Tensor, mask: Tensor) -> Tensor:
    """Mean of the float64 tensor ``a`` where ``mask``, 0 where nothing is selected (0-d)."""
    count = mask.sum()
    return torch.where(mask, a, 0.0).sum() / count.clamp(min=1)


class _ScaledFormat(TensorFormat):
    """Shared validation for the optional ``scale`` (and ``threshold``) fields."""

    def _optional_real(self, field: str, *, positive: bool) -> None:
        value = getattr(self, field)
        if value is None:
            return
        rule = (
            f"must be a finite number {'> 0' if positive else '>= 0'}, or 'NA' to find it "
            f"from the tensor"
        )
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self._fail(field, rule, value)
        real = float(value)
        if not math.isfinite(real) or real < 0 or (positive and real == 0):
            raise self._fail(field, rule, value)
        self._set(field, real)

    def _fixed_width(self, width: int) -> None:
        value = getattr(self, "width")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value != width:
            raise self._fail("width", f"must be {width} for format '{self.name}'", value)
        self._set("width", int(value))


@register_format
@dataclasses.dataclass(frozen=True)
class BinaryFormat(_ScaledFormat):
    """One bit per element: ``+s`` for ``x >= 0`` (both zeros included), ``-s`` for ``x < 0``.

    Scaling rule: with ``scale`` ``None`` (MASE's ``"NA"``), ``s`` is the mean of
    ``|x|`` over the finite elements of the whole tensor (XNOR-Net's weight scale),
    accumulated in float64 and rounded to the tensor's dtype; 0 when no element is
    finite (then every result is ``±0``). With a fixed ``scale``, ``s`` is that number
    rounded to the tensor's dtype.

    Special values: NaN stays NaN, ±inf gives ±s (inf does not enter the mean).

    Both rules are idempotent: the mean magnitude of ``{-s, +s}`` values is ``s``.

    Attributes:
        width: Must be 1.
        scale: A fixed positive scale, or ``None`` for the tensor's mean magnitude.
    """

    name = "binary"

    width: int = 1
    scale: float | None = None

    def __post_init__(self) -> None:
        self._fixed_width(1)
        self._optional_real("scale", positive=True)

    @property
    def bits(self) -> int:
        return 1

    def describe(self) -> str:
        return "bin(s=mean|x|)" if self.scale is None else f"bin(s={self.scale:g})"

    def quantize(self, x: Tensor) -> Tensor:
        check_floating(x, self)
        if self.scale is None:
            xd = x.double()
            s = _finite_abs_mean(xd.abs(), torch.isfinite(xd)).to(x.dtype)
        else:
            s = torch.tensor(self.scale, dtype=x.dtype, device=x.device)
        q = torch.where(x < 0, -s, s)
        return torch.where(torch.isnan(x), x, q)


@register_format
@dataclasses.dataclass(frozen=True)
class TernaryFormat(_ScaledFormat):
    """Two bits per element: ``sign(x) * s`` where ``|x| > threshold``, else ``+0.0``.

    Threshold rule: with ``threshold`` ``None`` (MASE's ``"NA"``), it is Ternary Weight
    Networks' ``0.7 * mean |x|`` over the finite elements, computed in float64; else
    the given number. Scale rule: with ``scale`` ``None``, ``s`` is the mean of ``|x|``
    over the finite elements above the threshold (TWN's optimal scale), accumulated in
    float64 and rounded to the tensor's dtype (0 when there are none); else the given
    number rounded to the tensor's dtype. The comparison ``|x| > threshold`` is made in
    float64.

    Special values: NaN stays NaN; ±inf is above any threshold and gives ±s (inf does
    not enter either mean). Elements at or below the threshold give ``+0.0`` whatever
    their sign.

    Idempotent with every rule combination where the fixed threshold is below the
    fixed scale (with TWN's rules always: the threshold of ``{-s, 0, s}`` is at most
    ``0.7 s``).

    Attributes:
        width: Must be 2.
        threshold: A fixed threshold >= 0, or ``None`` for TWN's rule.
        scale: A fixed positive scale, or ``None`` for TWN's rule.
    """

    name = "ternary"

    width: int = 2
    threshold: float | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        self._fixed_width(2)
        self._optional_real("threshold", positive=False)
        self._optional_real("scale", positive=True)

    @property
    def bits(self) -> int:
        return 2

    def describe(self) -> str:
        t = "0.7mean|x|" if self.threshold is None else f"{self.threshold:g}"
        s = "mean" if self.scale is None else f"{self.scale:g}"
        return f"ter(t={t},s={s})"

    def quantize(self, x: Tensor) -> Tensor:
        check_floating(x, self)
        xd = x.double()
        a = xd.abs()
        finite = torch.isfinite(xd)
        if self.threshold is None:
            t = TWN_THRESHOLD_FACTOR * _finite_abs_mean(a, finite)
        else:
            t = torch.tensor(self.threshold, dtype=torch.float64, device=x.device)
        above = a > t
        if self.scale is None:
            s = _finite_abs_mean(a, above & finite).to(x.dtype)
        else:
            s = torch.tensor(self.scale, dtype=x.dtype, device=x.device)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        q = torch.where(above, torch.where(x < 0, -s, s), zero)
        return torch.where(torch.isnan(x), x, q)
