"""Small floating-point formats: saturating (``minifloat``) and IEEE-style (``minifloat_ieee``)."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from bitscout.quant.formats._base import (
    MAX_WIDTH,
    TensorFormat,
    check_floating,
    exponent_f64,
    exponents_fit_f64,
    pow2_f64,
    register_format,
)

__all__ = ["MinifloatFormat", "MinifloatIEEEFormat"]


@register_format
@dataclasses.dataclass(frozen=True)
class MinifloatFormat(TensorFormat):
    """Sign, ``exponent_width`` exponent bits and ``width - 1 - exponent_width`` mantissa bits.

    With mantissa width ``m``, bias ``b`` and exponent code ``c``: code 0 holds the
    subnormals ``±k * 2**(1 - b - m)`` (``k < 2**m``, including zero); codes ``c >= 1``
    hold ``±(1 + k / 2**m) * 2**(c - b)``. This variant has no inf or NaN encodings:
    every code is a number, so the largest value is ``(2 - 2**-m) * 2**(2**e - 1 - b)``.

    Rounding is to the nearest value of the grid, ties to even mantissa. Values beyond
    the largest magnitude saturate to it, ±inf included. NaN stays NaN. The sign is kept,
    also for results that are zero (``-1e-30`` gives ``-0.0``).

    At least one mantissa bit is required (``1 <= exponent_width <= width - 2``), so
    ``width >= 3``. The exponent range must lie within float64's normal range. The
    arithmetic runs in float32 for float32 and narrower inputs when the format's grid
    fits float32 (mantissa up to 22 bits, exponents within float32's range: e4m3, e5m2,
    float16's and bfloat16's layouts all do), else in float64, where every valid grid
    and every float32 input is exact; the result is rounded once to the input dtype (a
    format wider than float32 may therefore give inf in float32).

    Attributes:
        width: Total bits (sign + exponent + mantissa), 3..32.
        exponent_width: Exponent bits, 1..width-2.
        exponent_bias: Exponent bias; ``None`` (MASE's ``"NA"``) means ``2**(e-1) - 1``.
    """

    name = "minifloat"

    width: int
    exponent_width: int
    exponent_bias: int | None = None

    # The top exponent code is reserved for inf/NaN in the IEEE variant.
    _ieee = False

    def __post_init__(self) -> None:
        width = self._int_field("width", 1, MAX_WIDTH)
        lowest = 2 if self._ieee else 1
        if width - 2 < lowest:
            raise self._fail(
                "width",
                f"must be at least {lowest + 2} (sign, {lowest} exponent bit"
                f"{'s' if lowest > 1 else ''} and one mantissa bit)",
                width,
            )
        e = self._int_field("exponent_width")
        if not lowest <= e <= width - 2:
            raise self._fail(
                "exponent_width",
                f"must leave at least one mantissa bit ({lowest} <= exponent_width <= "
                f"width - 2 = {width - 2})",
                e,
            )
        if self.exponent_bias is None:
            self._set("exponent_bias", 2 ** (e - 1) - 1)
        self._int_field("exponent_bias")
        m = self.mantissa_width
        lo, hi = self.min_exponent, self.max_exponent
        if not exponents_fit_f64(lo - m, hi + 1, m - lo):
            raise self._fail(
                "exponent_bias",
                f"must keep the format's exponents ({lo - m}..{hi + 1}) within float64's "
                f"normal range (-1022..1023)",
                self.exponent_bias,
            )

    @property
    def mantissa_width(self) -> int:
        """Mantissa (fraction) bits, ``width - 1 - exponent_width``."""
        return self.width - 1 - self.exponent_width

    @property
    def min_exponent(self) -> int:
        """Exponent of the smallest normal value, ``1 - bias`` (also the subnormals' scale)."""
        assert self.exponent_bias is not None  # resolved in __post_init__
        return 1 - self.exponent_bias

    @property
    def max_exponent(self) -> int:
        """Exponent of the largest finite value."""
        assert self.exponent_bias is not None
        top_code = 2**self.exponent_width - (2 if self._ieee else 1)
        return top_code - self.exponent_bias

    @property
    def max_value(self) -> float:
        """The largest finite magnitude (as a Python float; exact in float64)."""
        return math.ldexp(2 - 2.0**-self.mantissa_width, self.max_exponent)

    @property
    def bits(self) -> int:
        return self.width

    def describe(self) -> str:
        suffix = "-ieee" if self._ieee else ""
        return (
            f"fp{self.width}e{self.exponent_width}m{self.mantissa_width}"
            f"b{self.exponent_bias}{suffix}"
        )

    def _fits_float32(self) -> bool:
        """Whether the float32 path is exact: every float32 subnormal lies below the smallest
        normal of the format (so masking the exponent bits finds the right step), the
        smallest step is a float32, the overflow threshold needs at most 24 significant
        bits, and 2**(emax + 1) is finite."""
        m = self.mantissa_width
        lo, hi = self.min_exponent, self.max_exponent
        return m <= 22 and lo >= -126 and lo - m >= -149 and hi <= 125

    def quantize(self, x: Tensor) -> Tensor:
        check_floating(x, self)
        m = self.mantissa_width
        if self._ieee:
            # Anything at or above the midpoint between the largest value and the next
            # power of two rounds (ties to even: away from the all-ones mantissa) to
            # 2**(emax + 1), which becomes inf below; clamping there first keeps the
            # exponents in range for huge inputs and inf.
            ceiling = math.ldexp(2 - 2.0 ** -(m + 1), self.max_exponent)
        else:
            ceiling = self.max_value
        if x.dtype != torch.float64 and self._fits_float32():
            # Hot path, float32 throughout: the step 2**(E - m) comes from masking the
            # exponent bits of |x| (0 for subnormals and zero, inf for NaN, which then
            # stays NaN), raised to the subnormal step; division and multiplication by a
            # power of two are exact here.
            xf = x if x.dtype == torch.float32 else x.float()
            a = xf.abs().clamp_(max=ceiling)
            step = (a.view(torch.int32) & 0x7F800000).view(torch.float32)
            step = step.clamp_(min=math.ldexp(1.0, self.min_exponent)).mul_(2.0**-m)
            q = torch.round(a / step).mul_(step)
            sign_of = xf
        else:
            xd = x.double()
            a = xd.abs().clamp_(max=ceiling)
            e = exponent_f64(a).clamp_(min=self.min_exponent)
            q = torch.round(a * pow2_f64(m - e)).mul_(pow2_f64(e - m))
            sign_of = xd
        if self._ieee:
            q = q.masked_fill_(q > self.max_value, math.inf)
        q = torch.copysign(q, sign_of)
        return q if q.dtype == x.dtype else q.to(x.dtype)


@register_format
@dataclasses.dataclass(frozen=True)
class MinifloatIEEEFormat(MinifloatFormat):
    """Like :class:`MinifloatFormat`, with the top exponent code reserved for inf and NaN.

    The largest finite value is therefore ``(2 - 2**-m) * 2**(2**e - 2 - b)``. As in IEEE
    754 with round-to-nearest-even, a value at or beyond the midpoint between it and
    ``2**(2**e - 1 - b)`` becomes inf (with its sign); ±inf stays ±inf and NaN stays
    NaN. Requires ``exponent_width >= 2`` (so ``width >= 4``).
    """

    name = "minifloat_ieee"
    _ieee = True
