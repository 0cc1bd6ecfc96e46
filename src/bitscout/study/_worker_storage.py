"""Storages many workers can share: heartbeats, retries of lost trials, opening a storage.

Workers are processes (on one machine or many) that run the same search on one Optuna
study. They never talk to each other: everything goes through the study's storage.
:func:`open_worker_storage` opens the run folder's journal file
(:class:`HeartbeatJournalStorage`) or an RDB URL such as ``postgresql://user@host:5432/db``
(:class:`HeartbeatRDBStorage`). Each process keeps a beat on the trials it runs, from one
background thread (:class:`HeartbeatSettings`: every ``interval`` seconds); a RUNNING trial
whose last beat is older than ``grace`` seconds, or whose process is gone (same host:
:func:`bitscout.study._process.is_gone`), is *stale*. :func:`fail_stale_trials` marks stale
trials FAIL and queues each configuration again (:class:`RetryLostTrial`, at most
``max_retry`` times). Finished trials are never touched.

The rest of the multi-worker machinery: the ask lock that keeps one budget
(:mod:`bitscout.study._locks`), local worker processes (:mod:`bitscout.study._pool`) and
reports of a shared study (:mod:`bitscout.study._study_report`).

Optuna 5.0's ``JournalStorage`` has no heartbeat of its own (only ``RDBStorage`` has);
:class:`HeartbeatJournalStorage` adds one on top of the same file format, so that
``optuna-dashboard study.journal`` still reads it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import random
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import FrozenTrial, TrialState

from bitscout._optuna_adapter import (
    BaseHeartbeat,
    CreatedTrialHook,
    IndexedJournalStorage,
    LocalJournalBackend,
    StaleTrialHook,
    backend_of,
    cached_rdb_storage,
    running_trials,
    storage_of,
    study_id,
    trial_id,
)
from bitscout.errors import SearchError
from bitscout.study._index import RETRY_ATTR
from bitscout.study._process import identity, is_gone
from bitscout.study._store import JOURNAL_FILE

__all__ = [
    "HeartbeatSettings",
    "HeartbeatJournalStorage",
    "HeartbeatRDBStorage",
    "open_storage",
    "open_worker_storage",
    "fail_stale_trials",
    "owner_of",
    "OWNER_ATTR",
    "RETRY_HISTORY_ATTR",
    "RetryLostTrial",
    "HEARTBEAT_ATTR",
    "database_url",
]

_log = logging.getLogger(__name__)

#: Trial system attr: the process running the trial (host, pid, process start time).
OWNER_ATTR = "bitscout_owner"
#: Trial system attr of the journal storage: time of the last heartbeat (Unix seconds).
HEARTBEAT_ATTR = "bitscout_heartbeat"
#: Folder of the run folder where local worker processes write their logs.


@dataclass(frozen=True)
class HeartbeatSettings:
    """How workers tell that a trial's process is gone, and how often its trial is retried.

    Attributes:
        interval: Seconds between two heartbeats of a running trial (an integer: Optuna's
            RDB storage counts whole seconds).
        grace: Seconds without a heartbeat after which a running trial is stale; None:
            ``3 * interval``. A worker on this machine whose process has exited is seen
            at once, without waiting for the grace period.
        max_retry: How many times the configuration of a stale trial is queued again.
    """

    interval: int = 10
    grace: int | None = None
    max_retry: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.interval, int) or self.interval < 1:
            raise SearchError(
                f"the heartbeat interval must be a whole number of seconds >= 1; got {self.interval!r}"
            )
        if self.grace is not None and (not isinstance(self.grace, int) or self.grace <= self.interval):
            raise SearchError(
                "the heartbeat grace period must be a whole number of seconds larger than the "
                f"interval ({self.interval}); got {self.grace!r}"
            )
        if self.max_retry < 0:
            raise SearchError(f"max_retry must be >= 0; got {self.max_retry!r}")

    @property
    def grace_s(self) -> int:
        """The grace period in seconds (``grace``, or ``3 * interval``)."""
        return self.grace if self.grace is not None else 3 * self.interval


# ----- who runs a trial ---------------------------------------------------------------------


def owner_of(trial: FrozenTrial) -> dict[str, Any] | None:
    """The process recorded as running ``trial`` (``{"host", "pid", "created"}``), or None."""
    owner = trial.system_attrs.get(OWNER_ATTR)
    return owner if isinstance(owner, Mapping) else None


def _owner_is_gone(owner: Mapping[str, Any] | None, mine: set[int], trial_id: int) -> bool:
    """True only when the owner is known to have exited (see :func:`bitscout.study._process.is_gone`);
    a trial of this process is gone when this process no longer beats for it."""
    if owner is not None and owner.get("host") == socket.gethostname() and owner.get("pid") == os.getpid():
        return trial_id not in mine
    return is_gone(owner)


def _running_template() -> FrozenTrial:
    """A new RUNNING trial that names its owner, written in the same storage operation."""
    return FrozenTrial(
        number=-1,
        state=TrialState.RUNNING,
        value=None,
        values=None,
        datetime_start=datetime.now(),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={OWNER_ATTR: identity()},
        intermediate_values={},
        trial_id=-1,
    )


class _Beater:
    """The trials this process runs, and the thread that keeps a heartbeat on them.

    The thread beats every owned trial every ``interval`` seconds and, with
    ``immediate``, each trial as soon as it starts running here (Optuna's RDB storage
    never counts a trial without any beat as stale). A trial leaves the set before its
    final state is written, under the same lock as the beats, so no beat is ever
    written for a finished trial.
    """

    def __init__(self, beat: Callable[[int], None], interval: float, *, immediate: bool = False) -> None:
        self._beat = beat
        self._interval = interval
        self._immediate = immediate
        self._lock = threading.Lock()
        self._owned: set[int] = set()
        self._fresh: set[int] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = -1

    @property
    def owned(self) -> set[int]:
        with self._lock:
            return set(self._owned)

    def add(self, trial_id: int) -> None:
        with self._lock:
            self._owned.add(trial_id)
            if self._immediate:
                self._fresh.add(trial_id)
        self._ensure_thread()
        if self._immediate:
            self._wake.set()

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._owned.discard(trial_id)
            self._fresh.discard(trial_id)

    @contextlib.contextmanager
    def finishing(self, trial_id: int) -> Iterator[None]:
        """Hold the beats while the trial's final state is written."""
        with self._lock:
            self._owned.discard(trial_id)
            self._fresh.discard(trial_id)
            yield

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="bitscout-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_round = time.monotonic()
        while True:
            self._wake.wait(timeout=self._interval)
            self._wake.clear()
            now = time.monotonic()
            every = now - last_round >= self._interval
            if every:
                last_round = now
            with self._lock:
                targets = sorted(self._owned if every else self._fresh)
                self._fresh.clear()
                for trial_id in targets:
                    try:
                        self._beat(trial_id)
                    except UpdateFinishedTrialError:
                        # Failed as stale by another worker: it was retried there.
                        self._owned.discard(trial_id)
                    except Exception:  # noqa: BLE001  (a lost beat is retried next round)
                        _log.debug("heartbeat of trial %d failed", trial_id, exc_info=True)


