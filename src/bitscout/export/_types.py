"""Fixed-point types for the hls4ml project, chosen from a bitscout quantization config.

bitscout quantizes a layer's INPUT (``data_in``); hls4ml types a layer's RESULT. So the
``data_in`` format of a layer becomes the result type of the layer that feeds it (the
input layer for the first one), cast with round-half-to-even and saturation, which is
exactly bitscout's ``q(x) = clamp(round(x * 2^f), ...) / 2^f`` applied to the exact
value. Every other result and every accumulator is made wide enough to hold the exact
value (lossless), from the widths and the fan-in. See docs/export.md for the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import fx, nn

from bitscout.errors import ExportError
from bitscout.graph import TracedModel
from bitscout.quant import IntegerFormat, LayerQuantConfig

__all__ = ["FixedType", "LayerPlan", "TypePlan", "plan_types", "check_hls_nodes", "FLOAT32_EXACT_BITS"]

#: Bits of a float32 significand (with the implicit bit): integers up to 2**24 are exact.
FLOAT32_EXACT_BITS = 24

#: Width given to values bitscout keeps in floating point (no format to copy).
WIDE_WIDTH = 32

_TRANSPARENT = (nn.Flatten, nn.Identity, nn.Dropout)
_SUPPORTED = (nn.Linear, nn.ReLU, nn.BatchNorm1d, *_TRANSPARENT)


@dataclass(frozen=True)
class FixedType:
    """A signed fixed-point type ``ap_fixed<width, width - frac, rounding, saturation>``.

    Codes are the integers ``-2**(width-1) .. 2**(width-1) - 1``; a value is a code times
    ``2**-frac``. ``frac`` may be negative or above ``width`` (ap_fixed allows integer
    bits above the width and below zero).

    Attributes:
        width: Total bits.
        frac: Fractional bits.
        rounding: ap_fixed quantization mode (``AP_RND_CONV`` = round half to even).
        saturation: ap_fixed overflow mode (``AP_SAT`` = saturate).
    """

    width: int
    frac: int
    rounding: str = "AP_RND_CONV"
    saturation: str = "AP_SAT"

    @property
    def integer(self) -> int:
        """Integer bits (with the sign), ``width - frac``: ap_fixed's second argument."""
        return self.width - self.frac

    @property
    def codes(self) -> tuple[int, int]:
        """The smallest and largest integer codes, ``-2**(w-1)`` and ``2**(w-1) - 1``."""
        return -(2 ** (self.width - 1)), 2 ** (self.width - 1) - 1

    def hls(self) -> str:
        """The hls4ml type string, e.g. ``ap_fixed<8,4,AP_RND_CONV,AP_SAT>``."""
        return f"ap_fixed<{self.width},{self.integer},{self.rounding},{self.saturation}>"

    def describe(self) -> str:
        """A short name for tables, e.g. ``"fixed8.4"``."""
        return f"fixed{self.width}.{self.frac}"

    @classmethod
    def from_format(cls, fmt: IntegerFormat) -> FixedType:
        """The type holding exactly the values of bitscout's ``integer`` format ``fmt``."""
        assert fmt.frac_width is not None  # resolved by IntegerFormat
        return cls(fmt.width, fmt.frac_width)

    @classmethod
    def holding(cls, lo: int, hi: int, frac: int) -> FixedType:
        """The narrowest type whose codes at ``2**-frac`` cover ``[lo, hi]``."""
        width = 1
        while not (-(2 ** (width - 1)) <= lo and hi <= 2 ** (width - 1) - 1):
            width += 1
        return cls(width, frac)

    @classmethod
    def wide_for(cls, max_abs: float, width: int = WIDE_WIDTH) -> FixedType:
        """A ``width``-bit type whose range holds ``±max_abs`` with a factor 2 to spare."""
        top = math.floor(math.log2(max_abs)) if max_abs > 0 and math.isfinite(max_abs) else 0
        integer = top + 3  # sign bit + one bit of headroom above the largest magnitude
        return cls(width, width - integer)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """What casting ``x`` (float64) to this type gives, for RND_CONV and SAT."""
        lo, hi = self.codes
        scaled = np.clip(np.round(np.asarray(x, dtype=np.float64) * 2.0**self.frac), lo, hi)
        return scaled * 2.0**-self.frac


