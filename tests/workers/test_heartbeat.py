"""Heartbeat storages: a trial whose worker is gone is failed and queued again, once.

Two ways a worker is seen to be gone: its process on this machine has exited (seen at
once, by its pid and start time), or, for a worker on another machine, no heartbeat for
longer than the grace period. Both are checked on the journal file and on PostgreSQL.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from bitscout._optuna_adapter import backend_of as _backend_of
from bitscout.errors import SearchError
from bitscout.study._index import RETRY_ATTR
from bitscout.study._locks import ask_lock
from bitscout.study._worker_storage import (
    HEARTBEAT_ATTR,
    OWNER_ATTR,
    HeartbeatSettings,
    database_url,
    fail_stale_trials,
    open_worker_storage,
)
from tests.workers.workers_helpers import REPO, poll, unique_name

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"w": CategoricalDistribution((2, 4, 8))}
FAST = HeartbeatSettings(interval=1, grace=2, max_retry=1)


@pytest.fixture(params=["journal", "postgres"])
def storage_url(request, tmp_path):
    if request.param == "journal":
        return str(tmp_path / "study.journal")
    return request.getfixturevalue("postgres_url")


def _storage(url, tmp_path, heartbeat=FAST):
    return open_worker_storage(url, tmp_path, heartbeat=heartbeat)[0]


def test_settings_reject_what_cannot_work():
    assert HeartbeatSettings(interval=5).grace_s == 15
    with pytest.raises(SearchError, match="larger than the interval"):
        HeartbeatSettings(interval=5, grace=5)
    with pytest.raises(SearchError, match="whole number of seconds"):
        HeartbeatSettings(interval=0)


def test_database_url_picks_the_installed_postgres_driver():
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert database_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    import importlib.util

    driver = "postgresql://" if importlib.util.find_spec("psycopg") else "postgresql+psycopg2://"
    assert database_url("postgresql://u@h:5432/db") == f"{driver}u@h:5432/db"


def test_a_trial_records_its_owner_and_a_live_one_is_never_stale(storage_url, tmp_path):
    storage = _storage(storage_url, tmp_path)
    study = optuna.create_study(storage=storage, study_name=unique_name("live"))
    trial = study.ask(SPACE)
    owner = storage.get_trial(trial._trial_id).system_attrs[OWNER_ATTR]
    assert (owner["pid"], owner["host"]) == (os.getpid(), os.uname().nodename)
    time.sleep(FAST.grace_s + 0.5)  # past the grace period: the beat keeps it alive
    assert fail_stale_trials(study) == []
    study.tell(trial, 1.0)
    assert study.trials[0].state == TrialState.COMPLETE


def test_no_heartbeat_from_another_machine_fails_the_trial_after_the_grace_period(storage_url, tmp_path):
    storage = _storage(storage_url, tmp_path)
    name = unique_name("foreign")
    study = optuna.create_study(storage=storage, study_name=name)
    trial = study.ask(SPACE)
    # Make the trial another machine's: this process stops beating it and cannot see
    # that process, so only the missing heartbeat can tell it is lost.
    storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, {"host": "elsewhere", "pid": 1, "created": 0.0})
    _backend_of(storage)._beater.discard(trial._trial_id)
    # Its last beat, written here: the grace period runs from it, whenever the beating
    # thread last ran (on a loaded machine a beat can be late by more than the interval).
    started = time.monotonic()
    storage.record_heartbeat(trial._trial_id)
    while not (failed := fail_stale_trials(study)):
        assert time.monotonic() - started < FAST.grace_s + 60, "the trial was never found stale"
        time.sleep(0.1)
    waited = time.monotonic() - started
    assert failed == [trial.number]
    assert waited >= FAST.grace_s - 0.05  # not before the grace period (0.05 s: clocks apart)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].user_attrs[RETRY_ATTR] == trial.number
    # The queued copy runs the same configuration in the next ask (any worker's).
    retry = study.ask(SPACE)
    assert retry.number == 1 and retry.params == trial.params
    assert fail_stale_trials(study) == []  # the retry belongs to a live process


_KILLED_WORKER = textwrap.dedent(
    """
    import os, signal, sys
    import optuna
    from optuna.distributions import CategoricalDistribution
    from bitscout.study._worker_storage import open_worker_storage

    storage, _ = open_worker_storage(sys.argv[1], sys.argv[2])
    study = optuna.load_study(study_name=sys.argv[3], storage=storage)
    done = study.ask({"w": CategoricalDistribution((2, 4, 8))})
    study.tell(done, 0.5)
    study.ask({"w": CategoricalDistribution((2, 4, 8))})
    os.kill(os.getpid(), signal.SIGKILL)  # dies mid-trial
    """
)


def test_a_worker_killed_on_this_machine_is_seen_at_once_and_retried_once(storage_url, tmp_path):
    # A long heartbeat: only the dead process can make the trial stale within the test.
    slow = HeartbeatSettings(interval=600, max_retry=1)
    storage = _storage(storage_url, tmp_path, heartbeat=slow)
    name = unique_name("killed")
    study = optuna.create_study(storage=storage, study_name=name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WORKER, storage_url, str(tmp_path), name], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    finished, lost = study.get_trials()
    assert (finished.state, finished.values, lost.state) == (TrialState.COMPLETE, [0.5], TrialState.RUNNING)

    assert fail_stale_trials(study) == [lost.number]
    assert fail_stale_trials(study) == []  # failed once, queued once
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert trials[0].values == [0.5]  # the finished trial is untouched
    retry = study.ask(SPACE)
    assert retry.params == lost.params
    # Killed again: with max_retry = 1 the configuration is not queued a third time.
    storage.set_trial_system_attr(retry._trial_id, OWNER_ATTR, {"host": os.uname().nodename, "pid": proc_pid_gone(), "created": 0.0})
    _backend_of(storage)._beater.discard(retry._trial_id)
    assert fail_stale_trials(study) == [retry.number]
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]


def proc_pid_gone() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_ask_lock_excludes_other_processes(storage_url, tmp_path):
    storage = _storage(storage_url, tmp_path)
    name = unique_name("lock")
    optuna.create_study(storage=storage, study_name=name)
    # The other process holds the lock until told to let go, and says when it lets go:
    # this process must get the lock only after that, however long either is descheduled.
    holder = textwrap.dedent(
        """
        import sys, time
        from bitscout.study._locks import ask_lock
        from bitscout.study._worker_storage import open_worker_storage

        storage, _ = open_worker_storage(sys.argv[1], sys.argv[2])
        with ask_lock(storage, sys.argv[3]):
            print("held", flush=True)
            sys.stdin.readline()
            print(time.time(), flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, storage_url, str(tmp_path), name], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline().strip() == b"held"

        def let_go_soon():
            time.sleep(0.5)  # this process is waiting for the lock by then (if not, it only proves less)
            proc.stdin.write(b"go\n")
            proc.stdin.flush()

        threading.Thread(target=let_go_soon, daemon=True).start()
        with ask_lock(storage, name):
            acquired = time.time()
        let_go = float(proc.stdout.readline())
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert acquired >= let_go  # it waited for the other process to let go
    with ask_lock(storage, unique_name("other")):  # another study: no wait
        pass


