"""Brute force: every configuration exactly once, in order or shuffled, retries, limits."""

from __future__ import annotations

import optuna
import pytest
from tests.strategies.strategy_helpers import bits_objective, run_ask_tell

from bitscout.errors import ConfigError, SearchError
from bitscout.space import SearchSpace
from bitscout.strategies import (
    BruteForceSampler,
    SeededPermutation,
    get_strategy,
    Exhaustible,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

MAX = ["maximize"]


def _sampler(space: SearchSpace, **options) -> BruteForceSampler:
    seed = options.pop("seed", 0)
    n_trials = options.pop("n_trials", None)
    sampler = get_strategy("brute_force").make_sampler(
        space, seed=seed, directions=MAX, options=options, n_trials=n_trials
    )
    assert isinstance(sampler, BruteForceSampler)
    return sampler


def test_visits_every_configuration_once_in_index_order(space36: SearchSpace) -> None:
    sampler = _sampler(space36)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    dists = space36.distributions()

    def objective(trial: optuna.Trial) -> float:
        params = {k: trial.suggest_categorical(k, d.choices) for k, d in dists.items()}
        return bits_objective(space36, params, 1)[0]

    study.optimize(objective, n_trials=100)  # stops itself once the space is exhausted
    assert len(study.trials) == space36.size == 36
    assert [t.params for t in study.trials] == [space36.params_at(i) for i in range(36)]
    assert _exhausted(sampler, study)
    # the best is the best of an independent enumeration
    best = max(bits_objective(space36, space36.params_at(i), 1)[0] for i in range(36))
    assert study.best_value == best


def test_collapsed_configurations_are_visited_once(space_na: SearchSpace) -> None:
    study = run_ask_tell(space_na, _sampler(space_na), MAX, 100)
    # independent: the first vector of each distinct model, in params_at order
    firsts: dict = {}
    for i in range(space_na.size):
        params = space_na.params_at(i)
        firsts.setdefault(space_na.key(space_na.decode(params)), params)
    assert len(firsts) == 24
    assert [t.params for t in study.trials] == list(firsts.values())


def test_shuffled_order_is_a_reproducible_permutation(space36: SearchSpace) -> None:
    def order(seed: int) -> list[int]:
        study = run_ask_tell(space36, _sampler(space36, shuffle=True, seed=seed), MAX, 100)
        return [space36.index_of(t.params) for t in study.trials]

    a = order(1)
    assert sorted(a) == list(range(36)) and a != list(range(36))
    assert order(1) == a
    assert order(2) != a


def test_shuffle_needs_a_seed(space36: SearchSpace) -> None:
    with pytest.raises(ConfigError, match="sampler_options.shuffle: .*needs a seed"):
        _sampler(space36, shuffle=True, seed=None)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 17, 64, 1000])
def test_seeded_permutation_is_a_bijection(n: int) -> None:
    perm = SeededPermutation(n, seed=12345)
    assert sorted(perm(i) for i in range(n)) == list(range(n))


def test_seeded_permutation_of_a_huge_range_needs_no_array() -> None:
    n = 10**12 + 39
    perm = SeededPermutation(n, seed=3)
    values = [perm(i) for i in range(2000)]
    assert len(set(values)) == 2000 and all(0 <= v < n for v in values)
    assert values == [SeededPermutation(n, seed=3)(i) for i in range(2000)]


def test_too_large_space_is_refused_unless_n_trials_caps_it(space36: SearchSpace) -> None:
    with pytest.raises(SearchError) as err:
        _sampler(space36, max_configs=35)
    msg = str(err.value)
    assert "36 distinct configurations" in msg and "max_configs = 35" in msg
    with pytest.raises(SearchError, match="n_trials is 36"):
        _sampler(space36, max_configs=35, n_trials=36)

    capped = _sampler(space36, max_configs=35, n_trials=10, shuffle=True)
    study = run_ask_tell(space36, capped, MAX, 10)
    visited = [space36.index_of(t.params) for t in study.trials]
    assert len(visited) == len(set(visited)) == 10
    assert visited == [capped.order(i) for i in range(10)]
    assert not _exhausted(capped, study)


def test_failed_configurations_are_handed_out_again(space36: SearchSpace) -> None:
    sampler = _sampler(space36, retry_failed=1)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    dists = space36.distributions()
    failing = {3, 7, 9}
    handed = []
    while not _exhausted(sampler, study):
        trial = study.ask(dists)
        index = space36.index_of(trial.params)
        handed.append(index)
        if index in failing:
            failing.discard(index)  # fails once, succeeds when retried
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, bits_objective(space36, trial.params, 1))
    assert handed == list(range(36)) + [3, 7, 9]
    finished = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    complete = {space36.index_of(t.params) for t in finished}
    assert complete == set(range(36))


@pytest.mark.parametrize("retry_failed, expected_extra", [(0, []), (1, [5]), (2, [5, 5])])
def test_retries_are_bounded(space36: SearchSpace, retry_failed: int, expected_extra: list) -> None:
    sampler = _sampler(space36, retry_failed=retry_failed)
    study = run_ask_tell(space36, sampler, MAX, 100, fail={5})
    assert [space36.index_of(t.params) for t in study.trials] == list(range(36)) + expected_extra
    assert _exhausted(sampler, study)


def test_workers_sharing_a_storage_get_disjoint_configurations(
    space36: SearchSpace, tmp_path
) -> None:
    """Three samplers (as in three processes) on one journal file: each config once."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log"))
    )
    optuna.create_study(study_name="s", storage=storage, direction="maximize")
    workers = []
    for _ in range(3):
        sampler = _sampler(space36, shuffle=True, seed=11)
        study = optuna.load_study(study_name="s", storage=storage, sampler=sampler)
        workers.append((sampler, study))
    dists = space36.distributions()
    running = []
    active = list(workers)
    while active:
        for sampler, study in list(active):
            if _exhausted(sampler, study):
                active.remove((sampler, study))
                continue
            # ask now, tell one round later: trials of different workers overlap in time
            running.append((study, study.ask(dists)))
        for study, trial in running:
            study.tell(trial, bits_objective(space36, trial.params, 1))
        running.clear()
    trials = workers[0][1].get_trials()
    indices = [space36.index_of(t.params) for t in trials]
    assert sorted(indices) == list(range(36))


def _exhausted(sampler, study) -> bool:
    """What the loop asks: a sampler that can run out (Exhaustible) and has."""
    return isinstance(sampler, Exhaustible) and sampler.is_exhausted(study)