@dataclass(frozen=True)
class _Range:
    """Integer codes ``[lo, hi]`` at scale ``2**-frac``: the exact values a node can hold."""

    lo: int
    hi: int
    frac: int

    @classmethod
    def of(cls, t: FixedType) -> _Range:
        lo, hi = t.codes
        return cls(lo, hi, t.frac)

    def at(self, frac: int) -> _Range:
        assert frac >= self.frac
        k = 2 ** (frac - self.frac)
        return _Range(self.lo * k, self.hi * k, frac)

    def type(self) -> FixedType:
        return FixedType.holding(self.lo, self.hi, self.frac)


@dataclass
class LayerPlan:
    """The hls4ml types of one node and what may keep it from being bit-exact.

    Attributes:
        name: The node (and hls4ml layer) name.
        kind: ``input``, ``linear``, ``relu``, ``batchnorm`` or ``reshape``.
        precision: hls4ml precision key (``result``, ``weight``, ``bias``, ``accum``,
            ``scale``) -> type.
        result_from: Where the result type comes from (``"data_in of fc2"``, ``"lossless"``, ...).
        exact_sum_bits: For a quantized linear layer, the bits of the largest exact
            partial sum in units of its last place (worst case from widths and fan-in);
            float32 holds it exactly up to 24.
        notes: Reasons why bitscout and hls4ml may differ at this node.
    """

    name: str
    kind: str
    precision: dict[str, FixedType] = field(default_factory=dict)
    result_from: str = "lossless"
    exact_sum_bits: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def result(self) -> FixedType:
        """The type of the node's result."""
        return self.precision["result"]


@dataclass
class TypePlan:
    """The per-node types of a whole model, in graph order.

    Attributes:
        layers: One plan per node hls4ml sees (the input layer first).
        input_name: The name of the graph's input (hls4ml's input layer is named after it).
        output_name: The node whose result is the model's output.
    """

    layers: list[LayerPlan]
    input_name: str
    output_name: str

    def __getitem__(self, name: str) -> LayerPlan:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def output_type(self) -> FixedType:
        """The type of the model's output."""
        return self[self.output_name].result

    @property
    def notes(self) -> list[str]:
        """Every reason the hls4ml project may differ from bitscout, node by node."""
        return [f"{layer.name}: {note}" for layer in self.layers for note in layer.notes]

    def table(self) -> str:
        """A text table: node, kind, its hls4ml types, where the result type comes from."""
        rows = [("node", "kind", "types", "result from")]
        for layer in self.layers:
            types = ", ".join(f"{k}={t.hls()}" for k, t in layer.precision.items())
            rows.append((layer.name, layer.kind, types, layer.result_from))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _integer(fmt: object, where: str) -> IntegerFormat | None:
    if fmt is None:
        return None
    if not isinstance(fmt, IntegerFormat):
        raise ExportError(
            f"{where}: the hls4ml export supports the 'integer' (fixed-point) format only; "
            f"got {getattr(fmt, 'name', type(fmt).__name__)!r}. Export this candidate with "
            "--format pytorch instead."
        )
    if fmt.is_auto:
        # An hls4ml type needs a frac width; "auto" gets one from a range.
        raise ExportError(
            f"{where}: frac_width = 'auto' is not resolved; fit it to the calibrated input "
            "range first (bitscout.quant.resolve_config with a Calibration; `bitscout "
            "export` does this from the run's calibration.json)"
        )
    return fmt


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module:
    module = gm.get_submodule(str(node.target))
    # A quantized candidate wraps the float layer; the plan reads the float one.
    return getattr(module, "float_module", module)


#: How a refusal of a layer by the hls4ml export ends (verify says something else there).
PYTORCH_INSTEAD = "Export it with --format pytorch instead."

