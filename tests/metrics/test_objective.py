"""The objective: signs, scales, normalization, Pareto mode, errors and warnings."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator

import pytest

from bitscout.errors import ConfigError
from bitscout.metrics import MetricWarning, Objective, RunContext, TrialMetrics, build_runners
from tests.metrics.metrics_helpers import int_config, strategy

SW = {"basic_evaluation": {"num_samples": 100}}
HW = {"average_bitwidth": {}, "bitops": {}, "flops": {}}

# A trial's metrics written by hand, so every objective value below is hand-checked.
TRIAL = TrialMetrics(
    software={"accuracy": 0.75, "balanced_accuracy": 0.7, "loss": 0.9},
    hardware={
        "average_bitwidth": 6.0,
        "average_bitwidth_ratio": 6.0 / 32,
        "memory_density": 32 / 6,
        "memory_density_ratio": 32 / 6,
        "bitops": 3840.0,
        "bitops_ratio": 3840 / 81920,
        "flops": 160.0,
        "flops_ratio": 1.0,
    },
)


def objective(context: RunContext, metrics, *, sw=SW, hw=HW, **setup) -> Objective:
    cfg = strategy(sw=sw, hw=hw, metrics=metrics, **setup)
    return Objective.from_config(cfg, build_runners(cfg, context))


@contextlib.contextmanager
def no_metric_warnings() -> Iterator[None]:
    """Turn any MetricWarning into an error, to show that none is raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", MetricWarning)
        yield


def test_a_cost_is_subtracted_in_a_maximize_sum_and_mase_difference_is_warned(jsc_context: RunContext) -> None:
    with pytest.warns(MetricWarning, match=r"average_bitwidth is to be minimized.*MASE adds every scaled metric"):
        obj = objective(
            jsc_context,
            {"accuracy": {"scale": 1.0}, "average_bitwidth": {"scale": 0.2}},
            direction="maximize",
        )
    assert obj.directions == ["maximize"]
    result = obj.evaluate(TRIAL)
    assert result.scaled == {"accuracy": 0.75, "average_bitwidth": pytest.approx(-0.2 * 6.0)}
    assert result.values == (pytest.approx(0.75 - 1.2),)
    assert obj.values(TRIAL) == [pytest.approx(-0.45)]


def test_a_cost_scaled_by_zero_is_not_warned_about(jsc_context: RunContext) -> None:
    # A term with scale 0 takes no part in the ranking (a user keeps a metric in the table
    # for its runner's sake): its sign cannot change anything, so no MASE-difference warning.
    with no_metric_warnings():
        obj = objective(jsc_context, {"accuracy": {"scale": 1.0}, "average_bitwidth": {"scale": 0.0}})
    assert obj.values(TRIAL) == [pytest.approx(0.75)]


def test_in_a_minimize_sum_accuracy_is_subtracted(jsc_context: RunContext) -> None:
    with pytest.warns(MetricWarning, match=r"accuracy is to be maximized while the study is to minimize"):
        obj = objective(
            jsc_context, {"accuracy": {"scale": 2.0}, "bitops": {"scale": 1e-4}}, direction="minimize"
        )
    result = obj.evaluate(TRIAL)
    assert result.scaled == {"accuracy": -1.5, "bitops": pytest.approx(0.384)}
    assert result.values == (pytest.approx(-1.5 + 0.384),)


def test_given_directions_override_natural_ones(jsc_context: RunContext) -> None:
    with no_metric_warnings():
        obj = objective(
            jsc_context,
            {"accuracy": {"scale": 1.0}, "average_bitwidth": {"scale": 0.1, "direction": "maximize"}},
        )
    assert [t.direction for t in obj.terms] == ["maximize", "maximize"]
    assert obj.evaluate(TRIAL).values == (pytest.approx(0.75 + 0.6),)


def test_natural_directions(jsc_context: RunContext) -> None:
    cfg = strategy(sw=SW, hw=HW)
    runners = build_runners(cfg, jsc_context)
    maximized = {m for m in runners.produces() if runners.natural_direction(m) == "maximize"}
    assert maximized == {"accuracy", "balanced_accuracy", "memory_density", "memory_density_ratio"}


def test_normalize_uses_ratios_to_the_float_model(jsc_context: RunContext) -> None:
    with pytest.warns(MetricWarning, match="bitops is to be minimized"):
        obj = objective(
            jsc_context,
            {"accuracy": {"scale": 1.0, "normalize": True}, "bitops": {"scale": 0.5, "normalize": True}},
        )
    # The float model's accuracy, measured independently of the objective's reference.
    float_accuracy = build_runners(strategy(sw=SW), jsc_context).run({}).software["accuracy"]
    assert 0 < float_accuracy
    with pytest.warns(MetricWarning, match="accuracy = .* is more than 100 times"):
        result = obj.evaluate(TRIAL)
    assert result.scaled["accuracy"] == pytest.approx(0.75 / float_accuracy)
    assert result.scaled["bitops"] == pytest.approx(-0.5 * 3840 / 81920)
    assert result.values == (pytest.approx(0.75 / float_accuracy - 0.5 * 3840 / 81920),)


def test_normalized_hardware_metric_on_a_real_trial(jsc_context: RunContext) -> None:
    cfg = strategy(sw=SW, hw=HW, metrics={"bitops": {"normalize": True}}, direction="minimize")
    runners = build_runners(cfg, jsc_context)
    obj = Objective.from_config(cfg, runners)
    metrics = runners.run({"seq_blocks_2": int_config(data_in=8, weight=4, bias=8)})
    assert obj.evaluate(metrics).values == (pytest.approx(80 * 4 * 8 / (80 * 32 * 32)),)


