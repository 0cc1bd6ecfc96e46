"""``compare_strategies`` under a budget: the exact feasible optimum, and runs judged by feasible trials only.

The digits search of configs/digits.toml with ``average_bitwidth.max = 4``; the feasible
optimum is checked against the enumeration of ``tests/study/test_constraints_search.py``
(feasibility from the layer sizes, accuracy from a forward pass).
"""

from __future__ import annotations

import pytest

from bitscout.compare import Comparison, compare_strategies
from tests.study.test_constraints_search import Digits


@pytest.fixture(scope="module")
def comparison_and_truth() -> tuple[Comparison, Digits, dict]:
    budget = Digits({"average_bitwidth": {"max": 4}})
    feasible, _ = budget.enumerate()
    comparison = compare_strategies(
        budget.space, budget.runners, budget.objective, ["sensitivity", "brute_force", "tpe"],
        seeds=2, n_trials=150, constraints=budget.constraints,
    )
    return comparison, budget, feasible


def test_the_optimum_is_the_best_feasible_value(comparison_and_truth) -> None:
    comparison, _, feasible = comparison_and_truth
    assert comparison.exact
    assert comparison.optimum == pytest.approx(max(feasible.values()), abs=1e-12)
    best = max(feasible.values())
    assert comparison.optimum_configs == sum(abs(v - best) <= 1e-12 for v in feasible.values())
    assert any(f"{len(feasible):,} of 8,000 configurations meet them" in note for note in comparison.notes)
    assert comparison.feasible_size == len(feasible)


def test_runs_count_feasible_trials_and_skipped_ones_cost_no_evaluation(comparison_and_truth) -> None:
    comparison, _, _ = comparison_and_truth
    for run in comparison.runs:
        assert len(run.feasible) == len(run.skipped) == run.n_trials
        if run.strategy in ("sensitivity", "brute_force"):
            # Given the hardware-only constraint, they never propose what it rules out.
            assert not any(run.skipped) and all(run.feasible)
        else:
            assert any(run.skipped)
        uniques = run.unique_counts()
        assert uniques[-1] == sum(not d and not s for d, s in zip(run.duplicate, run.skipped))
    # sensitivity reaches the feasible optimum in every seed within the budget.
    summary = comparison.summary("sensitivity")
    assert summary.never == 0
    # Reaching means a feasible trial at the optimum: check one run by hand.
    run = next(r for r in comparison.runs if r.strategy == "sensitivity")
    hit = summary.trials_to_optimum[0]
    assert run.feasible[hit - 1] and run.values[hit - 1][0] == pytest.approx(comparison.optimum, abs=1e-12)


def test_a_saved_comparison_keeps_feasibility(comparison_and_truth, tmp_path) -> None:
    comparison, _, _ = comparison_and_truth
    comparison.save(tmp_path)
    loaded = Comparison.load(tmp_path)
    assert [r.feasible for r in loaded.runs] == [r.feasible for r in comparison.runs]
    assert [r.skipped for r in loaded.runs] == [r.skipped for r in comparison.runs]
