"""The search loop on a small real problem (tests/study/study_toy.py): dedup, brute force,
resume, failures, interruption, threads, fingerprint."""

from __future__ import annotations

import json
import math
import time

import optuna
import pytest
from bitscout.evaluation import RunnerEvaluator
from tests.study.study_toy import ToyObjective, ToyRunners, ToySpace, toy_metrics

from bitscout.errors import SearchError
from bitscout.study import (
    DUPLICATE_ATTR,
    FIRST_FAILURES,
    JOURNAL_FILE,
    SearchResult,
    open_storage,
    run_search,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

SMALL = {"fc1": (2, 3, 4), "fc2": (2, 4), "fc3": (3, 5)}  # 12 configurations


def _key(config):
    return tuple(sorted((k, v.width) for k, v in config.items()))


def _search(tmp_path, space, runners, objective=None, *, sampler=None, n_trials=10, **kw):
    kw.setdefault("write_outputs", False)  # plots cost time; tests/study/test_outputs.py covers them
    return run_search(
        space,
        sampler or optuna.samplers.RandomSampler(seed=0),
        RunnerEvaluator(runners, objective or ToyObjective()),
        out_dir=tmp_path,
        n_trials=n_trials,
        progress=False,
        **kw,
    )


def _enumerated_best(space, objective):
    scored = [(objective.evaluate(toy_metrics(c)).values[0], _key(c)) for c in space.enumerate()]
    return max(scored)


def test_brute_force_visits_each_configuration_once_and_finds_the_true_best(tmp_path):
    space = ToySpace(SMALL)
    runners = ToyRunners()
    result = _search(tmp_path, space, runners, sampler=optuna.samplers.BruteForceSampler(seed=3), n_trials=100)

    assert sorted(runners.calls) == sorted(_key(c) for c in space.enumerate())
    assert len(set(runners.calls)) == space.size == result.n_unique == 12
    assert result.n_duplicates == 0
    best_value, best_key = _enumerated_best(space, ToyObjective())
    assert result.best.values[0] == pytest.approx(best_value, abs=0)
    assert tuple(sorted((k, v["weight_width"]) for k, v in result.best.sampled_config.items())) == best_key


def test_duplicates_are_answered_from_the_study_not_evaluated(tmp_path):
    space = ToySpace({"fc1": (2, 8), "fc2": (2, 8), "fc3": (4,)})  # 4 configurations
    runners = ToyRunners()
    # TPE proposes the same few points again and again on a 4-point space; the space
    # check stops the run only once all 4 exist, so force duplicates with a fixed sampler.
    sampler = optuna.samplers.RandomSampler(seed=1)
    result = _search(tmp_path, space, runners, sampler=sampler, n_trials=3)
    for _ in range(3):  # same config enqueued three more times
        study = optuna.load_study(study_name="bitscout", storage=open_storage(None, tmp_path)[0])
        study.enqueue_trial(result.trials[0].params)
    result = _search(tmp_path, space, runners, sampler=sampler, n_trials=6)

    assert len(runners.calls) == len(set(runners.calls)) == result.n_unique
    assert result.n_duplicates == 6 - result.n_unique >= 3
    by_number = {t.number: t for t in result.trials}
    for t in result.trials:
        if t.duplicate_of is not None:
            first = by_number[t.duplicate_of]
            assert first.duplicate_of is None and first.number < t.number
            assert t.params == first.params
            assert t.values == first.values
            assert t.software_metrics == first.software_metrics
    stored = optuna.load_study(study_name="bitscout", storage=open_storage(None, tmp_path)[0])
    assert sum(DUPLICATE_ATTR in t.user_attrs for t in stored.trials) == result.n_duplicates


def test_search_stops_when_every_configuration_is_evaluated(tmp_path):
    space = ToySpace({"fc1": (2, 8), "fc2": (2, 8), "fc3": (4,)})
    runners = ToyRunners()
    result = _search(tmp_path, space, runners, n_trials=200)
    assert result.n_unique == 4
    assert "every one of the 4 configurations" in result.stop_reason
    assert result.n_trials < 200


def test_same_configuration_in_two_studies_gives_identical_metrics(tmp_path):
    space = ToySpace(SMALL)
    a = _search(tmp_path / "a", space, ToyRunners(), sampler=optuna.samplers.BruteForceSampler(seed=1), n_trials=12)
    b = _search(tmp_path / "b", space, ToyRunners(), sampler=optuna.samplers.BruteForceSampler(seed=2), n_trials=12)
    by_params_a = {json.dumps(t.params, sort_keys=True): t for t in a.complete}
    for t in b.complete:
        other = by_params_a[json.dumps(t.params, sort_keys=True)]
        assert t.software_metrics == other.software_metrics
        assert t.hardware_metrics == other.hardware_metrics
        assert t.values == other.values


def test_resume_continues_to_n_trials_in_total(tmp_path):
    space = ToySpace({"fc1": (2, 3, 4, 5, 6, 8), "fc2": (2, 3, 4, 5, 6, 8), "fc3": (2, 3, 4, 5, 6, 8)})
    first = _search(tmp_path, space, ToyRunners(), n_trials=5)
    assert first.n_trials == 5
    runners = ToyRunners()
    second = _search(tmp_path, space, runners, sampler=optuna.samplers.RandomSampler(seed=7), n_trials=12)
    assert second.n_trials == 12
    assert [t.number for t in second.trials] == list(range(12))
    assert second.trials[:5] == first.trials  # earlier trials kept as they were
    assert len(runners.calls) == 12 - 5 - second.n_duplicates
    again = _search(tmp_path, space, ToyRunners(), n_trials=12)
    assert again.n_trials == 12 and "n_trials" in again.stop_reason


def test_resume_refuses_another_space(tmp_path):
    _search(tmp_path, ToySpace(SMALL), ToyRunners(), n_trials=2)
    other = ToySpace({**SMALL, "fc2": (2, 4, 8)})
    with pytest.raises(SearchError, match=r"(?s)space differs.*fc2/weight_width.*--study-name"):
        _search(tmp_path, other, ToyRunners(), n_trials=4)
    with pytest.raises(SearchError, match="directions"):
        _search(tmp_path, ToySpace(SMALL), ToyRunners(), ToyObjective(summed=False), n_trials=4)
    # another study name in the same storage is a fresh study
    fresh = _search(tmp_path, other, ToyRunners(), n_trials=3, study_name="wider")
    assert fresh.n_trials == 3 and fresh.study_name == "wider"


def test_failures_are_stored_with_their_message_and_the_search_goes_on(tmp_path):
    space = ToySpace(SMALL)
    bad = (("fc1", 2), ("fc2", 2), ("fc3", 3))
    nan = (("fc1", 3), ("fc2", 4), ("fc3", 5))
    runners = ToyRunners(fail_on=[bad], nan_on=[nan])
    result = _search(tmp_path, space, runners, sampler=optuna.samplers.BruteForceSampler(seed=0), n_trials=12, write_outputs=True)
    failed = {tuple(sorted((k, v["weight_width"]) for k, v in t.sampled_config.items())): t for t in result.trials if t.state == "FAIL"}
    assert set(failed) == {bad, nan}
    assert failed[bad].error == f"RuntimeError: runner broke on {bad}"
    assert "objective value is nan" in failed[nan].error and "accuracy = nan" in failed[nan].error
    assert result.n_failed == 2 and result.n_unique == 10
    log = json.loads((tmp_path / "log.json").read_text())
    assert {r["error"] for r in log if r["state"] == "FAIL"} == {failed[bad].error, failed[nan].error}


def test_first_five_failures_stop_the_search_with_the_first_error(tmp_path):
    runners = ToyRunners(fail_all=True)
    with pytest.raises(SearchError) as info:
        _search(tmp_path, ToySpace(SMALL), runners, n_trials=50, write_outputs=True)
    assert len(runners.calls) == FIRST_FAILURES
    assert f"first {FIRST_FAILURES} trials" in str(info.value)
    assert f"RuntimeError: runner broke on {runners.calls[0]}" in str(info.value)
    saved = SearchResult.load(tmp_path)  # outputs were written before the error
    assert saved.n_failed == FIRST_FAILURES


def test_ctrl_c_keeps_finished_trials_and_the_interrupted_configuration_runs_again(tmp_path):
    space = ToySpace(SMALL)
    runners = ToyRunners(interrupt_at_call=4)
    result = _search(tmp_path, space, runners, n_trials=10, write_outputs=True)
    assert result.interrupted
    *done, last = result.trials
    assert [t.state for t in done] == ["COMPLETE"] * len(done)
    assert sum(t.duplicate_of is None for t in done) == 3  # the evaluations before Ctrl-C
    assert last.state == "FAIL" and "Ctrl-C" in last.error
    assert (tmp_path / "log.json").is_file()

    resumed_runners = ToyRunners()
    resumed = _search(tmp_path, space, resumed_runners, n_trials=10)
    assert resumed.n_trials - 1 == 10  # the interrupted trial does not count
    rerun = resumed.trials[last.number + 1]
    assert rerun.params == last.params and rerun.state == "COMPLETE"
    assert resumed_runners.calls[0] == runners.calls[3]


def test_stale_running_trial_of_a_dead_run_is_failed_and_rerun(tmp_path):
    space = ToySpace(SMALL)
    _search(tmp_path, space, ToyRunners(), n_trials=3)
    storage, _ = open_storage(None, tmp_path)
    study = optuna.load_study(study_name="bitscout", storage=storage)
    orphan = study.ask(space.distributions())  # left RUNNING, as a killed run leaves it
    del study, storage

    runners = ToyRunners()
    result = _search(tmp_path, space, runners, n_trials=6)
    assert result.trials[3].state == "FAIL" and result.trials[3].error.startswith("interrupted")
    assert result.trials[4].params == orphan.params and result.trials[4].state == "COMPLETE"
    assert result.n_trials == 7  # 6 counted + the interrupted one


def test_threads_evaluate_each_configuration_once(tmp_path):
    space = ToySpace(SMALL)
    runners = ToyRunners(sleep_s=0.01)
    result = _search(tmp_path, space, runners, n_trials=20, n_jobs=3)
    assert len(runners.calls) == len(set(runners.calls)) == result.n_unique
    assert result.n_trials <= 20
    assert result.n_unique + result.n_duplicates == result.n_trials


def test_timeout_is_honoured(tmp_path):
    runners = ToyRunners(sleep_s=0.05)
    space = ToySpace({"fc1": (2, 3, 4, 5, 6, 8), "fc2": (2, 3, 4, 5, 6, 8), "fc3": (2, 3, 4, 5, 6, 8)})
    started = time.monotonic()
    result = _search(tmp_path, space, runners, n_trials=1000, timeout=0.3)
    # Not before the timeout, and no new trial after it: an evaluation sleeps 0.05 s, so
    # at most 6 start within 0.3 s (and a few duplicates, answered without one). How many
    # do start is the machine's load, not the loop's: no lower bound on them.
    assert time.monotonic() - started >= 0.3
    assert "timeout" in result.stop_reason
    assert result.n_unique <= 6 and result.n_trials <= 10


def test_multi_objective_gives_the_pareto_set_of_the_evaluated_trials(tmp_path):
    space = ToySpace(SMALL)
    result = _search(tmp_path, space, ToyRunners(), ToyObjective(summed=False), sampler=optuna.samplers.BruteForceSampler(seed=0), n_trials=12, write_outputs=True)
    points = [(toy_metrics(c).software["accuracy"], toy_metrics(c).hardware["average_bitwidth"]) for c in space.enumerate()]
    expected = {p for p in points if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)}
    assert {t.values for t in result.pareto} == expected
    best = json.loads((tmp_path / "best.json").read_text())
    assert {tuple(r["values"]) for r in best["pareto"]} == expected