#: Trial system attr of a queued retry: the numbers of the lost trials it reruns, oldest first.
RETRY_HISTORY_ATTR = "bitscout_retry_history"


class RetryLostTrial:
    """Queue the configuration of a lost trial again, at most ``max_retry`` times.

    The copy is an ordinary queued trial (``study.enqueue_trial``'s form: the parameters
    as ``fixed_params``) with the user attr ``bitscout_retry_of`` naming the lost trial,
    which is what bitscout's resume writes too; the next ``study.ask()`` of any worker
    runs it before anything new.

    Args:
        max_retry: How many times one configuration is queued again.
    """

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        history = [*trial.system_attrs.get(RETRY_HISTORY_ATTR, []), trial.number]
        if len(history) > self.max_retry or not trial.params:
            return
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                system_attrs={"fixed_params": dict(trial.params), RETRY_HISTORY_ATTR: history},
                user_attrs={RETRY_ATTR: trial.number},
            )
        )


def database_url(url: str) -> str:
    """The URL with a PostgreSQL driver that is installed.

    SQLAlchemy 2.1 reads ``postgresql://`` as psycopg 3, while the ``postgres`` extra
    of bitscout installs psycopg2: a URL without a driver gets the one that is there.
    """
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return f"postgresql://{rest}"


class _BeatingStorage:
    """What both heartbeat storages do with their trials: beat for the ones this process
    runs (owner recorded when a queued trial is taken), stop beating when one finishes,
    and leave the beating thread out of a pickled copy.

    ``_immediate``: the first beat at once (RDB: Optuna's own sweep reads the beat table).
    """

    _immediate = False
    heartbeat: HeartbeatSettings
    _beater: _Beater

    def _new_beater(self) -> _Beater:
        return _Beater(self.record_heartbeat, self.heartbeat.interval, immediate=self._immediate)  # type: ignore[attr-defined]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        state.pop("_beater", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        self._beater = self._new_beater()

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        if state.is_finished():
            with self._beater.finishing(trial_id):
                return super().set_trial_state_values(trial_id, state, values)
        taken = super().set_trial_state_values(trial_id, state, values)
        if state == TrialState.RUNNING and taken:  # a queued trial this process now runs
            self.set_trial_system_attr(trial_id, OWNER_ATTR, identity())
            self._beater.add(trial_id)
        return taken


