"""Hardware runners: costs of a candidate, from the layer table or measured on the device.

Every definition here is the one in DESIGN.md ("Metric definitions"). For each quantizable
layer l of the layer table: ``|W_l|`` weight elements, ``|b_l|`` bias elements, ``A_l``
input activation elements per sample, ``M_l`` multiply-accumulates per sample; ``w_l``,
``a_l``, ``bb_l`` the storage bits of its weight, input and bias formats
(:attr:`bitscout.quant.TensorFormat.bits`), 32 where the layer or that tensor is not
quantized.

Which layers count:

* A *weight* is a parameter: the weight of a ``linear``, ``conv1d`` or ``conv2d`` layer.
  The second operand of ``matmul``, ``bmm``, ``add`` and ``mul`` is an activation (it is
  quantized with the layer's ``weight`` format, but it is not stored): it counts in
  ``activation_bitwidth`` (at ``w_l`` bits) and in ``bitops``, not in
  ``average_bitwidth`` or ``model_size``.
* ``A_l`` counts for every layer with a ``data_in`` tensor, relu included.

Every analytic runner also reports each metric as a ratio to the unquantized float model
(``<metric>_ratio``): 1.0 for the float model, 0.25 for int8 weights in
``average_bitwidth_ratio``, and so on.
"""

from __future__ import annotations

import abc
import functools
import itertools
import math
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pydantic
import torch
from torch import nn

from bitscout.errors import SearchError
from bitscout.graph import LayerInfo, LayerTable
from bitscout.metrics._runner import Candidate, RunContext, Runner, register_runner

if TYPE_CHECKING:
    from bitscout.quant import LayerQuantConfig

__all__ = [
    "FLOAT_BITS",
    "tensor_bits",
    "overhead_bits",
    "has_weight_parameter",
    "AverageBitwidth",
    "ActivationBitwidth",
    "ModelSize",
    "Flops",
    "Bitops",
    "Latency",
]

#: Bits of a tensor that is not quantized.
FLOAT_BITS = 32

_WEIGHT_PARAMETER_OPS = frozenset({"linear", "conv1d", "conv2d"})

Config = Mapping[str, "LayerQuantConfig | None"]

#: Per-layer choices of a grid: (layer name, that layer's configs), first layer slowest.
GridLayers = Sequence[tuple[str, Sequence["LayerQuantConfig | None"]]]


def tensor_bits(layer_config: LayerQuantConfig | None, tensor: str) -> float:
    """Storage bits of one tensor of a layer: its format's ``bits``, else 32.

    Args:
        layer_config: The layer's config (``None``: floating point).
        tensor: ``"data_in"``, ``"weight"`` or ``"bias"``.
    """
    if layer_config is None:
        return FLOAT_BITS
    fmt = getattr(layer_config, tensor)
    return FLOAT_BITS if fmt is None else float(fmt.bits)


def overhead_bits(layer_config: LayerQuantConfig | None, tensor: str, shape: tuple[int, ...] | None) -> int:
    """Bits a tensor's format stores besides its elements: scales and zero points.

    ``int`` stores a float32 scale (and, asymmetric, a zero point) per tensor or per
    output channel; every other format stores nothing extra (a fixed-point frac width,
    ``"auto"`` included, is part of the type, not data).

    Args:
        layer_config: The layer's config (``None``: floating point).
        tensor: ``"data_in"``, ``"weight"`` or ``"bias"``.
        shape: The tensor's shape (per sample for ``data_in``), or None.
    """
    if layer_config is None or shape is None:
        return 0
    fmt = getattr(layer_config, tensor)
    return 0 if fmt is None else fmt.storage_overhead_bits(tuple(shape))


def has_weight_parameter(layer: LayerInfo) -> bool:
    """Whether the layer's weight is a stored parameter (linear and conv layers)."""
    return layer.op in _WEIGHT_PARAMETER_OPS and layer.weight_numel > 0


