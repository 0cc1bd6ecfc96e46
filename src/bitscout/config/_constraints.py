"""Constraints of a search (``[search.strategy.constraints]``): bounds on metrics.

A constraint bounds one metric from above (``max``), below (``min``) or both::

    [search.strategy.constraints]
    average_bitwidth.max = 4
    model_size.max = "4 KiB"          # sizes may carry a unit: bits, B, KiB, MiB
    accuracy_drop.max = 0.01          # drop from the float model, absolute

A bound is a number in the metric's own unit, or, for a size, a string with a unit that
is converted to bytes (the unit of ``model_size`` and ``weight_bytes``). Whether the
metric exists, and whether a unit suits it, is judged where the runners are known
(:class:`bitscout.metrics.Constraints`); here each bound is parsed and ``max >= min``
is checked.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, BeforeValidator, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bitscout.config._rules import RULE_ERROR, _is_number

__all__ = ["SIZE_UNITS", "Limit", "ConstraintSpec", "parse_size", "limit_value"]

#: Unit -> bytes. Binary prefixes only: "KB" is ambiguous (1,000 or 1,024 bytes).
SIZE_UNITS: dict[str, float] = {"bit": 1 / 8, "bits": 1 / 8, "B": 1.0, "KiB": 1024.0, "MiB": 1024.0**2}

_SIZE = re.compile(r"^\s*(?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+)\s*(?P<unit>[A-Za-z]+)\s*$")
_UNIT_RULE = "must be a number, or a size with a unit: bits, B, KiB or MiB (e.g. '4 KiB')"
# Spellings people write for the accepted units, each with what to write instead.
_UNIT_HINTS = {
    "kb": "KiB (1,024 bytes)",
    "k": "KiB (1,024 bytes)",
    "kib": "KiB",
    "mb": "MiB (1,048,576 bytes)",
    "m": "MiB (1,048,576 bytes)",
    "mib": "MiB",
    "b": "B for bytes or bits",
    "byte": "B",
    "bytes": "B",
    "bit": "bit",
    "bits": "bits",
}


def parse_size(text: str) -> float:
    """A size with a unit -> bytes: ``"4 KiB"`` -> 4096.0, ``"12 bits"`` -> 1.5.

    Raises:
        ValueError: The text is not a non-negative number followed by one of
            :data:`SIZE_UNITS`; the message is the rule (and what was probably meant).
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(_UNIT_RULE)
    unit = match["unit"]
    if unit not in SIZE_UNITS:
        hint = _UNIT_HINTS.get(unit.lower())
        raise ValueError(f"{_UNIT_RULE}; unknown unit {unit!r}" + (f" (write {hint})" if hint else ""))
    value = float(match["number"]) * SIZE_UNITS[unit]
    if not math.isfinite(value):
        raise ValueError(_UNIT_RULE)
    return value


def _limit(value: Any) -> float | str:
    # Kept as written (a number, or the string with its unit), so that the resolved
    # config.toml says what the user wrote; limit_value() gives the number.
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            parse_size(value)
        except ValueError as exc:
            raise PydanticCustomError(RULE_ERROR, str(exc)) from None
        return value.strip()
    raise PydanticCustomError(RULE_ERROR, _UNIT_RULE)


Limit = Annotated[float | str, BeforeValidator(_limit)]
"""A bound: a number, or a size string with a unit (validated by :func:`parse_size`)."""


def limit_value(limit: float | str) -> float:
    """The number a bound stands for (bytes for a size with a unit)."""
    return parse_size(limit) if isinstance(limit, str) else float(limit)


class ConstraintSpec(BaseModel):
    """Bounds of one metric (``[search.strategy.constraints.<metric>]``).

    Attributes:
        min: The metric must be at least this; None: no lower bound.
        max: The metric must be at most this; None: no upper bound.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: Limit | None = None
    max: Limit | None = None

    @field_validator("max")
    @classmethod
    def _max_not_below_min(cls, value: float | str | None, info: ValidationInfo) -> float | str | None:
        low = info.data.get("min")
        if value is not None and low is not None and limit_value(value) < limit_value(low):
            raise PydanticCustomError(
                RULE_ERROR,
                f"must be >= min ({low!r}): no value could satisfy both; raise max or lower min",
            )
        return value

    @model_validator(mode="after")
    def _some_bound(self) -> ConstraintSpec:
        if self.min is None and self.max is None:
            raise PydanticCustomError(RULE_ERROR, "needs a bound: give max, min or both (e.g. max = 4)")
        return self

    @property
    def max_value(self) -> float | None:
        """The upper bound as a number (bytes for a size), or None."""
        return None if self.max is None else limit_value(self.max)

    @property
    def min_value(self) -> float | None:
        """The lower bound as a number (bytes for a size), or None."""
        return None if self.min is None else limit_value(self.min)