# ----- the journal file with a heartbeat -----------------------------------------------------


class HeartbeatJournalStorage(_BeatingStorage, StaleTrialHook, IndexedJournalStorage, BaseHeartbeat):
    """Optuna's journal storage plus a heartbeat, for several processes on one machine.

    Every new trial records its owner in the same journal line that creates it; running
    trials get a heartbeat (a trial system attr) every ``interval`` seconds. A running
    trial is stale when its owner on this machine has exited, or its last heartbeat (or
    start) is older than the grace period.

    Args:
        backend: The journal backend (bitscout's :class:`~bitscout.study.LocalJournalBackend`).
        heartbeat: Heartbeat interval, grace period and retries.
    """

    def __init__(self, backend: BaseJournalBackend, heartbeat: HeartbeatSettings = HeartbeatSettings()) -> None:
        super().__init__(backend)
        self.heartbeat = heartbeat
        self._beater = self._new_beater()
        self._retry = RetryLostTrial(heartbeat.max_retry)


    # -- ownership ----------------------------------------------------------------------

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial or _running_template())
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self._beater.add(trial_id)
        return trial_id


    # -- BaseHeartbeat ------------------------------------------------------------------

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def stale_trials(self, study_id: int) -> list[int]:
        now = time.time()
        grace = self.heartbeat.grace_s
        mine = self._beater.owned
        stale = []
        for trial in running_trials(self, study_id):
            tid = trial_id(trial)
            if _owner_is_gone(owner_of(trial), mine, tid):
                stale.append(tid)
                continue
            last = trial.system_attrs.get(HEARTBEAT_ATTR)
            start = trial.datetime_start.timestamp() if trial.datetime_start else None
            seen = max((t for t in (last, start) if isinstance(t, (int, float))), default=None)
            if seen is not None and now - seen > grace and tid not in mine:
                stale.append(tid)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat.interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._retry

    def get_failed_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._retry  # the name Optuna < 4.9 calls


# ----- an RDB (PostgreSQL) storage that knows its trials' owners ----------------------------


