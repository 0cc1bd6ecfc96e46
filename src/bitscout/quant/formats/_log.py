"""Logarithmic format: signed powers of two."""

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

__all__ = ["LogFormat"]


@register_format
@dataclasses.dataclass(frozen=True)
class LogFormat(TensorFormat):
    """A sign and a ``width - 1``-bit exponent code ``c``: the values 0 and ``±2**(c - bias)``.

    Code 0 is zero; codes ``1..2**(width-1) - 1`` are the powers of two from
    ``2**(1 - bias)`` to ``2**(2**(width-1) - 1 - bias)``.

    Rounding is to the nearest representable value in the linear domain (not by
    rounding ``log2|x|``), ties away from zero. Between ``2**k`` and ``2**(k+1)`` the
    midpoint is ``1.5 * 2**k``; below the smallest power ``2**emin`` the choice is
    between it and zero, with the midpoint ``2**(emin-1)``: smaller magnitudes flush to
    (signed) zero, ``2**(emin-1)`` itself goes up to ``2**emin``. Magnitudes above the
    largest power saturate to it, ±inf included. NaN stays NaN. The sign is kept, also
    for zero results.

    The arithmetic runs in float64 (exact for every valid format) and is rounded once
    to the input dtype.

    Attributes:
        width: Total bits (sign + exponent code), 2..32.
        exponent_bias: Bias; ``None`` (MASE's ``"NA"``) means ``2**(width-2)``, which
            centres the exponents ``1 - 2**(width-2) .. 2**(width-2) - 1`` on 1.0.
    """

    name = "log"

    width: int
    exponent_bias: int | None = None

    def __post_init__(self) -> None:
        width = self._int_field("width", 1, MAX_WIDTH)
        if width < 2:
            raise self._fail("width", "must be at least 2 (a sign and an exponent code)", width)
        if self.exponent_bias is None:
            self._set("exponent_bias", 2 ** (width - 2))
        self._int_field("exponent_bias")
        lo, hi = self.exponent_range
        if not exponents_fit_f64(lo - 1, hi):
            raise self._fail(
                "exponent_bias",
                f"must keep the exponents ({lo}..{hi}) within float64's normal range "
                f"(-1021..1023)",
                self.exponent_bias,
            )

    @property
    def exponent_range(self) -> tuple[int, int]:
        """The smallest and largest exponent, ``1 - bias`` and ``2**(width-1) - 1 - bias``."""
        assert self.exponent_bias is not None  # resolved in __post_init__
        return 1 - self.exponent_bias, 2 ** (self.width - 1) - 1 - self.exponent_bias

    @property
    def bits(self) -> int:
        return self.width

    def describe(self) -> str:
        return f"log{self.width}b{self.exponent_bias}"

    def quantize(self, x: Tensor) -> Tensor:
        check_floating(x, self)
        lo, hi = self.exponent_range
        xd = x.double()
        a = xd.abs().clamp_(max=math.ldexp(1.0, hi))
        bits = a.view(torch.int64)
        # floor(log2 a), plus one where the mantissa is >= 1.5 (its top fraction bit).
        e = exponent_f64(a) + ((bits >> 51) & 1)
        q = pow2_f64(e.clamp_(lo, hi))
        q = torch.where(a >= math.ldexp(1.0, lo - 1), q, 0.0)
        q = torch.where(torch.isnan(a), a, q)
        q = torch.copysign(q, xd)
        return q if q.dtype == x.dtype else q.to(x.dtype)
