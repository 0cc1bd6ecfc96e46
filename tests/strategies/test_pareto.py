"""bitscout's multi-objective strategy, ``pareto``: exact fronts, no repeats, seeds, workers.

It also runs through the shared contract (``test_contract.py``) as every registered
strategy does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest

from bitscout._optuna_adapter import hypervolume
from bitscout.errors import ConfigError
from bitscout.graph import LayerTable
from bitscout.space import SearchSpace
from bitscout.strategies import ConstraintAware, get_strategy, strategy_names
from bitscout.strategies._pareto import hypervolume_improvement, non_dominated

from tests.strategies.conftest import INT8

optuna.logging.set_verbosity(optuna.logging.WARNING)

WIDTHS = (2, 3, 4, 5, 6, 8)
DIRECTIONS = ["maximize", "minimize"]


@pytest.fixture(scope="module")
def space1296(mlp_table: LayerTable) -> SearchSpace:
    """6^4 = 1,296 configurations, all distinct."""
    return SearchSpace(
        mlp_table,
        {
            "fc1": {**INT8, "weight_width": WIDTHS, "data_in_width": WIDTHS},
            "act": {"name": "integer", "data_in_width": WIDTHS},
            "fc2": {**INT8, "weight_width": WIDTHS},
        },
    )


def quality(params: dict[str, Any]) -> float:
    """An accuracy stand-in: saturating in the weight widths, best at 5 bits for the
    activation, and a coupling of fc1's weight and input widths."""
    w1, a1 = params["fc1/weight_width"], params["fc1/data_in_width"]
    act, w2 = params["act/data_in_width"], params["fc2/weight_width"]
    value = 2.0 * (1 - 2.0 ** (1 - w1)) + 1.0 * (1 - 2.0 ** (1 - w2))
    value += 0.5 * (1 - 2.0 ** (1 - a1)) - 0.05 * abs(act - 5)
    value += 0.1 * (w1 >= 4) * (a1 >= 4)
    return value


def cost(params: dict[str, Any]) -> float:
    """Weight bits: fc1 has 24 weights, fc2 12."""
    return 24.0 * params["fc1/weight_width"] + 12.0 * params["fc2/weight_width"]


def values(params: dict[str, Any]) -> list[float]:
    return [quality(params), cost(params)]


def run(space: SearchSpace, n: int, *, seed: int = 0, objective: Any = values,
        directions: list[str] = DIRECTIONS, options: dict[str, Any] | None = None, **kwargs: Any) -> optuna.Study:
    sampler = get_strategy("pareto").make_sampler(
        space, seed=seed, directions=directions, options=options or {}, **kwargs
    )
    study = optuna.create_study(sampler=sampler, directions=directions)
    dists = space.distributions()
    for _ in range(n):
        trial = study.ask(dists)
        study.tell(trial, objective(trial.params))
    return study


def _front_hypervolume(points: list[list[float]], reference: tuple[float, float]) -> float:
    """Hypervolume of (quality max, cost min) points by a plain sweep over cost."""
    best = {}
    for q, c in points:
        best[c] = max(best.get(c, -np.inf), q)
    area, top = 0.0, reference[0]
    costs = sorted(best) + [reference[1]]
    for c, nxt in zip(costs, costs[1:]):
        top = max(top, best[c])
        area += (top - reference[0]) * (nxt - c)
    return area


def _every_point(space: SearchSpace) -> list[list[float]]:
    return [values(space.params_at(i)) for i in range(space.size)]


def test_registered_and_constraint_aware(space36: SearchSpace) -> None:
    assert "pareto" in strategy_names()
    sampler = get_strategy("pareto").make_sampler(space36, seed=0, directions=DIRECTIONS, options={})
    assert isinstance(sampler, ConstraintAware)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_the_exact_front_of_a_small_table(space1296: SearchSpace, seed: int) -> None:
    everything = _every_point(space1296)
    reference = (min(q for q, _ in everything) - 0.1, max(c for _, c in everything) + 1.0)
    exact = _front_hypervolume(everything, reference)
    study = run(space1296, 150, seed=seed)
    found = _front_hypervolume([t.values for t in study.trials], reference)
    assert found == pytest.approx(exact, rel=1e-12)


