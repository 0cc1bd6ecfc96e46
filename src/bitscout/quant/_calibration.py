"""Calibration: the ranges of every layer's activations, measured once on training samples.

Range-calibrated formats (``integer`` with ``frac_width = "auto"``, per-tensor ``int``)
need the range of each layer's input before they can quantize it with fixed parameters.
:func:`calibrate` runs the float model once over ``calibration_samples`` training
samples and records, per layer, the range an observer sees in each activation operand
(``data_in``; and the operands of ``matmul``/``add``/... that are not parameters). The
result, a :class:`Calibration`, is shared by every candidate of a search
(:class:`~bitscout.quant.Quantizer` takes it), saved in the run folder as
``calibration.json`` and read back by ``export``, so that quantize, search and export
fit the same formats to the same ranges.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bitscout._atomic import atomic_write_text
from bitscout.errors import DataError
from bitscout.graph import FloatOp, TracedModel, fold_batchnorm, trace
from bitscout.quant._modules import DEFAULT_LAYER_MAP, OpSpec, layer_map_key
from bitscout.quant.formats import (
    DEFAULT_PERCENTILE,
    OBSERVERS,
    TENSOR_NAMES,
    LayerQuantConfig,
    finite_range,
    observe,
)

__all__ = [
    "Calibration",
    "PreparedModel",
    "calibrate",
    "prepare_ptq",
    "resolve_layer_config",
    "CALIBRATION_FILE",
    "DEFAULT_CALIBRATION_SAMPLES",
]

CALIBRATION_FILE = "calibration.json"
"""The file a search writes its calibration to, in the run folder."""

DEFAULT_CALIBRATION_SAMPLES = 256
"""Training samples calibration runs on unless the config says otherwise."""

Range = tuple[float, float]


@dataclass(frozen=True)
class Calibration:
    """The activation ranges of one float model, as one observer saw them.

    Attributes:
        observer: ``"minmax"`` or ``"percentile"``.
        percentile: The percentile of the ``percentile`` observer.
        samples: How many samples were run.
        ranges: Layer name -> operand (``"data_in"``, ...) -> ``(lo, hi)``.
        source: Where the samples came from (``"train[:256]"``), for the record.
    """

    observer: str
    percentile: float
    samples: int
    ranges: Mapping[str, Mapping[str, Range]] = field(default_factory=dict)
    source: str = ""

    def range(self, layer: str, tensor: str) -> Range | None:
        """The range of one operand of a layer, or None when it was not calibrated."""
        return self.ranges.get(layer, {}).get(tensor)

    def to_json(self) -> dict[str, Any]:
        """A plain dict (floats kept exactly by JSON's shortest round-trip repr)."""
        return {
            "observer": self.observer,
            "percentile": self.percentile,
            "samples": self.samples,
            "source": self.source,
            "ranges": {layer: {t: list(r) for t, r in tensors.items()} for layer, tensors in self.ranges.items()},
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Calibration:
        """The calibration a :meth:`to_json` dict describes."""
        ranges = {
            layer: {t: (float(r[0]), float(r[1])) for t, r in tensors.items()}
            for layer, tensors in raw["ranges"].items()
        }
        return cls(raw["observer"], float(raw["percentile"]), int(raw["samples"]), ranges, raw.get("source", ""))

    def save(self, path: Path) -> None:
        """Write the calibration as JSON."""
        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read a calibration written by :meth:`save`."""
        return cls.from_json(json.loads(Path(path).read_text()))


class _Recorder:
    """Keeps what one layer's operands held over the calibration batches."""

    def __init__(self, observer: str) -> None:
        self.observer = observer
        self.values: dict[str, list[Tensor]] = {}
        self.minmax: dict[str, Range] = {}

    def add(self, tensor: str, x: Tensor) -> None:
        if self.observer == "minmax":
            lo, hi = finite_range(x)
            if tensor in self.minmax:
                old_lo, old_hi = self.minmax[tensor]
                lo, hi = min(lo, old_lo), max(hi, old_hi)
            self.minmax[tensor] = (lo, hi)
        else:
            self.values.setdefault(tensor, []).append(x.detach().reshape(-1).cpu())

    def ranges(self, percentile: float) -> dict[str, Range]:
        if self.observer == "minmax":
            return dict(self.minmax)
        return {t: observe(torch.cat(chunks), self.observer, percentile) for t, chunks in self.values.items()}


def calibrate(
    traced: TracedModel,
    x: Tensor,
    *,
    observer: str = "minmax",
    percentile: float = DEFAULT_PERCENTILE,
    batch_size: int = 256,
    layer_map: Mapping[Any, OpSpec] = DEFAULT_LAYER_MAP,
    source: str = "",
) -> Calibration:
    """Run the float model over ``x`` and record the range of every activation operand.

    The model runs in eval mode under ``torch.no_grad`` (training flags are restored),
    in batches of ``batch_size`` on the device of ``x``. For a module layer (Linear,
    Conv, ReLU) the operand is its input; for a traced function (``add``, ``matmul``)
    every tensor operand, since those are activations. The observer sees every element
    of every sample at once, so the result does not depend on ``batch_size``.

    Args:
        traced: The traced float model (BatchNorm already folded, if it is to be).
        x: The calibration samples (a batch).
        observer: ``"minmax"`` or ``"percentile"``.
        percentile: The percentile of ``"percentile"`` (upper; the lower is ``100 - p``).
        batch_size: Samples per forward pass.
        layer_map: How to find a layer's operands (as given to the Quantizer).
        source: A note on where ``x`` came from, kept in the record.

    Returns:
        The calibration.

    Raises:
        ValueError: An unknown observer or a bad percentile.
        DataError: ``x`` holds no sample.
    """
    if observer not in OBSERVERS:
        raise ValueError(f"unknown observer {observer!r}; observers: {', '.join(OBSERVERS)}")
    if not 50 < percentile <= 100:
        raise ValueError(f"the percentile must be in (50, 100]; got {percentile!r}")
    if len(x) == 0:
        raise DataError(
            "calibration needs at least one sample, and the split it reads (the training "
            "split in the commands) is empty; give the data set training samples"
        )
    gm = traced.gm
    recorders: dict[str, _Recorder] = {}
    handles = []
    for layer in traced.table:
        module = gm._modules[layer.name]
        spec = layer_map.get(layer_map_key(module))
        if spec is None:
            continue
        recorder = recorders.setdefault(layer.name, _Recorder(observer))
        handles.append(module.register_forward_pre_hook(_hook(spec, recorder, isinstance(module, FloatOp)), with_kwargs=True))
    flags = [(m, m.training) for m in gm.modules()]
    gm.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                gm(x[start : start + batch_size])
    finally:
        for handle in handles:
            handle.remove()
        for module, training in flags:
            module.training = training
    ranges = {name: r for name, recorder in recorders.items() if (r := recorder.ranges(percentile))}
    return Calibration(observer, float(percentile), len(x), ranges, source)


def _hook(spec: OpSpec, recorder: _Recorder, function: bool) -> Any:
    def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ops = spec.unpack(module, args, kwargs)
        operands = (ops.data_in, ops.weight, ops.bias) if function else (ops.data_in,)
        for tensor, value in zip(TENSOR_NAMES, operands):
            if isinstance(value, Tensor) and value.is_floating_point():
                recorder.add(tensor, value)

    return record


def resolve_layer_config(
    config: LayerQuantConfig | None,
    *,
    float_module: nn.Module | None = None,
    ranges: Mapping[str, Range] | None = None,
) -> LayerQuantConfig | None:
    """A layer config whose range-calibrated formats are fitted to known ranges.

    Each tensor whose format needs calibration is fitted to its range in ``ranges``
    (calibrated activations) or, for the ``weight`` and ``bias`` of a module layer, to
    the parameter itself. Formats without such a range stay as they are (they then fit
    themselves to each tensor they quantize).

    Args:
        config: The layer's config (None: float).
        float_module: The float layer, whose parameters fit the weight and bias formats;
            None to leave them dynamic.
        ranges: Operand -> ``(lo, hi)`` from a :class:`Calibration`.

    Returns:
        The resolved config (the same object when nothing changed).
    """
    if config is None:
        return None
    changed: dict[str, Any] = {}
    for tensor in TENSOR_NAMES:
        fmt = config.tensor(tensor)
        if fmt is None or not fmt.needs_calibration:
            continue
        known = None if ranges is None else ranges.get(tensor)
        if known is None and tensor != "data_in" and float_module is not None and not isinstance(float_module, FloatOp):
            param = getattr(float_module, tensor, None)
            if isinstance(param, Tensor):
                known = finite_range(param)
        if known is not None:
            changed[tensor] = fmt.calibrated(*known)
    if not changed:
        return config
    return LayerQuantConfig(config.format, **{t: changed.get(t, config.tensor(t)) for t in TENSOR_NAMES})


@dataclass
class PreparedModel:
    """A float model made ready for post-training quantization.

    Attributes:
        traced: The traced model (BatchNorm folded when asked and possible).
        calibration: The activation ranges, measured on the calibration samples.
        folded: Node name of each layer that absorbed a BatchNorm -> the BatchNorm's path.
    """

    traced: TracedModel
    calibration: Calibration
    folded: dict[str, str] = field(default_factory=dict)


def prepare_ptq(
    model: nn.Module,
    example_input: Tensor,
    calibration_x: Tensor,
    *,
    fold_bn: bool = True,
    observer: str = "minmax",
    percentile: float = DEFAULT_PERCENTILE,
    batch_size: int = 256,
    source: str = "",
) -> PreparedModel:
    """Fold BatchNorm (optionally), trace, and calibrate: what quantize, search and export share.

    Args:
        model: The float model (not modified), on the device of the inputs.
        example_input: A batch to trace with.
        calibration_x: The calibration samples (the first ``calibration_samples`` of
            the training split, in the commands).
        fold_bn: Fold BatchNorm into the Conv/Linear layer before it.
        observer: The calibration observer.
        percentile: Its percentile, for ``"percentile"``.
        batch_size: Samples per calibration pass.
        source: Where the samples came from, for the record.
    """
    folded = fold_batchnorm(model) if fold_bn else None
    float_model = folded.model if folded is not None else model
    traced = trace(float_model, example_input)
    calibration = calibrate(
        traced, calibration_x, observer=observer, percentile=percentile, batch_size=batch_size, source=source
    )
    return PreparedModel(traced, calibration, dict(folded.folded) if folded is not None else {})