class HeartbeatRDBStorage(_BeatingStorage, StaleTrialHook, CreatedTrialHook, RDBStorage):
    """Optuna's RDB storage with its heartbeat on, beating from one thread per process.

    Optuna beats only inside ``study.optimize``; bitscout's loop uses ask-and-tell, so
    this storage keeps the beat itself (on every trial this process runs). Trials also
    record their owner: a trial whose process on this machine has exited is stale at
    once; one on another machine after the grace period.

    Args:
        url: The database URL (``postgresql://user@host:5432/db``, ``sqlite:///f.db``).
        heartbeat: Heartbeat interval, grace period and retries.
        engine_kwargs: Passed to SQLAlchemy's ``create_engine``.
    """

    def __init__(
        self,
        url: str,
        heartbeat: HeartbeatSettings = HeartbeatSettings(),
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"heartbeat_interval": heartbeat.interval, "grace_period": heartbeat.grace_s}
        # Optuna 4.9 renamed the callback argument; 4.5-4.8 know only the old name.
        if hasattr(RDBStorage, "get_heartbeat_stale_trial_callback"):
            kwargs["heartbeat_stale_trial_callback"] = RetryLostTrial(heartbeat.max_retry)
        else:
            kwargs["failed_trial_callback"] = RetryLostTrial(heartbeat.max_retry)
        with warnings.catch_warnings():
            # heartbeat_interval is marked experimental; bitscout relies on it knowingly.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(database_url(url), engine_kwargs=engine_kwargs, **kwargs)
        self.heartbeat = heartbeat
        self._beater = self._new_beater()


    _immediate = True

    def new_trial_template(self, template_trial: FrozenTrial | None) -> FrozenTrial | None:
        return template_trial or _running_template()

    def trial_created(self, frozen: FrozenTrial) -> None:
        if frozen.state == TrialState.RUNNING:
            self._beater.add(trial_id(frozen))


    def stale_trials(self, study_id: int) -> list[int]:
        stale = set(self.optuna_stale_trials(study_id))
        mine = self._beater.owned
        stale -= mine
        for trial in running_trials(self, study_id):
            tid = trial_id(trial)
            if tid not in stale and _owner_is_gone(owner_of(trial), mine, tid):
                stale.add(tid)
        return sorted(stale)



def _quiet_heartbeat_warning() -> None:
    # Optuna warns at every ask() on a storage with a heartbeat that the heartbeat is
    # meant for study.optimize: bitscout's ask-and-tell loop keeps the beat itself
    # (_Beater). Installed on each open (a test framework may reset the filters).
    warnings.filterwarnings(
        "ignore", message="Heartbeat of storage is supposed to be used with Study.optimize", category=UserWarning
    )


def open_worker_storage(
    storage: str | None,
    run_dir: Path,
    *,
    heartbeat: HeartbeatSettings = HeartbeatSettings(),
    fsync: bool = False,
) -> tuple[BaseStorage, str]:
    """Open a study storage that several worker processes can share safely.

    Args:
        storage: None for ``<run_dir>/study.journal``; a path ending in ``.journal``; or
            an RDB URL (``postgresql://user@host:5432/db``, ``sqlite:///path.db``,
            ``mysql://...``).
        run_dir: The run folder.
        heartbeat: Heartbeat interval, grace period and retries.
        fsync: With a journal file, force every write to disk.

    Returns:
        The storage (RDB storages wrapped in Optuna's trial cache) and a description for
        messages (the URL without its password, or the journal path).

    Raises:
        SearchError: The URL cannot be opened (the message says why and what to install).
    """
    _quiet_heartbeat_warning()
    if storage is None or str(storage).endswith(".journal"):
        path = Path(run_dir) / JOURNAL_FILE if storage is None else Path(storage)
        path.parent.mkdir(parents=True, exist_ok=True)
        return HeartbeatJournalStorage(LocalJournalBackend(str(path), fsync=fsync), heartbeat), str(path)
    url = str(storage)
    attempts = 0
    while True:
        attempts += 1
        try:
            return cached_rdb_storage(HeartbeatRDBStorage(url, heartbeat)), _redact(url)
        except Exception as exc:  # noqa: BLE001  (SQLAlchemy/driver errors have many types)
            if _is_creation_race(exc) and attempts < CREATION_ATTEMPTS:
                # Workers started together on a fresh database all create its tables and
                # types; all but one lose the race. The schema is there on the next try.
                time.sleep(random.uniform(0.05, 0.2) * attempts)
                continue
            raise SearchError(_open_failure(url, exc, attempts)) from exc