def test_never_repeats_a_configuration_until_exhausted(space36: SearchSpace) -> None:
    study = run(space36, 37)
    distinct = [space36.distinct_index_of(t.params) for t in study.trials]
    assert len(set(distinct[:36])) == 36
    assert distinct[36] in distinct[:36]  # nothing new is left: a repeat the loop answers


def test_collapsing_vectors_are_not_repeated(space_na: SearchSpace) -> None:
    def objective(params: dict[str, Any]) -> list[float]:
        config = space_na.decode(params)
        bits = sum(32 if c is None or c.weight is None else c.weight.width for c in config.values())
        return [float(bits % 7), float(bits)]

    study = run(space_na, 24, objective=objective)
    assert len({space_na.distinct_index_of(t.params) for t in study.trials}) == 24


def test_seeds_follow_different_trajectories(space1296: SearchSpace) -> None:
    first = [t.params for t in run(space1296, 40, seed=0).trials]
    second = [t.params for t in run(space1296, 40, seed=1).trials]
    again = [t.params for t in run(space1296, 40, seed=0).trials]
    assert first == again
    assert first[0] == second[0]  # the most precise configuration starts the profile
    assert sum(a != b for a, b in zip(first, second)) > 30


def test_one_objective_reaches_its_optimum(space1296: SearchSpace) -> None:
    best = max(quality(space1296.params_at(i)) for i in range(space1296.size))
    study = run(space1296, 60, objective=lambda p: quality(p), directions=["maximize"])
    assert study.best_value == best


class _WeightBudget:
    """Hardware-only constraint: at most ``limit`` weight bits (``cost``)."""

    def __init__(self, space: SearchSpace, limit: float) -> None:
        self.space = space
        self.limit = limit

    def config_violation(self, config: Any) -> float:
        bits = 24.0 * config["fc1"].weight.width + 12.0 * config["fc2"].weight.width
        return max(0.0, bits - self.limit)


def test_never_proposes_what_the_constraints_rule_out(space1296: SearchSpace) -> None:
    budget = _WeightBudget(space1296, 150.0)
    sampler = get_strategy("pareto").make_sampler(
        space1296, seed=0, directions=DIRECTIONS, options={}, constraints=budget
    )
    study = optuna.create_study(sampler=sampler, directions=DIRECTIONS)
    dists = space1296.distributions()
    for _ in range(80):
        trial = study.ask(dists)
        assert cost(trial.params) <= 150.0
        study.tell(trial, values(trial.params))
    assert sampler.skipped_infeasible > 0
    # The front under the budget: every cost level's best quality among feasible ones.
    feasible = [p for p in _every_point(space1296) if p[1] <= 150.0]
    reference = (min(q for q, _ in feasible) - 0.1, 151.0)
    found = _front_hypervolume([t.values for t in study.trials], reference)
    assert found == pytest.approx(_front_hypervolume(feasible, reference), rel=1e-12)


@pytest.mark.parametrize("options", [{}, {"refine_after": 30}])  # the model phase, then the local one
def test_running_trials_are_taken_by_parallel_workers(space1296: SearchSpace, options: dict[str, Any]) -> None:
    sampler = get_strategy("pareto").make_sampler(space1296, seed=0, directions=DIRECTIONS, options=options)
    study = optuna.create_study(sampler=sampler, directions=DIRECTIONS)
    dists = space1296.distributions()
    seen = set()
    for _ in range(12):  # four workers: four trials asked before any is told
        batch = [study.ask(dists) for _ in range(4)]
        for trial in batch:
            index = space1296.distinct_index_of(trial.params)
            assert index not in seen
            seen.add(index)
        for trial in batch:
            study.tell(trial, values(trial.params))
    assert len(seen) == 48


def test_options_are_checked_with_their_path(space36: SearchSpace) -> None:
    with pytest.raises(ConfigError, match=r"sampler_options\.radius.*got 0"):
        get_strategy("pareto").make_sampler(space36, seed=0, directions=DIRECTIONS, options={"radius": 0})


def _brute_non_dominated(points: np.ndarray) -> list[int]:
    keep = []
    for i, p in enumerate(points):
        dominated = any((q >= p).all() and (q > p).any() for q in points)
        repeated = any((points[j] == p).all() for j in range(i))
        if not dominated and not repeated:
            keep.append(i)
    return keep


