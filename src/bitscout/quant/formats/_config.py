"""Per-layer quantization configs in MASE's flat form, and their parser."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from bitscout.errors import QuantConfigError, did_you_mean
from bitscout.quant.formats._base import FormatFieldError, TensorFormat, format_names, get_format

__all__ = ["TENSOR_NAMES", "NA", "LayerQuantConfig", "parse_layer_config", "fields_of_formats"]

TENSOR_NAMES: tuple[str, ...] = ("data_in", "weight", "bias")
"""The tensors of a layer that can be quantized, in the order MASE lists them."""

NA = "NA"
"""MASE's spelling of "not given": a default for a field, floating point for a format name."""


@dataclasses.dataclass(frozen=True)
class LayerQuantConfig:
    """How one layer is quantized: one format name, and a format per tensor.

    A tensor whose format is ``None`` stays in floating point (a relu has no weight).
    Frozen and hashable, so configs can key caches and deduplicate trials.

    Attributes:
        format: Registry name of the format all the layer's tensors use (MASE: ``name``).
        data_in: Format of the layer's input, or ``None``.
        weight: Format of the weight, or ``None``.
        bias: Format of the bias, or ``None``.
    """

    format: str
    data_in: TensorFormat | None = None
    weight: TensorFormat | None = None
    bias: TensorFormat | None = None

    def __post_init__(self) -> None:
        get_format(self.format)
        for tensor in TENSOR_NAMES:
            fmt = getattr(self, tensor)
            if fmt is not None and fmt.name != self.format:
                raise QuantConfigError(
                    f"LayerQuantConfig: {tensor} uses format {fmt.name!r} but the layer's "
                    f"format is {self.format!r}; one format name covers all tensors of a layer"
                )

    def tensor(self, name: str) -> TensorFormat | None:
        """Returns the format of tensor ``name`` (``"data_in"``, ``"weight"`` or ``"bias"``)."""
        if name not in TENSOR_NAMES:
            raise KeyError(f"unknown tensor {name!r}; tensors: {', '.join(TENSOR_NAMES)}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """Returns MASE's flat form with every field explicit.

        ``{"name": "integer", "data_in_width": 8, "data_in_frac_width": 4, ...}``; a field
        whose value is found from the data (a dynamic scale) is ``"NA"``. Tensors without a
        format are left out. ``parse_layer_config(cfg.to_dict(), where=...)`` with the same
        tensors gives back an equal config.
        """
        out: dict[str, Any] = {"name": self.format}
        for tensor in TENSOR_NAMES:
            fmt = getattr(self, tensor)
            if fmt is None:
                continue
            for key, value in fmt.params().items():
                out[f"{tensor}_{key}"] = NA if value is None else value
        return out

    def describe(self) -> str:
        """Returns e.g. ``"integer(data_in=int8.4, weight=int8.4, bias=int8.4)"``."""
        parts = [
            f"{tensor}={fmt.describe()}"
            for tensor in TENSOR_NAMES
            if (fmt := getattr(self, tensor)) is not None
        ]
        return f"{self.format}({', '.join(parts)})"

    def __str__(self) -> str:
        return self.describe()


def _suggest(key: str, candidates: Collection[str]) -> str:
    return did_you_mean(key, candidates) or f"accepted fields: {', '.join(sorted(candidates))}"


def _split_key(key: str) -> tuple[str, str] | None:
    for tensor in TENSOR_NAMES:
        if key.startswith(tensor + "_"):
            return tensor, key[len(tensor) + 1 :]
    return None


def fields_of_formats(names: Collection[Any]) -> frozenset[str]:
    """Every ``<tensor>_<param>`` field some listed format takes (unknown names and "NA" add none).

    A search-space seed whose ``name`` lists several formats (``["integer", "minifloat"]``)
    holds the fields of all of them; :func:`parse_layer_config` given these as ``shared``
    lets each format ignore the fields that belong only to the others.
    """
    fields: set[str] = set()
    for name in names:
        if isinstance(name, str) and name != NA and name in format_names():
            fields.update(f"{t}_{p}" for t in TENSOR_NAMES for p in get_format(name).field_names())
    return frozenset(fields)


def parse_layer_config(
    raw: Mapping[str, Any],
    *,
    where: str,
    tensors: Collection[str] = TENSOR_NAMES,
    op: str | None = None,
    shared: Collection[str] = (),
) -> LayerQuantConfig | None:
    """Builds a :class:`LayerQuantConfig` from MASE's flat per-layer form.

    ``raw`` holds ``name`` (a registered format name, or ``"NA"`` for "leave the layer in
    floating point") and fields ``<tensor>_<param>`` (``weight_width``,
    ``data_in_frac_width``, ...). Values are scalars; ``"NA"`` means "use the default"
    and is refused for fields that have none. Fields of tensors not in ``tensors`` are
    ignored (a relu has no weight); every listed tensor gets a format.

    Args:
        raw: The flat config (not modified).
        where: Where it came from (a layer name or TOML path), for messages.
        tensors: The tensors the layer has.
        op: The layer's op type (``"linear"``, ``"add"``, ...), when known: a format
            that cannot apply to it is refused (per-channel scales on an ``add``).
        shared: Fields of other formats listed beside this one (:func:`fields_of_formats`
            of a seed's ``name`` choices): ignored when this format does not take them,
            instead of refused.

    Returns:
        The config, or ``None`` when ``name`` is ``"NA"``.

    Raises:
        QuantConfigError: ``"<where>: field '<field>' <rule>; got <value!r>"`` for an
            unknown format (listing the available ones), a field the format does not
            take (suggesting the nearest), a missing field without a default, a value of
            the wrong type, or a value outside the format's rules.
    """
    unknown_tensors = [t for t in tensors if t not in TENSOR_NAMES]
    if unknown_tensors:
        raise QuantConfigError(
            f"{where}: unknown tensor {unknown_tensors[0]!r}; tensors: {', '.join(TENSOR_NAMES)}"
        )
    if "name" not in raw:
        raise QuantConfigError(
            f"{where}: field 'name' is required (a format: {', '.join(format_names())}, "
            f"or 'NA' for floating point); got nothing"
        )
    name = raw["name"]
    if name == NA:
        return None
    if not isinstance(name, str) or name not in format_names():
        hint = did_you_mean(name, format_names()) if isinstance(name, str) else ""
        raise QuantConfigError(
            f"{where}: field 'name' must be a known format ({', '.join(format_names())}) "
            f"or 'NA'; got {name!r}" + (f" ({hint})" if hint else "")
        )
    cls = get_format(name)
    params = cls.field_names()
    required = cls.required_fields()
    accepted = {f"{t}_{p}" for t in tensors for p in params} | {"name"}

    kwargs: dict[str, dict[str, Any]] = {t: {} for t in tensors}
    for key, value in raw.items():
        if key == "name":
            continue
        split = _split_key(key) if isinstance(key, str) else None
        if split is not None and split[0] not in tensors:
            continue
        if split is None or split[1] not in params:
            if key in shared:
                continue  # another listed format's field (a seed searching several formats)
            raise QuantConfigError(
                f"{where}: field '{key}' is not a field of format '{name}' "
                f"({_suggest(str(key), accepted)}); got {value!r}"
            )
        tensor, param = split
        if isinstance(value, str) and value == NA:
            if param in required:
                raise QuantConfigError(
                    f"{where}: field '{key}' has no default for format '{name}', so 'NA' "
                    f"is not allowed; got {value!r}"
                )
            continue
        kwargs[tensor][param] = value

    formats: dict[str, TensorFormat] = {}
    for tensor in tensors:
        for param in required:
            if param not in kwargs[tensor]:
                raise QuantConfigError(
                    f"{where}: field '{tensor}_{param}' is required by format '{name}' "
                    f"(it has no default); got nothing"
                )
        try:
            formats[tensor] = cls(**kwargs[tensor])
            formats[tensor].check_tensor(tensor, op)
        except FormatFieldError as err:
            raise QuantConfigError(
                f"{where}: field '{tensor}_{err.field}' {err.rule}; got {err.value!r}"
            ) from None
    return LayerQuantConfig(format=name, **formats)
