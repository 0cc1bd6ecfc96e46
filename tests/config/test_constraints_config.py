"""``[search.strategy.constraints]``: bounds with units, checked at load time with the TOML path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bitscout import cli
from bitscout.config import ConstraintSpec, load_config, parse_size
from bitscout.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::bitscout.config.BitscoutConfigWarning")


def _with_constraints(lab_doc: dict[str, Any], constraints: dict[str, Any]) -> dict[str, Any]:
    lab_doc["search"]["strategy"]["constraints"] = constraints
    return lab_doc


def test_bounds_load_typed_and_write_back_as_written(
    lab_doc: dict[str, Any], write_toml: Callable[..., Path]
) -> None:
    doc = _with_constraints(
        lab_doc,
        {
            "average_bitwidth": {"max": 4},
            "model_size": {"max": "4 KiB", "min": "100 B"},
            "accuracy_drop": {"max": 0.01},
        },
    )
    config = load_config(write_toml(doc))
    constraints = config.search.strategy.constraints
    assert list(constraints) == ["average_bitwidth", "model_size", "accuracy_drop"]
    assert constraints["average_bitwidth"] == ConstraintSpec(max=4)
    assert constraints["average_bitwidth"].max_value == 4.0
    assert constraints["average_bitwidth"].min_value is None
    assert constraints["model_size"].max_value == 4096.0
    assert constraints["model_size"].min_value == 100.0
    text = config.to_toml()
    assert '[search.strategy.constraints.model_size]\nmin = "100 B"\nmax = "4 KiB"' in text
    assert load_config(write_toml(text, "again.toml")) == config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4 KiB", 4096.0),
        ("4KiB", 4096.0),
        ("1.5 MiB", 1.5 * 1024 * 1024),
        ("100 B", 100.0),
        ("12 bits", 1.5),
        ("1 bit", 0.125),
        ("2e3 B", 2000.0),
        (" 0 B ", 0.0),
    ],
)
def test_sizes_with_units(text: str, expected: float) -> None:
    assert parse_size(text) == expected


UNIT_RULE = "must be a number, or a size with a unit: bits, B, KiB or MiB (e.g. '4 KiB')"


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        (
            {"model_size": {"max": "4 KB"}},
            f"search.strategy.constraints.model_size.max: {UNIT_RULE}; unknown unit 'KB' "
            "(write KiB (1,024 bytes)); got '4 KB'",
        ),
        (
            {"model_size": {"max": "4 kib"}},
            f"search.strategy.constraints.model_size.max: {UNIT_RULE}; unknown unit 'kib' "
            "(write KiB); got '4 kib'",
        ),
        (
            {"model_size": {"max": "four KiB"}},
            f"search.strategy.constraints.model_size.max: {UNIT_RULE}; got 'four KiB'",
        ),
        (
            {"model_size": {"max": "-4 KiB"}},
            f"search.strategy.constraints.model_size.max: {UNIT_RULE}; got '-4 KiB'",
        ),
        (
            {"model_size": {"max": "4096"}},
            f"search.strategy.constraints.model_size.max: {UNIT_RULE}; got '4096'",
        ),
        (
            {"average_bitwidth": {"max": True}},
            f"search.strategy.constraints.average_bitwidth.max: {UNIT_RULE}; got True",
        ),
        (
            {"average_bitwidth": {"min": 6, "max": 4}},
            "search.strategy.constraints.average_bitwidth.max: must be >= min (6.0): no value "
            "could satisfy both; raise max or lower min; got 4",
        ),
        (
            {"model_size": {"min": "1 KiB", "max": "1000 B"}},
            "search.strategy.constraints.model_size.max: must be >= min ('1 KiB'): no value "
            "could satisfy both; raise max or lower min; got '1000 B'",
        ),
        (
            {"average_bitwidth": {}},
            "search.strategy.constraints.average_bitwidth: needs a bound: give max, min or both "
            "(e.g. max = 4); got {}",
        ),
        (
            {"average_bitwidth": {"maximum": 4}},
            "search.strategy.constraints.average_bitwidth.maximum: unknown key; did you mean 'max'?",
        ),
        (
            {"average_bitwidth": 4},
            "search.strategy.constraints.average_bitwidth: must be a table; got 4",
        ),
        (
            # user8: a percentage made every trial infeasible, said only after the search.
            {"accuracy": {"min": 95}},
            # user9: the message named the table, not the key.
            "search.strategy.constraints.accuracy.min: is outside 0..1, the values accuracy can "
            "take (a share of the samples, not a percentage); for 95 % write min = 0.95; got 95.0",
        ),
        (
            {"balanced_accuracy_drop": {"max": -2}},
            "search.strategy.constraints.balanced_accuracy_drop.max: is outside -1..1, the values "
            "balanced_accuracy_drop can take (a share of the samples, not a percentage); for -2 % write "
            "max = -0.02; got -2.0",
        ),
    ],
)
def test_each_mistake_is_one_error_with_the_toml_path(
    lab_doc: dict[str, Any],
    write_toml: Callable[..., Path],
    constraints: dict[str, Any],
    message: str,
) -> None:
    path = write_toml(_with_constraints(lab_doc, constraints))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"


def test_check_names_the_runner_a_constraint_needs(
    lab_doc: dict[str, Any], write_toml: Callable[..., Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_COMMANDS", ("check",))
    path = write_toml(_with_constraints(lab_doc, {"weight_bytes": {"max": "1 KiB"}, "accuracy_drop": {"max": 0.01}}))
    assert cli.main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "search.strategy.constraints.weight_bytes: no configured runner produces the metric "
        "'weight_bytes'; the configured runners produce: accuracy, balanced_accuracy, loss "
        "(basic_evaluation); average_bitwidth, memory_density, average_bitwidth_ratio, "
        "memory_density_ratio (average_bitwidth); to measure it, add [search.strategy.hw_runner.model_size]"
    ) in err
    assert "accuracy_drop" not in err  # basic_evaluation produces accuracy: its drop is known

    lab_doc["search"]["strategy"]["hw_runner"]["model_size"] = {}
    path = write_toml(lab_doc, "fixed.toml")
    assert cli.main(["check", str(path)]) == 0
    summary = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert summary.endswith("; constraints: weight_bytes <= 1 KiB, accuracy_drop <= 0.01")