@pytest.mark.parametrize("m", [2, 3])
def test_non_dominated_and_hypervolume_improvement(m: int) -> None:
    rng = np.random.default_rng(m)
    for _ in range(20):
        points = np.round(rng.random((25, m)), 1)  # ties and repeats included
        assert list(non_dominated(points)) == _brute_non_dominated(points)
        front = points[non_dominated(points)]
        candidates = rng.random((15, m))
        reference = np.full(m, -0.2)
        got = hypervolume_improvement(candidates, front, reference)
        want = [
            hypervolume(-np.vstack([front, c]), -reference) - hypervolume(-front, -reference)
            for c in candidates
        ]
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_the_brute_force_reference_is_itself_right() -> None:
    # _front_hypervolume (used above as the independent truth) against Optuna's.
    points = [[1.0, 3.0], [2.0, 5.0], [0.5, 1.0], [2.0, 6.0]]
    reference = (0.0, 7.0)
    loss = np.array([[-q, c] for q, c in points])
    assert _front_hypervolume(points, reference) == pytest.approx(
        hypervolume(loss, np.array([-reference[0], reference[1]]))
    )


def test_profile_is_one_change_at_a_time(space1296: SearchSpace) -> None:
    study = run(space1296, 1 + sum(len(p.choices) - 1 for p in space1296.params))
    base = {name: max(d.choices) for name, d in space1296.distributions().items()}
    assert study.trials[0].params == base
    changed = [sum(t.params[k] != v for k, v in base.items()) for t in study.trials[1:]]
    assert changed == [1] * len(changed)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == len(study.trials)
    # Every other value of every parameter appears once.
    pairs = {(k, t.params[k]) for t in study.trials[1:] for k, v in base.items() if t.params[k] != v}
    assert pairs == {(k, c) for k, d in space1296.distributions().items() for c in d.choices if c != base[k]}


def test_vectorized_distinct_indices_match_the_space(space_na: SearchSpace, space1296: SearchSpace) -> None:
    # space_na: several parameter vectors collapse to one configuration ("NA" layers).
    for space in (space_na, space1296):
        sampler = get_strategy("pareto").make_sampler(space, seed=0, directions=DIRECTIONS, options={})
        every = np.array(
            list(np.ndindex(*(len(p.choices) for p in space.params))), dtype=np.int64
        )
        want = [space.distinct_index_of(sampler._params_of(row)) for row in every]
        assert sampler._distinct_many(every).tolist() == want


@pytest.mark.parametrize("changes", [1, 2])
def test_moves_change_one_or_two_parameters_and_skip_taken(space1296: SearchSpace, changes: int) -> None:
    sampler = get_strategy("pareto").make_sampler(
        space1296, seed=0, directions=DIRECTIONS, options={"changes": changes}
    )
    origin = np.array([[0, 1, 2, 3]], dtype=np.int64)
    taken = np.array([space1296.distinct_index_of(sampler._params_of([1, 1, 2, 3]))], dtype=np.int64)
    moves = sampler._moves(origin, taken)
    differ = (moves != origin).sum(axis=1)
    # 4 parameters of 6 values: 4 x 5 single changes, 6 x 5 x 5 double ones; one is taken.
    expected = 20 + (150 if changes == 2 else 0) - 1
    assert len(moves) == expected
    assert set(differ.tolist()) == set(range(1, changes + 1))
    assert [1, 1, 2, 3] not in moves.tolist()
    assert len({tuple(m) for m in moves.tolist()}) == len(moves)


def test_residual_smoothing_weighs_trials_by_distance(space1296: SearchSpace) -> None:
    sampler = get_strategy("pareto").make_sampler(
        space1296, seed=0, directions=DIRECTIONS, options={"kernel": 0.5}
    )
    trials = np.array([[0, 0, 0, 0], [5, 5, 5, 5]], dtype=np.int64)
    residual = np.array([[1.0], [-2.0]])
    candidates = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1], [5, 5, 5, 5]], dtype=np.int64)
    got = sampler._smooth(candidates, trials, residual)[:, 0]
    # Weights 0.5 ** distance (distance: parameters that differ), plus 0.5 of "no correction".
    for row, candidate in zip(got, candidates):
        d0, d1 = (candidate != trials[0]).sum(), (candidate != trials[1]).sum()
        w0, w1 = 0.5**d0, 0.5**d1
        assert row == pytest.approx((w0 * 1.0 - w1 * 2.0) / (w0 + w1 + 0.5), rel=1e-6)


