"""Constraints: values in Optuna's convention, drops from the float model, config checks.

The numbers are computed by hand from the architectures (jsc-tiny: Linear(16, 5) is its
only weight layer, 80 weights and 5 biases; BatchNorm1d(16) holds 32 parameters and 32
float buffers), not read back from the runners.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from bitscout.config import StrategyConfig
from bitscout.errors import ConfigError
from bitscout.metrics import (
    Constraint,
    Constraints,
    RunContext,
    TrialMetrics,
    build_runners,
    is_feasible,
    metric_drops,
)
from tests.metrics.metrics_helpers import int_config


def _strategy(constraints: dict[str, Any], *, sw: bool = True, hw: tuple[str, ...] = ("average_bitwidth", "model_size")) -> StrategyConfig:
    return StrategyConfig.model_validate(
        {
            "sw_runners": {"basic_evaluation": {}} if sw else {},
            "hw_runners": {name: {} for name in hw},
            "constraints": constraints,
        }
    )


def _constraints(context: RunContext, constraints: dict[str, Any], **kwargs: Any) -> Constraints:
    cfg = _strategy(constraints, **kwargs)
    return Constraints.from_config(cfg, build_runners(cfg, context))


def test_weight_bytes_counts_the_weights_at_their_width(jsc_context: RunContext) -> None:
    cfg = _strategy({}, sw=False, hw=("model_size",))
    runners = build_runners(cfg, jsc_context)
    got = runners.run({"seq_blocks_2": int_config(weight=6, bias=8)}).hardware
    assert got["weight_bytes"] == 6 * 80 / 8
    assert got["weight_bytes_ratio"] == 6 / 32
    assert got["model_size"] == (32 * (117 + 32) - 26 * 80 - 24 * 5) / 8
    assert runners.reference().hardware["weight_bytes"] == 32 * 80 / 8


def test_values_follow_optunas_convention(jsc_context: RunContext) -> None:
    constraints = _constraints(
        jsc_context,
        {
            "average_bitwidth": {"max": 4},
            "model_size": {"max": "1 KiB", "min": "4096 bits"},
            "accuracy": {"min": 0.5},
        },
    )
    assert constraints.keys == (
        "average_bitwidth.max",
        "model_size.max",
        "model_size.min",
        "accuracy.min",
    )
    assert [item.kind for item in constraints] == ["config", "config", "config", "data"]
    metrics = {"average_bitwidth": 6.0, "model_size": 1100.0, "accuracy": 0.75}
    # max: value - limit; min: limit - value; "1 KiB" is 1,024 bytes, "4096 bits" 512.
    assert constraints.values(metrics) == (2.0, 76.0, -588.0, -0.25)
    assert not constraints.feasible(metrics)
    # Each violation is measured against its bound: 2 / 4 + 76 / 1024.
    assert constraints.violation(constraints.values(metrics)) == pytest.approx(0.5 + 76 / 1024)
    feasible = {"average_bitwidth": 4.0, "model_size": 512.0, "accuracy": 0.5}
    assert constraints.values(feasible) == (0.0, -512.0, 0.0, 0.0)  # on a bound is feasible
    assert constraints.feasible(feasible)
    assert constraints.violation(constraints.values(feasible)) == 0.0
    assert constraints.violation((0.0, 0.0, 0.0, math.nan)) == math.inf
    assert not constraints.feasible({**feasible, "accuracy": math.nan})


def test_a_drop_is_measured_from_the_float_model(jsc_context: RunContext) -> None:
    constraints = _constraints(jsc_context, {"accuracy_drop": {"max": 0.01}, "loss_drop": {"min": -0.5}})
    baseline = constraints.baseline
    assert baseline is not None and baseline.software == build_runners(
        _strategy({}), jsc_context
    ).reference().software
    trial = TrialMetrics(software={"accuracy": baseline.software["accuracy"] - 0.25, "loss": 1.0, "balanced_accuracy": 0.0})
    drop = 0.25  # the float model's accuracy minus the trial's
    assert constraints.values(trial)[0] == pytest.approx(drop - 0.01)
    assert constraints.values(trial)[1] == pytest.approx(-0.5 - (baseline.software["loss"] - 1.0))
    drops = metric_drops(trial, baseline)
    assert drops["accuracy_drop"] == pytest.approx(0.25)
    assert set(drops) == {"accuracy_drop", "balanced_accuracy_drop", "loss_drop"}
    # A given baseline replaces the measured one.
    other = TrialMetrics(software={"accuracy": 1.0, "loss": 0.0, "balanced_accuracy": 1.0})
    rebased = constraints.with_baseline(other)
    assert rebased.values({"accuracy": 0.9, "loss": 0.0})[0] == pytest.approx(0.1 - 0.01)


def test_the_hardware_only_part_is_decided_by_the_config(jsc_context: RunContext) -> None:
    constraints = _constraints(
        jsc_context, {"average_bitwidth": {"max": 4}, "accuracy_drop": {"max": 0.01}}
    )
    hardware = constraints.hardware_only
    assert hardware.keys == ("average_bitwidth.max",)
    assert not hardware.needs_baseline
    six = {"seq_blocks_2": int_config(weight=6, bias=8)}
    four = {"seq_blocks_2": int_config(weight=4, bias=8)}
    assert hardware.config_values(six) == (2.0,)
    assert hardware.config_violation(six) == 2.0 / 4
    assert hardware.config_violation(four) == 0.0
    assert constraints.config_violation(six) == 2.0 / 4  # only config-kind items count
    # The prediction is what the runners measure on the trial.
    measured = build_runners(_strategy({}), jsc_context).run(six)
    assert hardware.values(measured) == hardware.config_values(six)


def test_latency_is_a_measured_constraint(jsc_context: RunContext) -> None:
    constraints = _constraints(jsc_context, {"latency": {"max": 5.0}}, hw=("latency",))
    assert [item.kind for item in constraints] == ["measured"]
    assert constraints.hardware_only.keys == ()
    assert constraints.config_violation({}) == 0.0


@pytest.mark.parametrize(
    ("constraints", "kwargs", "message"),
    [
        (
            {"weight_bytes": {"max": "4 KiB"}},
            {"hw": ("average_bitwidth",)},
            "search.strategy.constraints.weight_bytes: no configured runner produces the metric "
            "'weight_bytes'; the configured runners produce: accuracy, balanced_accuracy, loss "
            "(basic_evaluation); average_bitwidth, memory_density, average_bitwidth_ratio, "
            "memory_density_ratio (average_bitwidth); to measure it, add "
            "[search.strategy.hw_runner.model_size]",
        ),
        (
            {"accuracy_drop": {"max": 0.01}},
            {"sw": False, "hw": ("average_bitwidth",)},
            "search.strategy.constraints.accuracy_drop: no configured runner produces the metric "
            "'accuracy' (which 'accuracy_drop' is computed from); the configured runners produce: "
            "average_bitwidth, memory_density, average_bitwidth_ratio, memory_density_ratio "
            "(average_bitwidth); to measure it, add [search.strategy.sw_runner.basic_evaluation]",
        ),
        (
            {"average_bitwidth_drop": {"max": 1}},
            {},
            "search.strategy.constraints.average_bitwidth_drop: 'average_bitwidth_drop' is the "
            "drop from the float model, defined for software metrics; 'average_bitwidth' is a "
            "hardware metric: bound it directly ([search.strategy.constraints] "
            "average_bitwidth.max = ...)",
        ),
        (
            {"average_bitwidth": {"max": "4 bits"}},
            {},
            "search.strategy.constraints.average_bitwidth.max: a unit applies to sizes in bytes "
            "only (model_size, weight_bytes); 'average_bitwidth' is not one: give a plain number "
            "in its own unit; got '4 bits'",
        ),
    ],
)
def test_config_errors_name_the_toml_path(
    jsc_context: RunContext, constraints: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _constraints(jsc_context, constraints, **kwargs)
    assert str(info.value) == message


def test_an_unknown_metric_suggests_the_nearest(jsc_context: RunContext) -> None:
    with pytest.raises(ConfigError, match=r"constraints\.acuracy: .*did you mean 'accuracy'\?"):
        _constraints(jsc_context, {"acuracy": {"min": 0.5}})


def test_constraint_records() -> None:
    item = Constraint("model_size", "max", 4096.0, "config")
    assert item.key == "model_size.max"
    assert item.describe() == "model_size <= 4096"
    assert item.value(4100.0) == 4.0
    assert Constraint("accuracy_drop", "max", 0.0, "data").scale == 1.0
    assert is_feasible((0.0, -1.0)) and not is_feasible((0.0, 1e-12)) and not is_feasible((math.nan,))
    assert Constraints([]).describe() == "none" and not Constraints([])


def test_config_metrics_are_the_config_only_runners_measurements(jsc_context: RunContext) -> None:
    cfg = _strategy({}, hw=("average_bitwidth", "model_size", "latency"))
    runners = build_runners(cfg, jsc_context)
    config = {"seq_blocks_2": int_config(weight=3, bias=8)}
    got = runners.config_metrics(config)
    measured = runners.run(config)
    # Everything but latency (timed on the built model) and the software metrics.
    assert set(got) == set(measured.hardware) - {"latency", "latency_ratio"}
    assert got == {name: measured.hardware[name] for name in got}
    assert got["weight_bytes"] == 3 * 80 / 8
