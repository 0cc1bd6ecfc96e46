"""The sample-efficiency suite (benchmarks/suite.py): members, tables, optimum, lazy evaluation.

The fast tests check the suite's own arithmetic (hypervolume, Pareto fronts, shuffled
orders) against independent computations. The slow ones build the small jsc member
(synthetic JSC-format data, read by bitscout's JSC loader) and check its table, its
optimum and the lazy (on-demand) evaluator against the search's own runners. Tables are
cached under ``.cache/sample_efficiency`` (the benchmark's own cache), so only the first
run pays for training and enumeration."""

from __future__ import annotations

import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import suite  # noqa: E402

from bitscout._optuna_adapter import hypervolume  # noqa: E402


def test_members_cover_the_brief() -> None:
    names = suite.names()
    models = {suite.SPACES[suite.MEMBERS[n][0]].model for n in names}
    assert models == {"mlp", "cnn", "jsc", "deep"}
    for model in ("mlp", "cnn", "jsc", "deep"):
        objectives = {suite.MEMBERS[n][1] for n in names if suite.SPACES[suite.MEMBERS[n][0]].model == model}
        assert {"w1", "w2", "w3", "w4", "budget", "pareto"} <= objectives
    assert set(suite.names(quick=True)) <= set(names)
    with pytest.raises(KeyError, match="mlp/w1"):
        suite.load("mlp/w9")


def test_shuffled_space_lists_the_same_choices_in_another_order() -> None:
    plain = suite.SPACES["mlp"].layer_choices()
    shuffled = suite.SPACES["mlp-shuffled"].layer_choices()
    for layer, fields in plain.items():
        for name, values in fields.items():
            assert sorted(map(str, shuffled[layer][name])) == sorted(map(str, values))
            if len(values) > 1:
                assert shuffled[layer][name] != values
    assert suite.SPACES["mlp-shuffled"].layer_choices() == shuffled  # seeded: the same every time


def test_hypervolume_matches_optunas() -> None:
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.random(30), rng.random(30) * 8])  # accuracy (max), bits (min)
    reference = [-0.01, 8.5]
    ours = suite.hypervolume_of(points, reference, ["maximize", "minimize"])
    loss = np.column_stack([-points[:, 0], points[:, 1]])
    assert ours == pytest.approx(hypervolume(loss, np.array([0.01, 8.5])), rel=1e-12)
    # One point: a rectangle.
    assert suite.hypervolume_of(np.array([[0.5, 4.0]]), reference, ["maximize", "minimize"]) == pytest.approx(0.51 * 4.5)


def test_front_sweep_matches_bitscouts_pareto_front() -> None:
    from bitscout.study import pareto_front

    rng = np.random.default_rng(1)
    for _ in range(20):
        points = np.round(rng.random((300, 2)) * 10) / 10  # many ties
        unique = np.unique(points, axis=0)
        expected = unique[pareto_front(unique, ["maximize", "minimize"])]
        assert np.array_equal(suite._front(points, np.array([1.0, -1.0])), expected)






@pytest.mark.slow
def test_jsc_table_is_the_runners_and_its_optimum_is_exact() -> None:
    warnings.simplefilter("ignore")
    member = suite.load("jsc/w1")
    assert "SYNTHETIC" in member.description
    assert member.exact and member.size == 1440
    space, runners = member.space, member.runners
    # Independently: the objective of every configuration from the runners themselves.
    values = []
    for i in range(space.distinct_size):
        metrics = runners.run(space.decode(space.distinct_params_at(i)))
        values.append(member.objective.evaluate(metrics).values[0])
    assert max(values) == pytest.approx(member.optimum.value, abs=1e-12)
    assert sum(abs(v - max(values)) <= 1e-9 for v in values) == member.optimum.configs
    best = space.decode(member.optimum.params)
    assert member.evaluator.evaluate(best).values[0] == pytest.approx(max(values), abs=1e-12)


@pytest.mark.slow
def test_budget_member_optimum_is_the_best_feasible(tmp_path: Path) -> None:
    warnings.simplefilter("ignore")
    member = suite.load("jsc/budget")
    table = suite.table("jsc")
    limit = member.runners.reference().hardware["weight_bytes"] * 3 / 32
    feasible = table.hardware["weight_bytes"] <= limit
    assert member.optimum.feasible == int(feasible.sum()) > 0
    assert member.optimum.value == table.accuracy[feasible].max()
    assert table.accuracy.max() > member.optimum.value  # the budget binds


@pytest.mark.slow
def test_lazy_table_equals_the_exhaustive_one(tmp_path: Path) -> None:
    warnings.simplefilter("ignore")
    exact = suite.table("jsc")
    space = suite._space("jsc")
    lazy = suite.LazyTable("jsc", space, suite.prepare("jsc").runners, tmp_path / "lazy.bin")
    order = list(range(space.distinct_size))
    random.Random(0).shuffle(order)  # an order that exercises the prefix memo both ways
    for i in order[:400]:
        config = space.decode(space.distinct_params_at(i))
        got = lazy.metrics(config)
        assert got.software["accuracy"] == exact.accuracy[i]
        assert got.software["loss"] == exact.loss[i]
        assert got.hardware["average_bitwidth"] == exact.hardware["average_bitwidth"][i]
    # Stored on disk: a new table reads them back without computing.
    again = suite.LazyTable("jsc", space, suite.prepare("jsc").runners, tmp_path / "lazy.bin")
    assert len(again) >= 400 and again.computed == 0
    # What another process appends later is read by reload() (the runner's parent reads
    # what its workers evaluated), and only that.
    for i in order[400:450]:
        lazy.metrics(space.decode(space.distinct_params_at(i)))
    assert again.reload() == 50 and again.reload() == 0
    assert again.software[order[449]] == lazy.software[order[449]]


@pytest.mark.slow
def test_member_works_with_bitscouts_compare() -> None:
    warnings.simplefilter("ignore")
    member = suite.load("jsc/budget")
    comparison = member.compare(["random", "brute_force"], seeds=2, n_trials=60)
    assert comparison.exact and comparison.optimum == member.optimum.value
    assert comparison.feasible_size == member.optimum.feasible
    # At most one (table) evaluation per configuration, shared by every run.
    assert comparison.evaluations <= member.size and len(comparison.runs) == 4