def test_explore_every_draws_the_full_posterior_on_its_turns(space1296: SearchSpace) -> None:
    def trajectory(options: dict[str, Any]) -> list[dict[str, Any]]:
        sampler = get_strategy("pareto").make_sampler(space1296, seed=3, directions=DIRECTIONS, options=options)
        study = optuna.create_study(sampler=sampler, directions=DIRECTIONS)
        for _ in range(40):
            trial = study.ask(space1296.distributions())
            study.tell(trial, values(trial.params))
        return [t.params for t in study.trials]

    # Every proposal at full spread, by either option, is the same search.
    full = trajectory({"exploration": 1.0, "explore_every": 0})
    assert trajectory({"exploration": 0.0, "explore_every": 1}) == full
    # Narrowed draws in between change it after the 21-trial profile, not before.
    mixed = trajectory({"exploration": 0.0, "explore_every": 3})
    assert mixed[:21] == full[:21]
    assert mixed != full


def test_local_neighbours_step_numeric_values_and_try_every_unordered_one(space_na: SearchSpace) -> None:
    sampler = get_strategy("pareto").make_sampler(space_na, seed=0, directions=DIRECTIONS, options={})
    start = {"fc1/weight_width": 4, "fc1/data_in_width": 4, "fc2/name": "integer", "fc2/weight_width": 8}
    got = [sampler._params_of(v) for v in sampler._local(sampler._vector(start))]
    want = [
        {**start, "fc1/weight_width": 2}, {**start, "fc1/weight_width": 8},  # one step down and up
        {**start, "fc1/data_in_width": 8},  # 4 is the narrowest: one neighbour
        {**start, "fc2/name": "NA"},  # names are unordered: every other value
        {**start, "fc2/weight_width": 4},  # 8 is the widest
    ]
    key = lambda p: sorted(p.items(), key=str)  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)


def _one_step(a: dict[str, Any], b: dict[str, Any], space: SearchSpace) -> bool:
    """Whether ``a`` and ``b`` differ in one parameter, by one value in sorted order."""
    diff = [k for k in a if a[k] != b[k]]
    if len(diff) != 1:
        return False
    choices = sorted(space.distributions()[diff[0]].choices)
    return abs(choices.index(a[diff[0]]) - choices.index(b[diff[0]])) == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_local_phase_proposes_neighbours_of_the_observed_front(space1296: SearchSpace, seed: int) -> None:
    def share_local(refine_after: int) -> float:
        study = run(space1296, 60, seed=seed, options={"refine_after": refine_after})
        local = 0
        for n, trial in enumerate(study.trials[30:], start=30):
            before = study.trials[:n]
            points = np.array([[t.values[0], -t.values[1]] for t in before])
            front = [before[i].params for i in non_dominated(points)]
            local += any(_one_step(trial.params, f, space1296) for f in front)
        return local / 30

    # From trial 30 on, every proposal is one step from a trial of the front so far;
    # the model phase alone proposes such a neighbour far less often.
    assert share_local(30) == 1.0
    assert share_local(0) < 0.8


def test_local_phase_starts_at_half_the_trials_with_two_objectives(space36: SearchSpace) -> None:
    strategy = get_strategy("pareto")
    made = [
        strategy.make_sampler(space36, seed=0, directions=DIRECTIONS, options=options, n_trials=n)
        for options, n in (({}, 200), ({}, None), ({"refine_after": 40}, 200), ({"refine_after": 0}, 200))
    ]
    assert [s._refine_after for s in made] == [100, 100, 40, 0]
    # Three objectives: no local phase unless asked for.
    three = ["maximize", "minimize", "minimize"]
    assert strategy.make_sampler(space36, seed=0, directions=three, options={}, n_trials=200)._refine_after == 0
    asked = strategy.make_sampler(space36, seed=0, directions=three, options={"refine_after": 50}, n_trials=200)
    assert asked._refine_after == 50
