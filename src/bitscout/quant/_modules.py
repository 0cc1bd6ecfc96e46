"""Quantized layers: one generic wrapper around any float layer of the traced graph.

A layer map (a dict, passed in by the caller) says, for each float module type or
traced function, how to split a call into its ``data_in``, ``weight`` and ``bias``
operands (:class:`Operands`) and how to compute the layer from them in float
(``F.linear``, ``Conv2d._conv_forward``, ``torch.matmul``, ...). The wrapper
fake-quantizes each operand its :class:`~bitscout.quant.LayerQuantConfig` names and
runs that float form: one routine for every op type and every format.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bitscout.graph import FloatOp
from bitscout.quant._scratch import SCRATCH_MIN_ELEMENTS, active_scratch
from bitscout.quant.formats import IntegerFormat, LayerQuantConfig, TensorFormat, fake_quantize

__all__ = [
    "Operands",
    "OpSpec",
    "DEFAULT_LAYER_MAP",
    "QuantizedLayer",
    "QuantizedTensorCache",
    "layer_map_key",
]


class Operands(NamedTuple):
    """One call of a layer, split into the tensors a format applies to and the rest."""

    data_in: Tensor | None
    weight: Tensor | None
    bias: Tensor | None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = {}


@dataclass(frozen=True)
class OpSpec:
    """How to run one kind of float layer from its operands.

    Attributes:
        unpack: ``(float_module, args, kwargs) -> Operands``: the operands of a call.
        compute: ``(float_module, operands) -> Tensor``: the float layer applied to
            (possibly quantized) operands; with unquantized operands it must give
            exactly what the float module gives.
        per_sample: Whether each sample (row along dimension 0 of ``data_in``) gives its
            own output row from that row and the weights alone, so that one call on
            inputs stacked along dimension 0 computes the same values as one call per
            input (linear and conv layers). The exhaustive engine stacks such calls, and
            checks bit-identity on each new shape before it relies on it.
        rows_are_outputs: Whether the layer is ``F.linear(data_in, weight, bias)``: output
            feature ``j`` (the last dimension) is the sum of the products of the input with
            weight row ``j``, plus ``bias[j]``, so one call with weights (and biases)
            concatenated along dimension 0 gives the calls' outputs side by side. The
            exhaustive engine makes such a call when every sum is exact in the output's
            dtype (operands on fixed-point grids), so that no summation order can change
            a bit. A quantized layer then also folds the input format's scale into its
            cached weights (:class:`QuantizedLayer`).
        scratch_input: Whether ``compute`` returns a new tensor and keeps no reference to
            ``data_in`` once it returns (linear and conv layers; not an in-place ReLU,
            whose output is its input), so that the quantized input may be written into
            a buffer reused from call to call (:class:`~bitscout.quant.ScratchBuffers`).
    """

    unpack: Callable[[nn.Module, tuple[Any, ...], Mapping[str, Any]], Operands]
    compute: Callable[[nn.Module, Operands], Tensor]
    per_sample: bool = False
    rows_are_outputs: bool = False
    scratch_input: bool = False


def _module_operands(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Operands:
    data_in = args[0] if args else kwargs["input"]
    return Operands(data_in, module.weight, module.bias)


def _relu_module_operands(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Operands:
    return Operands(args[0] if args else kwargs["input"], None, None)


@dataclass(frozen=True)
class _FunctionOperands:
    """Operands of a traced function held by a FloatOp: the first ``len(names)`` arguments."""

    names: tuple[str, ...]

    def __call__(self, module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Operands:
        rest = dict(kwargs)
        operands = [args[i] if i < len(args) else rest.pop(name, None) for i, name in enumerate(self.names)]
        operands += [None] * (3 - len(operands))
        return Operands(operands[0], operands[1], operands[2], tuple(args[len(self.names) :]), rest)


@dataclass(frozen=True)
class _FunctionCompute:
    """Calls the FloatOp's function with the (quantized) operands first, then the rest."""

    count: int

    def __call__(self, module: nn.Module, ops: Operands) -> Tensor:
        return module.fn(*(ops.data_in, ops.weight, ops.bias)[: self.count], *ops.args, **ops.kwargs)


