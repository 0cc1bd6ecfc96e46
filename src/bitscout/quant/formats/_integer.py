"""Signed fixed point (MASE's ``integer``), with a fixed or a range-calibrated frac width."""

from __future__ import annotations

import dataclasses
import functools
import math

import torch
from torch import Tensor

from bitscout.quant.formats._base import MAX_WIDTH, TensorFormat, check_floating, register_format
from bitscout.quant.formats._range import finite_range

__all__ = ["IntegerFormat", "AUTO", "auto_frac_width"]

AUTO = "auto"
"""The frac width that is chosen per tensor from the tensor's range."""

#: Elements per block when :meth:`IntegerFormat.codes` quantizes a large CPU tensor (1 MiB
#: of float32: the blocks that measured fastest on the 2-core machine).
CODES_BLOCK = 1 << 18

# Beyond this |frac_width| every float32 (or narrower) input either saturates or rounds to
# zero, so the scale exponent can be clipped here without changing any result, while
# 2**±1000 stays a normal float64.
_FRAC_CLIP = 1000


def auto_frac_width(width: int, max_abs: float) -> int:
    """The frac width that fits ``max_abs``: ``width - 1 - ceil(log2(max_abs))``.

    So the largest magnitude of the tensor lies in ``(2**(w-1-f-1), 2**(w-1-f)]``, the
    range of ``w`` signed bits at scale ``2**-f``: nothing saturates by more than one
    step. An exact power of two ``2**k`` gives ``f = w - 1 - k``; its positive value then
    saturates one step below it, to ``2**k - 2**-f`` (its negative is a code).
    ``max_abs = 0`` (an all-zero tensor, or no finite element) gives ``f = w - 1``, the
    range ``[-1, 1)``: any choice keeps zeros exact, and this one is that of ``|x| <= 1``.
    The result may be negative (large values) or exceed the width (small values).

    Args:
        width: Total bits of the format.
        max_abs: The largest finite magnitude of the tensor (>= 0).

    Returns:
        The frac width, computed exactly (``math.frexp``, no floating-point log).
    """
    if not max_abs > 0 or not math.isfinite(max_abs):
        return width - 1
    mantissa, exponent = math.frexp(max_abs)  # max_abs = mantissa * 2**exponent, 0.5 <= m < 1
    ceil_log2 = exponent - 1 if mantissa == 0.5 else exponent
    return width - 1 - ceil_log2


