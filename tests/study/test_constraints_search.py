"""Constraints end to end: the loop records them, skips what the configuration rules out,
and "best" is the best feasible trial.

The search is the digits default (configs/digits.toml: a 3-layer MLP, 8,000
configurations) on a model fitted here in a few gradient steps, with
``average_bitwidth.max = 4``. The reference is an enumeration written here: the average
width from the layer sizes (64x64, 64x32, 32x10 weights), the accuracy from a forward
pass, the objective of digits.toml by hand.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from torch import nn

from bitscout.config import StrategyConfig, load_config
from bitscout.data import load_dataset
from bitscout.evaluation import RunnerEvaluator, TableEvaluator
from bitscout.graph import trace
from bitscout.metrics import Constraints, MetricWarning, Objective, RunContext, build_runners
from bitscout.models import build_model
from bitscout.quant import Quantizer
from bitscout.report import format_summary
from bitscout.space import SearchSpace
from bitscout.strategies import get_strategy
from bitscout.study import DUPLICATE_ATTR, SearchResult, run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)

DIGITS = Path(__file__).resolve().parents[2] / "configs" / "digits.toml"
WEIGHTS = {"fc1": 64 * 64, "fc2": 64 * 32, "fc3": 32 * 10}
FIELDS = ("weight_width", "data_in_width")


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 60) -> nn.Module:
    model.train()
    for _ in range(steps):
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
    return model.eval()


class Digits:
    """The digits search of configs/digits.toml with the constraints given."""

    def __init__(self, constraints: dict[str, Any]) -> None:
        config = load_config(DIGITS)
        assert config.search is not None
        self.dataset = load_dataset("digits", seed=0)
        torch.manual_seed(0)
        model = _fit(build_model(config.model, self.dataset.info), self.dataset.train.x, self.dataset.train.y)
        self.traced = trace(model, self.dataset.val.x[:2])
        self.quantizer = Quantizer(self.traced)
        context = RunContext(
            traced=self.traced, quantizer=self.quantizer, dataset=self.dataset,
            device=torch.device("cpu"), batch_size=64,
        )
        strategy_cfg = StrategyConfig.model_validate(
            {**config.search.strategy.model_dump(), "constraints": constraints}
        )
        self.runners = build_runners(strategy_cfg, context)
        with pytest.warns(MetricWarning, match="subtracts it"):  # digits.toml's cost term, as meant
            self.objective = Objective.from_config(strategy_cfg, self.runners)
        self.constraints = Constraints.from_config(strategy_cfg, self.runners)
        self.space = SearchSpace.from_config(config.search.search_space, self.traced.table)
        self.seed = config.search.search_space.seed

    def sampler(self, name: str, *, constrained: bool = True, seed: int = 0) -> optuna.samplers.BaseSampler:
        return get_strategy(name).make_sampler(
            self.space, seed=seed, directions=["maximize"], options={}, n_trials=8000,
            constraints=self.constraints.hardware_only if constrained else None,
        )

    def enumerate(self) -> tuple[dict[tuple[int, ...], float], set[tuple[int, ...]]]:
        """(feasible widths -> objective, infeasible widths), judged here."""
        x, y = self.dataset.val.x, self.dataset.val.y
        feasible: dict[tuple[int, ...], float] = {}
        infeasible: set[tuple[int, ...]] = set()
        keys = list(itertools.product(WEIGHTS, FIELDS))
        for widths in itertools.product(*(self.seed[layer][field] for layer, field in keys)):
            params = {f"{layer}/{field}": w for (layer, field), w in zip(keys, widths)}
            average = sum(params[f"{layer}/weight_width"] * n for layer, n in WEIGHTS.items()) / sum(WEIGHTS.values())
            if average > 4:
                infeasible.add(widths)
                continue
            with torch.inference_mode():
                accuracy = float((self.quantizer.build(self.space.decode(params))(x).argmax(-1) == y).double().mean())
            feasible[widths] = accuracy - 0.02 * average
        return feasible, infeasible


def widths(params: dict[str, Any]) -> tuple[int, ...]:
    return tuple(params[f"{layer}/{field}"] for layer in WEIGHTS for field in FIELDS)


@pytest.fixture(scope="module")
def budget() -> Digits:
    return Digits({"average_bitwidth": {"max": 4}})


@pytest.fixture(scope="module")
def enumeration(budget: Digits) -> tuple[dict[tuple[int, ...], float], set[tuple[int, ...]]]:
    return budget.enumerate()


@pytest.mark.parametrize("constrained_sampler", [True, False])
def test_brute_force_reports_exactly_the_best_feasible_configuration(
    budget: Digits, enumeration: Any, constrained_sampler: bool, tmp_path: Path
) -> None:
    feasible, infeasible = enumeration
    evaluator = TableEvaluator.from_runners(budget.space, budget.runners, budget.objective, constraints=budget.constraints)
    result = run_search(
        budget.space, budget.sampler("brute_force", constrained=constrained_sampler), evaluator,
        out_dir=tmp_path, storage=optuna.storages.InMemoryStorage(), n_trials=8000,
        progress=False, write_outputs=False,
    )
    best = result.best
    assert best is not None and best.feasible and result.best_is_feasible
    assert best.values[0] == pytest.approx(max(feasible.values()), abs=1e-12)
    assert feasible[widths(best.params)] == pytest.approx(best.values[0], abs=1e-12)
    assert result.n_feasible == result.n_unique == len(feasible)
    if constrained_sampler:  # the sampler never proposed an infeasible configuration
        assert result.n_trials == len(feasible) and result.n_skipped == 0
        # ... and the study says how many it left out (the summary prints it).
        assert result.ruled_out == len(infeasible) and result.best_dict()["n_ruled_out"] == len(infeasible)
    else:  # it did; the loop skipped each one without evaluating it
        assert result.n_skipped == len(infeasible) and result.ruled_out == 0
        skipped = [t for t in result.trials if t.skipped]
        assert {widths(t.params) for t in skipped} == infeasible
        assert all(t.state == "PRUNED" and not t.values and t.constraints["average_bitwidth.max"] > 0 for t in skipped)
        assert all(t.software_metrics == {} and "average_bitwidth" in t.hardware_metrics for t in skipped)


def test_tpe_records_constraints_and_never_reports_an_infeasible_best(budget: Digits, tmp_path: Path) -> None:
    evaluator = RunnerEvaluator(budget.runners, budget.objective, constraints=budget.constraints)
    storage = optuna.storages.InMemoryStorage()
    result = run_search(
        budget.space, budget.sampler("tpe", constrained=False, seed=1), evaluator, out_dir=tmp_path,
        storage=storage, study_name="tpe", n_trials=80, progress=False, baseline=True,
    )
    study = optuna.load_study(study_name="tpe", storage=storage)
    assert result.best is not None and result.best.feasible
    assert result.best.hardware_metrics["average_bitwidth"] <= 4
    assert result.n_skipped > 0  # TPE proposes over-budget configurations; none was evaluated
    trials = {t.number: t for t in study.get_trials()}
    for record in result.trials:
        stored = trials[record.number]
        average = record.hardware_metrics["average_bitwidth"]
        # Optuna holds the constraint value of every trial, duplicates and skipped ones too.
        assert stored.constraints == {"average_bitwidth.max": pytest.approx(average - 4)}
        assert record.skipped == (average > 4) == (stored.state == optuna.trial.TrialState.PRUNED)
        if DUPLICATE_ATTR in stored.user_attrs:
            assert record.constraints == result.trials[stored.user_attrs[DUPLICATE_ATTR]].constraints
    # The float model, measured once, and each trial's drop from it.
    reference = budget.runners.reference()
    assert result.baseline is not None and result.baseline.metrics == reference
    best = result.best
    assert best.drops(result.baseline_metrics)["accuracy_drop"] == pytest.approx(
        reference.software["accuracy"] - best.software_metrics["accuracy"], abs=1e-15
    )
    # trials.csv: the constraint value and a feasible column; best.json says so too.
    with open(tmp_path / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result.trials)
    for row, record in zip(rows, result.trials):
        assert float(row["constraint.average_bitwidth.max"]) == pytest.approx(record.hardware_metrics["average_bitwidth"] - 4)
        assert row["feasible"] == str(record.feasible)
        if record.software_metrics:
            assert float(row["accuracy_drop"]) == pytest.approx(reference.software["accuracy"] - record.software_metrics["accuracy"])
    assert SearchResult.load(tmp_path).baseline.metrics == reference
    saved = json.loads((tmp_path / "best.json").read_text())
    assert saved["best_is_feasible"] is True and saved["n_skipped"] == result.n_skipped
    assert saved["best"]["number"] == best.number
    summary = format_summary(result)
    assert f"float model (baseline): accuracy = {reference.software['accuracy']:.6g}" in summary
    assert f"accuracy_drop = {reference.software['accuracy'] - best.software_metrics['accuracy']:.6g}" in summary
    assert "NO TRIAL MEETS" not in summary


def test_with_nothing_feasible_the_least_violating_trial_is_flagged(tmp_path: Path) -> None:
    # Widths of 2 bits at least: an average of at most 2.5 bits leaves only the all-2 weights
    # (0 = 2 - 2.5 < 0 is feasible), so ask for less than anything reaches.
    impossible = Digits({"average_bitwidth": {"max": 1.5}})
    evaluator = RunnerEvaluator(impossible.runners, impossible.objective, constraints=impossible.constraints)
    result = run_search(
        impossible.space, impossible.sampler("tpe", constrained=False), evaluator,
        out_dir=tmp_path, storage=optuna.storages.InMemoryStorage(), n_trials=30, progress=False,
    )
    assert result.n_skipped == 30 and result.n_unique == 0
    best = result.best
    assert best is not None and not result.best_is_feasible
    # The least violating: the smallest average width among the trials (all weights at 2 bits, if seen).
    assert best.violation == min(t.violation for t in result.trials)
    assert best.violation == pytest.approx(min(t.hardware_metrics["average_bitwidth"] for t in result.trials) - 1.5)
    assert "NO TRIAL MEETS THE CONSTRAINTS" in format_summary(result)


def test_a_drop_constraint_is_measured_from_the_float_model(tmp_path: Path) -> None:
    drop = Digits({"accuracy_drop": {"max": 0.05}})
    evaluator = RunnerEvaluator(drop.runners, drop.objective, constraints=drop.constraints)
    result = run_search(
        drop.space, drop.sampler("random", constrained=False), evaluator,
        out_dir=tmp_path, storage=optuna.storages.InMemoryStorage(), n_trials=25, progress=False,
    )
    float_accuracy = drop.runners.reference().software["accuracy"]
    for t in result.complete:
        expected = float_accuracy - t.software_metrics["accuracy"] - 0.05
        assert t.constraints["accuracy_drop.max"] == pytest.approx(expected, abs=1e-12)
        assert t.feasible == (expected <= 0)
    assert result.n_skipped == 0  # a drop is known only after the data pass
    feasible = [t for t in result.complete if t.feasible and t.duplicate_of is None]
    if feasible:
        assert result.best.number == max(feasible, key=lambda t: (t.values[0], -t.number)).number
    else:
        assert not result.best_is_feasible


def test_a_skipped_trial_leaves_constraints_measured_on_data_unknown(tmp_path: Path) -> None:
    both = Digits({"average_bitwidth": {"max": 4}, "accuracy_drop": {"max": 0.3}})
    evaluator = RunnerEvaluator(both.runners, both.objective, constraints=both.constraints)
    storage = optuna.storages.InMemoryStorage()
    result = run_search(
        both.space, both.sampler("random", constrained=False), evaluator, out_dir=tmp_path,
        storage=storage, study_name="both", n_trials=30, progress=False,
    )
    study = optuna.load_study(study_name="both", storage=storage)
    skipped = [t for t in result.trials if t.skipped]
    evaluated = [t for t in result.complete if t.duplicate_of is None]
    assert skipped and evaluated
    for t in skipped:  # nothing ran: the drop is unknown, and Optuna is told only what is known
        assert t.constraints["accuracy_drop.max"] is None and t.constraints["average_bitwidth.max"] > 0
        assert set(study.trials[t.number].constraints) == {"average_bitwidth.max"}
    for t in evaluated:
        assert set(study.trials[t.number].constraints) == {"average_bitwidth.max", "accuracy_drop.max"}
    with open(tmp_path / "trials.csv") as f:
        rows = {int(r["number"]): r for r in csv.DictReader(f)}
    assert all(rows[t.number]["constraint.accuracy_drop.max"] == "" for t in skipped)
    assert all(rows[t.number]["feasible"] == "False" for t in skipped)