def _function_spec(operand_names: tuple[str, ...]) -> OpSpec:
    return OpSpec(_FunctionOperands(operand_names), _FunctionCompute(len(operand_names)))


def _linear(module: nn.Module, ops: Operands) -> Tensor:
    return F.linear(ops.data_in, ops.weight, ops.bias)


def _conv(module: nn.Module, ops: Operands) -> Tensor:
    # _conv_forward takes the weight and bias as arguments and handles padding modes.
    return module._conv_forward(ops.data_in, ops.weight, ops.bias)


def _relu(module: nn.Module, ops: Operands) -> Tensor:
    return F.relu(ops.data_in, inplace=module.inplace)


# Module-level functions and small classes rather than lambdas, so that a candidate
# model can be pickled (torch.save) and deep-copied.
_LINEAR = OpSpec(_module_operands, _linear, per_sample=True, rows_are_outputs=True, scratch_input=True)
_CONV = OpSpec(_module_operands, _conv, per_sample=True, scratch_input=True)
_RELU = OpSpec(_relu_module_operands, _relu)
_BINARY = _function_spec(("input", "other"))

#: The default layer map: float module type (exact) or traced function -> OpSpec.
DEFAULT_LAYER_MAP: Mapping[Any, OpSpec] = {
    nn.Linear: _LINEAR,
    nn.Conv1d: _CONV,
    nn.Conv2d: _CONV,
    nn.ReLU: _RELU,
    F.linear: _function_spec(("input", "weight", "bias")),
    torch.matmul: _BINARY,
    operator.matmul: _BINARY,
    torch.bmm: _function_spec(("input", "mat2")),
    operator.add: _BINARY,
    torch.add: _BINARY,
    operator.mul: _BINARY,
    torch.mul: _BINARY,
    F.relu: _function_spec(("input",)),
    torch.relu: _function_spec(("input",)),
}


def layer_map_key(module: nn.Module) -> Any:
    """The layer-map key of a float layer: its function for a FloatOp, else its type."""
    return module.fn if isinstance(module, FloatOp) else type(module)


#: Every integer up to this magnitude is exact in float32 (a 24-bit significand).
_FLOAT32_EXACT_INTEGERS = 1 << 24


def _exact_terms(
    data_in: TensorFormat | None, weight: TensorFormat | None, bias: TensorFormat | None
) -> tuple[int, int] | None:
    """How many products a linear layer may sum while every partial sum is exact in float32.

    With the input and the weight on fixed-point grids (integer codes times ``2**-f``),
    each product is an integer multiple of ``2**-(f_in + f_w)``, and with a quantized
    bias the whole output is a multiple of ``u = 2**-max(f_in + f_w, f_b)``. While the
    sum of every term's largest magnitude stays at most ``2**24 u``, every partial sum,
    in any order, is such a multiple that float32 holds exactly: no addition rounds.
    (The same bound as the exhaustive engine's.)

    Returns:
        ``(with_bias, without_bias)``: the largest number of input features for which
        this holds, for a layer with a (quantized) bias and for one without; None when
        the formats are not all fixed-point formats exact in float32, or the scales
        could leave float32's normal range.
    """
    formats = (data_in, weight)
    if not all(isinstance(f, IntegerFormat) and f.has_float32_codes for f in formats):
        return None
    assert isinstance(data_in, IntegerFormat) and isinstance(weight, IntegerFormat)
    product = int(data_in.frac_width) + int(weight.frac_width)
    if not -100 <= product <= 100:
        return None  # keep 2**-product, and the weights scaled by 2**-f_in, normal floats

    def most(unit: int, bias_units: int) -> int:
        if not -100 <= unit <= 100 or bias_units > _FLOAT32_EXACT_INTEGERS:
            return 0
        # A product's largest magnitude in units of 2**-unit (codes reach -2**(w-1)).
        shift = data_in.width - 1 + weight.width - 1 + unit - product
        return (_FLOAT32_EXACT_INTEGERS - bias_units) >> shift

    with_bias = 0
    if isinstance(bias, IntegerFormat) and bias.has_float32_codes:
        unit = max(product, int(bias.frac_width))
        with_bias = most(unit, 1 << (bias.width - 1 + unit - int(bias.frac_width)))
    return with_bias, most(product, 0)


