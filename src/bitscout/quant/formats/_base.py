"""The number-format contract (:class:`TensorFormat`), its registry and shared helpers."""

from __future__ import annotations

import abc
import dataclasses
import numbers
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from bitscout.errors import QuantConfigError

__all__ = [
    "TensorFormat",
    "FormatFieldError",
    "register_format",
    "get_format",
    "format_names",
]

MAX_WIDTH = 32
"""Widest storage width any format accepts, in bits."""


class FormatFieldError(QuantConfigError):
    """One field of a format is invalid.

    Carries the pieces of the message separately so that
    :func:`bitscout.quant.parse_layer_config` can restate it with the layer and the
    ``<tensor>_<param>`` spelling of the field.

    Attributes:
        format_name: Registry name of the format.
        field: The field's name inside the format (``"width"``).
        rule: What the field must satisfy (``"must be an integer in 1..32"``).
        value: The value that broke the rule.
    """

    def __init__(self, format_name: str, field: str, rule: str, value: Any) -> None:
        self.format_name = format_name
        self.field = field
        self.rule = rule
        self.value = value
        super().__init__(f"{format_name}: field '{field}' {rule}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class TensorFormat(abc.ABC):
    """A number format for one tensor (a layer's ``data_in``, ``weight`` or ``bias``).

    Every format is a frozen, hashable dataclass whose fields are the format's
    parameters, spelled as in MASE's flat layer config without the tensor prefix
    (``width``, ``frac_width``, ``exponent_width``, ...). Fields that may be left out
    default to ``None`` where the default depends on other fields (a frac width of
    ``width // 2``); ``__post_init__`` resolves such defaults, so two formats that
    quantize alike compare equal. Invalid fields raise :class:`FormatFieldError` (a
    :class:`bitscout.errors.QuantConfigError`) naming the field, the rule and the value.

    The contract every subclass keeps:

    * ``quantize(x)`` is elementwise fake quantization (``block_fp`` and the
      scale-finding rules of ``binary`` and ``ternary`` look at a block or the whole
      tensor, but are otherwise alike): it returns a new tensor of ``x``'s shape, dtype
      and device holding, for every element, the format's value for it, computed
      exactly and then rounded once to ``x``'s dtype (only formats whose range or
      precision exceeds that dtype lose anything in this final rounding). It never
      modifies ``x`` and has no gradient logic: use :func:`fake_quantize` for
      straight-through training.
    * NaN stays NaN. What ±inf becomes, and the sign of zero, are documented per format.
    * ``quantize`` is idempotent: ``quantize(quantize(x)) == quantize(x)``, except for
      the formats whose scale is computed from the tensor itself (documented there).
    * ``bits`` is the storage cost of one element in bits (used by the hardware
      metrics): an ``int`` for every format except ``block_fp``, whose shared exponent
      is amortised over its block (``width + exponent_width / block_size``, a float).
      ``describe()`` is a short human-readable name such as ``"int8.4"``.
    * ``params()`` gives every field with its resolved value, in declaration order;
      ``cls(**fmt.params()) == fmt``.

    Optional hooks (the defaults suit a format whose values do not depend on data):

    * ``needs_calibration`` / ``calibrated(lo, hi)``: a format fitted to a range
      (``integer`` with ``frac_width = "auto"``, ``int`` without a fixed scale) says so,
      and gives the resolved format for a range seen in calibration (activations) or in
      the parameter (weights), so that a layer quantizes with fixed parameters.
    * ``storage_overhead_bits(shape)``: bits stored per tensor beyond ``bits`` per
      element (scales and zero points), counted by the hardware metrics.
    * ``check_tensor(tensor, op)``: refuses a format that cannot apply to a layer's
      tensor (per-channel scales on an input), raising :class:`FormatFieldError`.

    Attributes:
        name: Registry name of the format (``"integer"``, ``"minifloat"``, ...).
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def quantize(self, x: Tensor) -> Tensor:
        """Returns the fake-quantized values of ``x`` (see the class docstring)."""

    @property
    @abc.abstractmethod
    def bits(self) -> float:
        """Storage bits per element (a fraction where a cost is shared by a block)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Returns a short name for tables and logs, e.g. ``"int8.4"``."""

    @property
    def needs_calibration(self) -> bool:
        """Whether the format's parameters come from a range (see :meth:`calibrated`)."""
        return False

    def calibrated(self, lo: float, hi: float) -> TensorFormat:
        """The format with its data-dependent parameters fitted to ``[lo, hi]``.

        Formats that are not fitted to a range return themselves.
        """
        return self

    def storage_overhead_bits(self, shape: tuple[int, ...]) -> int:
        """Bits stored for a tensor of ``shape`` besides ``bits`` per element (0 by default)."""
        return 0

    def check_tensor(self, tensor: str, op: str | None) -> None:
        """Raises :class:`FormatFieldError` if the format cannot quantize this tensor.

        Args:
            tensor: ``"data_in"``, ``"weight"`` or ``"bias"``.
            op: The layer's op type (``"linear"``, ``"conv2d"``, ``"add"``, ...), or None
                when unknown.
        """

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Returns the names of the format's fields, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def required_fields(cls) -> tuple[str, ...]:
        """Returns the fields that have no default and must be given."""
        return tuple(
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )

    def params(self) -> dict[str, Any]:
        """Returns every field with its resolved value (``None`` for a data-dependent one)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __str__(self) -> str:
        return self.describe()

    # Helpers for subclasses' __post_init__.
    def _fail(self, field: str, rule: str, value: Any) -> FormatFieldError:
        return FormatFieldError(self.name, field, rule, value)

    def _int_field(self, field: str, lo: int | None = None, hi: int | None = None) -> int:
        """Checks that a field holds an integer within [lo, hi] and stores it as ``int``."""
        value = getattr(self, field)
        if lo is not None and hi is not None:
            rule = f"must be an integer in {lo}..{hi}"
        elif lo is not None:
            rule = f"must be an integer >= {lo}"
        elif hi is not None:
            rule = f"must be an integer <= {hi}"
        else:
            rule = "must be an integer"
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self._fail(field, rule, value)
        value = int(value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self._fail(field, rule, value)
        object.__setattr__(self, field, value)
        return value

    def _set(self, field: str, value: Any) -> None:
        object.__setattr__(self, field, value)


_F = TypeVar("_F", bound=type[TensorFormat])

_REGISTRY: dict[str, type[TensorFormat]] = {}


def register_format(cls: _F) -> _F:
    """Class decorator adding a :class:`TensorFormat` subclass to the registry under ``cls.name``.

    Raises:
        ValueError: if another class is registered under the same name.
    """
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"a format named {name!r} is already registered ({_REGISTRY[name]!r})")
    _REGISTRY[name] = cls
    return cls


def get_format(name: str) -> type[TensorFormat]:
    """Returns the format class registered under ``name``.

    Raises:
        QuantConfigError: if there is none; the message lists the available names.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise QuantConfigError(
            f"unknown quantization format {name!r}; available: {', '.join(format_names())}"
        ) from None


def format_names() -> list[str]:
    """Returns the registered format names, sorted."""
    return sorted(_REGISTRY)


def check_floating(x: Tensor, fmt: TensorFormat) -> None:
    """Raises TypeError when ``x`` is not a floating-point tensor (a programming error)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        what = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"{fmt.describe()}: quantize needs a floating-point tensor, got {what}")


# Exact powers of two and exponents in float64, by bit manipulation: torch.exp2 and
# torch.ldexp go through pow(), which is not guaranteed exact on every backend.
_F64_EXP_MIN = -1022
_F64_EXP_MAX = 1023


def exponent_f64(a: Tensor) -> Tensor:
    """floor(log2(a)) for non-negative float64 ``a`` (int64).

    Exact for normal numbers; 0 and float64 subnormals give -1023, inf and NaN give 1024.
    Callers clamp the result to their format's range, which lies within the normal range.
    """
    return ((a.view(torch.int64) >> 52) & 0x7FF) - 1023


def pow2_f64(e: Tensor) -> Tensor:
    """2.0 ** e (float64) for int64 ``e`` within [-1022, 1023]."""
    return ((e + 1023) << 52).view(torch.float64)


def exponents_fit_f64(*exponents: int) -> bool:
    """True when every 2**e is a normal float64 (so scaling by it is exact)."""
    return all(_F64_EXP_MIN <= e <= _F64_EXP_MAX for e in exponents)