def _with_ratios(*names: str) -> tuple[str, ...]:
    return names + tuple(f"{name}_ratio" for name in names)


class _AnalyticRunner(Runner):
    """A hardware runner computed from the layer table and the config alone.

    Subclasses implement :meth:`measure` for the raw metrics; the float model's values
    are computed once, at construction, for the ratios.
    """

    kind = "hardware"
    config_only = True

    def __init__(self, options: pydantic.BaseModel, context: RunContext) -> None:
        super().__init__(options, context)
        self.table: LayerTable = context.traced.table
        self._float = self.measure({})
        for name, value in self._float.items():
            if value == 0:
                raise SearchError(
                    f"{self.name}: the float model's {name} is 0, so no ratio to it exists; "
                    f"the model has no layer this metric counts (layers: "
                    f"{', '.join(f'{layer.name} ({layer.op})' for layer in self.table) or 'none'})"
                )

    @abc.abstractmethod
    def measure(self, config: Config) -> dict[str, float]:
        """The raw metrics (without ratios) of a per-layer config."""

    @property
    def float_values(self) -> dict[str, float]:
        """The raw metrics of the unquantized model."""
        return dict(self._float)

    def run(self, candidate: Candidate) -> dict[str, float]:
        values = self.measure(candidate.config)
        ratios = {f"{name}_ratio": value / self._float[name] for name, value in values.items()}
        return {**values, **ratios}

    def measure_grid(self, layers: GridLayers) -> dict[str, np.ndarray]:
        """The raw metrics of every config of a grid, as :meth:`measure` gives them.

        The grid is the cartesian product of the per-layer choices (first layer slowest,
        as ``itertools.product``); a layer of the table that the grid does not name is
        float in every config. The values are flat float64 arrays with exactly the bits
        :meth:`measure` returns for each config. This default calls :meth:`measure` per
        config; the built-in runners override it with array arithmetic that repeats
        :meth:`measure`'s operations in the same order (so the same roundings).
        """
        names = [name for name, _ in layers]
        rows = [self.measure(dict(zip(names, combo))) for combo in itertools.product(*(c for _, c in layers))]
        keys = rows[0].keys() if rows else self._float.keys()
        return {key: np.array([row[key] for row in rows], dtype=np.float64) for key in keys}

    def run_grid(self, layers: GridLayers) -> dict[str, np.ndarray]:
        """:meth:`run` for every config of a grid (see :meth:`measure_grid`), ratios included."""
        values = self.measure_grid(layers)
        ratios = {f"{name}_ratio": value / self._float[name] for name, value in values.items()}
        return {**values, **ratios}


class _Grid:
    """Per-layer arrays broadcast over a grid of configs, for the ``measure_grid`` methods.

    ``bits(name, tensor)`` and ``overhead(name, tensor, shape)`` give, for a layer the
    grid names, an array over that layer's choices shaped to broadcast along its own
    axis; for any other layer, the float value (a Python number), exactly as
    :func:`tensor_bits` and :func:`overhead_bits` give it for ``None``.
    """

    def __init__(self, layers: GridLayers) -> None:
        self.shape = tuple(len(configs) for _, configs in layers)
        self._axes = {name: (axis, configs) for axis, (name, configs) in enumerate(layers)}

    def _along(self, name: str, values: list[float]) -> np.ndarray:
        axis = self._axes[name][0]
        shape = [1] * len(self.shape)
        shape[axis] = len(values)
        return np.array(values, dtype=np.float64).reshape(shape)

    def bits(self, name: str, tensor: str) -> Any:
        if name not in self._axes:
            return tensor_bits(None, tensor)
        return self._along(name, [tensor_bits(cfg, tensor) for cfg in self._axes[name][1]])

    def overhead(self, name: str, tensor: str, shape: tuple[int, ...] | None) -> Any:
        if name not in self._axes:
            return overhead_bits(None, tensor, shape)
        return self._along(name, [overhead_bits(cfg, tensor, shape) for cfg in self._axes[name][1]])

    def flat(self, value: Any) -> np.ndarray:
        """``value`` (an array or a number) over the whole grid, flattened."""
        return np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=np.float64), self.shape)).reshape(
            math.prod(self.shape)
        )