def check_hls_nodes(gm: fx.GraphModule) -> None:
    """Raise unless every node of a traced model is one the hls4ml export takes.

    Called before an export writes anything (a GRU found after ``model.pt`` was written
    left a half export behind), and again when the types are planned.

    Raises:
        ExportError: Names the first node hls4ml cannot take, or the inputs' count.
    """
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ExportError(
            f"the hls4ml export supports models with one input; this one has {len(placeholders)}"
        )
    for node in nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op != "call_module" or not isinstance(_module(gm, node), _SUPPORTED):
            what = type(_module(gm, node)).__name__ if node.op == "call_module" else str(node.target)
            raise ExportError(
                f"node {node.name!r} ({what}) cannot be exported to hls4ml by bitscout, which "
                "supports Linear, ReLU, BatchNorm1d and Flatten/Identity/Dropout (MLPs and the "
                f"JSC models). {PYTORCH_INSTEAD}"
            )


def plan_types(
    traced: TracedModel,
    config: dict[str, LayerQuantConfig | None],
    *,
    input_max_abs: float,
    rounding: str = "AP_RND_CONV",
    saturation: str = "AP_SAT",
) -> TypePlan:
    """Choose the hls4ml type of every node of a traced model from a per-layer config.

    Args:
        traced: The traced float model (weights already on their grids).
        config: Node name -> LayerQuantConfig or None (float); absent layers are float.
        input_max_abs: Largest input magnitude expected (from data), used for the input
            type when the first layer does not quantize its input.
        rounding: Rounding mode of the types copied from bitscout formats; anything but
            ``AP_RND_CONV`` differs from bitscout (kept to show that verify catches it).
        saturation: Overflow mode of those types; anything but ``AP_SAT`` differs.

    Returns:
        The plan, with a note for every node where bit-exactness is not guaranteed.

    Raises:
        ExportError: A node hls4ml cannot take in this export (only Linear, ReLU,
            BatchNorm1d and Flatten/Identity/Dropout are supported), a format other than
            integer, or a node whose consumers ask for different input formats.
    """
    gm = traced.gm
    nodes = list(gm.graph.nodes)
    check_hls_nodes(gm)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    unknown = sorted(set(config) - set(traced.table.names()))
    if unknown:
        raise ExportError(
            f"the config names layers the model lacks: {', '.join(unknown)}; its quantizable "
            f"layers are {', '.join(traced.table.names())}"
        )
    for name, layer_config in config.items():
        if layer_config is not None:
            for tensor in ("data_in", "weight", "bias"):
                _integer(layer_config.tensor(tensor), f"layer {name!r}, {tensor}")

    def data_in_of(node: fx.Node) -> IntegerFormat | None:
        layer_config = config.get(node.name)
        return None if layer_config is None else _integer(layer_config.data_in, node.name)

    def consumers(node: fx.Node) -> list[fx.Node]:
        found: list[fx.Node] = []
        for user in node.users:
            if user.op == "call_module" and isinstance(_module(gm, user), _TRANSPARENT):
                found.extend(consumers(user))
            else:
                found.append(user)
        return found

    def requested(node: fx.Node) -> tuple[FixedType | None, str]:
        """The result type the consumers' data_in formats ask of ``node``."""
        users = consumers(node)
        formats = {u.name: (data_in_of(u) if u.op == "call_module" else None) for u in users}
        given = {k: v for k, v in formats.items() if v is not None}
        if not given:
            return None, "lossless"
        if len(set(given.values())) > 1 or len(given) != len(formats):
            listed = ", ".join(f"{k}: {v.describe() if v else 'float'}" for k, v in formats.items())
            raise ExportError(
                f"node {node.name!r} feeds layers that quantize their input differently "
                f"({listed}); hls4ml gives a layer one result type. Use one data_in format "
                "for all of them."
            )
        fmt = next(iter(given.values()))
        t = replace(FixedType.from_format(fmt), rounding=rounding, saturation=saturation)
        return t, "data_in of " + ", ".join(given)

    plans: list[LayerPlan] = []
    ranges: dict[str, _Range] = {}
    types: dict[str, FixedType] = {}

    def settle(plan: LayerPlan, node: fx.Node, lossless: FixedType, exact: bool) -> None:
        wanted, source = requested(node)
        plan.precision["result"] = wanted if wanted is not None else lossless
        plan.result_from = source
        if wanted is None and not exact:
            plan.result_from = "wide (float in bitscout)"
        types[node.name] = plan.precision["result"]
        ranges[node.name] = _Range.of(plan.precision["result"])
        plans.append(plan)

    for node in nodes:
        if node.op == "placeholder":
            plan = LayerPlan(node.name, "input")
            wanted, _ = requested(node)
            if wanted is None:
                plan.notes.append(
                    "the first layer does not quantize its input, so the float input is "
                    f"converted to a wide fixed-point type (range from the data: |x| <= "
                    f"{input_max_abs:g}); bitscout computes on the float input"
                )
            settle(plan, node, FixedType.wide_for(input_max_abs), exact=False)
            continue
        if node.op == "output":
            continue
        module = _module(gm, node)
        source = node.args[0]
        assert isinstance(source, fx.Node)
        r_in, t_in = ranges[source.name], types[source.name]
        if isinstance(module, _TRANSPARENT):
            plan = LayerPlan(node.name, "reshape", {"result": t_in}, result_from="its input")
            types[node.name], ranges[node.name] = t_in, r_in
            plans.append(plan)
            continue
        layer_config = config.get(node.name)
        fmt_in = data_in_of(node)
        plan = LayerPlan(node.name, "")
        if fmt_in is not None:
            # The producer was given this very type; check it, so a bug cannot hide.
            assert t_in == replace(FixedType.from_format(fmt_in), rounding=rounding, saturation=saturation)
        if isinstance(module, nn.ReLU):
            plan.kind = "relu"
            settle(plan, node, t_in, exact=True)
        elif isinstance(module, nn.Linear):
            plan.kind = "linear"
            w_fmt = None if layer_config is None else _integer(layer_config.weight, node.name)
            b_fmt = None if layer_config is None else _integer(layer_config.bias, node.name)
            # Planned on the host: the arithmetic below mixes these with Python numbers.
            weight = module.weight.detach().double().cpu()
            bias = module.bias.detach().double().cpu() if module.bias is not None else torch.zeros(module.out_features, dtype=torch.float64)
            exact = True
            if w_fmt is not None:
                t_w = replace(FixedType.from_format(w_fmt), rounding=rounding, saturation=saturation)
            else:
                t_w = FixedType.wide_for(float(weight.abs().max()))
                exact = False
                plan.notes.append("its weights are float in bitscout: hls4ml rounds them to " + t_w.describe())
            if b_fmt is not None:
                t_b = replace(FixedType.from_format(b_fmt), rounding=rounding, saturation=saturation)
            else:
                t_b = FixedType.wide_for(float(bias.abs().max()))
                if module.bias is not None:
                    exact = False
                    plan.notes.append("its bias is float in bitscout: hls4ml rounds it to " + t_b.describe())
            r_w, r_b = _Range.of(t_w), _Range.of(t_b)
            frac = max(r_in.frac + r_w.frac, r_b.frac)
            corners = [a * b for a in (r_in.lo, r_in.hi) for b in (r_w.lo, r_w.hi)]
            k = 2 ** (frac - r_in.frac - r_w.frac)
            n = module.in_features
            b_at = r_b.at(frac)
            acc = _Range(n * min(corners) * k + min(b_at.lo, 0), n * max(corners) * k + max(b_at.hi, 0), frac)
            t_acc = acc.type()
            plan.precision.update(weight=t_w, bias=t_b, accum=t_acc)
            plan.exact_sum_bits = max(abs(acc.lo), abs(acc.hi)).bit_length()
            if exact and plan.exact_sum_bits > FLOAT32_EXACT_BITS:
                plan.notes.append(
                    f"its exact sums need up to {plan.exact_sum_bits} significant bits (fan-in "
                    f"{n}, input {t_in.describe()}, weight {t_w.describe()}, bias {t_b.describe()}); "
                    f"float32 holds {FLOAT32_EXACT_BITS}, so bitscout's float32 evaluation may round them"
                )
            settle(plan, node, t_acc, exact=exact)
        elif isinstance(module, nn.BatchNorm1d):
            plan.kind = "batchnorm"
            scale, shift = fold_batchnorm(module)
            t_s = FixedType.wide_for(float(np.abs(scale).max()))
            t_b = FixedType.wide_for(float(np.abs(shift).max()))
            r_s, r_b = _Range.of(t_s), _Range.of(t_b)
            frac = max(r_in.frac + r_s.frac, r_b.frac)
            corners = [a * b for a in (r_in.lo, r_in.hi) for b in (r_s.lo, r_s.hi)]
            k = 2 ** (frac - r_in.frac - r_s.frac)
            b_at = r_b.at(frac)
            out = _Range(min(corners) * k + b_at.lo, max(corners) * k + b_at.hi, frac)
            plan.precision.update(scale=t_s, bias=t_b)
            settle(plan, node, out.type(), exact=False)
    _note_batchnorms(plans)
    output_node = nodes[-1]
    out_arg = output_node.args[0]
    if not isinstance(out_arg, fx.Node):
        raise ExportError("the hls4ml export supports models with one output tensor")
    return TypePlan(plans, placeholders[0].name, out_arg.name)