def test_default_storage_is_a_journal_file_in_the_run_folder(tmp_path):
    _search(tmp_path, ToySpace(SMALL), ToyRunners(), n_trials=3)
    journal = tmp_path / JOURNAL_FILE
    assert journal.is_file()
    # Optuna's stock reader (what optuna-dashboard uses) reads it back.
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="bitscout", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert len(study.trials) == 3 and all(math.isfinite(t.value) for t in study.trials)


def test_sqlite_url_storage_works(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = _search(tmp_path, ToySpace(SMALL), ToyRunners(), n_trials=3, storage=url, study_name="s")
    assert result.n_trials == 3
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 3


def test_a_twin_that_finishes_while_another_worker_looks_is_still_found(tmp_path):
    """Two workers, one configuration: the later trial must reuse the earlier one's result.

    Deterministic replay of a race seen with four PostgreSQL workers: the earlier trial
    (another process's) completes just after the later worker has read the finished
    trials and just before it lists the running ones. The later trial must still be
    answered as a duplicate, not evaluated a second time.
    """
    from bitscout.study._search import _Search

    space, objective = ToySpace(SMALL), ToyObjective()
    storage = optuna.storages.InMemoryStorage()
    other = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    params = {"fc1/weight_width": 3, "fc2/weight_width": 4, "fc3/weight_width": 5}
    other.enqueue_trial(params)
    twin = other.ask(space.distributions())  # "another worker's" running trial
    ours = optuna.load_study(storage=storage, study_name="s")
    search = _Search(ours, space, RunnerEvaluator(ToyRunners(), objective), n_trials=5, timeout=None,
                     exhaustible=None, progress=None)
    search.index.refresh()
    assert search.index.running == 1
    trial = ours.ask(space.distributions())
    key = space.key(space.decode(params))
    value = objective.evaluate(toy_metrics(space.decode(params))).values[0]

    refresh = search.index.refresh
    finished = []

    def refresh_then_twin_finishes() -> None:
        refresh()
        if not finished:
            finished.append(True)
            other.tell(twin, value)

    search.index.refresh = refresh_then_twin_finishes
    assert search._await_other_workers(trial, key) == (twin.number, (value,))