class _Entry(NamedTuple):
    source: weakref.ref[Tensor]
    data_ptr: int
    version: int
    quantized: Tensor


class QuantizedTensorCache:
    """Quantized weights and biases, computed once and shared by every candidate.

    An entry is keyed by (layer, tensor role, format) and remembers which parameter it
    came from (identity, storage address and ``_version``), so an in-place update (an
    optimizer step, ``load_state_dict``, ``copy_``) or a new parameter recomputes it.
    Changes made through ``param.data`` bypass the version counter: call :meth:`clear`
    after such an edit.

    Only parameters are cached, and only when no gradient is wanted for them (eval
    under ``no_grad``/``inference_mode``, or frozen weights); when autograd needs the
    weight, it is fake-quantized afresh each call with the straight-through gradient.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, TensorFormat, int], _Entry] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __getstate__(self) -> dict[str, Any]:
        # Entries hold weak references, which cannot be pickled or deep-copied; a copy
        # starts empty and fills itself again.
        return {"_entries": {}, "hits": 0, "misses": 0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def clear(self) -> None:
        """Forget every cached tensor."""
        self._entries.clear()

    def quantize(self, layer: str, role: str, tensor: Tensor, fmt: TensorFormat, *, shift: int = 0) -> Tensor:
        """``tensor`` quantized by ``fmt``, from the cache when it is still valid.

        Args:
            layer: The layer's node name.
            role: ``"weight"`` or ``"bias"``.
            tensor: The float tensor.
            fmt: The format.
            shift: Return the quantized tensor times ``2**-shift`` (a layer that folds
                its input's scale into its weights); the caller makes sure that the
                product is exact (no overflow, no subnormals).

        Returns:
            The quantized tensor (with a straight-through gradient when autograd needs it).
        """
        if not isinstance(tensor, nn.Parameter) or (torch.is_grad_enabled() and tensor.requires_grad):
            quantized = fake_quantize(tensor, fmt)
            return quantized * 2.0**-shift if shift else quantized
        key = (layer, role, fmt, shift)
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.source() is tensor
            and entry.version == tensor._version
            and entry.data_ptr == tensor.data_ptr()
        ):
            self.hits += 1
            return entry.quantized
        self.misses += 1
        # Computed outside inference mode so that the cached tensor can also be used
        # later by ops that autograd records (frozen weights, activations needing grad).
        with torch.inference_mode(False), torch.no_grad():
            quantized = fmt.quantize(tensor)
            if shift:
                quantized = quantized * 2.0**-shift
        self._entries[key] = _Entry(weakref.ref(tensor), tensor.data_ptr(), tensor._version, quantized)
        return quantized


class QuantizedLayer(nn.Module):
    """A float layer whose operands are fake-quantized per a LayerQuantConfig.

    The wrapper shares the float layer's parameter and buffer dictionaries, so its
    ``state_dict`` has the same keys and the very same tensors as the float layer, and
    nothing is copied.

    Without autograd on the CPU, a linear layer whose sums are exact in float32 (see
    ``_exact_terms``) runs on its input's integer codes with weights pre-multiplied by
    the input's ``2**-f`` (cached): every product and every sum is then the same exact
    number, so the output is the same to the bit, for one pass over the activation less.
    While :class:`~bitscout.quant.ScratchBuffers` are active (an evaluation), a large
    fixed-point input of a linear or conv layer is also written into a reused buffer
    rather than a new tensor.

    Args:
        name: The layer's node name (the cache key).
        float_module: The float layer (an ``nn.Linear``, ``nn.Conv2d``, a FloatOp, ...).
        spec: How to run it from its operands (from the layer map).
        config: What to quantize and how; a tensor whose format is None stays float.
        cache: Where quantized weights and biases are kept.
    """

    def __init__(
        self,
        name: str,
        float_module: nn.Module,
        spec: OpSpec,
        config: LayerQuantConfig,
        cache: QuantizedTensorCache,
    ) -> None:
        super().__init__()
        # Held outside _modules on purpose: registering it would duplicate its
        # parameters under a second name in the state_dict.
        self.__dict__["float_module"] = float_module
        # In the float layer's mode (not nn.Module's default, training): a candidate of an
        # eval-mode model is then in eval mode throughout, and evaluate() has nothing to switch.
        self.training = float_module.training
        self.__dict__["_parameters"] = float_module._parameters
        self.__dict__["_buffers"] = float_module._buffers
        self.layer_name = name
        self.spec = spec
        self.config = config
        self.cache = cache
        fmt = config.data_in
        # Worked out once per wrapper: whether the input may go to a scratch buffer as
        # integer codes, and up to how many input features the scale may be folded.
        self._codes_in = spec.scratch_input and isinstance(fmt, IntegerFormat) and fmt.has_float32_codes
        self._fold_terms = _exact_terms(fmt, config.weight, config.bias) if spec.rows_are_outputs else None

    def _coded_input(self, data_in: Tensor, weight: Tensor | None, bias: Tensor | None) -> tuple[Tensor, int]:
        """The input quantized through its integer codes, in a scratch buffer when one is
        active and the input is large: the codes and the shift to fold into the weight,
        or the quantized values and 0."""
        fmt = self.config.data_in
        assert isinstance(fmt, IntegerFormat)  # self._codes_in
        scratch = active_scratch() if data_in.numel() >= SCRATCH_MIN_ELEMENTS else None
        # A fresh product keeps the input's strides; the buffer is contiguous.
        out = scratch.like(data_in) if scratch is not None and data_in.is_contiguous() else None
        terms = self._fold_terms
        if (
            terms is not None
            and isinstance(weight, nn.Parameter)
            and weight.dtype == torch.float32
            and weight.dim() == 2
            and weight.shape[-1] <= terms[bias is None]
            and (bias is None or (isinstance(bias, nn.Parameter) and bias.dtype == torch.float32))
        ):
            return fmt.codes(data_in, out=out), int(fmt.frac_width)
        if out is None:
            return fmt.quantize(data_in), 0
        return fmt.quantize_into(data_in, out), 0

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        module = self.float_module
        config = self.config
        ops = self.spec.unpack(module, args, kwargs)
        data_in, weight, bias = ops.data_in, ops.weight, ops.bias
        shift = 0
        if config.data_in is not None and data_in is not None:
            if (
                self._codes_in
                and data_in.dtype == torch.float32
                and data_in.device.type == "cpu"  # accelerators: other allocators, TF32 matmuls
                and not torch.is_grad_enabled()  # autograd would keep the buffer for backward
                and not torch.compiler.is_compiling()
            ):
                data_in, shift = self._coded_input(data_in, weight, bias)
            else:
                data_in = fake_quantize(data_in, config.data_in)
        if torch.compiler.is_compiling():
            # Under torch.compile the weights are quantized in the graph (the same
            # quantize, the same values): the cache's weak references and dict lookups
            # would break the graph at every layer.
            if config.weight is not None and weight is not None:
                weight = fake_quantize(weight, config.weight)
            if config.bias is not None and bias is not None:
                bias = fake_quantize(bias, config.bias)
        else:
            if config.weight is not None and weight is not None:
                weight = self.cache.quantize(self.layer_name, "weight", weight, config.weight, shift=shift)
            if config.bias is not None and bias is not None:
                bias = self.cache.quantize(self.layer_name, "bias", bias, config.bias)
        return self.spec.compute(module, Operands(data_in, weight, bias, ops.args, ops.kwargs))

    def extra_repr(self) -> str:
        return f"{self.float_module!r}, config={self.config.describe()}"
