"""The Evaluator seam: runner, cached, function evaluators, failures, and constraints in the loop."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import optuna
import pytest
from optuna.storages import InMemoryStorage
from torch import nn

from bitscout.evaluation import (
    CachedEvaluator,
    Evaluation,
    Evaluator,
    FunctionEvaluator,
    RunnerEvaluator,
)
from bitscout.metrics import Objective, ObjectiveTerm, TrialMetrics
from bitscout.study import run_search
from tests.study.study_toy import ToyObjective, ToyRunners, ToySpace, toy_metrics

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"fc1": (2, 4, 8), "fc2": (2, 8), "fc3": (4,)}


def _key(config):
    return tuple(sorted((k, v.width) for k, v in config.items()))


def test_runner_evaluator_scores_the_runners_metrics() -> None:
    space = ToySpace(SPACE)
    config = space.enumerate()[3]
    ev = RunnerEvaluator(ToyRunners(), ToyObjective()).evaluate(config)
    metrics = toy_metrics(config)
    want = metrics.software["accuracy"] - 0.01 * metrics.hardware["average_bitwidth"]
    assert ev.ok and ev.values == (want,)
    assert ev.metrics == TrialMetrics(software=metrics.software, hardware=metrics.hardware)
    assert ev.scaled == {"accuracy": metrics.software["accuracy"], "average_bitwidth": -0.01 * metrics.hardware["average_bitwidth"]}
    assert ev.constraints == () and ev.seconds >= 0


def test_failures_and_nan_are_failed_evaluations_not_exceptions() -> None:
    space = ToySpace(SPACE)
    config = space.enumerate()[0]
    broken = RunnerEvaluator(ToyRunners(fail_all=True), ToyObjective()).evaluate(config)
    assert not broken.ok and broken.values == () and broken.error == f"RuntimeError: runner broke on {_key(config)}"
    nan = RunnerEvaluator(ToyRunners(nan_on=[_key(config)]), ToyObjective()).evaluate(config)
    assert nan.error is not None and nan.error.startswith("the objective value is nan (metrics: accuracy = nan")
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C is not a failed configuration
        RunnerEvaluator(ToyRunners(interrupt_at_call=1), ToyObjective()).evaluate(config)


def test_cached_evaluator_evaluates_each_configuration_once() -> None:
    space = ToySpace(SPACE)
    runners = ToyRunners()
    cache = CachedEvaluator(RunnerEvaluator(runners, ToyObjective()), key=space.key)
    configs = space.enumerate()
    first = [cache.evaluate(c) for c in configs]
    again = cache.evaluate_many(configs)
    assert again == first and len(runners.calls) == len(configs) == cache.evaluations == len(cache)
    extra = ToySpace({"fc1": (3,), "fc2": (3,), "fc3": (3,)}).enumerate()[0]
    cache.add(extra, Evaluation(values=(0.5,)))
    assert cache.evaluate(extra).values == (0.5,) and cache.evaluations == len(configs) and extra in cache
    assert cache.directions == ["maximize"] and cache.objective_names == ["objective"]


def test_function_evaluator_runs_the_users_function_on_the_built_model() -> None:
    objective = Objective([ObjectiveTerm("score", 2.0, "maximize", False, "software")], sum_scaled=True, direction="maximize")
    built = []

    def build(config: Mapping[str, Any]) -> nn.Module:
        model = nn.Linear(config["width"], 1)
        built.append(config["width"])
        return model

    ev = FunctionEvaluator(lambda m: {"score": float(m.in_features) / 4}, objective, build=build)
    got = ev.evaluate({"width": 3})
    assert got.values == (1.5,) and got.metrics.software == {"score": 0.75} and built == [3]
    assert ev.objective_names == ["objective"]
    assert "ZeroDivisionError" in (FunctionEvaluator(lambda m: {"score": 1 / 0}, objective, build=build).evaluate({"width": 1}).error or "")


class _Constrained(Evaluator):
    """Score = fc1 width; feasible only when fc1 width <= 4."""

    directions = ["maximize"]  # type: ignore[assignment]
    constraint_names = ("fc1_at_most_4",)  # type: ignore[assignment]

    def evaluate(self, config: Mapping[str, Any]) -> Evaluation:
        w = config["fc1"].width
        return Evaluation(values=(float(w),), constraints=(float(w - 4),))


def test_the_loop_records_constraints_and_optuna_sees_feasibility(tmp_path) -> None:
    storage = InMemoryStorage()
    space = ToySpace(SPACE)
    result = run_search(
        space, optuna.samplers.BruteForceSampler(seed=0), _Constrained(), out_dir=tmp_path,
        storage=storage, study_name="c", n_trials=6, progress=False, write_outputs=False,
    )
    assert result.n_unique == 6
    study = optuna.load_study(study_name="c", storage=storage)
    for t in study.trials:
        w = t.params["fc1/weight_width"]
        assert t.constraints == {"fc1_at_most_4": float(w - 4)}
    # Optuna's best trial among feasible ones is the largest feasible width.
    assert {t.params["fc1/weight_width"] for t in study.best_trials} == {4}


def test_run_search_refuses_anything_but_an_evaluator(tmp_path) -> None:
    with pytest.raises(TypeError, match="needs a bitscout.evaluation.Evaluator"):
        run_search(ToySpace(SPACE), optuna.samplers.RandomSampler(), ToyRunners(), out_dir=tmp_path, progress=False)  # type: ignore[arg-type]


def test_baseline_is_none_without_a_runner_set_and_evaluators_are_abstract() -> None:
    assert RunnerEvaluator(ToyRunners(), ToyObjective()).baseline() is None
    with pytest.raises(TypeError):
        Evaluator()  # type: ignore[abstract]
    assert math.isfinite(Evaluation(values=(1.0,)).values[0]) and Evaluation.failed("x").error == "x"