#: Tries to open an RDB storage when workers race to create a fresh database's schema.
CREATION_ATTEMPTS = 12

# Words of the errors PostgreSQL, SQLite and MySQL give to the losers of a race to create
# the same tables, types and schema version row at once (a unique violation on pg_type or
# alembic_version, "table ... already exists", a lock held by the winner).
_RACE_WORDS = (
    "already exists",
    "duplicate key",
    "unique constraint",
    "uniqueviolation",
    "database is locked",
    "deadlock detected",
    "could not serialize",
)


def _is_creation_race(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return not isinstance(exc, ImportError) and any(word in text for word in _RACE_WORDS)


def _open_failure(url: str, exc: BaseException, attempts: int) -> str:
    """Why an RDB storage did not open, without blaming a missing package for a race."""
    where = _redact(url)
    if _is_creation_race(exc):
        return (
            f"the study storage {where!r} cannot be opened: workers creating its tables at the "
            f"same time still collided after {attempts} tries ({str(exc).splitlines()[0]}); "
            "start the workers again (the tables exist by now)"
        )
    text = str(exc)
    missing_driver = isinstance(exc, ImportError) or "No module named" in text or "Can't load plugin" in text
    hint = " (PostgreSQL needs the 'postgres' extra: pip install 'bitscout[postgres]')" if missing_driver else ""
    return (
        f"the study storage {where!r} cannot be opened: {exc}{hint}. Give an Optuna storage URL "
        "such as postgresql://user@host:5432/db or sqlite:///runs/study.db, and check that the "
        "database server runs and accepts this user."
    )


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Mark the study's stale RUNNING trials FAIL and queue their configurations again.

    A trial is stale when its process stopped beating (see :class:`HeartbeatSettings`).
    Each one is failed by exactly one worker (the storage refuses a second update), which
    then runs the storage's retry callback: a WAITING copy of the trial, with the same
    parameters, that the next ``study.ask()`` of any worker picks up. Does nothing on a
    storage without a heartbeat.

    Returns:
        The numbers of the trials this call failed.
    """
    storage = storage_of(study)
    if not isinstance(storage, BaseHeartbeat) or storage.get_heartbeat_interval() is None:
        return []
    backend = backend_of(storage)
    if not isinstance(backend, StaleTrialHook):
        return []  # a heartbeat storage bitscout did not open: Optuna's own sweep applies
    failed: list[int] = []
    for stale_id in backend.stale_trials(study_id(study)):
        try:
            if not storage.set_trial_state_values(stale_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # finished meanwhile, or failed by another worker first
        trial = copy.deepcopy(storage.get_trial(stale_id))
        failed.append(trial.number)
        callback = storage.get_heartbeat_stale_trial_callback()
        if callback is not None:
            callback(study, trial)
    if failed:
        _log.warning("trials %s lost their worker (no heartbeat); their configurations are queued again", failed)
    return failed


def open_storage(
    storage: str | BaseStorage | None, run_dir: Path, *, fsync: bool = False
) -> tuple[BaseStorage, str]:
    """Open the study storage.

    Args:
        storage: None for the default journal file in ``run_dir``; an Optuna storage
            URL (``sqlite:///path.db``, ``postgresql://user@host/db``); a path to a
            ``.journal`` file; or a ready storage object.
        run_dir: The run folder (created when missing).
        fsync: With the default journal, force every write to disk.

    Returns:
        The storage and a short description of it for messages.

    Raises:
        SearchError: The URL cannot be opened (the message says why).
    """
    if isinstance(storage, BaseStorage):
        return storage, type(storage).__name__
    # Files and URLs open with a heartbeat, so that workers sharing the study (processes,
    # machines) notice a lost trial and run it again: see HeartbeatJournalStorage and HeartbeatRDBStorage.
    return open_worker_storage(storage, run_dir, fsync=fsync)


def _redact(url: str) -> str:
    """Hide a password in a storage URL (``postgresql://user:secret@host`` -> ``user:***``)."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"
