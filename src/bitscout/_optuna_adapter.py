"""Every use of a private Optuna name in bitscout, in one place (tested with ``optuna>=5,<6``).

bitscout drives Optuna with ask-and-tell from its own loop (:mod:`bitscout.study`), shares
studies between processes and keeps its own heartbeat; a few things that needs have no
public API. Each use below says why it is needed. ``tests/test_optuna_adapter.py``
exercises every one, so a new Optuna release that moves one fails there, loudly, rather
than in a user's search. Nothing else in bitscout may touch a private Optuna name
(``grep -rnE 'optuna\\._|storages\\._|\\._storage|_trial_id|_stop_flag|_thread_local' src``
finds this module only).

This module imports nothing from bitscout but its errors (the lowest layer), so every layer
may use it. It also holds the two journal-file classes that extend Optuna's private
journal internals (:class:`FlockLock`, :class:`LocalJournalBackend`; re-exported by
:mod:`bitscout.study`).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend
from optuna.trial import FrozenTrial, Trial, TrialState

from bitscout.errors import SearchError

# Why: the heartbeat protocol (interval, stale-trial ids, stale-trial callback) is the
# base class Optuna's own storages implement; bitscout's journal storage implements it too
# so that Optuna's heartbeat machinery treats it like an RDB storage with a heartbeat.
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages._heartbeat import is_heartbeat_enabled as _is_heartbeat_enabled

# Why: bitscout's flock-based lock for the journal file plugs into the journal backend
# through this base class (Optuna exports only its own two lock classes).
from optuna.storages.journal._file import BaseJournalFileLock

__all__ = [
    "BaseHeartbeat",
    "BaseJournalFileLock",
    "FlockLock",
    "LocalJournalBackend",
    "JournalRepairWarning",
    "JournalDamagedError",
    "is_journal_entry",
    "replay_entries",
    "StaleTrialHook",
    "CreatedTrialHook",
    "storage_of",
    "study_id",
    "trial_id",
    "n_trials",
    "is_heartbeat_enabled",
    "stop_requested",
    "clear_stop",
    "allow_stop",
    "cached_rdb_storage",
    "journal_file_path",
    "backend_of",
    "hypervolume",
    "running_trials",
    "set_trial_user_attrs",
]


class FlockLock(BaseJournalFileLock):
    """An ``flock`` lock on ``<path><suffix>``: one system call to take, one to give back.

    bitscout's one file lock: the journal file's write lock (``<journal>.lock``, through
    Optuna's ``BaseJournalFileLock`` interface) and the workers' ask lock
    (``<journal or database>.ask.lock``, as a context manager). It excludes other
    processes (``flock``) and this process's other threads (a thread lock).

    Released by the kernel when the process dies, so a killed search never leaves a
    stale lock behind (Optuna's symlink lock waits out a 30 s grace period instead).
    ``flock`` is not reliable on old NFS mounts: put the run folder on a local disk, or
    share a study between machines through PostgreSQL (``--storage postgresql://...``).

    Args:
        path: The file the lock guards (the lock file is next to it).
        suffix: Appended to ``path`` to name the lock file.
    """

    def __init__(self, path: str, *, suffix: str = ".lock") -> None:
        self._path = path + suffix
        self._fd: int | None = None
        self._pid = -1
        self._thread_lock = threading.Lock()

    def _handle(self) -> int:
        # A forked worker must not share the parent's open file description: flock locks
        # belong to it, so parent and child would never exclude each other.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> bool:
        self._thread_lock.acquire()
        try:
            fcntl.flock(self._handle(), fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        return True

    def release(self) -> None:
        try:
            fcntl.flock(self._handle(), fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __getstate__(self) -> dict[str, Any]:
        return {"_path": self._path, "_fd": None, "_pid": -1}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


class JournalRepairWarning(UserWarning):
    """A journal's torn last line (what a killed write leaves) was cut off."""


class JournalDamagedError(SearchError):
    """A line in the middle of a journal is not an entry: the study cannot be read.

    Attributes:
        path: The journal file.
        line: The damaged line's number (from 1).
    """

    def __init__(self, path: str, line: int, content: bytes) -> None:
        self.path, self.line = path, line
        preview = content[:60].decode("utf-8", "replace") + ("..." if len(content) > 60 else "")
        run = Path(path).parent
        super().__init__(
            f"{path}: line {line} is not a journal entry ({preview!r}), so the study cannot be "
            f"read past it. Run `bitscout report {run} --repair` to rewrite the journal keeping "
            "every complete trial (the damaged file is kept beside it)"
        )


# Each journal operation (Optuna's JournalOperation, 0-10) -> the keys its replay reads
# first; an entry without them would stop the replay with a KeyError.
_ENTRY_KEYS: dict[int, tuple[str, ...]] = {
    0: ("study_name", "directions"),
    1: ("study_id",),
    2: ("study_id", "user_attr"),
    3: ("study_id", "system_attr"),
    4: ("study_id", "datetime_start"),
    5: ("trial_id", "param_name", "param_value_internal", "distribution"),
    6: ("trial_id", "state"),
    7: ("trial_id", "step", "intermediate_value"),
    8: ("trial_id", "user_attr"),
    9: ("trial_id", "system_attr"),
    10: (),
}


def is_journal_entry(log: Any) -> bool:
    """Whether a parsed journal line has the shape of one of Optuna's operations."""
    if not isinstance(log, dict) or not isinstance(log.get("worker_id"), str):
        return False
    op = log.get("op_code")
    return type(op) is int and op in _ENTRY_KEYS and all(key in log for key in _ENTRY_KEYS[op])


class _MemoryJournal(BaseJournalBackend):
    """A journal held in a list (for a replay that must not touch a file)."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        yield from self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)


def replay_entries(entries: list[dict[str, Any]]) -> tuple[JournalStorage, list[int]]:
    """A storage holding what ``entries`` record, skipping the entries that do not apply.

    Why: ``JournalStorage`` replays its whole journal at once and stops at the first entry
    it cannot apply (an operation on a trial whose creation was lost); a repair must skip
    such an entry and go on, so entries are applied one at a time to the storage's replay
    state (``JournalStorage._replay_result``, private).

    Returns:
        The storage (in memory) and the indexes of the entries skipped.
    """
    storage = JournalStorage(_MemoryJournal())
    skipped = []
    for index, log in enumerate(entries):
        try:
            storage._replay_result.apply_logs([log])
        except Exception:  # noqa: BLE001  (an entry Optuna cannot apply, whatever the reason)
            skipped.append(index)
    return storage, skipped


# Bytes read at a time when looking backwards for the last complete line.
_TAIL_CHUNK = 1 << 16


class LocalJournalBackend(JournalFileBackend):
    """Optuna's journal file format, written with an ``flock`` lock and optional ``fsync``.

    Robust to what a killed writer leaves: a last line without its newline (a torn
    entry) is cut off when the file is opened and before every append, with a
    :class:`JournalRepairWarning`, so that no entry is ever glued to a torn one. Every
    complete entry is kept. A damaged line elsewhere is a :class:`JournalDamagedError`
    naming the file and the line (``bitscout report RUN --repair`` rewrites the file).

    Args:
        file_path: The journal file (created when missing).
        fsync: Force each write to disk (survives a machine crash; ~0.5 ms per write).
    """

    def __init__(self, file_path: str, *, fsync: bool = False) -> None:
        super().__init__(file_path, lock_obj=FlockLock(file_path))
        self._fsync = fsync
        self._lock.acquire()
        try:
            self._cut_torn_tail()
        finally:
            self._lock.release()

    def _cut_torn_tail(self) -> int:
        """Cut a last line that lacks its newline; returns the bytes cut. Call under the lock.

        Writers write whole lines under the lock, so under the lock a line without its
        newline is one a killed process left half written, never one being written.
        """
        # Private: JournalFileBackend's _file_path.
        with open(self._file_path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return 0
            end = size
            while end > 0:
                start = max(0, end - _TAIL_CHUNK)
                f.seek(start)
                newline = f.read(end - start).rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                end = start
            else:
                keep = 0
            f.seek(keep)
            torn = f.read(min(size - keep, 80))
            f.truncate(keep)
            if self._fsync:
                os.fsync(f.fileno())
        warnings.warn(
            JournalRepairWarning(
                f"{self._file_path}: its last line was cut off ({size - keep} bytes, "
                f"{torn[:40].decode('utf-8', 'replace')!r}...: an entry a killed process was "
                "writing); removed it, every complete entry is kept"
            ),
            stacklevel=3,
        )
        return size - keep

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        # Private: JournalFileBackend's _log_number_offset (log number -> byte offset) and
        # _file_path, the state of Optuna's own read_logs, which this one replaces to name
        # a damaged line instead of raising a bare JSONDecodeError.
        # Optuna syncs with the file before every storage read (~17 times per trial);
        # when the file has not grown past what was read, one stat() answers that
        # instead of opening and scanning it. Anything appended changes the size.
        offsets = self._log_number_offset
        offset = offsets.get(log_number_from)
        if offset is not None:
            try:
                if os.stat(self._file_path).st_size == offset:
                    return
            except OSError:
                pass
        with open(self._file_path, "rb") as f:
            remaining = os.fstat(f.fileno()).st_size
            start = 0
            if offset is not None:
                f.seek(offset)
                start = log_number_from
                remaining -= offset
            for log_number, line in enumerate(f, start=start):
                remaining -= len(line)
                if remaining < 0 or not line.endswith(b"\n"):
                    # Written after the size was taken, or a torn last line (cut before
                    # the next append): not an entry yet.
                    break
                try:
                    log = json.loads(line)
                except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
                    raise JournalDamagedError(self._file_path, log_number + 1, line.rstrip(b"\n")) from None
                if not is_journal_entry(log):
                    raise JournalDamagedError(self._file_path, log_number + 1, line.rstrip(b"\n"))
                offsets.setdefault(log_number + 1, offsets[log_number] + len(line))
                if log_number >= log_number_from:
                    yield log

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        # Private: JournalFileBackend's _lock and _file_path (the same lock and file its
        # own append_logs uses, so readers and writers of any version still exclude).
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        self._lock.acquire()
        try:
            # Never append to a line without its newline: a process killed mid-write
            # may have left one since this file was opened.
            self._cut_torn_tail()
            with open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
        finally:
            self._lock.release()


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage object.

    Why: the loop writes user attrs of a trial, reads single trials and counts trials by
    state through the storage (one storage call instead of a full ``get_trials`` copy);
    ``Study`` keeps it in ``_storage`` only.
    """
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The study's id in its storage (``Study._study_id``: the storage API is keyed by it)."""
    return study._study_id


def trial_id(trial: Trial | FrozenTrial) -> int:
    """The trial's id in its storage (``_trial_id``: the storage API is keyed by it, not by number)."""
    return trial._trial_id


def n_trials(study: optuna.Study, state: TrialState | None = None) -> int:
    """Trials of the study (in ``state``) by one storage count: an RDB storage answers it
    with one COUNT query, where ``len(study.get_trials())`` reads every trial."""
    return storage_of(study).get_n_trials(study_id(study), state)


def is_heartbeat_enabled(storage: BaseStorage) -> bool:
    """Whether the storage keeps a heartbeat (Optuna's own test, in a private module)."""
    return _is_heartbeat_enabled(storage)


def stop_requested(study: optuna.Study) -> bool:
    """Whether a sampler called ``study.stop()`` (Optuna's flag is ``Study._stop_flag``).

    Why: samplers such as Optuna's BruteForceSampler stop the study from ``after_trial``
    when their space is spent; the ask-and-tell loop must see that to stop too.
    """
    return bool(getattr(study, "_stop_flag", False))


def clear_stop(study: optuna.Study) -> None:
    """Reset ``Study._stop_flag`` before a run (``study.optimize`` does the same on entry)."""
    study._stop_flag = False


def allow_stop(study: optuna.Study, allowed: bool) -> None:
    """Let samplers call ``study.stop()`` in this thread, as inside ``study.optimize``.

    Why: ``Study.stop`` raises outside Optuna's own loop, which it detects through the
    thread-local ``Study._thread_local.in_optimize_loop``; the ask-and-tell loop sets it
    the same way ``study.optimize`` does.
    """
    study._thread_local.in_optimize_loop = allowed


def cached_rdb_storage(storage: BaseStorage) -> BaseStorage:
    """An RDB storage wrapped in Optuna's trial cache, as ``optuna.create_study(storage=url)``
    wraps it (``optuna.storages._cached_storage._CachedStorage``): without it every trial
    read is a query."""
    from optuna.storages._cached_storage import _CachedStorage

    return _CachedStorage(storage)


def backend_of(storage: BaseStorage) -> BaseStorage:
    """The RDB storage inside Optuna's trial cache (``_CachedStorage._backend``), or ``storage``."""
    if isinstance(storage, JournalStorage):
        return storage
    return getattr(storage, "_backend", storage)


def journal_file_path(storage: BaseStorage) -> str | None:
    """The file of a journal-file storage (``JournalStorage._backend._file_path``), else None.

    Why: workers sharing a journal file take an ``flock`` next to it to ask trials one at a
    time; the storage does not expose its file.
    """
    if not isinstance(storage, JournalStorage):
        return None
    path = getattr(storage._backend, "_file_path", None)
    return None if path is None else str(path)


def set_trial_user_attrs(storage: BaseStorage, trial_id: int, attrs: dict[str, Any]) -> None:
    """Set several user attributes of a running trial, in one write where the storage allows.

    Private: ``JournalStorage._thread_lock``, ``._replay_result.worker_id``, ``._backend``
    and ``._sync_with_backend`` and the journal's SET_TRIAL_USER_ATTR log entry (what
    ``JournalStorage.set_trial_user_attr`` writes, one entry per key). Why: each public
    call is one locked append plus a re-read of the file (~0.8 ms on the run folder's
    journal); a trial stores its record and each metric as its own attribute (for
    optuna-dashboard), and one append of all of them costs what one attribute did.
    Other storages get one public call per attribute.
    """
    if not isinstance(storage, JournalStorage):
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        return
    from optuna.storages.journal._storage import JournalOperation

    with storage._thread_lock:
        worker_id = storage._replay_result.worker_id
        storage._backend.append_logs(
            [
                {
                    "op_code": JournalOperation.SET_TRIAL_USER_ATTR,
                    "worker_id": worker_id,
                    "trial_id": trial_id,
                    "user_attr": {key: value},
                }
                for key, value in attrs.items()
            ]
        )
        storage._sync_with_backend()


def hypervolume(loss: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume dominated by ``loss`` (minimisation form, points below ``reference``).

    Why: Optuna's exact hypervolume (``optuna._hypervolume.compute_hypervolume``) is the
    one its samplers and ``optuna.visualization`` use; bitscout's comparisons report the
    same number.
    """
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(loss, reference))


class StaleTrialHook:
    """Mixin for a storage that decides itself which RUNNING trials are stale.

    Why: Optuna finds stale trials through the private storage method
    ``_get_stale_trial_ids`` (abstract in ``BaseHeartbeat``, implemented by ``RDBStorage``).
    Subclasses implement :meth:`stale_trials`; :meth:`optuna_stale_trials` is the
    base storage's own answer (RDB: heartbeat older than the grace period).
    """

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self.stale_trials(study_id)

    def optuna_stale_trials(self, study_id: int) -> list[int]:
        return list(super()._get_stale_trial_ids(study_id))  # type: ignore[misc]

    def stale_trials(self, study_id: int) -> list[int]:
        raise NotImplementedError


class CreatedTrialHook:
    """Mixin for an RDB storage that must know each trial it creates.

    Why: ``RDBStorage.create_new_trial`` creates through the private ``_create_new_trial``
    (which ``_CachedStorage`` calls directly); this is the one place a new trial passes.
    Subclasses implement :meth:`trial_created`.
    """

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        frozen = super()._create_new_trial(study_id, self.new_trial_template(template_trial))  # type: ignore[misc]
        self.trial_created(frozen)
        return frozen

    def new_trial_template(self, template_trial: FrozenTrial | None) -> FrozenTrial | None:
        return template_trial

    def trial_created(self, frozen: FrozenTrial) -> None:
        raise NotImplementedError


def running_trials(storage: BaseStorage, study_id: int) -> list[FrozenTrial]:
    """The study's RUNNING trials, read from the storage itself (no copies)."""
    return list(storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)))


