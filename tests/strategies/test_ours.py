"""bitscout's own strategy, ``sensitivity``: profile order, optimum of separable spaces, resume.

It also runs through the shared contract (``test_contract.py``) as every registered
strategy does.
"""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from bitscout.errors import SearchError
from bitscout.space import SearchSpace
from bitscout.strategies import get_strategy, strategy_names
from bitscout.strategies._sensitivity import value_order

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Per-parameter preferred value: an interior optimum, neither all-max nor all-min.
TARGET = {"fc1/weight_width": 4, "fc1/data_in_width": 8, "act/data_in_width": 2, "fc2/weight_width": 4}


def separable(params: dict[str, Any]) -> float:
    """Sum of per-parameter terms, best at TARGET (value 0)."""
    return -sum(abs(params[k] - v) for k, v in TARGET.items())


def run(space: SearchSpace, objective: Any, n: int, *, seed: int = 0, direction: str = "maximize",
        study: optuna.Study | None = None) -> optuna.Study:
    sampler = get_strategy("sensitivity").make_sampler(space, seed=seed, directions=[direction], options={})
    if study is None:
        study = optuna.create_study(sampler=sampler, direction=direction)
    else:
        study.sampler = sampler
    dists = space.distributions()
    for _ in range(n):
        trial = study.ask(dists)
        study.tell(trial, objective(trial.params))
    return study


def test_registered() -> None:
    assert "sensitivity" in strategy_names()


def test_value_order() -> None:
    assert value_order([2, 8, 4]) == [1, 2, 0]
    assert value_order(["integer", "NA"]) == [1, 0]


def test_profile_comes_first(space36: SearchSpace) -> None:
    study = run(space36, separable, 7)
    params = [t.params for t in study.trials]
    # The most precise configuration, then each parameter alone at its other values.
    assert params[0] == {"fc1/weight_width": 8, "fc1/data_in_width": 8, "act/data_in_width": 8, "fc2/weight_width": 8}
    changed = [{k for k in p if p[k] != params[0][k]} for p in params[1:]]
    assert all(len(c) == 1 for c in changed)
    # In the space's parameter order, each value in turn from the most precise down.
    expected = [(p.name, v) for p in space36.params for v in sorted(p.choices, reverse=True)[1:]]
    assert [c.pop() for c in changed] == [name for name, _ in expected]
    assert [params[i + 1][name] for i, (name, _) in enumerate(expected)] == [v for _, v in expected]


def _optimum(space: SearchSpace, objective: Any) -> float:
    return max(objective(space.params_at(i)) for i in range(space.size))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_separable_optimum_right_after_the_profile(space36: SearchSpace, seed: int) -> None:
    # 7 profile trials determine an additive model exactly; the 8th is its optimum.
    best = _optimum(space36, separable)
    study = run(space36, separable, 8, seed=seed)
    assert best == 0.0
    assert study.trials[7].value == best


def test_minimize_and_no_repeats_until_exhausted(space36: SearchSpace) -> None:
    study = run(space36, lambda p: -separable(p), 36, direction="minimize")
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(keys)) == 36  # every configuration exactly once
    assert min(t.value for t in study.trials[:8]) == 0.0


def test_coupled_objective_reaches_optimum_within_budget(space36: SearchSpace) -> None:
    # Non-separable: fc1's weight and input widths interact, and the act width couples to fc2.
    def coupled(p: dict[str, Any]) -> float:
        return -abs(p["fc1/weight_width"] * p["fc1/data_in_width"] - 16) - 0.5 * abs(
            p["act/data_in_width"] - p["fc2/weight_width"] / 4
        ) - 0.1 * p["fc2/weight_width"]

    best = _optimum(space36, coupled)
    study = run(space36, coupled, 20)
    reached = [i for i, t in enumerate(study.trials) if t.value == best]
    assert reached and reached[0] < 20


def test_resume_continues_without_repeating(space36: SearchSpace) -> None:
    study = run(space36, separable, 5)
    run(space36, separable, 10, study=study)  # a new sampler reads the stored trials
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(keys)) == 15
    assert study.best_value == 0.0


def test_space_with_collapsing_vectors_never_repeats_a_model(space_na: SearchSpace) -> None:
    study = run(space_na, lambda p: float(p["fc1/weight_width"]), 24)
    distinct = {space_na.distinct_index_of(t.params) for t in study.trials}
    assert len(distinct) == 24 == space_na.distinct_size


def test_several_objectives_are_refused(space36: SearchSpace) -> None:
    with pytest.raises(SearchError, match="sampler 'sensitivity' supports at most 1 objective"):
        get_strategy("sensitivity").make_sampler(
            space36, seed=0, directions=["maximize", "minimize"], options={}
        )


def test_failed_trials_are_not_proposed_again(space36: SearchSpace) -> None:
    sampler = get_strategy("sensitivity").make_sampler(space36, seed=0, directions=["maximize"], options={})
    study = optuna.create_study(sampler=sampler, direction="maximize")
    dists = space36.distributions()
    for _ in range(12):  # every trial fails: the profile, then unseen configurations
        study.tell(study.ask(dists), state=optuna.trial.TrialState.FAIL)
    keys = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(keys) == 12