@register_runner
class AverageBitwidth(_AnalyticRunner):
    """``average_bitwidth`` = sum_l (w_l |W_l| + S_l) / sum_l |W_l| over weight parameters.

    MASE's definition, plus ``S_l``: the bits a scaled format stores beside the weight
    elements (a float32 scale per tensor or per output channel for ``int``, and a
    zero point when asymmetric; 0 for every other format, so MASE's formats give
    MASE's numbers). Also ``memory_density`` = ``compare_to`` / ``average_bitwidth``,
    better when larger.
    """

    name = "average_bitwidth"
    metrics = _with_ratios("average_bitwidth", "memory_density")
    maximize = frozenset({"memory_density", "memory_density_ratio"})
    options: AverageBitwidth.Options

    class Options(Runner.Options):
        """Options of ``average_bitwidth``.

        Attributes:
            compare_to: The width ``memory_density`` compares against (MASE's option).
        """

        compare_to: pydantic.PositiveFloat = 32.0

    @functools.cached_property
    def _weights(self) -> tuple[tuple[str, int, tuple[int, ...] | None], ...]:
        """(layer, |W_l|, shape) of each weight parameter: what every trial sums over."""
        return tuple(
            (layer.name, layer.weight_numel, layer.weight_shape)
            for layer in self.table
            if has_weight_parameter(layer)
        )

    def measure(self, config: Config) -> dict[str, float]:
        bits = 0
        count = 0
        for name, numel, shape in self._weights:
            layer_config = config.get(name)
            bits += tensor_bits(layer_config, "weight") * numel + overhead_bits(layer_config, "weight", shape)
            count += numel
        if count == 0:
            return {"average_bitwidth": 0.0, "memory_density": 0.0}
        average = bits / count
        return {"average_bitwidth": average, "memory_density": self.options.compare_to / average}

    def measure_grid(self, layers: GridLayers) -> dict[str, np.ndarray]:
        grid = _Grid(layers)
        bits: Any = 0
        count = 0
        for name, numel, shape in self._weights:
            bits = bits + (grid.bits(name, "weight") * numel + grid.overhead(name, "weight", shape))
            count += numel
        if count == 0:
            return {"average_bitwidth": grid.flat(0.0), "memory_density": grid.flat(0.0)}
        average = grid.flat(bits) / count
        return {"average_bitwidth": average, "memory_density": self.options.compare_to / average}


@register_runner
class ActivationBitwidth(_AnalyticRunner):
    """``activation_bitwidth`` = sum_l a_l A_l / sum_l A_l over layer inputs."""

    name = "activation_bitwidth"
    metrics = _with_ratios("activation_bitwidth")

    @functools.cached_property
    def _inputs(self) -> tuple[tuple[str, str, int], ...]:
        """(layer, tensor, elements) of each activation input, in layer order."""
        inputs = []
        for layer in self.table:
            if "data_in" in layer.tensors:
                inputs.append((layer.name, "data_in", layer.input_numel))
            if "weight" in layer.tensors and not has_weight_parameter(layer):
                # The second operand of a matmul/add/mul is an activation input too.
                inputs.append((layer.name, "weight", layer.weight_numel))
        return tuple(inputs)

    def measure(self, config: Config) -> dict[str, float]:
        bits = 0
        count = 0
        for name, tensor, numel in self._inputs:
            bits += tensor_bits(config.get(name), tensor) * numel
            count += numel
        return {"activation_bitwidth": bits / count if count else 0.0}

    def measure_grid(self, layers: GridLayers) -> dict[str, np.ndarray]:
        grid = _Grid(layers)
        bits: Any = 0
        count = 0
        for name, tensor, numel in self._inputs:
            bits = bits + grid.bits(name, tensor) * numel
            count += numel
        return {"activation_bitwidth": grid.flat(bits) / count if count else grid.flat(0.0)}


