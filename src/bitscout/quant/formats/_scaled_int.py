"""Scaled integers (``int``): integer codes times a float scale, per tensor or per channel."""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np
import torch
from torch import Tensor

from bitscout.quant.formats._base import MAX_WIDTH, TensorFormat, check_floating, register_format
from bitscout.quant.formats._range import finite_range, finite_range_per_channel

__all__ = ["IntFormat", "GRANULARITIES", "CHANNEL_OPS", "SCALE_BITS"]

GRANULARITIES: tuple[str, ...] = ("tensor", "channel")
"""One scale for the whole tensor, or one per output channel (dimension 0 of a weight)."""

CHANNEL_OPS: frozenset[str] = frozenset({"linear", "conv1d", "conv2d"})
"""Op types whose weight is a parameter with output channels along dimension 0."""

SCALE_BITS = 32
"""Storage of one scale (a float32), as the hardware metrics count it."""

# The smallest positive float32 (a subnormal): the scale of a range too small for any
# normal float32 scale, so that nothing ever divides by zero.
_TINY_SCALE = float(np.float32(2.0**-149))


def _float32(value: float) -> float:
    return float(np.float32(value))


@register_format
@dataclasses.dataclass(frozen=True)
class IntFormat(TensorFormat):
    """Signed integer codes of ``width`` bits times a float scale (torchao's / PyTorch's int).

    Symmetric: codes ``-(2**(w-1) - 1) .. 2**(w-1) - 1`` (the most negative code is left
    out, so the grid is symmetric), ``q(x) = clamp(round(x / s), -qmax, qmax) * s`` with
    ``s = m / qmax`` for the largest magnitude ``m`` of the range.

    Asymmetric: codes ``-2**(w-1) .. 2**(w-1) - 1`` and a zero point ``z``, the range
    first widened to hold 0 (``lo <= 0 <= hi``), ``s = (hi - lo) / (2**w - 1)``,
    ``z = clamp(qmin - round(lo / s), qmin, qmax)`` and
    ``q(x) = (clamp(round(x / s) + z, qmin, qmax) - z) * s``, so 0 is always exact.

    Arithmetic: the scale is a float32 (``m / qmax`` computed in float64, rounded once);
    ``x / s``, the rounding (half to even) and ``code * s`` run in float64 and the
    result is rounded once to ``x``'s dtype. A zero range (an all-zero tensor, or no
    finite element) gives ``s = 1``; a range so small that ``s`` would round to 0 gives
    the smallest float32, ``2**-149``. Ranges use finite elements only.

    Where the scale comes from:

    * ``scale`` given (a calibrated format, see :meth:`calibrated`): that scale and
      ``zero_point`` (0 when not given);
    * ``granularity = "tensor"`` without a scale: the range of the tensor quantized
      (weights: the parameter; in a quantized layer the input's range comes from
      calibration instead);
    * ``granularity = "channel"``: one scale (and zero point) per slice along dimension
      0 from that slice's range (the output channels of a linear or conv weight; refused
      for inputs and biases, and for layers whose weight is an activation).

    Special values: NaN stays NaN; ±inf saturate to the largest / smallest level. The
    sign of zero is kept by symmetric formats; asymmetric ones give +0.0.
    ``quantize`` is idempotent for a fixed scale and for symmetric formats up to 29 bits
    (the largest magnitude maps to ``qmax * s``, which gives the same scale again); an
    asymmetric format without a fixed scale refits its zero point and is not, in general.

    Storage (``storage_overhead_bits``): a float32 scale per tensor or per channel, and
    for asymmetric formats a ``width``-bit zero point beside each scale.

    Attributes:
        width: Total bits, 2..32.
        symmetric: Symmetric (no zero point) or asymmetric.
        granularity: ``"tensor"`` or ``"channel"``.
        scale: A fixed scale (> 0, rounded to float32), or None to fit one to the data.
        zero_point: The fixed zero point of an asymmetric format with a fixed scale.
    """

    name = "int"

    width: int
    symmetric: bool = True
    granularity: str = "tensor"
    scale: float | None = None
    zero_point: int | None = None

    def __post_init__(self) -> None:
        width = self._int_field("width", 2, MAX_WIDTH)
        if not isinstance(self.symmetric, bool):
            raise self._fail("symmetric", "must be true or false", self.symmetric)
        if self.granularity not in GRANULARITIES:
            raise self._fail(
                "granularity", "must be 'tensor' or 'channel' (one scale per output channel)", self.granularity
            )
        if self.scale is not None:
            rule = "must be a finite number > 0, or 'NA' to fit it to the data"
            if isinstance(self.scale, bool) or not isinstance(self.scale, numbers.Real):
                raise self._fail("scale", rule, self.scale)
            if not (math.isfinite(float(self.scale)) and float(self.scale) > 0):
                raise self._fail("scale", rule, self.scale)
            if self.granularity == "channel":
                raise self._fail(
                    "scale", "must be 'NA' when granularity = 'channel' (each channel fits its own)", self.scale
                )
            self._set("scale", max(_float32(float(self.scale)), _TINY_SCALE))
        if self.zero_point is not None:
            if self.symmetric:
                raise self._fail("zero_point", "must be 'NA' for a symmetric format (it is 0)", self.zero_point)
            if self.scale is None:
                raise self._fail("zero_point", "can only be given with a fixed scale", self.zero_point)
            self._int_field("zero_point", *self._codes())
        elif self.scale is not None and not self.symmetric:
            self._set("zero_point", 0)

    def _codes(self) -> tuple[int, int]:
        qmax = 2 ** (self.width - 1) - 1
        return (-qmax if self.symmetric else -qmax - 1), qmax

    @property
    def bits(self) -> int:
        return self.width

    @property
    def codes(self) -> tuple[int, int]:
        """The smallest and largest integer codes."""
        return self._codes()

    @property
    def needs_calibration(self) -> bool:
        return self.scale is None and self.granularity == "tensor"

    def fit(self, lo: float, hi: float) -> tuple[float, int]:
        """The scale (a float32 value) and zero point (0 when symmetric) for ``[lo, hi]``."""
        qmin, qmax = self._codes()
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        if self.symmetric:
            span, steps = max(-lo, hi), qmax
        else:
            span, steps = hi - lo, 2**self.width - 1
        if not (span > 0 and math.isfinite(span)):
            return 1.0, 0
        scale = max(_float32(span / steps), _TINY_SCALE)
        if self.symmetric:
            return scale, 0
        zero = qmin - round(lo / scale)  # Python's round: half to even, as torch's
        return scale, min(qmax, max(qmin, zero))

    def calibrated(self, lo: float, hi: float) -> IntFormat:
        """A per-tensor format without a fixed scale, fitted to ``[lo, hi]``; else itself."""
        if not self.needs_calibration:
            return self
        scale, zero = self.fit(lo, hi)
        return IntFormat(self.width, self.symmetric, "tensor", scale, None if self.symmetric else zero)

    def storage_overhead_bits(self, shape: tuple[int, ...]) -> int:
        count = shape[0] if self.granularity == "channel" and shape else 1
        return count * (SCALE_BITS + (0 if self.symmetric else self.width))

    def check_tensor(self, tensor: str, op: str | None) -> None:
        if self.granularity != "channel":
            return
        if tensor != "weight":
            raise self._fail(
                "granularity",
                f"must be 'tensor' for {tensor} (per-channel scales are for weights: one per "
                "output channel)",
                self.granularity,
            )
        if op is not None and op not in CHANNEL_OPS:
            raise self._fail(
                "granularity",
                f"must be 'tensor' for a layer of type {op!r}, which has no weight with output "
                f"channels (per-channel scales apply to {', '.join(sorted(CHANNEL_OPS))})",
                self.granularity,
            )

    def describe(self) -> str:
        text = f"int{self.width}{'' if self.symmetric else 'a'}"
        if self.granularity == "channel":
            return text + "/ch"
        if self.scale is not None:
            text += f"@{self.scale:.3g}" + (f"z{self.zero_point}" if not self.symmetric else "")
        return text

    def quantize(self, x: Tensor) -> Tensor:
        check_floating(x, self)
        qmin, qmax = self._codes()
        if self.granularity == "channel" and x.dim() >= 1 and x.shape[0] > 0:
            lo_c, hi_c = finite_range_per_channel(x)
            fitted = [self.fit(lo, hi) for lo, hi in zip(lo_c.tolist(), hi_c.tolist())]
            shape = (-1,) + (1,) * (x.dim() - 1)
            scale = torch.tensor([s for s, _ in fitted], dtype=torch.float64, device=x.device).reshape(shape)
            zero = torch.tensor([z for _, z in fitted], dtype=torch.float64, device=x.device).reshape(shape)
        elif self.scale is not None:
            scale, zero = self.scale, float(self.zero_point or 0)
        else:
            fitted_scale, fitted_zero = self.fit(*finite_range(x))
            scale, zero = fitted_scale, float(fitted_zero)
        y = x.double() / scale
        y = y.round_()
        if self.symmetric:
            y = y.clamp_(qmin, qmax).mul_(scale)
        else:
            y = y.add_(zero).clamp_(qmin, qmax).sub_(zero).mul_(scale)
        return y.to(x.dtype)