def _note_batchnorms(plans: list[LayerPlan]) -> None:
    """Say, for each BatchNorm, how far the exactness claim holds after it.

    bitscout keeps BatchNorm in float32; hls4ml folds it and computes it in fixed point
    with rounded scale and shift. When a quantization follows (a later layer's
    ``data_in``), it absorbs the difference except where a value
    lands on, or within float32 rounding of, one of its rounding ties: float32 and exact
    arithmetic then round to neighbouring steps, a whole step apart. With no quantization
    between it and the output, the difference itself reaches the output, on possibly
    every sample.
    """
    for index, plan in enumerate(plans):
        if plan.kind != "batchnorm":
            continue
        rounded = (
            f"scale and shift rounded to {plan.precision['scale'].describe()} / "
            f"{plan.precision['bias'].describe()}"
        )
        # The exported models are chains: the first quantization at or after the
        # BatchNorm is the one its difference meets.
        quantizer = next(
            (later for later in plans[index:] if later.result_from.startswith("data_in of")), None
        )
        if quantizer is not None:
            plan.notes.append(
                f"BatchNorm is float32 in bitscout but fixed point in hls4ml ({rounded}); the "
                f"next quantization ({quantizer.result_from}, {quantizer.result.describe()}) "
                "hides the difference except where a value lands on, or within float32 "
                "rounding of, one of its rounding ties: the two sides then round to "
                "neighbouring steps, one step apart. Rare, and only found by comparing every "
                "sample (what verify does by default)"
            )
        else:
            plan.notes.append(
                f"BatchNorm is float32 in bitscout but fixed point in hls4ml ({rounded}), and "
                "nothing quantizes its result before the output: the difference reaches the "
                "output, on possibly every sample; compare with --tolerance, or quantize the "
                "layer after it"
            )


def fold_batchnorm(module: nn.BatchNorm1d) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm as ``x * scale + shift`` in float32, the way hls4ml folds it."""
    if module.running_mean is None or module.running_var is None:
        raise ExportError("BatchNorm without running statistics cannot be exported to hls4ml")
    mean = module.running_mean.detach().cpu().numpy().astype(np.float32)
    var = module.running_var.detach().cpu().numpy().astype(np.float32)
    gamma = module.weight.detach().cpu().numpy().astype(np.float32) if module.weight is not None else np.ones_like(mean)
    beta = module.bias.detach().cpu().numpy().astype(np.float32) if module.bias is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + np.float32(module.eps))
    return scale, beta - mean * scale