@register_runner
class ModelSize(_AnalyticRunner):
    """``model_size``: bytes to store every parameter and floating-point buffer.

    Also ``weight_bytes``: bytes of the weights of linear and conv layers alone, with
    what their format stores beside them (sum_l w_l |W_l| / 8 plus scales and zero
    points), the budget of a weight memory.

    Quantized weights and biases at their format's bits plus what the format stores
    beside them (scales and zero points of ``int``, per tensor or per channel; the
    input's scale of a layer whose ``data_in`` is ``int``), every other parameter and every
    floating-point buffer (BatchNorm statistics) at 32 bits; integer buffers
    (BatchNorm's ``num_batches_tracked``) are bookkeeping, not model data, and are left
    out. Each weight is taken to belong to one layer: a model that ties one weight to
    two layers is counted as if each had its own copy.
    """

    name = "model_size"
    metrics = _with_ratios("model_size", "weight_bytes")

    @functools.cached_property
    def _stored(self) -> tuple[LayerInfo, ...]:
        """Each layer whose weight is a parameter."""
        return tuple(layer for layer in self.table if has_weight_parameter(layer))

    def measure(self, config: Config) -> dict[str, float]:
        bits = FLOAT_BITS * (self.table.param_count + self.table.buffer_float_count)
        weight_bits = 0.0
        for layer in self._stored:
            layer_config = config.get(layer.name)
            weight = tensor_bits(layer_config, "weight") * layer.weight_numel
            weight += overhead_bits(layer_config, "weight", layer.weight_shape)
            weight_bits += weight
            bits += weight - FLOAT_BITS * layer.weight_numel
            bits += (tensor_bits(layer_config, "bias") - FLOAT_BITS) * layer.bias_numel
            bits += overhead_bits(layer_config, "bias", layer.bias_shape)
        for layer in self.table:
            if "data_in" in layer.tensors:
                bits += overhead_bits(config.get(layer.name), "data_in", layer.input_shape)
        return {"model_size": bits / 8, "weight_bytes": weight_bits / 8}

    def measure_grid(self, layers: GridLayers) -> dict[str, np.ndarray]:
        grid = _Grid(layers)
        bits: Any = FLOAT_BITS * (self.table.param_count + self.table.buffer_float_count)
        weight_bits: Any = 0.0
        for layer in self._stored:
            weight = grid.bits(layer.name, "weight") * layer.weight_numel
            weight = weight + grid.overhead(layer.name, "weight", layer.weight_shape)
            weight_bits = weight_bits + weight
            bits = bits + (weight - FLOAT_BITS * layer.weight_numel)
            bits = bits + (grid.bits(layer.name, "bias") - FLOAT_BITS) * layer.bias_numel
            bits = bits + grid.overhead(layer.name, "bias", layer.bias_shape)
        for layer in self.table:
            if "data_in" in layer.tensors:
                bits = bits + grid.overhead(layer.name, "data_in", layer.input_shape)
        return {"model_size": grid.flat(bits) / 8, "weight_bytes": grid.flat(weight_bits) / 8}


@register_runner
class Flops(_AnalyticRunner):
    """``flops``: floating-point operations of one float forward pass for one sample.

    As counted by ``torch.utils.flop_counter.FlopCounterMode`` when the model was traced
    (2 per multiply-accumulate of matmuls and convolutions). Quantization does not change
    it, so in a quantization-only search it cannot change the ranking; architecture
    choices do.
    """

    name = "flops"
    metrics = _with_ratios("flops")
    constant_under_quantization = frozenset(metrics)

    def measure(self, config: Config) -> dict[str, float]:
        return {"flops": float(self.table.float_flops)}

    def measure_grid(self, layers: GridLayers) -> dict[str, np.ndarray]:
        return {"flops": _Grid(layers).flat(float(self.table.float_flops))}


