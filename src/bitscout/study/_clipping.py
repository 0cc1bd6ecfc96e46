"""Tensors that every candidate of a search clips: said before the first trial.

A fixed-point format with a fixed frac width holds ``[-2**(w-1-f), (2**(w-1)-1) * 2**-f]``.
When a layer's input (as calibrated on the training samples), weight or bias reaches far
beyond what the widest format the space offers for it holds, every candidate saturates
it, and the search ranks configurations that are all broken: a new user's unscaled data
(wine's proline reaches 1,680; an 8-bit input with MASE's ``"NA"`` frac width, 4 bits,
holds 7.94) makes every trial score the majority class, and the "best" one is simply the
cheapest. Formats with ``frac_width = "auto"`` (fitted to each tensor's range), float
choices and other number formats never trigger it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from bitscout.quant.formats import IntegerFormat

if TYPE_CHECKING:
    from bitscout.graph import TracedModel
    from bitscout.quant import Calibration
    from bitscout.space import SearchSpace

__all__ = ["clipped_tensors", "CLIP_FACTOR"]

#: A tensor is reported when its largest magnitude is at least this many times what the
#: widest format offered for it holds (a few outliers beyond the range are normal).
CLIP_FACTOR = 4.0

_WHAT = {"data_in": "input", "weight": "weight", "bias": "bias"}


def _holds(fmt: IntegerFormat) -> float:
    """The largest magnitude ``fmt`` represents (its most negative code's)."""
    return math.ldexp(1.0, fmt.width - 1 - int(fmt.frac_width))


def _reach(space_layer: str, role: str, traced: TracedModel, calibration: Calibration | None) -> float | None:
    """The largest magnitude of one operand: calibrated for inputs, the tensor for parameters."""
    if role == "data_in":
        found = calibration.range(space_layer, "data_in") if calibration is not None else None
        return None if found is None else max(abs(found[0]), abs(found[1]))
    try:
        module: Any = traced.gm.get_submodule(space_layer)
    except AttributeError:
        return None
    tensor = getattr(module, role, None)
    if tensor is None or not hasattr(tensor, "numel") or tensor.numel() == 0:
        return None
    return float(tensor.detach().abs().max())


def clipped_tensors(space: SearchSpace, traced: TracedModel, calibration: Calibration | None) -> list[str]:
    """One line per operand that every configuration of ``space`` clips badly.

    An operand counts when every choice of its layer quantizes it to fixed point with a
    fixed frac width (no float, ``"auto"`` or other format among them) and its largest
    magnitude is at least :data:`CLIP_FACTOR` times what the widest of those holds.
    """
    source = f" on {calibration.source}" if calibration is not None and calibration.source else ""
    lines = []
    for layer in space.layers:
        for role in ("data_in", "weight", "bias"):
            formats = [None if config is None else config.tensor(role) for config in layer.configs]
            if not formats or not all(isinstance(f, IntegerFormat) and not f.is_auto for f in formats):
                continue
            reach = _reach(layer.name, role, traced, calibration)
            widest = max(formats, key=_holds)  # type: ignore[arg-type]
            holds = _holds(widest)  # type: ignore[arg-type]
            if reach is None or not math.isfinite(reach) or reach < CLIP_FACTOR * holds:
                continue
            where = source if role == "data_in" else ""
            lines.append(
                f"{layer.name}'s {_WHAT[role]} reaches {reach:.4g}{where}, but its widest format in the "
                f"space, {widest.width} bits with {widest.frac_width} fractional, holds only {holds:.4g} "
                f"(set {role}_frac_width = \"auto\" to fit each tensor's range, or use fewer fractional bits)"
            )
    return lines