@register_format
@dataclasses.dataclass(frozen=True)
class IntegerFormat(TensorFormat):
    """Signed two's-complement fixed point with ``width`` bits, ``frac_width`` of them fractional.

    ``q(x) = clamp(round(x * 2**f), -2**(w-1), 2**(w-1) - 1) / 2**f``, rounding half to
    even (``torch.round``). Any integer ``frac_width`` is valid: a negative one, or one
    above the width, is a scale of ``2**-f`` on ``w`` bits. Width 1 gives the levels
    ``{-1, 0} * 2**-f``.

    Special values: NaN stays NaN, +inf saturates to the largest level and -inf to the
    smallest; the sign of zero is kept (``-0.0`` stays ``-0.0``, and a small negative
    value that rounds to zero gives ``-0.0``).

    Exactness: multiplying by a power of two is exact in binary floating point, and the
    rounded integers and clamp bounds are exact while they fit the significand. The
    arithmetic therefore runs in float32 when ``width <= 24`` (bounds up to ``2**23``)
    and ``|frac_width| <= 126`` (``2**±f`` normal floats), for float32 and narrower
    inputs; otherwise in float64, where the bounds of widths up to 32 are exact, and the
    result is rounded once to the input dtype (so, for instance, the largest level of a
    32-bit format, ``2**31 - 1``, becomes ``2**31`` in float32, which cannot hold it).
    For float64 inputs the arithmetic is exact for ``|frac_width| <= 1000``; beyond that
    the scale exponent is clipped to ±1000, which only matters for float64 values
    outside float32's range.

    ``frac_width = "auto"`` (range-calibrated fixed point) chooses the frac width per
    tensor with :func:`auto_frac_width` from the largest finite magnitude. In a
    quantized layer the weight's and bias's come from the parameters and the input's
    from calibration (:meth:`calibrated` gives the resolved format); a bare
    ``quantize(x)`` uses ``x``'s own range, so it is dynamic and not idempotent in
    general (quantizing can lower the largest magnitude below a power of two).

    Attributes:
        width: Total bits, 1..32.
        frac_width: Fractional bits; ``None`` (MASE's ``"NA"``) means ``width // 2``;
            ``"auto"`` means from the tensor's range.
    """

    name = "integer"

    width: int
    frac_width: int | str | None = None

    def __post_init__(self) -> None:
        width = self._int_field("width", 1, MAX_WIDTH)
        if self.frac_width is None:
            self._set("frac_width", width // 2)
        if isinstance(self.frac_width, str):
            if self.frac_width != AUTO:
                raise self._fail(
                    "frac_width", "must be an integer, 'auto' (from the range) or 'NA' (width // 2)",
                    self.frac_width,
                )
            return
        f = self._int_field("frac_width")
        # Constants of quantize(), computed once: a search calls it for every layer of
        # every candidate. They are not fields, so equality and hashing ignore them.
        self._set("_levels", (-(2 ** (width - 1)), 2 ** (width - 1) - 1))
        float32_exact = width <= 24 and -126 <= f <= 126
        self._set("_float32_exact", float32_exact)
        self._set("_scale32", (2.0**f, 2.0**-f) if float32_exact else None)
        clipped = max(-_FRAC_CLIP, min(_FRAC_CLIP, f))
        self._set("_scale64", (2.0**clipped, 2.0**-clipped))

    @property
    def bits(self) -> int:
        return self.width

    @property
    def is_auto(self) -> bool:
        """Whether the frac width is chosen from each tensor's range (``"auto"``)."""
        return self.frac_width == AUTO

    @property
    def needs_calibration(self) -> bool:
        return self.is_auto

    def calibrated(self, lo: float, hi: float) -> IntegerFormat:
        """With ``"auto"``, the format whose frac width fits ``[lo, hi]``; else itself."""
        if not self.is_auto:
            return self
        return _fixed(self.width, auto_frac_width(self.width, max(abs(lo), abs(hi))))

    @property
    def levels(self) -> tuple[int, int]:
        """The smallest and largest integer codes, ``-2**(w-1)`` and ``2**(w-1) - 1``."""
        return -(2 ** (self.width - 1)), 2 ** (self.width - 1) - 1

    def describe(self) -> str:
        return f"int{self.width}.{self.frac_width}"

    def quantize(self, x: Tensor) -> Tensor:
        check_floating(x, self)
        if self.is_auto:
            lo, hi = finite_range(x)
            return self.calibrated(lo, hi).quantize(x)
        lo, hi = self._levels
        dtype = x.dtype
        if dtype is torch.float32 and self._float32_exact:
            # One allocation: the product is rounded, clamped and rescaled in place.
            return self._coded(x, None, self._scale32[1])
        if dtype is not torch.float64 and self._float32_exact:
            scale, inverse = self._scale32
            y = (x.float() * scale).round_().clamp_(lo, hi).mul_(inverse)
        else:
            scale, inverse = self._scale64
            y = (x.double() * scale).round_().clamp_(lo, hi).mul_(inverse)
        return y if y.dtype == dtype else y.to(dtype)


    @property
    def has_float32_codes(self) -> bool:
        """Whether :meth:`codes` serves float32 inputs (a fixed frac width, exact in float32)."""
        return not self.is_auto and self._float32_exact

    def codes(self, x: Tensor, *, out: Tensor | None = None) -> Tensor:
        """The integer codes of a float32 tensor, as float32: ``clamp(round(x * 2**f), lo, hi)``.

        ``quantize(x)`` is ``codes(x) * 2**-f`` bit for bit (the same operations; the
        last multiply is exact). A quantized layer whose sums are exact folds that last
        multiply into its cached weights and saves one pass over the activation.

        Args:
            x: A float32 tensor.
            out: Where to write the codes (a contiguous tensor of ``x``'s shape and
                dtype, e.g. a reused buffer); None allocates one.

        Raises:
            ValueError: ``x`` is not float32, or the format has no float32 codes
                (:attr:`has_float32_codes`).
        """
        self._check_codes(x, "codes")
        return self._coded(x, out, None)

    def quantize_into(self, x: Tensor, out: Tensor) -> Tensor:
        """``quantize(x)`` of a float32 tensor, written into ``out`` (a reused buffer).

        Raises:
            ValueError: As :meth:`codes`.
        """
        self._check_codes(x, "quantize_into")
        return self._coded(x, out, self._scale32[1])

    def _check_codes(self, x: Tensor, method: str) -> None:
        if x.dtype is not torch.float32 or not self.has_float32_codes:
            raise ValueError(
                f"{self.describe()}.{method}() needs a float32 tensor and a fixed frac width exact in "
                f"float32 (width <= 24, |frac_width| <= 126); got a {x.dtype} tensor"
            )

    def _coded(self, x: Tensor, out: Tensor | None, inverse: float | None) -> Tensor:
        """``clamp(round(x * 2**f), lo, hi)``, times ``inverse`` (``2**-f``) when given."""
        lo, hi = self._levels
        scale = self._scale32[0]
        if (
            x.numel() <= CODES_BLOCK
            or x.device.type != "cpu"
            or not x.is_contiguous()
            or (out is not None and not out.is_contiguous())
        ):
            product = x * scale if out is None else torch.mul(x, scale, out=out)
            codes = product.round_().clamp_(lo, hi)
            return codes if inverse is None else codes.mul_(inverse)
        # Block by block, so that the round and the clamp find their block in the cache:
        # the passes then cost about one pass over memory (measured on jsc-s's 160,000 x
        # 32 activations: 5.5 ms against 8.8 ms at once for the three). Elementwise, so
        # the same values.
        if out is None:
            out = torch.empty_like(x)
        source, target = x.view(-1), out.view(-1)
        for start in range(0, source.numel(), CODES_BLOCK):
            block = torch.mul(source[start : start + CODES_BLOCK], scale, out=target[start : start + CODES_BLOCK])
            block.round_().clamp_(lo, hi)
            if inverse is not None:
                block.mul_(inverse)
        return out


@functools.lru_cache(maxsize=4096)
def _fixed(width: int, frac_width: int) -> IntegerFormat:
    # An "auto" format resolves to the same few (width, frac) pairs over and over (every
    # batch, every trial): build each once.
    return IntegerFormat(width, frac_width)
