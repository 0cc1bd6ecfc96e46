"""Ranges of tensors: what range-calibrated formats are fitted to.

An *observer* turns the values a tensor takes into the range ``[lo, hi]`` a format
should cover: ``minmax`` (the smallest and largest finite value) or ``percentile``
(the ``100 - p`` and ``p`` percentiles, so rare outliers saturate instead of
stretching the scale for everyone). NaN and ±inf never enter a range.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["OBSERVERS", "DEFAULT_PERCENTILE", "finite_range", "finite_range_per_channel", "observe"]

OBSERVERS: tuple[str, ...] = ("minmax", "percentile")
"""The observer names, as a config spells them."""

DEFAULT_PERCENTILE = 99.99
"""The percentile of the ``percentile`` observer unless a config says otherwise."""


def _finite(x: Tensor) -> Tensor:
    flat = x.detach().reshape(-1)
    finite = torch.isfinite(flat)
    return flat if bool(finite.all()) else flat[finite]


def finite_range(x: Tensor) -> tuple[float, float]:
    """The smallest and largest finite value of ``x``; ``(0.0, 0.0)`` when there is none.

    Per tensor. The values are exact (a min and a max round nothing).
    """
    values = _finite(x)
    if values.numel() == 0:
        return 0.0, 0.0
    return float(values.min()), float(values.max())


def finite_range_per_channel(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per slice along dimension 0: the smallest and largest finite values (float64).

    A slice without a finite value gets ``(0, 0)``. Returns two 1-D tensors on the host.
    """
    rows = x.detach().reshape(x.shape[0], -1).double().cpu() if x.dim() else x.detach().double().reshape(1, 1).cpu()
    finite = torch.isfinite(rows)
    lo = torch.where(finite, rows, torch.full_like(rows, math.inf)).amin(1)
    hi = torch.where(finite, rows, torch.full_like(rows, -math.inf)).amax(1)
    empty = ~finite.any(1)
    return torch.where(empty, 0.0, lo), torch.where(empty, 0.0, hi)


def _kth(values: Tensor, q: float) -> float:
    """The value at quantile ``q`` (0..1) with the nearest-rank rule (no interpolation).

    Nearest rank (``ceil(q * n)``-th smallest) always returns a value of the tensor, so
    it is exact and independent of the order and chunking of the data.
    """
    n = values.numel()
    k = min(n, max(1, math.ceil(q * n)))
    return float(torch.kthvalue(values.cpu(), k).values)


def observe(x: Tensor, observer: str, percentile: float = DEFAULT_PERCENTILE) -> tuple[float, float]:
    """The range ``[lo, hi]`` an observer sees in ``x`` (every element, finite only).

    Args:
        x: The values (any shape; activations of many samples).
        observer: ``"minmax"`` or ``"percentile"``.
        percentile: For ``"percentile"``: ``hi`` is the ``percentile``-th percentile and
            ``lo`` the ``(100 - percentile)``-th, both by nearest rank.

    Returns:
        ``(lo, hi)``; ``(0.0, 0.0)`` when ``x`` has no finite element.

    Raises:
        ValueError: An unknown observer or a percentile outside (50, 100].
    """
    if observer not in OBSERVERS:
        raise ValueError(f"unknown observer {observer!r}; observers: {', '.join(OBSERVERS)}")
    if observer == "minmax":
        return finite_range(x)
    if not 50 < percentile <= 100:
        raise ValueError(f"the percentile must be in (50, 100]; got {percentile!r}")
    values = _finite(x)
    if values.dtype not in (torch.float32, torch.float64):
        values = values.float()  # exact: every narrower float is a float32
    if values.numel() == 0:
        return 0.0, 0.0
    return _kth(values, 1 - percentile / 100), _kth(values, percentile / 100)