def test_pareto_mode_one_objective_per_metric(jsc_context: RunContext) -> None:
    with no_metric_warnings():
        obj = objective(
            jsc_context,
            {"accuracy": {"scale": 1.0}, "bitops": {"scale": 2.0}, "loss": {"scale": 1.0}},
            sum_scaled_metrics=False,
        )
    assert obj.directions == ["maximize", "minimize", "minimize"]
    result = obj.evaluate(TRIAL)
    assert result.values == (0.75, 7680.0, 0.9)  # no sign flips: each has its own direction
    assert result.scaled == {"accuracy": 0.75, "bitops": 7680.0, "loss": 0.9}


def test_unknown_metric_is_an_error_listing_what_is_produced(jsc_context: RunContext) -> None:
    with pytest.raises(ConfigError) as info:
        objective(jsc_context, {"accuracy": {}, "bitops": {}, "acuracy": {}}, hw={})
    message = str(info.value)
    assert (
        "search.strategy.metrics.bitops: no configured runner produces the metric 'bitops'; "
        "the configured runners produce: accuracy, balanced_accuracy, loss (basic_evaluation); "
        "to measure it, add [search.strategy.hw_runner.bitops]"
    ) in message
    assert "search.strategy.metrics.acuracy:" in message and "did you mean 'accuracy'?" in message


def test_no_metric_and_bad_normalize_are_errors(jsc_context: RunContext) -> None:
    with pytest.raises(ConfigError, match=r"search\.strategy\.metrics: no metric to optimize"):
        objective(jsc_context, {})
    with pytest.raises(ConfigError, match=r"metrics\.bitops_ratio\.normalize: 'bitops_ratio' is already a ratio"):
        objective(jsc_context, {"bitops_ratio": {"normalize": True}}, direction="minimize")


def test_a_dominant_term_is_warned_once(jsc_context: RunContext) -> None:
    obj = objective(
        jsc_context,
        {"accuracy": {"scale": 1.0}, "bitops": {"scale": 1.0, "direction": "maximize"}},
    )
    failed = TrialMetrics(software={**TRIAL.software, "accuracy": math.nan}, hardware=TRIAL.hardware)
    with no_metric_warnings():
        assert math.isnan(obj.evaluate(failed).values[0])  # a failed trial is not the check
    with pytest.warns(MetricWarning, match=r"bitops = 3840 is more than 100 times every other term.*accuracy = 0.75") as caught:
        obj.evaluate(TRIAL)
    assert str(caught[0].message).endswith(
        "hardly change the ranking; set normalize = true or lower its scale in "
        "[search.strategy.metrics.bitops], or raise the scale of accuracy in [search.strategy.metrics.accuracy]"
    )
    with no_metric_warnings():
        obj.evaluate(TRIAL)  # once is enough


def test_balanced_terms_are_not_warned(jsc_context: RunContext) -> None:
    obj = objective(jsc_context, {"accuracy": {"scale": 1.0}, "bitops": {"scale": 1e-3, "direction": "maximize"}})
    # 3.84 against 0.75: within a factor of 100.
    assert not obj.check_scales(obj.evaluate(TRIAL).scaled)
    with pytest.warns(MetricWarning):
        assert obj.check_scales({"accuracy": 0.75, "bitops": 76.0})
    assert not obj.check_scales({"accuracy": 0.75, "bitops": 74.0})


def test_a_constant_metric_is_said_to_be_useless(jsc_context: RunContext) -> None:
    metrics = {"accuracy": {"scale": 1.0}, "flops": {"scale": 0.1, "direction": "maximize"}}
    with pytest.warns(MetricWarning, match=r"flops is the same for every candidate of a quantization-only search"):
        objective(jsc_context, metrics)
    cfg = strategy(sw=SW, hw=HW, metrics=metrics)
    with no_metric_warnings():
        Objective.from_config(cfg, build_runners(cfg, jsc_context), changes_architecture=True)


def test_coursework_combined_search(jsc_context: RunContext) -> None:
    """accuracy 1.0, average_bitwidth 0.2, flops 0.1, bitops 0.2, summed and maximized."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        obj = objective(
            jsc_context,
            {
                "accuracy": {"scale": 1.0},
                "average_bitwidth": {"scale": 0.2},
                "flops": {"scale": 0.1},
                "bitops": {"scale": 0.2},
            },
        )
        value = obj.evaluate(TRIAL).values[0]
    assert value == pytest.approx(0.75 - 0.2 * 6 - 0.1 * 160 - 0.2 * 3840)
    assert not math.isnan(value)


def test_dominant_accuracy_is_not_told_to_normalize(jsc_context: RunContext) -> None:
    # accuracy (0..1) dominating an already normalized bitops: normalize cannot help
    # accuracy (its ratio to the float model is about as large); the lever is bitops' scale.
    with pytest.warns(MetricWarning, match="bitops is to be minimized"):
        obj = objective(jsc_context, {"accuracy": {"scale": 1.0}, "bitops": {"scale": 0.01, "normalize": True}})
    with pytest.warns(MetricWarning) as caught:
        assert obj.check_scales({"accuracy": 0.75, "bitops": -0.0005})
    assert str(caught[0].message) == (
        "the scaled metric accuracy = 0.75 is more than 100 times every other term of the sum "
        "(bitops = -0.0005), so the others hardly change the ranking; lower its scale in "
        "[search.strategy.metrics.accuracy], or raise the scale of bitops in [search.strategy.metrics.bitops]"
    )