def test_a_new_storage_never_takes_the_ask_lock_of_a_dropped_one(tmp_path):
    # Locks were cached by id(storage): a storage made where a dropped one had been in
    # memory (18 of 30 in a row were) got that one's lock, on the other study's file, so
    # the workers of its study did not exclude each other.
    for i in range(12):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        storage = _storage(str(folder / "study.journal"), folder)
        with ask_lock(storage, "bitscout"):
            assert (folder / "study.journal.ask.lock").is_file()
        del storage
        gc.collect()


def test_journal_heartbeat_attr_is_written_only_for_long_trials(tmp_path):
    # A trial that ends within the interval (60 s, so that no stall of this machine makes
    # it long) is written no beat; one that runs on gets beats, every interval (1 s).
    quick_storage = _storage(str(tmp_path / "quick.journal"), tmp_path, heartbeat=HeartbeatSettings(interval=60))
    study = optuna.create_study(storage=quick_storage, study_name="short")
    quick = study.ask(SPACE)
    study.tell(quick, 1.0)
    assert HEARTBEAT_ATTR not in study.trials[0].system_attrs  # no write beyond its owner
    storage = _storage(str(tmp_path / "study.journal"), tmp_path)
    study = optuna.create_study(storage=storage, study_name="long")
    asked = time.time()
    slow = study.ask(SPACE)
    beats = poll(lambda: storage.get_trial(slow._trial_id).system_attrs.get(HEARTBEAT_ATTR),
                 timeout=60, what="the running trial's first beat", every=0.1)
    assert beats >= asked + FAST.interval - 0.05  # the first beat one interval after the start
    study.tell(slow, 1.0)
    assert Path(tmp_path / "study.journal").is_file()


def test_sqlite_storage_beats_for_its_trials_and_pickles_without_its_thread(tmp_path):
    # The RDB heartbeat storage without a PostgreSQL server: SQLite takes the same path
    # (owner recorded at creation, beats while running, none after the trial finishes).
    import pickle

    from bitscout._optuna_adapter import backend_of as backend_of_storage

    storage = _storage(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    study = optuna.create_study(storage=storage, study_name=unique_name("sqlite"))
    trial = study.ask(SPACE)
    rdb = backend_of_storage(storage)
    assert trial._trial_id in rdb._beater.owned
    assert storage.get_trial(trial._trial_id).system_attrs[OWNER_ATTR]["pid"] == os.getpid()
    study.tell(trial, 1.0)
    assert trial._trial_id not in rdb._beater.owned
    copy = pickle.loads(pickle.dumps(rdb))
    assert copy._beater is not rdb._beater and not copy._beater.owned
