"""Block floating point (microscaling style): a shared exponent per block of elements."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bitscout.errors import QuantConfigError
from bitscout.quant.formats._base import (
    MAX_WIDTH,
    TensorFormat,
    check_floating,
    exponent_f64,
    exponents_fit_f64,
    pow2_f64,
    register_format,
)

__all__ = ["BlockFPFormat"]


@register_format
@dataclasses.dataclass(frozen=True)
class BlockFPFormat(TensorFormat):
    """Blocks of ``block_size`` elements along ``block_dim`` that share one exponent.

    Each element is stored sign-magnitude on ``width`` bits: a sign and a
    ``width - 1``-bit magnitude ``k`` in ``0..2**(width-1) - 1``. A block's shared
    exponent ``E`` is ``floor(log2(max |x|))`` over the block, clamped to the range of
    the shared exponent field, ``-bias..2**exponent_width - 1 - bias``. An element's
    value is ``±k * 2**(E - (width - 2))``: the block's largest magnitude, in
    ``[2**E, 2**(E+1))``, lands in the top half of the magnitude range, so it keeps
    ``width - 1`` significant bits. ``k = clamp(round(|x| * 2**(width - 2 - E)))`` with
    rounding half to even, saturating at ``2**(width-1) - 1``.

    Blocks run along ``block_dim``; when its length is not a multiple of ``block_size``
    the last block is padded with zeros (which never raise a block's maximum, so the
    padding does not change any result) and the padding is dropped again. A 0-d tensor
    is one block of one element.

    Special values: NaN stays NaN and is ignored when finding the shared exponent; ±inf
    counts as larger than any finite value, so its block takes the largest shared
    exponent and the inf saturates to ``±(2**(width-1) - 1) * 2**(Emax - width + 2)``.
    The sign is kept, also for results that are zero.

    ``bits`` is ``width + exponent_width / block_size``: the sign and magnitude of each
    element plus the shared exponent amortised over its block (the padding of a partial
    last block is not counted).

    The arithmetic runs in float32 for float32 and narrower inputs when the format fits
    float32 (element width up to 25, shared exponents within -127..126), else in float64
    (every float32 input and every grid value of a valid format are exact there), and is
    rounded once to the input dtype.

    Attributes:
        width: Bits per element (sign + magnitude), 2..32.
        exponent_width: Bits of the shared exponent, >= 1.
        exponent_bias: Bias of the shared exponent; ``None`` means ``2**(e-1) - 1``.
        block_size: Elements per block, >= 1.
        block_dim: The dimension blocks run along (negative counts from the end).
    """

    name = "block_fp"

    width: int
    exponent_width: int = 8
    exponent_bias: int | None = None
    block_size: int = 16
    block_dim: int = -1

    def __post_init__(self) -> None:
        width = self._int_field("width", 1, MAX_WIDTH)
        if width < 2:
            raise self._fail(
                "width", "must be at least 2 (a sign and at least one mantissa bit)", width
            )
        e = self._int_field("exponent_width", 1)
        if self.exponent_bias is None:
            self._set("exponent_bias", 2 ** (e - 1) - 1)
        self._int_field("exponent_bias")
        self._int_field("block_size", 1)
        self._int_field("block_dim")
        lo, hi = self.exponent_range
        shift = width - 2
        # Exponents of the scales used: 2**(E - shift), 2**(shift - E) and the block's
        # ceiling 2**(E + 1) must all be normal float64 numbers.
        if e > 11 or not exponents_fit_f64(lo - shift, shift - lo, hi + 1, shift - hi):
            raise self._fail(
                "exponent_bias" if e <= 11 else "exponent_width",
                f"must keep the shared exponent range ({lo}..{hi}) within float64's "
                f"normal range (-1022..1022)",
                self.exponent_bias if e <= 11 else e,
            )

    @property
    def exponent_range(self) -> tuple[int, int]:
        """The smallest and largest shared exponent, ``-bias`` and ``2**e - 1 - bias``."""
        assert self.exponent_bias is not None  # resolved in __post_init__
        return -self.exponent_bias, 2**self.exponent_width - 1 - self.exponent_bias

    @property
    def bits(self) -> float:
        return self.width + self.exponent_width / self.block_size

    def describe(self) -> str:
        return (
            f"bfp{self.width}e{self.exponent_width}b{self.exponent_bias}"
            f"x{self.block_size}d{self.block_dim}"
        )

    def _fits_float32(self) -> bool:
        """Whether the float32 path is exact: magnitudes ``k`` of at most 24 bits, every
        float32 subnormal below ``2**lo``, steps and the largest value within float32."""
        lo, hi = self.exponent_range
        return self.width <= 25 and lo >= -127 and lo - (self.width - 2) >= -149 and hi <= 126

    def quantize(self, x: Tensor) -> Tensor:
        check_floating(x, self)
        xd = x.float() if self._fits_float32() and x.dtype != torch.float64 else x.double()
        if xd.ndim == 0:
            xd = xd.reshape(1)
            dim = 0
        else:
            dim = self.block_dim
            if not -xd.ndim <= dim < xd.ndim:
                raise QuantConfigError(
                    f"{self.describe()}: field 'block_dim' must name a dimension of the "
                    f"tensor (shape {tuple(x.shape)}); got {dim!r}"
                )
        moved = xd.movedim(dim, -1)
        n = moved.shape[-1]
        pad = -n % self.block_size
        if pad:
            moved = F.pad(moved, (0, pad))
        blocks = moved.reshape(*moved.shape[:-1], -1, self.block_size)
        lo, hi = self.exponent_range
        shift = self.width - 2
        kmax = 2 ** (self.width - 1) - 1
        if blocks.dtype == torch.float32:
            # Hot path: the block's 2**E from masking the exponent bits of its largest
            # magnitude (0 below float32's normal range, where E <= -127 <= lo anyway;
            # inf for an inf), clamped to the shared exponent's range; exact in float32.
            a = torch.nan_to_num(blocks.abs(), nan=0.0, posinf=math.inf)
            amax = a.amax(dim=-1, keepdim=True)
            scale = (amax.view(torch.int32) & 0x7F800000).view(torch.float32)
            step = scale.clamp_(math.ldexp(1.0, lo), math.ldexp(1.0, hi)).mul_(2.0**-shift)
            q = torch.round(blocks / step).clamp_(-kmax, kmax).mul_(step)
        else:
            a = blocks.abs()
            amax = torch.where(torch.isnan(a), 0.0, a).amax(dim=-1, keepdim=True)
            e = exponent_f64(amax).clamp_(lo, hi)
            q = torch.round(blocks * pow2_f64(shift - e)).clamp_(-kmax, kmax)
            q = q.mul_(pow2_f64(e - shift))
        q = q.reshape(moved.shape)
        if pad:
            q = q[..., :n]
        q = q.movedim(-1, dim).reshape(x.shape)
        return q if q.dtype == x.dtype else q.to(x.dtype)