@register_runner
class Bitops(_AnalyticRunner):
    """``bitops`` = sum_l M_l w_l a_l: multiply-accumulates weighted by operand widths."""

    name = "bitops"
    metrics = _with_ratios("bitops")

    def measure(self, config: Config) -> dict[str, float]:
        total = 0
        for layer in self.table:
            if layer.macs:
                layer_config = config.get(layer.name)
                total += (
                    layer.macs
                    * tensor_bits(layer_config, "weight")
                    * tensor_bits(layer_config, "data_in")
                )
        return {"bitops": float(total)}

    def measure_grid(self, layers: GridLayers) -> dict[str, np.ndarray]:
        grid = _Grid(layers)
        total: Any = 0
        for layer in self.table:
            if layer.macs:
                total = total + layer.macs * grid.bits(layer.name, "weight") * grid.bits(layer.name, "data_in")
        return {"bitops": grid.flat(total)}


@register_runner
class Latency(Runner):
    """``latency``: median wall time of one forward pass of one batch, in milliseconds.

    Measured on the context's device under ``torch.inference_mode`` after ``warmup``
    untimed passes, over ``repeats`` timed ones (``torch.cuda.synchronize`` around each
    on a GPU). The batch is the first ``batch_size`` samples of the validation split
    (repeated when the split is smaller). ``latency_ratio`` divides by the float model's
    latency, measured once, on first use, the same way.

    This measures the model as built. Fake quantization computes in floating point and
    adds work, so a quantized candidate is never faster than the float model here: the
    metric shows the cost of the simulation, not of quantized hardware. Trials that run
    in parallel (``n_jobs`` > 1) disturb each other's timings.
    """

    name = "latency"
    kind = "hardware"
    metrics = _with_ratios("latency")

    class Options(Runner.Options):
        """Options of ``latency``.

        Attributes:
            batch_size: Samples in the timed batch (default: the search's batch size).
            warmup: Untimed passes first.
            repeats: Timed passes; the median is reported.
        """

        batch_size: pydantic.PositiveInt | None = None
        warmup: pydantic.NonNegativeInt = 3
        repeats: pydantic.PositiveInt = 10

    options: Latency.Options

    def __init__(self, options: pydantic.BaseModel, context: RunContext) -> None:
        super().__init__(options, context)
        batch_size = self.options.batch_size or context.batch_size
        x = context.dataset.split("val").x
        if len(x) == 0:
            raise SearchError("latency: the validation split is empty; there is nothing to time")
        repeats = -(-batch_size // len(x))
        self._batch = x.repeat(repeats, *([1] * (x.dim() - 1)))[:batch_size].to(context.device)
        self._float_ms: float | None = None
        self._lock = threading.Lock()

    def _sync(self) -> Callable[[], None]:
        if self.context.device.type == "cuda":
            return torch.cuda.synchronize
        return lambda: None

    def time_ms(self, model: nn.Module) -> float:
        """Median milliseconds of one forward pass of the batch through ``model``."""
        model.eval()
        sync = self._sync()
        times: list[float] = []
        with torch.inference_mode():
            for _ in range(self.options.warmup):
                model(self._batch)
            sync()
            for _ in range(self.options.repeats):
                start = time.perf_counter()
                model(self._batch)
                sync()
                times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)

    def float_latency(self) -> float:
        """The float model's latency in ms (measured on the first call)."""
        with self._lock:
            if self._float_ms is None:
                self._float_ms = self.time_ms(self.context.traced.gm)
            return self._float_ms

    def run(self, candidate: Candidate) -> dict[str, float]:
        latency = self.time_ms(candidate.model)
        return {"latency": latency, "latency_ratio": latency / self.float_latency()}
