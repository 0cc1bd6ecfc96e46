"""Strategies under constraints a configuration alone decides.

The main check runs on the digits space of ``configs/digits.toml`` (a 3-layer MLP, weight
widths {2, 3, 4, 6, 8} and input widths {3, 4, 6, 8} per layer: 8,000 configurations)
with ``average_bitwidth.max = 4``: brute force must hand out exactly the feasible
configurations and report the best of them, checked against an enumeration written here
(the average width from the layer sizes 64x64, 64x32 and 32x10, the accuracy from a
forward pass of the quantized model, the objective of the config file by hand).
``sensitivity`` must never evaluate a configuration the constraint rules out, and must
reach the same optimum.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from torch import nn

from bitscout.config import StrategyConfig, load_config
from bitscout.data import Dataset, load_dataset
from bitscout.graph import trace
from bitscout.metrics import Constraints, MetricWarning, Objective, RunContext, build_runners
from bitscout.models import build_model
from bitscout.quant import Quantizer
from bitscout.space import SearchSpace
from bitscout.strategies import ConstraintAware, get_strategy, strategy_names

optuna.logging.set_verbosity(optuna.logging.WARNING)

DIGITS_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "digits.toml"
WEIGHTS = {"fc1": 64 * 64, "fc2": 64 * 32, "fc3": 32 * 10}
LAYERS = tuple(WEIGHTS)


@functools.cache
def _digits() -> Dataset:
    return load_dataset("digits", seed=0)


def _fit(model: nn.Module, dataset: Dataset, steps: int = 60) -> nn.Module:
    """Full-batch gradient steps: enough for widths to matter (plain updates, no optimizer)."""
    x, y = dataset.train.x, dataset.train.y
    model.train()
    for _ in range(steps):
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
    return model.eval()


class Problem:
    """The digits search of configs/digits.toml with ``average_bitwidth.max = 4``."""

    def __init__(self) -> None:
        config = load_config(DIGITS_CONFIG)
        assert config.search is not None
        self.dataset = _digits()
        torch.manual_seed(0)
        model = _fit(build_model(config.model, self.dataset.info, config.model_options), self.dataset)
        self.traced = trace(model, self.dataset.val.x[:2])
        self.quantizer = Quantizer(self.traced)
        context = RunContext(
            traced=self.traced,
            quantizer=self.quantizer,
            dataset=self.dataset,
            device=torch.device("cpu"),
            batch_size=config.batch_size,
        )
        self.strategy_cfg = StrategyConfig.model_validate(
            {**config.search.strategy.model_dump(), "constraints": {"average_bitwidth": {"max": 4}}}
        )
        self.runners = build_runners(self.strategy_cfg, context)
        with pytest.warns(MetricWarning, match="subtracts it"):  # digits.toml's cost term, as meant
            self.objective = Objective.from_config(self.strategy_cfg, self.runners)
        self.constraints = Constraints.from_config(self.strategy_cfg, self.runners)
        self.space = SearchSpace.from_config(config.search.search_space, self.traced.table)
        self.choices = config.search.search_space.seed
        self._values: dict[int, float] = {}

    def value(self, params: dict[str, Any]) -> float:
        """The search's own objective (runners + objective), once per configuration."""
        index = self.space.distinct_index_of(params)
        if index not in self._values:
            metrics = self.runners.run(self.space.decode(params))
            self._values[index] = self.objective.evaluate(metrics).values[0]
        return self._values[index]


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem()


@pytest.fixture(scope="module")
def enumeration(problem: Problem) -> dict[str, Any]:
    """Every configuration, judged here: feasibility by hand, objective by a forward pass."""
    seed = problem.choices
    fields = ("weight_width", "data_in_width")
    x, y = problem.dataset.val.x, problem.dataset.val.y
    feasible: dict[tuple[int, ...], float] = {}
    infeasible = 0
    for widths in itertools.product(*(seed[layer][field] for layer in LAYERS for field in fields)):
        params = {f"{layer}/{field}": w for (layer, field), w in zip(itertools.product(LAYERS, fields), widths)}
        weight_widths = [params[f"{layer}/weight_width"] for layer in LAYERS]
        average = sum(w * WEIGHTS[layer] for w, layer in zip(weight_widths, LAYERS)) / sum(WEIGHTS.values())
        if average > 4:
            infeasible += 1
            continue
        with torch.inference_mode():
            model = problem.quantizer.build(problem.space.decode(params))
            accuracy = float((model(x).argmax(dim=-1) == y).double().mean())
        feasible[tuple(widths)] = accuracy - 0.02 * average  # digits.toml: accuracy - 0.02 x width
    best = max(feasible.values())
    return {
        "feasible": feasible,
        "infeasible": infeasible,
        "best": best,
        "argmax": {widths for widths, value in feasible.items() if value == best},
    }


def _widths(params: dict[str, Any]) -> tuple[int, ...]:
    return tuple(params[f"{layer}/{field}"] for layer in LAYERS for field in ("weight_width", "data_in_width"))


def _run(problem: Problem, strategy: str, n_trials: int, *, seed: int = 0) -> optuna.Study:
    sampler = get_strategy(strategy).make_sampler(
        problem.space,
        seed=seed,
        directions=["maximize"],
        options={},
        n_trials=n_trials,
        constraints=problem.constraints.hardware_only,
    )
    study = optuna.create_study(sampler=sampler, direction="maximize")
    distributions = problem.space.distributions()
    for _ in range(n_trials):
        if strategy == "brute_force" and sampler.is_exhausted(study):
            break
        trial = study.ask(distributions)
        study.tell(trial, problem.value(trial.params))
    return study


