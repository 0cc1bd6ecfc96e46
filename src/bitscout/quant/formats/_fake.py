"""Straight-through fake quantization."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bitscout.quant.formats._base import TensorFormat

__all__ = ["fake_quantize"]


class _StraightThrough(torch.autograd.Function):
    """Forward: the format's exact quantization; backward: the identity."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, fmt: TensorFormat) -> Tensor:  # noqa: ARG004
        return fmt.quantize(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ARG004
        return grad, None


def fake_quantize(x: Tensor, fmt: TensorFormat) -> Tensor:
    """Quantizes ``x`` with a straight-through gradient.

    The forward value is ``fmt.quantize(x)`` bit for bit. The gradient with respect to
    ``x`` is the identity (the straight-through estimator), for every element, including
    those that saturate. When no gradient is wanted (``torch.no_grad``,
    ``torch.inference_mode``, or ``x`` does not require grad) this is exactly
    ``fmt.quantize(x)`` with no autograd bookkeeping.

    A custom autograd function is used rather than ``x + (q - x).detach()``, which is
    not bit-exact (``1e30 + (7.9 - 1e30)`` is 0 in float32) and turns inf into NaN.

    Args:
        x: A floating-point tensor.
        fmt: The format to quantize to.

    Returns:
        A new tensor of ``x``'s shape and dtype.
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _StraightThrough.apply(x, fmt)
    return fmt.quantize(x)
