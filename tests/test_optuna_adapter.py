"""Every private Optuna name bitscout uses (all in bitscout._optuna_adapter) still works.

An Optuna release that renames or moves one fails here, not in a user's search.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.storages import InMemoryStorage, JournalStorage, RDBStorage
from optuna.trial import TrialState

from bitscout import _optuna_adapter as adapter

optuna.logging.set_verbosity(optuna.logging.WARNING)
DIST = {"x": CategoricalDistribution((1, 2, 3))}


def _study(storage=None, **kw) -> optuna.Study:
    return optuna.create_study(storage=storage or InMemoryStorage(), **kw)


def test_pinned_to_the_tested_major_version() -> None:
    assert optuna.__version__.split(".")[0] == "5"


def test_storage_ids_and_counts() -> None:
    study = _study()
    trial = study.ask(DIST)
    storage = adapter.storage_of(study)
    assert storage is study._storage
    tid = adapter.trial_id(trial)
    assert storage.get_trial(tid).number == trial.number
    assert adapter.study_id(study) == storage.get_study_id_from_name(study.study_name)
    frozen = storage.get_trial(tid)
    assert adapter.trial_id(frozen) == tid
    assert adapter.n_trials(study) == 1
    assert adapter.n_trials(study, TrialState.RUNNING) == 1
    study.tell(trial, 1.0)
    assert adapter.n_trials(study, TrialState.RUNNING) == 0
    assert adapter.running_trials(storage, adapter.study_id(study)) == []


def test_stop_flag_and_stop_outside_optimize() -> None:
    study = _study()
    with pytest.raises(RuntimeError):
        study.stop()  # outside study.optimize: Optuna refuses ...
    adapter.allow_stop(study, True)
    study.stop()  # ... unless the loop says it is its own optimize loop
    assert adapter.stop_requested(study)
    adapter.clear_stop(study)
    assert not adapter.stop_requested(study)
    adapter.allow_stop(study, False)
    with pytest.raises(RuntimeError):
        study.stop()
    # Thread-local: another thread is not allowed by this one's flag.
    adapter.allow_stop(study, True)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            study.stop()
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors


def test_hypervolume_matches_a_hand_computed_area() -> None:
    # Two points (minimisation) under reference (4, 4): union of [1,4]x[3,4] and [2,4]x[1,4].
    points = np.array([[1.0, 3.0], [2.0, 1.0]])
    assert adapter.hypervolume(points, np.array([4.0, 4.0])) == pytest.approx(3.0 * 1.0 + 2.0 * 3.0 - 2.0 * 1.0)  # minus the overlap [2,4]x[3,4]


def test_journal_backend_file_path_and_its_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.journal"
    storage = JournalStorage(adapter.LocalJournalBackend(str(path)))
    assert adapter.journal_file_path(storage) == str(path)
    assert adapter.journal_file_path(InMemoryStorage()) is None
    study = _study(storage)
    trial = study.ask(DIST)
    study.tell(trial, 2.0)
    # Skipping the scan when the file has not grown must not hide new lines.
    again = JournalStorage(adapter.LocalJournalBackend(str(path)))
    assert [t.value for t in optuna.load_study(study_name=study.study_name, storage=again).trials] == [2.0]
    study.tell(study.ask(DIST), 3.0)
    assert [t.value for t in optuna.load_study(study_name=study.study_name, storage=again).trials] == [2.0, 3.0]
    lock = adapter.FlockLock(str(path))
    assert isinstance(lock, adapter.BaseJournalFileLock)
    assert lock.acquire()
    lock.release()


def test_rdb_hooks_cached_storage_and_backend(tmp_path: Path) -> None:
    created, asked = [], []

    class Probe(adapter.StaleTrialHook, adapter.CreatedTrialHook, RDBStorage):
        def trial_created(self, frozen):
            created.append(adapter.trial_id(frozen))

        def stale_trials(self, study_id):
            asked.append(study_id)
            return self.optuna_stale_trials(study_id)

    rdb = Probe(f"sqlite:///{tmp_path / 'db.sqlite'}", heartbeat_interval=60, grace_period=120)
    storage = adapter.cached_rdb_storage(rdb)
    assert adapter.backend_of(storage) is rdb
    assert adapter.is_heartbeat_enabled(storage)
    assert not adapter.is_heartbeat_enabled(InMemoryStorage())
    study = _study(storage)
    trial = study.ask(DIST)
    assert created == [adapter.trial_id(trial)]  # the cache creates through _create_new_trial
    assert storage._get_stale_trial_ids(adapter.study_id(study)) == []  # Optuna's hook -> ours
    assert asked == [adapter.study_id(study)]


def test_heartbeat_base_class_is_optunas() -> None:
    assert issubclass(RDBStorage, adapter.BaseHeartbeat)


@pytest.mark.parametrize("kind", ["journal", "memory"])
def test_several_user_attrs_in_one_write_replay_like_single_ones(tmp_path: Path, kind: str) -> None:
    path = str(tmp_path / "s.journal")
    storage = JournalStorage(adapter.LocalJournalBackend(path)) if kind == "journal" else InMemoryStorage()
    study = _study(storage, study_name="s")
    trial = study.ask(DIST)
    attrs = {"bitscout_record": {"a": [1, 2]}, "accuracy": 0.5, "bitops": 1234.0}
    adapter.set_trial_user_attrs(storage, adapter.trial_id(trial), attrs)
    study.tell(trial, 1.0)
    assert study.trials[0].user_attrs == attrs
    if kind == "journal":
        # A fresh reader of the file (another process, optuna-dashboard) sees the same.
        again = optuna.load_study(study_name="s", storage=JournalStorage(adapter.LocalJournalBackend(path)))
        assert again.trials[0].user_attrs == attrs
        assert again.trials[0].state == TrialState.COMPLETE


# ----- CachedTPESampler: Optuna's TPE, proposal for proposal ---------------------------------

_TPE_SPACE = {
    "a": CategoricalDistribution((2, 3, 4, 5, 6, 8)),
    "b": CategoricalDistribution((1, 2, 3)),
    "c": CategoricalDistribution(("x", "y", "z", "w")),
    "d": CategoricalDistribution(tuple(2.0**k for k in range(-1, 8))),
}


def _tpe_run(sampler: optuna.samplers.BaseSampler, n: int, directions: list[str], *, batch: int = 1) -> list[tuple]:
    """Ask ``batch`` trials at a time, tell them in reverse order (so trials finish out of
    number order and run alongside each other), with ties, constraints, pruned and failed
    trials. Returns every proposal."""
    study = optuna.create_study(sampler=sampler, directions=directions)
    rng = np.random.default_rng(7)
    proposals = []
    while len(proposals) < n:
        trials = [study.ask(_TPE_SPACE) for _ in range(batch)]
        for trial in reversed(trials):
            p = trial.params
            proposals.append(tuple(p.values()))
            value = round(-(p["a"] - 5) ** 2 - p["b"] + 2 * (p["c"] == "z") + 0.3 * np.log2(p["d"]) + rng.normal() * 0.1, 1)
            trial.set_constraint("a_at_most_6", float(p["a"] - 6))
            if trial.number % 13 == 4:
                study.tell(trial, state=TrialState.PRUNED)
            elif trial.number % 11 == 5:
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, [value, float(p["a"] + p["b"])][: len(directions)])
    return proposals


@pytest.mark.parametrize(
    ("directions", "options", "n", "batch"),
    [
        (["maximize"], {}, 300, 1),
        (["minimize"], {"constant_liar": False}, 150, 1),
        (["maximize"], {"multivariate": False}, 120, 1),
        (["maximize"], {}, 150, 3),  # running trials (constant liar), out-of-order finishing
        (["maximize", "minimize"], {}, 150, 1),  # independent TPE, non-dominated split
        (["maximize", "minimize"], {"multivariate": True}, 120, 2),
    ],
)
def test_cached_tpe_proposes_exactly_what_optunas_tpe_proposes(directions, options, n, batch) -> None:
    stock = _tpe_run(optuna.samplers.TPESampler(seed=3, **options), n, directions, batch=batch)
    cached = _tpe_run(adapter.CachedTPESampler(seed=3, **options), n, directions, batch=batch)
    assert len(set(stock)) > 20  # a search, not one configuration over and over
    assert cached == stock


def _reads_per_proposal(history: int) -> tuple[float, int]:
    sampler = adapter.CachedTPESampler(seed=0)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    rng = np.random.default_rng(0)
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={k: d.choices[rng.integers(len(d.choices))] for k, d in _TPE_SPACE.items()},
                distributions=_TPE_SPACE,
                value=float(rng.normal()),
            )
            for _ in range(history)
        ]
    )
    study.tell(study.ask(_TPE_SPACE), 0.0)  # the history is read here, once
    first = sampler.encoded
    for _ in range(30):
        study.tell(study.ask(_TPE_SPACE), 0.0)
    return (sampler.encoded - first) / 30, first


def test_cached_tpe_reads_each_finished_trial_once() -> None:
    short, first_short = _reads_per_proposal(50)
    long, first_long = _reads_per_proposal(2000)
    # A proposal reads the trial finished since the last one and the running one, a few
    # times over, whatever the history; Optuna's reads all of them, twice.
    assert short == long <= 6
    assert first_long - first_short <= 2 * (2000 - 50)


@pytest.mark.parametrize("n", [0, 1, 7, 40, 333])
@pytest.mark.parametrize("choices", [[6, 6, 6], [2, 9, 4, 12]])
def test_categorical_mixture_is_optunas_parzen_estimator_bit_for_bit(n: int, choices: list[int]) -> None:
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

    rng = np.random.default_rng(n + len(choices))
    space = {f"p{i}": CategoricalDistribution(tuple(range(c))) for i, c in enumerate(choices)}
    obs = np.stack([rng.integers(0, c, n) for c in choices], axis=1).reshape(n, len(choices))
    params = optuna.samplers.TPESampler(seed=0)._parzen_estimator_parameters
    for weights in (None, np.ones(n)):
        stock = _ParzenEstimator({k: obs[:, i] for i, k in enumerate(space)}, space, params, weights)
        configs, kernels = np.unique(obs, axis=0, return_inverse=True)
        ours = adapter._CategoricalMixture(configs, kernels.reshape(-1), choices, params, weights)
        stock_draw = stock.sample(np.random.RandomState(5), 24)
        our_draw = ours.sample(np.random.RandomState(5), 24)
        assert np.array_equal(np.array([stock_draw[k] for k in space]).T, our_draw)
        x = np.stack([rng.integers(0, c, 50) for c in choices], axis=1).astype(float)
        assert np.array_equal(stock.log_pdf({k: x[:, i] for i, k in enumerate(space)}), ours.log_pdf(x))


@pytest.mark.parametrize(
    ("stock", "cached", "options"),
    [
        (optuna.samplers.NSGAIISampler, adapter.CachedNSGAIISampler, {"population_size": 10}),
        (optuna.samplers.NSGAIIISampler, adapter.CachedNSGAIIISampler, {"population_size": 12}),
        (optuna.samplers.QMCSampler, adapter.CachedQMCSampler, {"scramble": True}),
        (optuna.samplers.QMCSampler, adapter.CachedQMCSampler, {"qmc_type": "halton"}),
    ],
)
@pytest.mark.parametrize(("directions", "batch"), [(["maximize"], 1), (["maximize", "minimize"], 3)])
def test_cached_genetic_and_qmc_samplers_propose_exactly_what_optunas_propose(stock, cached, options, directions, batch) -> None:
    import warnings

    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        expected = _tpe_run(stock(seed=3, **options), 150, directions, batch=batch)
        got = _tpe_run(cached(seed=3, **options), 150, directions, batch=batch)
    assert len(set(expected)) > 50
    assert got == expected


# ----- CachedTPESampler's shortcut: the argmax from a bounded estimate of the above density ----

_MIXED_SPACE = {  # 2 x 3 x 5 x 7 x 4 = 840 configurations: the dense sum
    "w": CategoricalDistribution((4, 8)),
    "x": CategoricalDistribution(("a", "b", "c")),
    "y": CategoricalDistribution((1, 2, 3, 4, 5)),
    "z": CategoricalDistribution(tuple(range(7))),
    "v": CategoricalDistribution((0.5, 1.0, 2.0, 4.0)),
}
_WIDE_SPACE = {f"p{i}": CategoricalDistribution(tuple(range(3 + i % 4))) for i in range(12)}  # 10^7: per configuration


def _space_run(sampler: optuna.samplers.BaseSampler, space: dict, n: int, seed: int) -> list[tuple]:
    """``n`` trials of a noisy objective on ``space``, told in order; every proposal."""
    study = optuna.create_study(sampler=sampler, direction="minimize")
    rng = np.random.default_rng(seed)
    weights = {name: rng.normal(size=len(d.choices)) for name, d in space.items()}
    proposals = []
    for _ in range(n):
        trial = study.ask(space)
        proposals.append(tuple(trial.params.values()))
        index = {name: space[name].choices.index(value) for name, value in trial.params.items()}
        study.tell(trial, round(sum(weights[name][i] for name, i in index.items()) + rng.normal() * 0.3, 2))
    return proposals


@pytest.mark.parametrize("space", [_MIXED_SPACE, _WIDE_SPACE], ids=["dense", "per-configuration"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cached_tpe_matches_optuna_over_hundreds_of_trials(space: dict, seed: int) -> None:
    cached = adapter.CachedTPESampler(seed=seed)
    got = _space_run(cached, space, 300, seed)
    assert got == _space_run(optuna.samplers.TPESampler(seed=seed), space, 300, seed)
    assert len(set(got)) > 100
    # The plain-numpy proposal made every one after the 10 random ones, and the estimates
    # decided (almost) all: exact densities only for near-ties.
    assert cached.fast_proposals == 290
    assert cached.exact_rows <= 0.05 * 290 * 24


def test_cached_tpe_matches_optuna_when_every_candidate_is_computed_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tolerance so wide that every candidate contends: the exact fallback decides each proposal.
    monkeypatch.setattr(adapter, "APPROXIMATION_TOLERANCE", 1e3)
    cached = adapter.CachedTPESampler(seed=5)
    assert _space_run(cached, _MIXED_SPACE, 120, 5) == _space_run(optuna.samplers.TPESampler(seed=5), _MIXED_SPACE, 120, 5)
    assert cached.exact_rows > 100 * 2
    assert cached.fast_proposals == 110


@pytest.mark.parametrize("space", [_MIXED_SPACE, _WIDE_SPACE], ids=["dense", "per-configuration"])
def test_cached_tpe_matches_optuna_where_powers_would_overflow(monkeypatch: pytest.MonkeyPatch, space: dict) -> None:
    # r^m is replaced by the exact "below" density and the above weights binned by m
    # (what a space of several hundred parameters needs): the same proposals.
    monkeypatch.setattr(adapter, "_LARGEST_LOG_POWER", 1.0)
    cached = adapter.CachedTPESampler(seed=4)
    assert _space_run(cached, space, 150, 4) == _space_run(optuna.samplers.TPESampler(seed=4), space, 150, 4)
    assert cached.fast_proposals == 140


def test_fast_proposal_declines_what_it_does_not_cover() -> None:
    # A running trial (constant liar), a trial filed after a later-numbered one, two
    # objectives: Optuna's own estimators propose, and the proposals are still Optuna's.
    def run(sampler: optuna.samplers.BaseSampler) -> list[tuple]:
        study = optuna.create_study(sampler=sampler)
        value = lambda t: float(t.params["a"] * t.params["b"] + t.params["d"])  # noqa: E731
        asked = []
        for _ in range(15):
            trial = study.ask(_TPE_SPACE)
            asked.append(trial)
            study.tell(trial, value(trial))
        late = study.ask(_TPE_SPACE)  # runs while the next five are asked and told
        asked.append(late)
        for _ in range(5):
            trial = study.ask(_TPE_SPACE)
            asked.append(trial)
            study.tell(trial, value(trial))
        study.tell(late, value(late))
        for _ in range(5):
            trial = study.ask(_TPE_SPACE)
            asked.append(trial)
            study.tell(trial, value(trial))
        return [tuple(t.params.values()) for t in asked]

    cached = adapter.CachedTPESampler(seed=3)
    assert run(cached) == run(optuna.samplers.TPESampler(seed=3))
    assert cached.fast_proposals == 6  # trials 10 to 15; then one running, then one out of order
    cached = adapter.CachedTPESampler(seed=3, multivariate=True)
    _tpe_run(cached, 40, ["maximize", "minimize"])
    assert cached.fast_proposals == 0
    # Pruned, failed and infeasible trials are the fast proposal's (trial 5 fails: 11 random ones).
    cached = adapter.CachedTPESampler(seed=3)
    _tpe_run(cached, 40, ["maximize"])
    assert cached.fast_proposals == 29


def test_cached_tpe_falls_back_to_optuna_for_a_numeric_parameter() -> None:
    space = {**_MIXED_SPACE, "lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}

    def run(sampler: optuna.samplers.BaseSampler) -> list[tuple]:
        study = optuna.create_study(sampler=sampler)
        out = []
        for _ in range(80):
            trial = study.ask(space)
            out.append(tuple(trial.params.values()))
            study.tell(trial, float(np.log(trial.params["lr"]) ** 2 + trial.params["y"]))
        return out

    cached = adapter.CachedTPESampler(seed=2)
    assert run(cached) == run(optuna.samplers.TPESampler(seed=2))
    assert cached.exact_rows == 0  # Optuna's own code proposed: the shortcut never ran


@pytest.mark.parametrize("choices", [[2, 3, 5, 7, 4], [3, 4, 5, 6, 3, 4, 5, 6, 3, 4, 5, 6]], ids=["dense", "per-configuration"])
@pytest.mark.parametrize("n", [1, 30, 2000])
def test_approximate_above_density_is_within_its_tolerance(choices: list[int], n: int) -> None:
    rng = np.random.default_rng(n)
    obs = np.stack([rng.integers(0, c, n) for c in choices], axis=1)
    configs, kernels = np.unique(obs, axis=0, return_inverse=True)
    params = optuna.samplers.TPESampler(seed=0)._parzen_estimator_parameters
    table = adapter._Configurations(choices)
    codes = np.array([table.id_of(tuple(int(v) for v in c)) for c in configs])
    assert np.array_equal(codes, np.arange(len(configs)))
    mixture = adapter._CategoricalMixture(configs, kernels.reshape(-1), choices, params, codes=table.codes)
    x = np.concatenate([configs[:20], np.stack([rng.integers(0, c, 20) for c in choices], axis=1)])
    approx, exact = mixture.approximate_log_pdf_of(x), mixture.log_pdf_of(x)
    assert approx is not None
    assert np.max(np.abs(approx - exact)) < 1e-11 < adapter.APPROXIMATION_TOLERANCE
    # Without the codes (or for a space over DENSE_SPACE) the per-configuration sum, same bound.
    plain = adapter._CategoricalMixture(configs, kernels.reshape(-1), choices, params)
    assert np.max(np.abs(plain.approximate_log_pdf_of(x) - exact)) < 1e-11
    assert (adapter._halves(choices) is None) == (np.prod(choices) > adapter.DENSE_SPACE)


def test_approximate_above_density_declines_a_zero_density() -> None:
    params = optuna.samplers.TPESampler(seed=0)._parzen_estimator_parameters._replace(prior_weight=0.0)
    configs = np.array([[0, 1], [2, 2]])
    mixture = adapter._CategoricalMixture(configs, np.array([0, 1, 1]), [3, 3], params)
    assert mixture.approximate_log_pdf_of(np.array([[0, 1], [1, 1]])) is None


def test_exact_density_of_a_few_rows_is_optunas_over_all_rows_bit_for_bit() -> None:
    # The fallback computes only the contending rows; each row's value must not depend on
    # which other rows are computed with it (12,000 kernels: past numpy's 8,192-element buffer).
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

    rng = np.random.default_rng(11)
    choices = [6, 6, 4, 6, 6, 3]
    space = {f"p{i}": CategoricalDistribution(tuple(range(c))) for i, c in enumerate(choices)}
    obs = np.stack([rng.integers(0, c, 12_000) for c in choices], axis=1)
    params = optuna.samplers.TPESampler(seed=0)._parzen_estimator_parameters
    stock = _ParzenEstimator({k: obs[:, i] for i, k in enumerate(space)}, space, params)
    x = np.stack([rng.integers(0, c, 24) for c in choices], axis=1)
    expected = stock.log_pdf({k: x[:, i].astype(float) for i, k in enumerate(space)})
    configs, kernels = np.unique(obs, axis=0, return_inverse=True)
    ours = adapter._CategoricalMixture(configs, kernels.reshape(-1), choices, params)
    for rows in ([3], [0, 17], list(range(24))):
        assert np.array_equal(ours.log_pdf_of(x[rows]), expected[rows])


def test_intersection_step_is_optunas() -> None:
    from optuna.search_space import intersection

    study = optuna.create_study()
    a, b = CategoricalDistribution((1, 2)), CategoricalDistribution((1, 2, 3))
    for i in range(12):
        space = {"x": a, "y": b} if i % 5 else {"x": CategoricalDistribution((1, 2)), "z": b}  # x equal, not identical; y missing
        trial = study.ask(space)
        if i % 4 == 3:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, float(i))
    study.ask({"x": a})  # running
    trials = study.get_trials(deepcopy=False)
    for pruned in (False, True):
        for cut in (0, 5, len(trials)):
            expected = intersection._calculate(trials[:cut], pruned, None, -1)
            got = adapter._intersection_step(trials[:cut], pruned, None, -1)
            assert got == expected
            step = intersection._calculate(trials, pruned, *expected)
            assert adapter._intersection_step(trials, pruned, *got) == step


# ----- the plain-numpy proposal's pieces against Optuna's Parzen estimator ----------------------


def _history(choices: list[int], n: int, seed: int) -> tuple[np.ndarray, dict, object]:
    rng = np.random.default_rng(seed)
    obs = np.stack([rng.integers(0, c, n) for c in choices], axis=1)
    space = {f"p{i}": CategoricalDistribution(tuple(range(c))) for i, c in enumerate(choices)}
    return obs, space, optuna.samplers.TPESampler(seed=0)._parzen_estimator_parameters


def _stock_log_pdf(obs: np.ndarray, space: dict, params, x: np.ndarray) -> np.ndarray:
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

    stock = _ParzenEstimator({k: obs[:, i] for i, k in enumerate(space)}, space, params)
    return stock.log_pdf({k: x[i].astype(float) for i, k in enumerate(space)})


@pytest.mark.parametrize("n_below", [1, 7, 25])
@pytest.mark.parametrize("choices", [[2, 3, 5, 7, 4], [3, 4, 5, 6, 3, 4, 5, 6, 3, 4, 5, 6], [200, 3]])
def test_exact_below_density_is_optunas_bit_for_bit(choices: list[int], n_below: int) -> None:
    obs, space, params = _history(choices, n_below, n_below)
    rng = np.random.default_rng(1)
    x = np.stack([rng.integers(0, c, 24) for c in choices])
    fast = adapter._FastSpace(choices, params)
    rows = np.concatenate([obs.T, np.array(choices)[:, np.newaxis]], axis=1)
    ours = adapter.CachedTPESampler._exact_log_below(fast, rows, fast.below(n_below), x)
    assert np.array_equal(ours, _stock_log_pdf(obs, space, params, x))


@pytest.mark.parametrize("n", [2, 30, 3000])
@pytest.mark.parametrize("choices", [[2, 3, 5, 7, 4], [3, 4, 5, 6, 3, 4, 5, 6, 3, 4, 5, 6]], ids=["dense", "per-configuration"])
def test_density_estimates_are_within_tolerance_of_optunas(choices: list[int], n: int) -> None:
    obs, space, params = _history(choices, n, n)
    rng = np.random.default_rng(2)
    x = np.concatenate([obs[:12].T, np.stack([rng.integers(0, c, 12) for c in choices])], axis=1)
    # The history filed as the sampler files it; some trials "below", in number order.
    configs = adapter._Configurations(choices)
    for row in obs:
        configs.append(tuple(int(v) for v in row))
    below_slots = sorted(set(rng.integers(0, n, min(n - 1, 25)).tolist()))  # >= 1 of each
    below_ids = configs.slot_ids[below_slots]
    below_exact = _stock_log_pdf(obs[below_slots], space, params, x)
    above_exact = _stock_log_pdf(np.delete(obs, below_slots, axis=0), space, params, x)
    sampler = adapter.CachedTPESampler(seed=0)
    fast = adapter._FastSpace(choices, params)
    dense = configs.radix is not None and len(configs.index) * len(choices) * adapter._DENSE_FACTOR > np.prod(choices)
    assert dense == (n == 3000 and len(choices) == 5)  # both sums are tested
    for largest in (adapter._LARGEST_LOG_POWER, 1.0):  # r^m; then binned by m, "below" declined
        adapter._LARGEST_LOG_POWER, saved = largest, adapter._LARGEST_LOG_POWER
        try:
            below, above = sampler._log_density_estimates(
                fast, configs, below_slots, below_ids, fast.below(len(below_slots)), x.astype(configs.choice_dtype)
            )
        finally:
            adapter._LARGEST_LOG_POWER = saved
        assert np.max(np.abs(above - above_exact)) < 1e-11 < adapter.APPROXIMATION_TOLERANCE
        if largest == 1.0:
            assert below is None
        else:
            assert np.max(np.abs(below - below_exact)) < 1e-11


def test_above_weights_kept_between_proposals_are_optunas_default_weights() -> None:
    # Trials filed one at a time; the below set sometimes changes (then a rebuild), mostly
    # not (then the sums are updated): each time Optuna's default_weights summed per
    # configuration, and their total.
    from optuna.samplers._tpe.sampler import default_weights

    rng = np.random.default_rng(5)
    configs = adapter._Configurations([3, 4])
    kept = adapter._AboveWeights()
    below: list[int] = []
    rebuilt = 0
    for n in range(1, 400):
        configs.append((int(rng.integers(3)), int(rng.integers(4))))
        if n < 30 or rng.random() < 0.1:
            below = sorted(rng.choice(n, size=min(n - 1, 25), replace=False).tolist())
            rebuilt += 1
        weights, total = kept.weights(configs, below)
        above = np.delete(configs.slot_ids[:n], below)
        expected = default_weights(len(above))
        assert np.allclose(weights, np.bincount(above, weights=expected, minlength=len(configs.index)), rtol=1e-12, atol=0)
        assert total == pytest.approx(expected.sum(), rel=1e-12)
    assert 30 < rebuilt < 100
