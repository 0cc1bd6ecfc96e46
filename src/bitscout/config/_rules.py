"""Leaf value types of the config schema, each checked against one plainly worded rule.

Every leaf field of the schema is one of the annotated types below. Each runs a small
check before pydantic's own validation and, when the value is wrong, raises a pydantic
error whose message *is* the rule ("must be an integer >= 1"). The loader prints that
rule next to the TOML path and the value received, and the CLI overrides reuse the same
checks, so a rule is worded once whatever the source of the value.

The checks are deliberately strict where pydantic's lax mode would guess: a TOML string
``"yes"`` is not a boolean, ``8.0`` is not an integer and ``true`` is not a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "RULE_ERROR",
    "RULE_AT_ERROR",
    "rule_at",
    "ScalarValue",
    "Scalar",
    "Choices",
    "Names",
    "PositiveInt",
    "NonNegativeInt",
    "Seed",
    "TrialCount",
    "ParallelCount",
    "StorageURL",
    "SEED_MAX",
    "MAX_TRIALS",
    "MAX_PARALLEL",
    "PositiveFloat",
    "NonNegativeFloat",
    "MetricScale",
    "Flag",
    "Text",
    "LowerText",
    "FilePath",
    "Table",
    "Direction",
    "By",
    "Accelerator",
    "LoadType",
    "Task",
    "SpaceName",
    "Observer",
    "Percentile",
    "OBSERVER_NAMES",
    "DIRECTIONS",
    "ACCELERATORS",
    "LOAD_TYPES",
    "PTQ_SPACE",
    "quote",
]

RULE_ERROR = "bitscout_rule"
"""The pydantic error type raised by every rule check (its message is the rule)."""

RULE_AT_ERROR = "bitscout_rule_at"
"""A rule broken by a value inside the validated field (``constraints.accuracy.min``):
the error's context holds the keys below the field (``at``) and the value, so the message
names the exact TOML path instead of the whole table (see :func:`rule_at`)."""

ScalarValue = int | float | str | bool
"""A value a per-layer quantization field may hold."""

DIRECTIONS = ("maximize", "minimize")
ACCELERATORS = ("cpu", "cuda", "auto")
LOAD_TYPES = ("pt", "pl", "bitscout")
PTQ_SPACE = "graph/quantize/mixed_precision_ptq"
#: Calibration observers (bitscout.quant.OBSERVERS; config sits below quant, so the
#: names are repeated here and a test keeps the two equal).
OBSERVER_NAMES = ("minmax", "percentile")
#: The largest seed: NumPy and scikit-learn take seeds in [0, 2**32 - 1] (the data split),
#: so a larger one would pass here and fail in the middle of a run.
SEED_MAX = 2**32 - 1
#: The most trials a study may ask for: far beyond any search that ends (a trial takes
#: milliseconds at the least), and small enough for every counter that holds it.
MAX_TRIALS = 10**9
#: The most threads (n_jobs) or worker processes (workers) one command may start.
MAX_PARALLEL = 1024
#: The names of a data split a config may use: bitscout's, and MASE's data-loader names
#: for the same splits (``bitscout.data`` maps them to its splits).
SPLIT_NAMES = ("train", "val", "test", "train_dataloader", "val_dataloader", "test_dataloader")


def quote(values: tuple[str, ...] | list[str]) -> str:
    """``('a', 'b')`` -> ``"'a', 'b'"``, the way rules list allowed values."""
    return ", ".join(repr(value) for value in values)


def rule_at(keys: tuple[str, ...], rule: str, value: Any) -> PydanticCustomError:
    """A rule error for the value at ``keys`` below the field being validated.

    A validator of a whole table (a dict of metrics) can only fail the table; this error
    carries where inside it the offending value sits, and the config loader appends
    those keys to the table's TOML path.
    """
    # The message is formatted with the context: braces in the rule must not be read as fields.
    return PydanticCustomError(
        RULE_AT_ERROR, rule.replace("{", "{{").replace("}", "}}"), {"at": list(keys), "value": value}
    )


def _fail(rule: str) -> PydanticCustomError:
    return PydanticCustomError(RULE_ERROR, rule)


def _is_int(value: Any) -> bool:
    # bool is a subclass of int in Python; TOML's `true` is not a number.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _int_at_least(low: int) -> Callable[[Any], int]:
    rule = f"must be an integer >= {low}"

    def check(value: Any) -> int:
        if not _is_int(value) or value < low:
            raise _fail(rule)
        return value

    return check


def _int_between(low: int, high: int, rule: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not _is_int(value) or not low <= value <= high:
            raise _fail(rule)
        return value

    return check


def _load_type(value: Any) -> str:
    if value == "mz":
        raise _fail(
            f"must be one of {quote(LOAD_TYPES)}: MASE's 'mz' is a pickled MaseGraph, which "
            "bitscout does not unpickle (a pickle can run code); in MASE, save the weights "
            "with torch.save(mg.model.state_dict(), 'model.pt') and use load_type = 'pt'"
        )
    if value not in LOAD_TYPES:
        raise _fail(f"must be one of {quote(LOAD_TYPES)}")
    return value


def _storage(value: Any) -> str:
    value = _text(value)
    if "://" in value or value.endswith(".journal"):
        return value
    folder = " (it is a folder)" if Path(value).expanduser().is_dir() else ""
    sqlite = value.endswith((".db", ".sqlite", ".sqlite3"))
    hint = f" (for this SQLite file: 'sqlite:///{value}')" if sqlite else ""
    raise _fail(
        "must be an Optuna storage URL (postgresql://user@host:5432/db, "
        f"sqlite:///path/study.db) or a path ending in .journal{folder}{hint}"
    )


def _number(*, above: float | None = None, at_least: float | None = None) -> Callable[[Any], float]:
    if above is not None:
        rule, ok = f"must be a number > {above:g}", lambda v: v > above
    elif at_least is not None:
        rule, ok = f"must be a number >= {at_least:g}", lambda v: v >= at_least
    else:
        rule, ok = "must be a number", lambda v: True

    def check(value: Any) -> float:
        if not _is_number(value) or not ok(value):
            raise _fail(rule)
        return float(value)

    return check


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail("must be true or false")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail("must be a non-empty string")
    return value


def _lower_text(value: Any) -> str:
    return _text(value).lower()


def _path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise _fail("must be a path (a non-empty string)")
    return Path(value)


def _table(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail("must be a table")
    return dict(value)


def _scalar(value: Any) -> ScalarValue:
    if not (isinstance(value, (str, bool)) or _is_number(value)):
        raise _fail("must be a number, string or boolean")
    return value


_CHOICES_RULE = "must be a non-empty list of numbers, strings or booleans (or one such value)"


def _choices(value: Any) -> tuple[ScalarValue, ...]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or not all(isinstance(item, (str, bool)) or _is_number(item) for item in items):
        raise _fail(_CHOICES_RULE)
    # A repeated choice means the same thing twice; keep the first. The key holds the
    # type too, because True == 1 == 1.0 in Python but they are different choices here.
    unique: dict[tuple[type, ScalarValue], ScalarValue] = {}
    for item in items:
        unique.setdefault((type(item), item), item)
    return tuple(unique.values())


def _one_of(
    allowed: tuple[str, ...], *, aliases: Mapping[str, str] | None = None, rule: str | None = None
) -> Callable[[Any], str]:
    aliases = dict(aliases or {})
    rule = rule or f"must be one of {quote(allowed)}"

    def check(value: Any) -> str:
        value = aliases.get(value, value) if isinstance(value, str) else value
        if value not in allowed:
            raise _fail(rule)
        return value

    return check


PositiveInt = Annotated[int, BeforeValidator(_int_at_least(1))]
NonNegativeInt = Annotated[int, BeforeValidator(_int_at_least(0))]
Seed = Annotated[
    int, BeforeValidator(_int_between(0, SEED_MAX, f"must be an integer from 0 to {SEED_MAX} (2**32 - 1)"))
]
TrialCount = Annotated[
    int, BeforeValidator(_int_between(1, MAX_TRIALS, f"must be an integer from 1 to {MAX_TRIALS:,}"))
]
ParallelCount = Annotated[
    int, BeforeValidator(_int_between(1, MAX_PARALLEL, f"must be an integer from 1 to {MAX_PARALLEL}"))
]
StorageURL = Annotated[str, BeforeValidator(_storage)]
PositiveFloat = Annotated[float, BeforeValidator(_number(above=0))]
NonNegativeFloat = Annotated[float, BeforeValidator(_number(at_least=0))]


def _scale(value: Any) -> float:
    if _is_number(value) and value < 0:
        # A user who wants a cost to count against the objective writes a minus sign.
        raise _fail(
            "must be a number >= 0: a scale is the metric's weight, and its direction says "
            "whether it counts for or against the objective (a metric to be minimized, such "
            "as model_size, is subtracted from a maximized sum: give it a positive scale)"
        )
    return _number(at_least=0)(value)


MetricScale = Annotated[float, BeforeValidator(_scale)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Text = Annotated[str, BeforeValidator(_text)]
LowerText = Annotated[str, BeforeValidator(_lower_text)]
"""A name compared without regard to case (MASE writes ``sampler = "TPE"`` too)."""
FilePath = Annotated[Path, BeforeValidator(_path)]
Table = Annotated[dict[str, Any], BeforeValidator(_table)]
Scalar = Annotated[ScalarValue, BeforeValidator(_scalar)]


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail("must be a list of non-empty strings")
    return tuple(value)


Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
Choices = Annotated[tuple[ScalarValue, ...], BeforeValidator(_choices)]

Direction = Annotated[Literal["maximize", "minimize"], BeforeValidator(_one_of(DIRECTIONS))]
By = Annotated[Literal["type", "name"], BeforeValidator(_one_of(("type", "name")))]
Accelerator = Annotated[
    Literal["cpu", "cuda", "auto"],
    BeforeValidator(
        _one_of(
            ACCELERATORS,
            aliases={"gpu": "cuda"},
            rule=f"must be one of {quote(ACCELERATORS)} ('gpu' is read as 'cuda')",
        )
    ),
]
LoadType = Annotated[Literal["pt", "pl", "bitscout"], BeforeValidator(_load_type)]
Task = Annotated[
    Literal["cls"],
    BeforeValidator(
        _one_of(
            ("cls",),
            aliases={"classification": "cls"},
            rule="must be 'cls' (classification, the only task bitscout runs; "
            "'classification' is read as 'cls')",
        )
    ),
]
SpaceName = Annotated[
    str,
    BeforeValidator(
        _one_of(
            (PTQ_SPACE,),
            rule=f"must be {PTQ_SPACE!r} (the only search space bitscout supports)",
        )
    ),
]


def _percentile(value: Any) -> float:
    if not _is_number(value) or not 50 < value <= 100:
        raise _fail("must be a number in (50, 100] (the upper percentile; the lower one is 100 minus it)")
    return float(value)


Observer = Annotated[
    Literal["minmax", "percentile"],
    BeforeValidator(
        _one_of(
            OBSERVER_NAMES,
            rule=f"must be one of {quote(OBSERVER_NAMES)} (the range calibration fits activations to)",
        )
    ),
]
Percentile = Annotated[float, BeforeValidator(_percentile)]