def test_the_enumeration_splits_the_space(problem: Problem, enumeration: dict[str, Any]) -> None:
    assert len(enumeration["feasible"]) + enumeration["infeasible"] == problem.space.size == 8000
    assert 0 < len(enumeration["feasible"]) < 8000


def test_brute_force_visits_exactly_the_feasible_configurations(
    problem: Problem, enumeration: dict[str, Any]
) -> None:
    study = _run(problem, "brute_force", 8000)
    visited = [_widths(t.params) for t in study.trials]
    assert len(visited) == len(set(visited)) == len(enumeration["feasible"])
    assert set(visited) == set(enumeration["feasible"])
    assert study.sampler.skipped_infeasible == enumeration["infeasible"]
    # The best trial is exactly the enumeration's best feasible configuration.
    assert _widths(study.best_trial.params) in enumeration["argmax"]
    assert study.best_value == pytest.approx(enumeration["best"], abs=1e-12)
    # And the objective the search computed agrees with the enumeration everywhere.
    for trial in study.trials:
        assert trial.value == pytest.approx(enumeration["feasible"][_widths(trial.params)], abs=1e-12)


def test_a_shuffled_capped_brute_force_samples_feasible_configurations_only(problem: Problem) -> None:
    sampler = get_strategy("brute_force").make_sampler(
        problem.space, seed=3, directions=["maximize"], options={"shuffle": True}, n_trials=50,
        constraints=problem.constraints.hardware_only,
    )
    params = [sampler.params_for(position) for position in range(50)]
    assert all(problem.constraints.config_violation(problem.space.decode(p)) == 0 for p in params)
    assert len({_widths(p) for p in params}) == 50


def test_sensitivity_never_evaluates_an_infeasible_configuration(
    problem: Problem, enumeration: dict[str, Any]
) -> None:
    study = _run(problem, "sensitivity", 150)
    visited = [_widths(t.params) for t in study.trials]
    assert all(widths in enumeration["feasible"] for widths in visited)
    assert len(set(visited)) == len(visited)
    assert study.sampler.skipped_infeasible > 0
    # It reaches the exact feasible optimum, so its best is feasible and optimal.
    assert study.best_value == pytest.approx(enumeration["best"], abs=1e-12)
    # The profile starts from the most precise feasible configuration: widths brought
    # down evenly from 8 until the average fits in 4 bits.
    first = study.trials[0].params
    assert [first[f"{layer}/weight_width"] for layer in LAYERS] == [4, 4, 4]
    assert [first[f"{layer}/data_in_width"] for layer in LAYERS] == [8, 8, 8]


class _Nothing:
    """Constraints that no configuration satisfies."""

    def config_violation(self, config: Any) -> float:
        return 1.0


def test_with_nothing_feasible_the_whole_space_is_searched(problem: Problem) -> None:
    brute = get_strategy("brute_force").make_sampler(
        problem.space, seed=0, directions=["maximize"], options={}, constraints=_Nothing()
    )
    assert brute.total == 8000 and brute.skipped_infeasible == 0
    sensitivity = get_strategy("sensitivity").make_sampler(
        problem.space, seed=0, directions=["maximize"], options={}, constraints=_Nothing()
    )
    study = optuna.create_study(sampler=sensitivity, direction="maximize")
    trial = study.ask(problem.space.distributions())
    # Unconstrained, the profile starts from the most precise configuration.
    assert set(trial.params.values()) == {8}


def test_only_brute_force_sensitivity_and_pareto_use_the_constraints_themselves(problem: Problem) -> None:
    aware = set()
    for name in strategy_names():
        strategy = get_strategy(name)
        if strategy.unavailable_reason(problem.space) is not None:
            continue
        sampler = strategy.make_sampler(
            problem.space, seed=0, directions=["maximize"], options={}, n_trials=10,
            constraints=problem.constraints.hardware_only,
        )
        if isinstance(sampler, ConstraintAware):
            aware.add(name)
    # The Optuna samplers read the values the loop records with trial.set_constraint.
    assert aware == {"brute_force", "pareto", "sensitivity"}


def test_sensitivity_without_constraints_is_unchanged(space36: SearchSpace) -> None:
    sampler = get_strategy("sensitivity").make_sampler(space36, seed=0, directions=["maximize"], options={})
    assert sampler.skipped_infeasible == 0
    study = optuna.create_study(sampler=sampler, direction="maximize")
    trial = study.ask(space36.distributions())
    assert trial.params == {k: 8 for k in trial.params}


def test_sensitivity_learns_a_constraint_measured_on_data(space36: SearchSpace) -> None:
    """A constraint known only after a trial (recorded with set_constraint), not given to the sampler."""

    def value(params: dict[str, Any]) -> float:  # more bits, better: the optimum is all-max
        return sum(float(v) for v in params.values())

    def constraint(params: dict[str, Any]) -> float:  # the weights of fc1 and fc2 share 8 bits
        return params["fc1/weight_width"] + params["fc2/weight_width"] - 8.0

    every = list(space36)
    best_feasible = max(value(p) for p in every if constraint(p) <= 0)
    sampler = get_strategy("sensitivity").make_sampler(space36, seed=0, directions=["maximize"], options={})
    study = optuna.create_study(sampler=sampler, direction="maximize")
    found, infeasible = None, 0
    for number in range(36):
        trial = study.ask(space36.distributions())
        trial.set_constraint("weights.max", constraint(trial.params))
        infeasible += constraint(trial.params) > 0
        study.tell(trial, value(trial.params))
        if constraint(trial.params) <= 0 and value(trial.params) == best_feasible:
            found = number + 1
            break
    # The profile (7 trials, each one parameter below the most precise configuration)
    # breaks the constraint every time; from those values the constraint model predicts
    # it exactly, and the next proposal is the feasible optimum, on the constraint's edge.
    assert found == 8
    assert infeasible == 7
