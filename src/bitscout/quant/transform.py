"""The pure quantize transform: a new model with quantized layers, the input untouched."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch.fx as fx
from torch import nn

from bitscout.errors import QuantConfigError
from bitscout.graph import LayerTable, TracedModel, trace
from bitscout.graph._trace import ExampleInput
from bitscout.quant._modules import (
    DEFAULT_LAYER_MAP,
    OpSpec,
    QuantizedLayer,
    QuantizedTensorCache,
    layer_map_key,
)
from bitscout.quant._calibration import Calibration, resolve_layer_config
from bitscout.quant.formats import LayerQuantConfig, parse_layer_config

__all__ = [
    "Quantizer",
    "quantize",
    "resolve_pass",
    "resolve_config",
    "format_quant_table",
    "QuantizePassLike",
]

LayerConfigs = Mapping[str, LayerQuantConfig | None]


class QuantizePassLike(Protocol):
    """What :func:`resolve_pass` reads: ``bitscout.config.QuantizePass`` has this shape."""

    by: str
    entries: Mapping[str, Mapping[str, Any]]


class Quantizer:
    """Builds quantized candidates of one traced model, cheaply.

    A build copies the traced module shallowly (its own top-level module dict) and puts
    a :class:`~bitscout.quant.QuantizedLayer` where the config asks for one; float
    parameters are the traced model's own tensors. Wrappers are kept per (layer,
    config) and quantized weights per (layer, format, parameter version) in
    :attr:`cache`, so candidates that share a layer setting share that work.

    Non-quantized submodules (BatchNorm, Dropout, ...) are shared with the traced model
    too: switching a candidate to ``train()`` switches them as well.

    With a ``calibration``, the input formats that need a range (``integer`` with
    ``frac_width = "auto"``, per-tensor ``int``) are fitted to the calibrated range of
    that layer's input when the wrapper is built, so every batch is quantized alike.
    Weight and bias formats fit themselves to the parameter each time it is quantized
    (once per parameter version, through the cache), so they follow fine-tuning.
    Without a calibration an input format that needs a range fits each batch it sees
    (dynamic quantization).

    Args:
        traced: The traced model (from :func:`bitscout.graph.trace`).
        layer_map: Float layer type or traced function -> how to run it from its
            operands (defaults to :data:`~bitscout.quant.DEFAULT_LAYER_MAP`).
        cache: The quantized-weight cache (a new one by default).
        calibration: The activation ranges (from :func:`bitscout.quant.calibrate`).
    """

    def __init__(
        self,
        traced: TracedModel,
        *,
        layer_map: Mapping[Any, OpSpec] = DEFAULT_LAYER_MAP,
        cache: QuantizedTensorCache | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.traced = traced
        self.layer_map = dict(layer_map)
        self.cache = cache if cache is not None else QuantizedTensorCache()
        self.calibration = calibration
        self._names = frozenset(traced.table.names())
        self._wrappers: dict[tuple[str, LayerQuantConfig], QuantizedLayer] = {}

    def build(self, config: LayerConfigs) -> fx.GraphModule:
        """A new model with the layers of ``config`` quantized.

        Args:
            config: Node name -> LayerQuantConfig, or None to keep the layer float.
                Layers not named stay float.

        Returns:
            A GraphModule sharing the traced model's graph, code and float parameters.

        Raises:
            QuantConfigError: A name is not a quantizable layer, a value is not a
                LayerQuantConfig, or the layer map cannot run a layer.
        """
        gm = self.traced.gm
        modules = dict(gm._modules)
        for name, layer_config in config.items():
            if layer_config is None:
                if name not in self._names:
                    raise self._unknown_layer(name)
                continue
            try:
                wrapper = self._wrappers.get((name, layer_config))
            except TypeError:  # unhashable: not a LayerQuantConfig; _wrap says so
                wrapper = None
            if wrapper is None:
                wrapper = self._wrap(name, layer_config)
            modules[name] = wrapper
        candidate = object.__new__(type(gm))
        state = dict(gm.__dict__)
        state["_modules"] = modules
        state["_parameters"] = dict(gm._parameters)
        state["_buffers"] = dict(gm._buffers)
        candidate.__dict__.update(state)
        return candidate

    def _unknown_layer(self, name: str) -> QuantConfigError:
        return QuantConfigError(
            f"cannot quantize layer {name!r}: the model has no quantizable layer of that "
            f"name. Its quantizable layers are: {', '.join(self.traced.table.names()) or '(none)'}."
        )

    def _wrap(self, name: str, layer_config: Any) -> QuantizedLayer:
        if name not in self._names:
            raise self._unknown_layer(name)
        if not isinstance(layer_config, LayerQuantConfig):
            raise QuantConfigError(
                f"the config of layer {name!r} must be a LayerQuantConfig (see "
                f"bitscout.quant.parse_layer_config) or None; got {layer_config!r} instead."
            )
        float_module = self.traced.gm._modules[name]
        assert float_module is not None  # every table layer is a top-level module (trace's rewrite)
        spec = self.layer_map.get(layer_map_key(float_module))
        if spec is None:
            raise QuantConfigError(
                f"layer {name!r} ({type(float_module).__name__}) has no quantized form in the "
                "layer map given to Quantizer; add an OpSpec for it."
            )
        resolved = layer_config
        if self.calibration is not None:
            resolved = resolve_layer_config(layer_config, ranges=self.calibration.ranges.get(name))
        wrapper = QuantizedLayer(name, float_module, spec, resolved, self.cache)  # type: ignore[arg-type]
        self._wrappers[(name, layer_config)] = wrapper
        return wrapper


def resolve_config(
    traced: TracedModel,
    config: LayerConfigs,
    calibration: Calibration | None = None,
) -> dict[str, LayerQuantConfig | None]:
    """Every range-calibrated format of a config fitted to its range: what a candidate uses.

    Input formats take the calibrated ranges, weight and bias formats of module layers
    the range of the parameter; the result names concrete formats (``int8.5`` for
    ``integer`` with ``frac_width = "auto"``, a fixed scale for per-tensor ``int``), as
    the layer table, the export and the hls4ml types need. Per-channel ``int`` weights
    keep fitting each channel to itself.

    Args:
        traced: The traced float model.
        config: Node name -> LayerQuantConfig or None.
        calibration: The activation ranges; None leaves input formats dynamic.

    Returns:
        Node name -> resolved LayerQuantConfig or None.
    """
    return {
        name: resolve_layer_config(
            layer_config,
            float_module=traced.gm._modules.get(name),
            ranges=None if calibration is None else calibration.ranges.get(name),
        )
        for name, layer_config in config.items()
    }


def resolve_pass(pass_cfg: QuantizePassLike, table: LayerTable) -> dict[str, LayerQuantConfig | None]:
    """Turn a ``[passes.quantize]`` section into one config per layer.

    With ``by = "type"`` the keys are op types (``linear``, ``conv2d``, ``relu``, ...);
    with ``by = "name"`` they are node names (``seq_blocks_2``). Each layer takes the
    entry of its type or name if there is one, else the ``default`` entry, else stays
    float (precedence: default < type/name entry). An entry replaces the default as a
    whole, as in MASE: fields are not merged. ``name = "NA"`` leaves a layer float.

    Args:
        pass_cfg: The pass (``bitscout.config.QuantizePass`` or any object with ``by``
            and ``entries``: key -> the flat MASE config dict).
        table: The layer table of the model.

    Returns:
        Node name -> LayerQuantConfig or None (float), for every layer in the table.

    Raises:
        QuantConfigError: ``by`` is neither "type" nor "name", a key matches no layer,
            or an entry cannot be built (the message names the TOML path and the layer).
    """
    by = pass_cfg.by
    entries = pass_cfg.entries
    if by not in ("type", "name"):
        raise QuantConfigError(f"passes.quantize.by must be 'type' or 'name'; got {by!r} instead.")
    present = table.op_types() if by == "type" else table.names()
    for key in entries:
        if key != "default" and key not in present:
            what = "op type" if by == "type" else "node name"
            raise QuantConfigError(
                f"passes.quantize.{key}: the model has no layer with {what} {key!r} "
                f"(by = {by!r}). It has: {', '.join(present) or '(no quantizable layers)'}, "
                "and 'default'."
            )
    resolved: dict[str, LayerQuantConfig | None] = {}
    for layer in table:
        key = layer.op if by == "type" else layer.name
        if key not in entries:
            key = "default"
        raw = entries.get(key)
        if raw is None:
            resolved[layer.name] = None
            continue
        resolved[layer.name] = parse_layer_config(
            raw,
            where=f"passes.quantize.{key}.config (layer {layer.name})",
            tensors=layer.tensors,
            op=layer.op,
        )
    return resolved


def quantize(
    model: nn.Module | TracedModel,
    config: QuantizePassLike | LayerConfigs,
    *,
    example_input: ExampleInput | None = None,
    calibration: Calibration | None = None,
) -> fx.GraphModule:
    """A quantized copy of ``model``; the model and the config are left as they were.

    Args:
        model: A float model (traced here, so ``example_input`` is needed) or a
            TracedModel.
        config: A ``[passes.quantize]`` section (``bitscout.config.QuantizePass``, by
            type or by name with a default) or a mapping node name -> LayerQuantConfig
            or None, as a search proposes.
        example_input: A batch of inputs, needed when ``model`` is not traced yet.
        calibration: Activation ranges for range-calibrated input formats (see
            :class:`Quantizer`); None: those fit each batch.

    Returns:
        The quantized model, sharing its float parameters with ``model``.

    Raises:
        TypeError: ``model`` is an nn.Module and no ``example_input`` was given.
        TraceError: The model cannot be traced.
        QuantConfigError: The config names a layer or type the model lacks, or an entry
            cannot be built.
    """
    if isinstance(model, TracedModel):
        traced = model
    else:
        if example_input is None:
            raise TypeError(
                "quantize() needs example_input (a batch of inputs) to trace an nn.Module; "
                "or pass a TracedModel from bitscout.graph.trace."
            )
        traced = trace(model, example_input)
    if isinstance(config, Mapping):
        layer_configs: LayerConfigs = config
    else:
        layer_configs = resolve_pass(config, traced.table)
    return Quantizer(traced, calibration=calibration).build(layer_configs)


def format_quant_table(
    table: LayerTable,
    config: LayerConfigs,
    *,
    folded: Mapping[str, str] | None = None,
    describe: Callable[[LayerQuantConfig, tuple[str, ...]], str] | None = None,
) -> str:
    """Node-by-node text table of what a config applies: shapes and formats.

    Args:
        table: The layer table.
        config: Node name -> LayerQuantConfig or None; absent layers are float. Pass
            the resolved config (:func:`resolve_config`) to show calibrated formats.
        folded: Node name -> the BatchNorm folded into it; such a layer's op reads
            ``conv2d+bn`` (its weights are the folded ones).
        describe: How a quantized layer's column reads (config, its tensors -> text);
            default: each format's ``describe()`` (``data_in=int8.4``).

    Returns:
        Aligned text with columns node, op, input, weight, bias, output, quantization.
    """
    folded = folded or {}
    header = ("node", "op", "input", "weight", "bias", "output", "quantization")
    rows = [header]
    for layer in table:
        layer_config = config.get(layer.name)
        rows.append(
            (
                layer.name,
                layer.op + ("+bn" if layer.name in folded else ""),
                _shape(layer.input_shape),
                _shape(layer.weight_shape),
                _shape(layer.bias_shape),
                _shape(layer.output_shape),
                "float" if layer_config is None else (describe or _describe)(layer_config, layer.tensors),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


def _describe(config: LayerQuantConfig, tensors: tuple[str, ...]) -> str:
    parts = []
    for tensor in tensors:
        fmt = getattr(config, tensor)
        parts.append(f"{tensor}={'float' if fmt is None else fmt.describe()}")
    return f"{config.format}: " + ", ".join(parts)


def _shape(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "(" + ", ".join(str(d) for d in shape) + ")"
