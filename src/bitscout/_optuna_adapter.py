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
:mod:`bitscout.study`), and :class:`CachedTPESampler`, Optuna's TPE with its history kept
between proposals (the ``tpe`` strategy's sampler).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import json
import math
import os
import threading
import warnings
from bisect import insort
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
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

# Why: CachedTPESampler (below) is Optuna's TPE with the history kept between proposals;
# it reuses the TPE module's split rules and default gamma functions, recognises its
# default kernel weights (default_weights, which its plain-numpy proposal follows), and
# uses the Parzen estimator's weight function. The intersection search space's incremental step
# (optuna.search_space.intersection._calculate) is followed step for step in
# _intersection_step, with the private state of IntersectionSearchSpace.
from optuna.samplers._tpe import sampler as _tpe
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

# Why: Optuna's QMCSampler builds its Sobol engines under this module lock (scipy's Sobol
# shares state between threads); CachedQMCSampler builds them under the same lock.
from optuna.samplers._qmc import _threading_lock as _qmc_lock

__all__ = [
    "BaseHeartbeat",
    "BaseJournalFileLock",
    "FlockLock",
    "LocalJournalBackend",
    "IndexedJournalStorage",
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
    "CachedTPESampler",
    "CachedNSGAIISampler",
    "CachedNSGAIIISampler",
    "CachedQMCSampler",
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


# Bytes read at a time from a journal (a resumed study reads its whole file once).
_READ_CHUNK = 1 << 22


def _whole_lines(fd: int, start: int, size: int) -> Iterator[tuple[bytes, int]]:
    """The complete lines of the file between byte ``start`` and ``size``, each without its
    newline and with the offset just past it; a last line without its newline (written
    after ``size`` was taken, or torn by a killed writer) is left out."""
    position = start
    while position < size:
        want = min(_READ_CHUNK, size - position)
        data = os.pread(fd, want, position)
        cut = data.rfind(b"\n") + 1
        while cut == 0 and len(data) == want and position + want < size:  # a line longer than a chunk
            want = min(2 * want, size - position)
            data = os.pread(fd, want, position)
            cut = data.rfind(b"\n") + 1
        if cut == 0:
            return
        begin = 0
        while begin < cut:
            end = data.index(b"\n", begin)
            yield data[begin:end], position + end + 1
            begin = end + 1
        position += cut


class LocalJournalBackend(JournalFileBackend):
    """Optuna's journal file format, written with an ``flock`` lock and optional ``fsync``.

    Robust to what a killed writer leaves: a last line without its newline (a torn
    entry) is cut off when the file is opened and before every append, with a
    :class:`JournalRepairWarning`, so that no entry is ever glued to a torn one. Every
    complete entry is kept. A damaged line elsewhere is a :class:`JournalDamagedError`
    naming the file and the line (``bitscout report RUN --repair`` rewrites the file).

    The file stays open (one descriptor, in append mode) between calls: an append is
    one ``write`` of whole lines, a read one ``pread`` of what was appended since the
    last read. A ``write`` has reached the operating system when it returns, so a process
    killed right after (SIGKILL included) has lost nothing it appended.

    Args:
        file_path: The journal file (created when missing).
        fsync: Force each write to disk (survives a machine crash; ~0.5 ms per write).
    """

    def __init__(self, file_path: str, *, fsync: bool = False) -> None:
        super().__init__(file_path, lock_obj=FlockLock(file_path))
        self._fsync = fsync
        self._fd: int | None = None
        self._fd_pid = -1
        self._lock.acquire()
        try:
            self._cut_torn_tail()
        finally:
            self._lock.release()

    def _descriptor(self) -> int:
        """The journal's descriptor, opened once per process (``O_APPEND``: every write
        lands at the end, whoever else appended meanwhile)."""
        if self._fd is None or self._fd_pid != os.getpid():
            # Private: JournalFileBackend's _file_path.
            self._fd = os.open(self._file_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._fd_pid = os.getpid()
        return self._fd

    def _descriptor_to_append(self) -> tuple[int, int]:
        """The descriptor and the file's size, reopened when the path now names another
        file (a journal rewritten by ``bitscout report --repair``): an append must never
        go to a file that no longer has a name."""
        fd = self._descriptor()
        opened, named = os.fstat(fd), os.stat(self._file_path)
        if (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
            self.close()
            fd = self._descriptor()
            opened = os.fstat(fd)
        return fd, opened.st_size

    def close(self) -> None:
        """Close the file (reopened by the next read or append)."""
        fd, self._fd = self._fd, None
        if fd is not None and self._fd_pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        # Also at interpreter exit, when module globals may already be gone.
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fd"], state["_fd_pid"] = None, -1
        return state

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
        # when the file has not grown past what was read, one fstat() answers that.
        # Otherwise what was appended since is read with pread() (the file is never
        # rewritten in place: only appended to, or cut back to its last whole line).
        # Only the offsets of entry 0 and of the next entry to read are kept: the storage
        # always reads on from where it stopped, and one offset per entry was ~100 bytes
        # a line for the whole run (a reader starting elsewhere reads from the start).
        offsets = self._log_number_offset
        offset = offsets.get(log_number_from)
        fd = self._descriptor()
        size = os.fstat(fd).st_size
        if offset is not None and size == offset:
            return
        number, start = (log_number_from, offset) if offset is not None else (0, 0)
        for line, end in _whole_lines(fd, start, size):
            try:
                log = json.loads(line)
            except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
                raise JournalDamagedError(self._file_path, number + 1, line) from None
            if not is_journal_entry(log):
                raise JournalDamagedError(self._file_path, number + 1, line)
            offsets[number + 1] = end
            if number:
                offsets.pop(number, None)
            if number >= log_number_from:
                yield log
            number += 1

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        # Private: JournalFileBackend's _lock and _file_path (the same lock and file its
        # own append_logs uses, so readers and writers of any version still exclude).
        data = memoryview(("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8"))
        self._lock.acquire()
        try:
            fd, size = self._descriptor_to_append()
            # Never append to a line without its newline: a process killed mid-write
            # may have left one since this file was opened.
            if size and os.pread(fd, 1, size - 1) != b"\n":
                self._cut_torn_tail()
            while data:  # one write, unless the system takes it in parts (a full disk)
                data = data[os.write(fd, data) :]
            if self._fsync:
                os.fsync(fd)
        finally:
            self._lock.release()


# States a trial leaves: the few trials in them are tracked apart from the finished ones.
_UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)


class IndexedJournalStorage(JournalStorage):
    """Optuna's ``JournalStorage`` whose trial lists cost the same at any length of history.

    Why private names: ``JournalStorage.get_all_trials`` rebuilds a study's list from its
    replay state (``_replay_result._study_id_to_trial_ids`` and ``._trials``) at every call,
    one dictionary look-up and state test per trial, and a study calls it about three
    times per trial (``ask`` looks for WAITING trials, the sampler and bitscout's index
    read them all): at 1,000 trials that was most of the journal's cost over in-memory
    storage. Here each study's list is kept up to date as entries are replayed
    (``_sync_with_backend``, through which every entry of every process passes): a trial
    an entry changed is replaced in the list, new trials are appended. RUNNING and WAITING
    trials are also kept apart, so that ``ask`` finds the queued ones without a scan.
    The answers are Optuna's: the same trials, in number order, filtered by state.
    """

    def __init__(self, log_storage: BaseJournalBackend) -> None:
        self._forget_lists()
        super().__init__(log_storage)

    def _forget_lists(self) -> None:
        self._lists: dict[int, list[FrozenTrial]] = {}
        self._open: dict[int, set[int]] = {}  # study -> numbers of its RUNNING or WAITING trials
        self._shared = _SharedValues()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_lists", None)
        state.pop("_open", None)
        state.pop("_shared", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # a fresh replay, from the first entry
        self._forget_lists()

    def restore_replay_result(self, snapshot: bytes) -> None:
        super().restore_replay_result(snapshot)
        self._forget_lists()

    def _sync_with_backend(self) -> None:
        # Private: JournalStorage._sync_with_backend (called under _thread_lock before
        # every read and after every write) and its replay state.
        replay = self._replay_result
        touched: list[int] = []

        def watched(logs: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for log in logs:
                if "trial_id" in log:
                    touched.append(log["trial_id"])
                yield log

        try:
            replay.apply_logs(watched(self._backend.read_logs(replay.log_number_read)))
        finally:
            # Also after an entry this process wrote was refused (the error is Optuna's
            # to raise): what was applied before it is in the lists.
            self._update_lists(touched)

    def _update_lists(self, touched: list[int]) -> None:
        replay = self._replay_result
        for study, trials in self._lists.items():
            ids = replay._study_id_to_trial_ids.get(study, ())
            for tid in ids[len(trials) :]:
                self._file(study, trials, replay._trials[tid], new=True)
        for tid in touched:
            study = replay._trial_id_to_study_id.get(tid)
            trials = self._lists.get(study) if study is not None else None
            if trials is not None:
                self._file(study, trials, replay._trials[tid], new=False)

    def _file(self, study: int, trials: list[FrozenTrial], trial: FrozenTrial, *, new: bool) -> None:
        if new:
            trials.append(trial)
        else:
            trials[trial.number] = trial
        if trial.state in _UNFINISHED:
            self._open[study].add(trial.number)
        else:
            self._open[study].discard(trial.number)
            self._shared.compact(trial)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Any = None,
    ) -> list[FrozenTrial]:
        with self._thread_lock:
            self._sync_with_backend()
            replay = self._replay_result
            if study_id not in replay._studies:
                return super().get_all_trials(study_id, deepcopy, states)  # Optuna's KeyError
            trials = self._lists.get(study_id)
            if trials is None:
                trials = self._lists[study_id] = replay.get_all_trials(study_id, None)
                self._open[study_id] = {t.number for t in trials if t.state in _UNFINISHED}
                for trial in trials:  # a resumed study's trials, replayed before this first read
                    if trial.state not in _UNFINISHED:
                        self._shared.compact(trial)
            if states is None:
                found = list(trials)
            elif isinstance(states, (tuple, list, set, frozenset)) and all(s in _UNFINISHED for s in states):
                found = [trials[n] for n in sorted(self._open[study_id]) if trials[n].state in states]
            else:
                found = [t for t in trials if t.state in states]
            return copy.deepcopy(found) if deepcopy else found


# Strings up to this length are shared between trials (keys, choice names); longer ones
# (error messages) are left as they are.
_SHARED_STR_LEN = 64


class _SharedValues:
    """Shares equal parts of finished trials, so that a trial held in memory costs little.

    Why: the journal's replay gives every trial its own objects, parsed from its own
    lines: a distribution object per parameter, a copy of every key string, a dict per
    layer of its sampled configuration. On the digits MLP's 13,824-configuration brute
    force that was about 10 KB a trial, most of a search's memory. A finished trial no
    longer changes (Optuna refuses updates to it, and replaces, never mutates, the dicts
    of a trial it updates), so equal values can be one object: the distributions dict,
    the parameter names, dict keys and short strings, and the dicts of scalars without
    a float in them (the per-layer configurations, few and repeated; a dict holding
    floats holds measurements, unique to its trial, and is only given shared keys).
    The values are equal to what they replace (type included), so every reader sees
    the same trial.
    """

    def __init__(self) -> None:
        self._values: dict[Any, Any] = {}

    def compact(self, trial: FrozenTrial) -> None:
        """Replace the trial's dicts by equal ones built of shared parts (in place)."""
        try:
            key = ("distributions", tuple((name, _exactly(dist)) for name, dist in trial.distributions.items()))
            trial.distributions = self._values.setdefault(key, trial.distributions)
            trial.params = {self._str(k): v for k, v in trial.params.items()}
            trial.user_attrs = self._dict(trial.user_attrs)
        except TypeError:  # an unhashable value somewhere: keep the trial as it was
            return

    def _str(self, text: str) -> str:
        if len(text) > _SHARED_STR_LEN:
            return text
        return self._values.setdefault(text, text)

    def _value(self, value: Any) -> Any:
        if type(value) is str:
            return self._str(value)
        if type(value) is dict:
            return self._dict(value)
        if type(value) is list:
            return [self._value(v) for v in value]
        return value

    def _dict(self, raw: dict[Any, Any]) -> dict[Any, Any]:
        out = {self._str(k) if type(k) is str else k: self._value(v) for k, v in raw.items()}
        if out and all(type(v) in _SHAREABLE for v in out.values()):
            # The type is part of the key: 1, 1.0 and True are equal but not the same value.
            key = ("dict", tuple((k, type(v), v) for k, v in out.items()))
            return self._values.setdefault(key, out)
        return out


# Scalar types whose dicts are shared between trials (configuration choices); floats and
# nested values are not (measurements, unique to a trial).
_SHAREABLE = frozenset({str, int, bool, type(None)})


def _exactly(dist: BaseDistribution) -> tuple[Any, ...]:
    """A distribution as plain values that are equal only when the distributions are.

    Optuna's ``__eq__`` compares categorical choices one by one with NaN checks (a tenth
    of a millisecond for a trial's dozen parameters, on every trial the journal
    replays); tuples of plain values compare in C. With each choice's type in the key,
    ``1``, ``1.0`` and ``True`` stay apart and a NaN equals nothing: stricter than
    Optuna's equality, so a shared dict is always one Optuna calls equal.
    """
    fields = vars(dist)
    return (type(dist), *((k, tuple((type(c), c) for c in v) if k == "choices" else v) for k, v in fields.items()))


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




# ----- Optuna's TPE, without re-reading the history at every proposal ----------------------
#
# Why private names: Optuna's TPESampler re-reads, re-encodes and re-sorts every past trial
# and rebuilds both Parzen estimators at every proposal, in its private methods
# (``_sample``, ``_sample_relative``, ``_get_internal_repr``, ``_get_params``) with its private
# state (``_rng``, ``_gamma``, ``_constant_liar``, ``_n_startup_trials``, ``_n_ei_candidates``,
# ``_random_sampler``, ``_group``, ``_search_space``, ``_parzen_estimator_cls``,
# ``_parzen_estimator_parameters``). CachedTPESampler overrides exactly those steps and keeps
# Optuna's rules and random stream, so that its proposals are Optuna's, bit for bit
# (tests/test_optuna_adapter.py compares it with a stock TPESampler).

_COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def _by_number(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """A study's trials indexed by number (Optuna numbers them 0, 1, ... per study)."""
    by_number = {t.number: t for t in trials}
    if set(by_number) != set(range(len(trials))):
        raise SearchError(
            f"the study's {len(trials)} trials are not numbered 0 to {len(trials) - 1}; "
            "bitscout's samplers need Optuna's numbering (is the storage an Optuna storage?)"
        )
    return [by_number[i] for i in range(len(trials))]


class _Column:
    """One parameter's choice index in every cached trial (None: the trial lacks it).

    A list: filing a trial appends one value per parameter, which a list does several times
    faster than numpy's scalar writes."""

    def __init__(self, name: str, distribution: BaseDistribution) -> None:
        self.name, self.distribution = name, distribution
        self.values: list[int | None] = []

    def append(self, params: dict[str, Any]) -> None:
        if self.name in params:
            self.values.append(int(self.distribution.to_internal_repr(params[self.name])))
        else:
            self.values.append(None)


def _small_int(largest: int) -> type[np.signedinteger[Any]]:
    """The narrowest signed integer type that holds ``0..largest`` (numpy compares and adds
    int8 arrays several times faster than intp ones)."""
    for dtype in (np.int8, np.int16, np.int32):
        if largest <= np.iinfo(dtype).max:
            return dtype
    return np.int64


class _AboveWeights:
    """Optuna's "above" kernel weights (``default_weights``, to rounding) summed per
    configuration, kept between proposals.

    The above kernels are the trials outside the "below" set, in trial-number order (here:
    cached-slot order); of ``n`` of them the ``i``-th weighs ``1/n + i (1 - 1/n) / (n - 26)``
    (``np.linspace``'s ramp), the last 25 weigh 1. Per configuration the kernels on the ramp
    are counted and their positions summed, so the weights are two vector operations and the
    last 25 kernels. A trial filed while the below set stays the same is appended to the last
    25 and moves one kernel from them onto the ramp (two additions); any other change rebuilds
    the sums (one pass over the trials).
    """

    def __init__(self) -> None:
        self.below: tuple[int, ...] | None = None
        self.n = 0  # cached trials (slots) seen
        self.ids = np.zeros(64, dtype=np.intp)  # each above kernel's configuration, in order
        self.count = np.zeros(64)
        self.positions = np.zeros(64)
        self.on_ramp = 0

    def weights(self, configs: _Configurations, below_slots: list[int]) -> tuple[np.ndarray, float]:
        """Each configuration's summed above weight, and the sum of every above weight."""
        n, d = configs.size, len(configs.index)
        below = tuple(sorted(below_slots))
        n_above = n - len(below)
        ramp = max(0, n_above - 25)
        if below != self.below or n < self.n:
            keep = np.ones(n, dtype=bool)
            keep[list(below)] = False
            self.ids = np.concatenate([configs.slot_ids[:n][keep], np.zeros(64, dtype=np.intp)])
            size = max(64, 2 * d)
            self.count = np.bincount(self.ids[:ramp], minlength=size).astype(float)
            self.positions = np.bincount(self.ids[:ramp], weights=np.arange(ramp, dtype=float), minlength=size)
        else:
            # The trials filed since are all above (the below set is the same), appended.
            new = configs.slot_ids[self.n : n]
            start = n_above - len(new)
            if n_above > len(self.ids):
                self.ids = np.concatenate([self.ids, np.zeros(n_above, dtype=np.intp)])
            self.ids[start:n_above] = new
            if d > len(self.count):
                grow = np.zeros(2 * d - len(self.count))
                self.count = np.concatenate([self.count, grow])
                self.positions = np.concatenate([self.positions, grow])
            for position in range(self.on_ramp, ramp):
                config = self.ids[position]
                self.count[config] += 1
                self.positions[config] += position
        self.below, self.n, self.on_ramp = below, n, ramp
        start = 1.0 / n_above
        step = (1.0 - start) / (ramp - 1) if ramp > 1 else 0.0
        per_config = self.count[:d] * start
        if step:
            per_config += self.positions[:d] * step
        per_config += np.bincount(self.ids[ramp:n_above], minlength=d)
        return per_config, ramp * start + step * ramp * (ramp - 1) / 2 + (n_above - ramp)


class _Configurations:
    """The distinct configurations (tuples of choice indices) of some parameters, numbered.

    Kernels of the same configuration share their per-parameter densities, so the Parzen
    estimator computes them once per configuration instead of once per trial.
    """

    def __init__(self, n_choices: list[int]) -> None:
        self.index: dict[tuple[int, ...], int] = {}
        self.table = np.zeros((64, len(n_choices)), dtype=np.intp)
        self.slot_ids = np.zeros(64, dtype=np.intp)  # per cached trial; -1: a parameter missing
        self.size = 0
        self.missing = 0  # cached trials without every parameter
        # Each configuration's number in the whole space (last parameter fastest), where
        # the space is small enough for _CategoricalMixture's dense sum.
        dense = _halves(n_choices) is not None
        self.radix = [math.prod(n_choices[p + 1 :]) for p in range(len(n_choices))] if dense else None
        self.codes = np.zeros(64, dtype=np.intp)
        # The table again, parameter-major in the smallest integers that hold a choice: the
        # fast proposal compares every candidate with every configuration, parameter by parameter.
        self.choice_dtype = _small_int(max(n_choices, default=1))
        self.columns = np.zeros((len(n_choices), 64), dtype=self.choice_dtype)
        self._dense: np.ndarray | None = None
        self.above = _AboveWeights()

    def dense(self, size: int) -> np.ndarray:
        """A vector over the whole space kept between calls: an entry once written is only
        ever rewritten, at the same code (configurations are never removed)."""
        if self._dense is None:
            self._dense = np.zeros(size)
        return self._dense

    def id_of(self, config: tuple[int, ...]) -> int:
        found = self.index.get(config)
        if found is None:
            found = self.index[config] = len(self.index)
            if found == len(self.table):
                self.table = np.concatenate([self.table, np.zeros_like(self.table)])
                self.codes = np.concatenate([self.codes, np.zeros_like(self.codes)])
                self.columns = np.concatenate([self.columns, np.zeros_like(self.columns)], axis=1)
            self.table[found] = config
            self.columns[:, found] = config
            if self.radix is not None:
                self.codes[found] = sum(c * r for c, r in zip(config, self.radix))
        return found

    def append(self, config: tuple[int, ...] | None) -> None:
        if self.size == len(self.slot_ids):
            self.slot_ids = np.concatenate([self.slot_ids, np.zeros(self.size, dtype=np.intp)])
        self.slot_ids[self.size] = -1 if config is None else self.id_of(config)
        self.missing += config is None
        self.size += 1


class _CategoricalMixture:
    """Optuna's Parzen estimator over categorical parameters, computed per configuration.

    ``_ParzenEstimator`` gives kernel ``k`` and parameter ``p`` a row of ``C`` weights that
    depends only on the choice the kernel observed (or on none: the prior kernel), so its
    ``n + 1`` rows take at most ``C + 1`` distinct values. They are built here with Optuna's
    operations; each kernel names its configuration, and the sum of a configuration's
    per-parameter log densities is computed once for all its kernels. Sampling, the mixture
    weights and the log-sum-exp are Optuna's operations in Optuna's order, so every number
    is bit-identical to Optuna's (``_MixtureOfProductDistribution.sample`` and ``.log_pdf``).

    Args:
        configs: Distinct configurations (choice indices), one row each.
        kernels: Each observed trial's row in ``configs``, in trial-number order.
        n_choices: Choices of each parameter.
        parameters: The sampler's ``_ParzenEstimatorParameters``.
        weights: Kernel weights fixed by the caller (Optuna's "below" estimator of several
            objectives); None: the parameters' weight function.
        cache: Tables already built, by (choices, kernels): reused, and added to.
        codes: Each configuration's number in the whole space (last parameter fastest),
            for :meth:`approximate_log_pdf_of`'s dense sum; None: not used.
    """

    def __init__(
        self,
        configs: np.ndarray,
        kernels: np.ndarray,
        n_choices: list[int],
        parameters: Any,
        weights: np.ndarray | None = None,
        cache: dict[tuple[Any, ...], Any] | None = None,
        codes: np.ndarray | None = None,
    ) -> None:
        cache = {} if cache is None else cache
        n = len(kernels)
        key = ("weights", n, weights is None)
        if key not in cache:
            if weights is None:
                weights = _ParzenEstimator._call_weights_func(parameters.weights, n)
            weights = np.array([1.0]) if n == 0 else np.append(weights, [parameters.prior_weight])
            weights /= weights.sum()
            cache[key] = (weights, bool(np.all(weights > 0)))
        self.weights, self._positive = cache[key]
        self.n_choices = n_choices
        # Per parameter, its distinct weight rows (observed choice 0..C-1, then the prior),
        # stacked and padded to the widest parameter so that one gather serves them all.
        key = ("tables", tuple(n_choices), n)
        if key not in cache:
            cache[key] = self._tables(n_choices, n, parameters, cache)
        self.tables = cache[key]
        self._cache, self._key = cache, key
        self._configs = configs
        self.kernels = np.append(kernels, len(configs)).astype(np.intp)
        self.codes = codes

    # What only sampling or the exact density reads is built on first use (the "above"
    # estimator usually needs neither).

    @functools.cached_property
    def rows(self) -> np.ndarray:
        """Per parameter, each configuration's row in the table; the prior kernel's last."""
        d = len(self._configs)
        rows = np.empty((len(self.n_choices), d + 1), dtype=np.intp)
        rows[:, :d] = self._configs.T
        rows[:, d] = 0 if len(self.kernels) == 1 else self.n_choices
        return rows

    @functools.cached_property
    def log_weights(self) -> np.ndarray:
        with np.errstate(divide="ignore"):  # a zero weight (prior_weight = 0): -inf, as Optuna's
            return np.log(self.weights[np.newaxis])

    @functools.cached_property
    def log_tables(self) -> np.ndarray:
        key = ("log", *self._key[1:])
        if key not in self._cache:
            with np.errstate(divide="ignore"):  # padding: never read
                self._cache[key] = np.log(self.tables)
        return self._cache[key]

    @functools.cached_property
    def groups(self) -> list[np.ndarray]:
        """Parameters by number of choices (Optuna's cumulative sums run over C columns)."""
        key = ("groups", *self._key[1:2])
        if key not in self._cache:
            by_count: dict[int, list[int]] = {}
            for p, c in enumerate(self.n_choices):
                by_count.setdefault(c, []).append(p)
            self._cache[key] = [np.array(by_count[c], dtype=np.intp) for c in sorted(by_count)]
        return self._cache[key]

    @staticmethod
    def _tables(n_choices: list[int], n: int, parameters: Any, cache: dict[tuple[Any, ...], Any]) -> np.ndarray:
        widest = max(n_choices, default=1)
        tables = np.zeros((len(n_choices), widest + 1, widest))
        for p, c in enumerate(n_choices):
            key = ("table", c, n)
            if key not in cache:
                if n == 0:
                    table = np.full((1, c), fill_value=1.0 / c)
                else:
                    n_kernels = n + 1
                    table = np.full((c + 1, c), fill_value=parameters.prior_weight / n_kernels)
                    table[np.arange(c), np.arange(c)] += 1
                    row_sums = table.sum(axis=1, keepdims=True)
                    table /= np.where(row_sums == 0, 1, row_sums)
                cache[key] = table
            table = cache[key]
            tables[p, : table.shape[0], :c] = table
        return tables

    def sample(self, rng: np.random.RandomState, size: int) -> np.ndarray:
        """``size`` draws (choice indices as floats, one column per parameter)."""
        active = self.kernels[rng.choice(len(self.weights), p=self.weights, size=size)]
        # Optuna draws rng.rand(size) per parameter, in order, and nothing in between.
        quantiles = rng.rand(len(self.n_choices), size)
        ret = np.empty((size, len(self.n_choices)), dtype=float)
        for group in self.groups:
            c = self.n_choices[group[0]]
            weights = self.tables[group[:, None], self.rows[group][:, active], :c]
            cum_probs = np.cumsum(weights, axis=-1)
            cum_probs[:, :, -1] = 1  # Optuna's guard against rounding
            ret[:, group] = np.sum(cum_probs < quantiles[group][:, :, np.newaxis], axis=-1).T
        return ret

    def log_pdf_of(self, unique: np.ndarray) -> np.ndarray:
        """Log density of each row of ``unique`` (choice indices, one column per parameter)."""
        # Optuna adds the parameters' log densities into zeros, in parameter order; equal
        # configurations get equal sums, so each is computed once and read by its kernels.
        # (Laid out configuration-major: each gather copies whole rows of a small table.)
        per_config = np.zeros((self.rows.shape[1], len(unique)), dtype=np.float64)
        for p, log_table in enumerate(self.log_tables):
            per_config += np.take(log_table[:, unique[:, p]], self.rows[p], axis=0)
        weighted = np.ascontiguousarray(np.take(per_config, self.kernels, axis=0).T)
        weighted += self.log_weights
        max_ = weighted.max(axis=1)
        max_[np.isneginf(max_)] = 0
        with np.errstate(divide="ignore"):
            return np.log(np.exp(weighted - max_[:, None]).sum(axis=1)) + max_

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """Log density of each row of ``x`` (choice indices, one column per parameter)."""
        unique, inverse = _distinct_rows(x, self.n_choices)
        return self.log_pdf_of(unique)[inverse]

    def approximate_log_pdf_of(self, unique: np.ndarray) -> np.ndarray | None:
        """:meth:`log_pdf_of` within :data:`APPROXIMATION_TOLERANCE`, at a fraction of its cost;
        None where that bound cannot be promised (then use :meth:`log_pdf_of`).

        :meth:`log_pdf_of` takes, per row, the exponential of each kernel's log density (one
        ``exp`` per trial and row: most of a proposal's cost after a few thousand trials).
        Here the mixture is summed in the linear domain: a kernel's density is a product
        of one table entry per parameter, so the kernels of one configuration add up to
        their summed weight times one product. In a space of at most :data:`DENSE_SPACE`
        configurations, once the configurations tried times the parameters times
        :data:`_DENSE_FACTOR` outnumber the space's, the summed weights fill a (first
        parameters) x (last parameters) matrix and each row's products over either half
        are outer products, so the sum is one matrix product, whatever the number of
        trials; otherwise one product per configuration tried. Every table is divided by its smallest entry first, so the
        products lie in [1, product of the largest ratios] and cannot underflow; where that
        could overflow (about 75 parameters after 10,000 trials), None.

        The bound: every sum here and in :meth:`log_pdf_of` adds positive terms, and each
        term carries the rounding of a product (here) or of a sum of logarithms and one
        ``exp`` (there), so each result is within about (terms + parameters x (1 + the
        largest |log| of a table entry)) rounding units, relative, of the exact mixture
        density. For 10^8 kernels and 100 parameters (|log| <= 20) both together stay
        below (2 x 10^8 + 2,100) x 2.2e-16 < 5e-8 in log units, against the tolerance of 1e-6.
        """
        d = len(self._configs)
        n = len(self.kernels) - 1
        if n == 0 or n + d > 10**8 or not self._positive:
            return None
        key = ("ratios", *self._key[1:])
        if key not in self._cache:
            self._cache[key] = self._ratios()
        if self._cache[key] is None:
            return None
        ratios, log_scale, halves = self._cache[key]
        # columns[p, r, row]: parameter p's table row r (a choice, or the prior) at each row's choice.
        n_params = len(self.n_choices)
        columns = ratios[np.arange(n_params)[:, np.newaxis], unique.T].transpose(0, 2, 1)
        prior = self.weights[-1] * np.prod(columns[np.arange(n_params), self.n_choices], axis=0)
        # The dense sum costs about the space's size per row, the other the configurations
        # tried times the parameters: the cheaper one (dense once many were tried).
        if halves is not None and self.codes is not None and d * n_params * _DENSE_FACTOR > halves[1] * halves[2]:
            split, size_first, size_last = halves
            matrix = np.bincount(
                self.codes[self.kernels[:-1]], weights=self.weights[:-1], minlength=size_first * size_last
            ).reshape(size_first, size_last)
            first, last = np.ones((1, len(unique))), np.ones((1, len(unique)))
            for p, c in enumerate(self.n_choices):
                if p < split:
                    first = (first[:, np.newaxis, :] * columns[p, np.newaxis, :c, :]).reshape(-1, len(unique))
                else:
                    last = (last[:, np.newaxis, :] * columns[p, np.newaxis, :c, :]).reshape(-1, len(unique))
            with _one_blas_thread():
                products = matrix @ last
            mixture = np.einsum("ar,ar->r", first, products)
        else:
            per_config = np.bincount(self.kernels[:-1], weights=self.weights[:-1], minlength=d)
            used = np.flatnonzero(per_config)
            density = np.ones((len(used), len(unique)))
            for p in range(n_params):
                density *= columns[p][self.rows[p, used]]
            mixture = per_config[used] @ density
        return np.log(mixture + prior) + log_scale

    def _ratios(self) -> tuple[np.ndarray, float, tuple[int, int, int] | None] | None:
        """The tables divided by their smallest entries (choice-major: [parameter, choice,
        row]), the log of the divisors' product and the dense sum's cut; None when a
        product of ratios could overflow or an entry is zero."""
        lows = np.array([self.tables[p, :c, :c].min() for p, c in enumerate(self.n_choices)])
        if np.any(lows <= 0):
            return None  # a zero density (prior_weight = 0): its log is -inf, no bound
        ratios = self.tables / lows[:, np.newaxis, np.newaxis]
        if float(np.sum(np.log(ratios.max(axis=(1, 2))))) > 600:
            return None
        return np.ascontiguousarray(ratios.transpose(0, 2, 1)), float(np.sum(np.log(lows))), _halves(self.n_choices)


# How far (in natural log units) approximate_log_pdf_of may be from log_pdf_of. The bound
# in its docstring is below 5e-8 for up to 1e8 kernels; this leaves a margin.
APPROXIMATION_TOLERANCE = 1e-6

_BLAS_CONTROLLER: Any = None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run a small matrix product on one BLAS thread: on a busy machine a multithreaded
    BLAS spends 10-20x longer synchronizing its threads than computing a 216 x 216 x 24
    product (measured: 2-4 ms against 0.1-0.15 ms of CPU on two shared cores)."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        from threadpoolctl import ThreadpoolController  # a bitscout dependency

        _BLAS_CONTROLLER = ThreadpoolController()
    with _BLAS_CONTROLLER.limit(limits=1, user_api="blas"):
        yield


# Measured (digits MLP space, 46,656 configurations): the dense sum costs as much as about
# four products per parameter and configuration tried.
_DENSE_FACTOR = 4

# Spaces of at most this many configurations get approximate_log_pdf_of's dense sum.
DENSE_SPACE = 2**18


def _halves(n_choices: list[int]) -> tuple[int, int, int] | None:
    """Where to cut the parameters so that both halves' configurations are about equally
    many: (cut, configurations before it, after it); None for a space over DENSE_SPACE."""
    total = math.prod(n_choices)
    if total > DENSE_SPACE or not n_choices:
        return None
    first, split = 1, 0
    while split < len(n_choices) - 1 and first * n_choices[split] <= math.isqrt(total):
        first *= n_choices[split]
        split += 1
    return split, first, total // first


def _distinct_rows(x: np.ndarray, n_choices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``x`` (choice indices) and each row's index among them."""
    x = x.astype(np.int64)
    if math.prod(n_choices) < 2**62:
        # A few dozen rows: a dict of their numbers beats np.unique's sort.
        radix = np.cumprod([1, *n_choices[:-1]]).astype(np.int64)
        index: dict[int, int] = {}
        first: list[int] = []
        inverse = np.empty(len(x), dtype=np.intp)
        for i, code in enumerate((x @ radix).tolist()):
            j = index.get(code)
            if j is None:
                j = index[code] = len(first)
                first.append(i)
            inverse[i] = j
        return x[first], inverse.reshape(-1)
    unique, inverse = np.unique(x, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)


# Products of at most this many multiply-adds run on one thread in OpenBLAS (its threshold:
# 65,536 x GEMM_MULTITHREAD_THRESHOLD = 4). The dense sum is cut into products this small
# rather than switching BLAS threads per proposal: on two shared cores a threaded 216 x 216 x
# 24 product cost 4 ms of CPU against 0.1 ms on one thread, and threadpoolctl's switch 27 us.
_ONE_THREAD_PRODUCT = 2**18


# The largest log of r^m the linear-domain sums take (exp(600) = 3.8e260: room for the sums).
_LARGEST_LOG_POWER = 600.0


def _digits(n_choices: list[int]) -> np.ndarray:
    """Every configuration of ``n_choices`` as choice indices, one row each, last parameter fastest."""
    if not n_choices:
        return np.zeros((1, 0), dtype=np.intp)
    return np.indices(n_choices).reshape(len(n_choices), -1).T.astype(np.intp)


def _one_thread_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in row blocks small enough for OpenBLAS to keep on one thread."""
    rows = max(1, _ONE_THREAD_PRODUCT // max(1, a.shape[1] * b.shape[1]))
    if rows >= a.shape[0]:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]))
    for start in range(0, a.shape[0], rows):
        np.matmul(a[start : start + rows], b, out=out[start : start + rows])
    return out


class _BelowTables(NamedTuple):
    """A "below" estimator's tables ([parameter, row, choice]; row ``C``: the prior kernel)."""

    cumulative: np.ndarray  # Optuna's np.cumsum of each row, last column 1; padding +inf
    log_tables: np.ndarray
    cdf: np.ndarray  # what rng.choice builds from the kernel weights
    log_weights: np.ndarray  # of every kernel, the prior's last
    kernel_weights: np.ndarray  # of the kernels before the prior (normalized)


class _FastSpace:
    """What every fast proposal (:meth:`CachedTPESampler._fast_sample`) over one search space
    reuses: the parameters' choice counts, candidate numbering, the dense sum's halves, and
    the "below" estimator's tables per number of kernels (Optuna's, built with its operations)."""

    def __init__(self, n_choices: list[int], parameters: Any) -> None:
        self.n_choices = list(n_choices)
        self.n_params = len(n_choices)
        self.params = np.arange(self.n_params)
        self.choice_counts = np.array(n_choices, dtype=np.intp)
        self.count_dtype = _small_int(self.n_params)  # of a number of agreeing parameters
        self.agreements = np.arange(self.n_params + 1, dtype=float)
        self.size = math.prod(n_choices)
        # Candidate numbers, last parameter fastest (as _Configurations.codes).
        self.radix = (
            np.array([math.prod(n_choices[p + 1 :]) for p in range(self.n_params)], dtype=np.int64)
            if self.size < 2**62
            else None
        )
        self.halves = _halves(n_choices)
        self.digits: tuple[np.ndarray, np.ndarray] | None = None
        if self.halves is not None:
            # Per half, every configuration's choices, parameter-major, as _Configurations.columns.
            split, dtype = self.halves[0], _small_int(max(n_choices))
            self.digits = (
                np.ascontiguousarray(_digits(n_choices[:split]).T, dtype=dtype),
                np.ascontiguousarray(_digits(n_choices[split:]).T, dtype=dtype),
            )
        self.parameters = parameters
        # The prior kernel's log density (1 / C_p per parameter), before its weight.
        self.log_prior_density = -math.fsum(math.log(c) for c in n_choices)
        self._below: dict[int, _BelowTables] = {}

    def below(self, n: int) -> _BelowTables:
        """The "below" estimator of ``n`` kernels (Optuna's tables, built with its operations)."""
        entry = self._below.get(n)
        if entry is None:
            weights = _ParzenEstimator._call_weights_func(self.parameters.weights, n)
            weights = np.append(weights, [self.parameters.prior_weight])
            weights /= weights.sum()
            tables = _CategoricalMixture._tables(self.n_choices, n, self.parameters, {})
            cumulative = np.cumsum(tables, axis=-1)
            for p, c in enumerate(self.n_choices):
                cumulative[p, :, c - 1] = 1  # Optuna's guard against rounding
                cumulative[p, :, c:] = np.inf  # padding: never below a quantile
            cdf = weights.cumsum()  # numpy's RandomState.choice, step for step
            cdf /= cdf[-1]
            with np.errstate(divide="ignore"):  # padding: never read
                entry = _BelowTables(cumulative, np.log(tables), cdf, np.log(weights), weights[:-1])
            if len(self._below) > 64:
                self._below.clear()
            self._below[n] = entry
        return entry


def _log_mixture(space: _FastSpace, a: float, log_sum: np.ndarray, log_prior_weight: float) -> np.ndarray:
    """A categorical Parzen estimator's log density from its kernels' part: ``log(a^P /
    prod(1 + C_p a) x sum + prior weight x prod(1 / C_p))``, where ``log_sum`` is the log of
    the kernels' weighted sum of ``r^m`` (see :meth:`CachedTPESampler._log_density_estimates`)."""
    log_scale = space.n_params * math.log(a) - math.fsum(math.log1p(c * a) for c in space.n_choices)
    return np.logaddexp(log_sum + log_scale, space.log_prior_density + log_prior_weight)


class CachedTPESampler(optuna.samplers.TPESampler):
    """Optuna's ``TPESampler`` whose work per proposal does not grow with the history.

    Same constructor, same algorithm, same random stream: with the same seed and the same
    results it proposes exactly what ``optuna.samplers.TPESampler`` proposes. Only the
    bookkeeping differs. A finished trial never changes, so each one is read, encoded and
    filed (by objective value, pruning score or constraint violation) once, when first
    seen, instead of at every proposal; the good/bad split is then read off the files; and
    the Parzen estimators compute their densities from a few weight rows per parameter
    rather than one row per trial. Only running trials and the trials finished since the
    last proposal are read again. The best of the candidates is found from a bounded
    estimate of the "above" density (:meth:`_acquisition`), with Optuna's exact values
    computed only for candidates that nearly tie: the same argmax, without one ``exp``
    per trial and candidate. In the common case (one objective, no other trial running,
    trials finished in number order) no estimator object is built at all:
    :meth:`_fast_sample` draws Optuna's candidates with Optuna's random calls from a few
    cached tables and estimates both densities from counts of agreeing parameters.

    Search spaces with a non-categorical parameter, several objectives' non-dominated
    sorting (done by Optuna over the cached trials at each proposal), ``group = True``'s
    search-space decomposition and a replaced ``_parzen_estimator_cls`` use Optuna's own
    code for that step.

    Attributes:
        encoded: Trials read so far (each finished trial once; a running trial at each
            proposal that sees it). The test of "does not grow with the history".
        exact_rows: Candidates whose exact "above" density was computed (near-ties, and
            every candidate where the estimate's bound cannot be promised).
        fast_proposals: Proposals made by :meth:`_fast_sample`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoded = 0
        self.exact_rows = 0
        self.fast_proposals = 0
        self._fast_spaces: dict[tuple[int, ...], _FastSpace] = {}
        self._reset(None)

    def _reset(self, owner: tuple[int, int] | None) -> None:
        self._owner = owner
        self._seen = 0
        self._open: set[int] = set()
        self._slots: list[FrozenTrial] = []
        self._numbers = np.zeros(64, dtype=np.int64)
        self._in_order = True
        self._n_counted = 0
        self._complete: list[tuple[Any, ...]] = []  # one objective: (key, number, slot), sorted
        self._complete_mo: list[tuple[int, int]] = []  # several: (number, slot), sorted
        self._pruned: list[tuple[Any, ...]] = []
        self._infeasible: list[tuple[Any, ...]] = []
        self._columns: dict[str, _Column] = {}
        self._configs: dict[tuple[str, ...], tuple[list[_Column], _Configurations]] = {}
        self._running: list[FrozenTrial] = []
        self._tables: dict[tuple[Any, ...], Any] = {}  # _CategoricalMixture's, reused

    # -- the history, filed once -------------------------------------------------------------

    def _sync(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        """File the trials finished since the last call; note the running ones."""
        owner = (id(study._storage), study._study_id)
        if owner != self._owner or len(trials) < self._seen:
            self._reset(owner)
        if trials and (trials[0].number != 0 or trials[-1].number != len(trials) - 1):
            # Storages list every trial in number order; index by number all the same.
            trials = _by_number(trials)
        running = []
        for number in sorted(self._open) + list(range(self._seen, len(trials))):
            t = trials[number]
            self.encoded += 1
            if t.state.is_finished():
                self._open.discard(number)
                if t.state in _COUNTED:
                    self._add(study, t)
            else:
                self._open.add(number)
                if t.state == TrialState.RUNNING:
                    running.append(t)
        self._seen = len(trials)
        self._running = running

    def _add(self, study: optuna.Study, trial: FrozenTrial) -> None:
        slot = len(self._slots)
        if slot == len(self._numbers):
            self._numbers = np.concatenate([self._numbers, np.zeros(slot, dtype=np.int64)])
        if slot and trial.number < self._numbers[slot - 1]:
            self._in_order = False
        self._numbers[slot] = trial.number
        self._slots.append(trial)
        self._n_counted += 1
        # Optuna's _split_trials: infeasible first, then COMPLETE by value, PRUNED by score;
        # its sorts are stable over trials in number order, hence the number in each key.
        infeasible = _tpe._get_infeasible_trial_score(trial)
        if infeasible > 0:
            insort(self._infeasible, (infeasible, trial.number, slot))
        elif trial.state == TrialState.COMPLETE:
            if len(study.directions) <= 1:
                value = trial.value
                key = value if study.direction == optuna.study.StudyDirection.MINIMIZE else -value  # type: ignore[operator]
                insort(self._complete, (key, trial.number, slot))
            else:
                insort(self._complete_mo, (trial.number, slot))
        else:
            insort(self._pruned, (_tpe._get_pruned_trial_score(trial, study), trial.number, slot))
        for column in self._columns.values():
            column.append(trial.params)
        for columns, configs in self._configs.values():
            configs.append(self._config_of(columns, slot))

    def _column(self, name: str, distribution: BaseDistribution) -> _Column:
        column = self._columns.get(name)
        if column is not None and column.distribution is not distribution:
            if column.distribution == distribution:
                column.distribution = distribution  # the same: next time `is` answers
            else:
                column = None
        if column is None:
            column = _Column(name, distribution)
            for t in self._slots:
                column.append(t.params)
            self._columns[name] = column
        return column

    @staticmethod
    def _config_of(columns: list[_Column], slot: int) -> tuple[int, ...] | None:
        config = tuple([c.values[slot] for c in columns])
        return None if None in config else config  # type: ignore[return-value]

    def _configurations(self, columns: list[_Column]) -> _Configurations:
        """The distinct configurations of ``columns``' parameters, kept up to date."""
        names = tuple(c.name for c in columns)
        entry = self._configs.get(names)
        if entry is None or any(a is not b for a, b in zip(entry[0], columns)):
            configs = _Configurations([len(c.distribution.choices) for c in columns])  # type: ignore[attr-defined]
            for slot in range(len(self._slots)):
                configs.append(self._config_of(columns, slot))
            entry = self._configs[names] = (columns, configs)
        return entry[1]

    def _counted(self, study: optuna.Study) -> int:
        """COMPLETE and PRUNED trials, as Optuna counts them against ``n_startup_trials``."""
        self._sync(study, study._get_trials(deepcopy=False, use_cache=True))
        return self._n_counted

    # -- Optuna's steps, on the filed history --------------------------------------------------

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._group or not self._is_multivariate(study):
            return super().infer_relative_search_space(study, trial)
        return {
            name: distribution
            for name, distribution in _intersection_without_copy(self._search_space, study, True).items()
            if not distribution.single()
        }

    def _sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if search_space == {}:
            return {}
        if self._counted(study) < self._n_startup_trials:
            return {}
        return self._sample(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._counted(study) < self._n_startup_trials:
            return self._random_sampler.sample_independent(study, trial, param_name, param_distribution)
        return self._sample(study, trial, {param_name: param_distribution})[param_name]

    def _sample(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self._parzen_estimator_cls is not _ParzenEstimator or not all(
            isinstance(d, CategoricalDistribution) for d in search_space.values()
        ):
            return super()._sample(study, trial, search_space)
        self._sync(study, study._get_trials(deepcopy=False, use_cache=not self._constant_liar))
        running = [t for t in self._running if t.number != trial.number] if self._constant_liar else []
        if self._gamma is None:
            self._gamma = _tpe.default_gamma if len(study.directions) <= 1 else _tpe.default_gamma_multiobjective
        columns = [self._column(name, dist) for name, dist in search_space.items()]
        configs = self._configurations(columns)
        n_choices = [len(d.choices) for d in search_space.values()]  # type: ignore[attr-defined]
        below_slots = self._below(study, self._gamma(self._n_counted))
        if not running:
            proposal = self._fast_sample(study, search_space, configs, n_choices, below_slots)
            if proposal is not None:
                return proposal
        below = self._kernels(configs, below_slots, [], study, search_space)
        mpe_below = _CategoricalMixture(
            configs.table[below],  # a few kernels: one configuration each
            np.arange(len(below)),
            n_choices,
            self._parzen_estimator_parameters,
            np.ones(len(below)) if study._is_multi_objective() else None,
            self._tables,
        )
        above = self._kernels(configs, below_slots, running, study, search_space, above=True)
        mpe_above = _CategoricalMixture(
            configs.table[: len(configs.index)],
            above,
            n_choices,
            self._parzen_estimator_parameters,
            cache=self._tables,
            codes=configs.codes if configs.radix is not None else None,
        )
        if len(self._tables) > 64:
            self._tables.clear()  # the above estimator's grow by one kernel a trial
        x = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        unique, inverse = _distinct_rows(x, n_choices)
        acq = self._acquisition(mpe_below, mpe_above, unique)[inverse]
        samples = {name: x[:, i] for i, name in enumerate(search_space)}
        ret = optuna.samplers.TPESampler._compare(samples, acq)
        for name, dist in search_space.items():
            ret[name] = dist.to_external_repr(ret[name])
        return ret

    def _fast_sample(
        self,
        study: optuna.Study,
        search_space: dict[str, BaseDistribution],
        configs: _Configurations,
        n_choices: list[int],
        below_slots: list[int],
    ) -> dict[str, Any] | None:
        """Optuna's proposal in plain numpy on the filed history, for the common case: one
        objective, no other trial running, trials finished in number order, every trial
        with every parameter, Optuna's default kernel weights and a positive prior weight.
        None otherwise (before any random draw): :meth:`_sample` then builds the estimators.

        The same random calls in the same order: ``rng.choice`` of a "below" kernel per
        candidate is its ``random_sample`` and ``searchsorted`` on the same cdf, and the
        per-parameter ``rng.rand(size)`` that follow are one ``random_sample`` call of the
        same numbers; each candidate's choice is Optuna's count of cumulative kernel
        weights below its quantile. Optuna then takes the first candidate of largest
        ``log l(x) - log g(x)``. Both densities are estimated (:meth:`_log_density_estimates`,
        each within :data:`APPROXIMATION_TOLERANCE`); a candidate whose estimate is more
        than twice the tolerance below the best one's is below it exactly too, so only
        the candidates within that band (one, unless two nearly tie) get Optuna's exact
        computation (:meth:`_exact_acquisition`), and the argmax is Optuna's.
        """
        n = configs.size
        n_below = len(below_slots)
        n_above = n - n_below
        parameters = self._parzen_estimator_parameters
        if (
            len(study.directions) > 1
            or not self._in_order
            or configs.missing
            or n_below == 0
            or n_above == 0
            or parameters.weights is not _tpe.default_weights
            or not parameters.prior_weight > 0
        ):
            return None
        space = self._fast_spaces.get(tuple(n_choices))
        if space is None:
            space = self._fast_spaces[tuple(n_choices)] = _FastSpace(n_choices, parameters)
        if space.radix is None:
            return None
        below = space.below(n_below)
        # Optuna's below kernels in trial-number order (slot order: trials finish in order),
        # each kernel's table row per parameter; the prior kernel's is row C.
        below_ids = configs.slot_ids[sorted(below_slots)]
        rows = np.empty((space.n_params, n_below + 1), dtype=np.intp)
        rows[:, :n_below] = configs.table[below_ids].T
        rows[:, n_below] = space.choice_counts
        size = self._n_ei_candidates
        draws = self._rng.rng.random_sample(size * (space.n_params + 1))
        active = below.cdf.searchsorted(draws[:size], side="right")
        quantiles = draws[size:].reshape(space.n_params, size, 1)
        x = np.sum(below.cumulative[space.params[:, np.newaxis], rows[:, active]] < quantiles, axis=2)
        # The distinct candidates (a few dozen: a dict beats np.unique's sort), one column each.
        seen: dict[int, int] = {}
        first: list[int] = []
        inverse = []
        for i, code in enumerate((space.radix @ x).tolist()):
            j = seen.get(code)
            if j is None:
                j = seen[code] = len(first)
                first.append(i)
            inverse.append(j)
        candidates = x[:, first].astype(configs.choice_dtype)
        log_below, log_above = self._log_density_estimates(space, configs, below_slots, below_ids, below, candidates)
        if log_below is None:
            log_below = self._exact_log_below(space, rows, below, candidates)
        estimate = log_below - log_above
        top = float(estimate.max())  # NaN if any is
        if math.isfinite(top):
            contenders = np.flatnonzero(estimate >= top - 2 * APPROXIMATION_TOLERANCE)
        else:
            contenders = np.arange(len(first))
        if len(contenders) == 1:
            pick = first[contenders[0]]  # Optuna's argmax: the first of the best
        else:
            acq = np.full(len(first), -np.inf)
            acq[contenders] = self._exact_acquisition(
                study, search_space, configs, n_choices, below_slots, space, rows, below, candidates[:, contenders]
            )
            pick = int(np.argmax(acq[np.array(inverse)]))
        self.fast_proposals += 1
        return {name: dist.to_external_repr(float(c)) for (name, dist), c in zip(search_space.items(), x[:, pick].tolist())}

    def _exact_acquisition(
        self,
        study: optuna.Study,
        search_space: dict[str, BaseDistribution],
        configs: _Configurations,
        n_choices: list[int],
        below_slots: list[int],
        space: _FastSpace,
        rows: np.ndarray,
        below: _BelowTables,
        candidates: np.ndarray,
    ) -> np.ndarray:
        """Optuna's ``log l(x) - log g(x)`` of a few candidates (columns), bit for bit."""
        self.exact_rows += candidates.shape[1]
        above = self._kernels(configs, below_slots, [], study, search_space, above=True)
        mpe_above = _CategoricalMixture(
            configs.table[: len(configs.index)], above, n_choices, self._parzen_estimator_parameters, cache=self._tables
        )
        if len(self._tables) > 64:
            self._tables.clear()
        return self._exact_log_below(space, rows, below, candidates) - mpe_above.log_pdf_of(candidates.T.astype(np.intp))

    @staticmethod
    def _exact_log_below(space: _FastSpace, rows: np.ndarray, below: _BelowTables, candidates: np.ndarray) -> np.ndarray:
        """Optuna's log "below" density of candidates (columns), bit for bit: its sum of log
        table entries into zeros, parameter by parameter, plus the log kernel weights, then
        its log-sum-exp over each candidate's row of kernels (the same contiguous rows)."""
        logs = below.log_tables[space.params[:, np.newaxis, np.newaxis], rows[:, np.newaxis, :], candidates[:, :, np.newaxis]]
        weighted = np.zeros(logs.shape[1:])
        for term in logs:
            weighted += term
        weighted += below.log_weights
        max_ = weighted.max(axis=1)
        max_[np.isneginf(max_)] = 0
        with np.errstate(divide="ignore"):
            return np.log(np.exp(weighted - max_[:, np.newaxis]).sum(axis=1)) + max_

    def _log_density_estimates(
        self,
        space: _FastSpace,
        configs: _Configurations,
        below_slots: list[int],
        below_ids: np.ndarray,
        below: _BelowTables,
        candidates: np.ndarray,
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """Optuna's log "below" and "above" densities at each candidate (a column of choice
        indices), each within :data:`APPROXIMATION_TOLERANCE`; the "below" one None where it
        cannot be promised (then compute it exactly).

        A categorical Parzen estimator's kernel density of parameter ``p`` at choice ``x``
        is ``(a + [x == c_p]) / (1 + C_p a)``, with ``c`` the kernel's trial and ``a =
        prior_weight / (kernels + 1)``; the prior kernel's is ``1 / C_p``. So a kernel's
        product over the parameters is ``a^P / prod(1 + C_p a)`` times ``r^m``, with ``r =
        (1 + a) / a`` and ``m`` the parameters on which the candidate and the kernel's trial
        agree, and the mixture, past its prior kernel, is a sum over the configurations
        tried of their summed kernel weight times ``r^m``: no ``exp`` per kernel.

        Optuna's "above" estimator has a kernel per other trial in trial-number order,
        weighted by ``default_weights`` (a ramp from 1/n, the last 25 at 1; here to a few
        rounding units) and the prior kernel ``prior_weight``, all divided by their sum.
        ``m`` is counted between every candidate and every configuration tried, or, in a
        space of at most :data:`DENSE_SPACE` configurations once many were tried, the
        configurations' weights fill a (first parameters) x (last parameters) matrix, ``r^m``
        factors into the two halves' ``r^m`` and the sum is one matrix product. Where
        ``r^P`` could overflow the weights are binned by ``m`` and summed in the log domain.

        The bound: every sum here adds positive terms, and so does Optuna's log-sum-exp, so
        this value and Optuna's are each within about (kernels + configurations + parameters
        x (1 + the largest |log| of a table entry)) rounding units, relative, of the exact
        density: for 10^8 kernels and 100 parameters (|log| <= 20) both together stay below
        5e-8 in log units, against the tolerance of 1e-6.
        """
        prior_weight = self._parzen_estimator_parameters.prior_weight
        n = configs.size
        n_above = n - len(below_slots)
        n_params, n_candidates = candidates.shape
        d = len(configs.index)
        per_config, total = configs.above.weights(configs, below_slots)
        total += prior_weight
        per_config /= total
        a = prior_weight / (n_above + 1)
        log_r = math.log1p(1.0 / a)
        a_below = prior_weight / (len(below_slots) + 1)
        log_r_below = math.log1p(1.0 / a_below)
        exact_below = n_params * log_r_below > _LARGEST_LOG_POWER  # r^P could overflow
        if n_params * log_r > _LARGEST_LOG_POWER:
            matches = (candidates[:, :, np.newaxis] == configs.columns[:, np.newaxis, :d]).sum(axis=0, dtype=np.intp)
            below_matches = matches[:, below_ids].T
            matches += np.arange(n_candidates)[:, np.newaxis] * (n_params + 1)
            binned = np.bincount(
                matches.ravel(),
                weights=np.broadcast_to(per_config, (n_candidates, d)).ravel(),
                minlength=n_candidates * (n_params + 1),
            ).reshape(n_candidates, n_params + 1)
            with np.errstate(divide="ignore"):  # no kernel agrees on m parameters: log 0
                terms = np.log(binned) + log_r * space.agreements
            top = terms.max(axis=1)
            log_sum = np.log(np.exp(terms - top[:, np.newaxis]).sum(axis=1)) + top
        elif space.halves is None or d * n_params * _DENSE_FACTOR <= space.size:
            matches = (candidates[:, :, np.newaxis] == configs.columns[:, np.newaxis, :d]).sum(axis=0, dtype=space.count_dtype)
            below_matches = matches[:, below_ids].T
            log_sum = np.log(np.einsum("rc,c->r", np.exp(log_r * space.agreements)[matches], per_config))
        else:
            split, size_first, size_last = space.halves
            first_digits, last_digits = space.digits  # type: ignore[misc]
            powers = np.exp(log_r * space.agreements)
            dense = configs.dense(space.size)
            dense[configs.codes[:d]] = per_config
            # Candidates often share their last parameters: one column per distinct last half.
            last_of: dict[int, int] = {}
            last_first: list[int] = []
            last_inverse = []
            for i, code in enumerate((space.radix[split:] @ candidates[split:]).tolist()):
                j = last_of.get(code)
                if j is None:
                    j = last_of[code] = len(last_first)
                    last_first.append(i)
                last_inverse.append(j)
            last = candidates[split:, np.newaxis, last_first]
            last_matches = (last_digits[:, :, np.newaxis] == last).sum(axis=0, dtype=space.count_dtype)
            first_matches = (first_digits[:, :, np.newaxis] == candidates[:split, np.newaxis, :]).sum(
                axis=0, dtype=space.count_dtype
            )
            products = _one_thread_matmul(dense.reshape(size_first, size_last), powers[last_matches])
            log_sum = np.log(np.einsum("ar,ar->r", powers[first_matches], products[:, last_inverse]))
            codes = configs.codes[below_ids]
            below_matches = first_matches[codes // size_last] + last_matches[codes % size_last][:, last_inverse]
        log_above = _log_mixture(space, a, log_sum, math.log(prior_weight / total))
        if exact_below:
            return None, log_above
        powers = np.exp(log_r_below * space.agreements)[below_matches]
        log_sum = np.log(np.einsum("kr,k->r", powers, below.kernel_weights))
        return _log_mixture(space, a_below, log_sum, below.log_weights[-1]), log_above

    def _acquisition(
        self, mpe_below: _CategoricalMixture, mpe_above: _CategoricalMixture, unique: np.ndarray
    ) -> np.ndarray:
        """Optuna's acquisition ``log l(x) - log g(x)`` of each distinct candidate where it
        can be the largest, and -inf where it cannot: the same argmax as Optuna's.

        ``log l`` (a few kernels) is computed exactly. ``log g`` sums one kernel per trial,
        so it is first approximated (:meth:`_CategoricalMixture.approximate_log_pdf_of`,
        within :data:`APPROXIMATION_TOLERANCE`); a candidate whose approximate acquisition
        is more than twice the tolerance below the best one's is below it exactly too, so
        only the candidates within that band (one, unless two nearly tie) get Optuna's
        exact computation. Their exact values decide, as in Optuna; the others get -inf.
        ``self.exact_rows`` counts the rows computed exactly (the test of the shortcut).
        """
        log_below = mpe_below.log_pdf_of(unique)
        approximate = mpe_above.approximate_log_pdf_of(unique)
        if approximate is None or not np.isfinite(approximate).all():
            self.exact_rows += len(unique)
            return log_below - mpe_above.log_pdf_of(unique)
        estimate = (log_below - approximate).tolist()  # a few dozen values
        floor = max(estimate) - 2 * APPROXIMATION_TOLERANCE
        contenders = [i for i, value in enumerate(estimate) if value >= floor]
        acq = np.full(len(unique), -np.inf)
        if len(contenders) == 1:
            acq[contenders] = 0.0  # the only candidate that can be Optuna's argmax
            return acq
        self.exact_rows += len(contenders)
        acq[contenders] = log_below[contenders] - mpe_above.log_pdf_of(unique[contenders])
        return acq

    def _below(self, study: optuna.Study, n_below: int) -> list[int]:
        """Slots of the "below" (good) trials: Optuna's ``_split_trials``, read off the files."""
        if len(study.directions) <= 1:
            below = [s for _, _, s in self._complete[: min(n_below, len(self._complete))]]
        else:
            trials = [self._slots[s] for _, s in self._complete_mo]
            chosen, _ = _tpe._split_complete_trials(trials, study, n_below)
            slot_of = {number: s for number, s in self._complete_mo}
            below = [slot_of[t.number] for t in chosen]
        n_below = max(0, n_below - len(below))
        taken = self._pruned[: min(n_below, len(self._pruned))]
        below += [s for _, _, s in taken]
        n_below = max(0, n_below - len(taken))
        below += [s for _, _, s in self._infeasible[: min(n_below, len(self._infeasible))]]
        return below

    def _kernels(
        self,
        configs: _Configurations,
        below_slots: list[int],
        running: list[FrozenTrial],
        study: optuna.Study,
        search_space: dict[str, BaseDistribution],
        *,
        above: bool = False,
    ) -> np.ndarray:
        """The configuration of each below trial (or of every other trial, running ones
        included, with ``above``), in trial-number order as Optuna's ``_get_internal_repr``
        lists them; trials without every parameter of ``search_space`` are left out, as
        Optuna leaves them out."""
        n = len(self._slots)
        if above:
            keep = np.ones(n, dtype=bool)
            keep[below_slots] = False
        else:
            keep = np.zeros(n, dtype=bool)
            keep[below_slots] = True
        ids = configs.slot_ids[:n]
        keep &= ids >= 0
        numbers = self._numbers[:n][keep]
        kernels = ids[keep]
        if running:
            self.encoded += len(running)
            extra, extra_numbers = [], []
            for t in running:
                params = self._get_params(t, study)
                if search_space.keys() <= params.keys():
                    config = tuple(int(d.to_internal_repr(params[name])) for name, d in search_space.items())
                    extra.append(configs.id_of(config))
                    extra_numbers.append(t.number)
            numbers = np.concatenate([numbers, np.asarray(extra_numbers, dtype=np.int64)])
            kernels = np.concatenate([kernels, np.asarray(extra, dtype=np.intp)])
        if running or not self._in_order:
            kernels = kernels[np.argsort(numbers, kind="stable")]
        return kernels


# ----- NSGA-II/III and QMC, without re-reading the history at every proposal -----------------


class _TrialFiler:
    """Hands each trial of a study to ``file`` once, when first seen finished.

    Storages list every trial in number order, and a finished trial never changes: each
    call reads only the trials new since the last call and those that were still unfinished
    (running or waiting), however long the history.
    """

    def __init__(self, file: Any) -> None:
        self._file = file
        self._owner: tuple[int, int] | None = None
        self._seen = 0
        self._open: set[int] = set()

    def sync(self, study: optuna.Study, trials: list[FrozenTrial]) -> bool:
        """Files what is new; True when the filer started over (another study)."""
        owner = (id(study._storage), study._study_id)
        restarted = owner != self._owner or len(trials) < self._seen
        if restarted:
            self._owner, self._seen, self._open = owner, 0, set()
        if trials and (trials[0].number != 0 or trials[-1].number != len(trials) - 1):
            trials = _by_number(trials)
        for number in sorted(self._open) + list(range(self._seen, len(trials))):
            t = trials[number]
            if t.state.is_finished():
                self._open.discard(number)
                self._file(t)
            else:
                self._open.add(number)
        self._seen = len(trials)
        return restarted


def _intersection_without_copy(space: Any, study: optuna.Study, use_cache: bool) -> dict[str, BaseDistribution]:
    """``IntersectionSearchSpace.calculate`` without its defensive deep copy of the result
    (the samplers here never modify a distribution); the same objects come back each time."""
    if space._study_id is None:
        space._study_id = study._study_id
    elif space._study_id != study._study_id:
        raise ValueError("`IntersectionSearchSpace` cannot handle multiple studies.")
    space._search_space, space._cached_trial_number = _intersection_step(
        study._get_trials(deepcopy=False, use_cache=use_cache),
        space._include_pruned,
        space._search_space,
        space._cached_trial_number,
    )
    return dict(sorted((space._search_space or {}).items(), key=lambda x: x[0]))


_SPACE_STATES = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)


def _intersection_step(
    trials: list[FrozenTrial],
    include_pruned: bool,
    search_space: dict[str, BaseDistribution] | None,
    cached_trial_number: int,
) -> tuple[dict[str, BaseDistribution] | None, int]:
    """``optuna.search_space.intersection._calculate``, step for step, except that a
    distribution is first compared by identity: trials asked with the same distributions
    share their objects, and comparing two categorical distributions' choices one by one
    (NaN-aware) was most of the step's cost. Identity implies equality, so the result is
    Optuna's."""
    states = (*_SPACE_STATES, TrialState.PRUNED) if include_pruned else _SPACE_STATES
    next_cached_trial_number = -1
    for trial in reversed(trials):
        if trial.state not in states:
            continue
        if next_cached_trial_number == -1:
            next_cached_trial_number = trial.number + 1
        if cached_trial_number > trial.number:
            break
        if not trial.state.is_finished():
            next_cached_trial_number = trial.number
            continue
        if search_space is None:
            search_space = dict(trial.distributions)
            continue
        distributions = trial.distributions
        search_space = {
            name: distribution
            for name, distribution in search_space.items()
            if (other := distributions.get(name)) is distribution or other == distribution
        }
    return search_space, next_cached_trial_number


class _CachedGeneticHistory:
    """Optuna's genetic samplers' bookkeeping (``optuna.samplers._ga.BaseGASampler``) on
    trials filed once.

    Why private names: ``BaseGASampler.get_trial_generation`` reads every COMPLETE trial to
    find the newest generation, ``get_population`` every COMPLETE trial to find one
    generation's, and ``get_parent_population`` every trial to find the stored parents, at
    every proposal. Here each COMPLETE trial is filed under its generation once; the answers are
    Optuna's (the newest generation and its size are order-free; populations keep trial-
    number order, as Optuna lists them; a generation's parents, once chosen and stored,
    never change). ``infer_relative_search_space`` skips the intersection's deep copy.
    """

    def _history(self) -> dict[str, Any]:
        state = self.__dict__.get("_bitscout_history")
        if state is None:
            state = self.__dict__["_bitscout_history"] = {}
            self._clear_history(state)
        return state

    def _clear_history(self, state: dict[str, Any]) -> None:
        state.update(by_generation={}, counts={}, parents={})
        state["filer"] = _TrialFiler(lambda t: self._file_trial(state, t))

    def _file_trial(self, state: dict[str, Any], trial: FrozenTrial) -> None:
        if trial.state != TrialState.COMPLETE:
            return
        generation = trial.system_attrs.get(self._get_generation_key(), -1)  # type: ignore[attr-defined]
        state["counts"][generation] = state["counts"].get(generation, 0) + 1
        insort(state["by_generation"].setdefault(generation, []), (trial.number, trial), key=lambda e: e[0])

    def _sync_history(self, study: optuna.Study) -> dict[str, Any]:
        state = self._history()
        filer: _TrialFiler = state["filer"]
        owner = (id(study._storage), study._study_id)
        if filer._owner is not None and filer._owner != owner:
            self._clear_history(state)
            filer = state["filer"]
        filer.sync(study, study._get_trials(deepcopy=False, use_cache=True))
        return state

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {
            name: d
            for name, d in _intersection_without_copy(self._search_space, study, False).items()  # type: ignore[attr-defined]
            if not d.single()
        }

    def get_trial_generation(self, study: optuna.Study, trial: FrozenTrial) -> int:
        key = self._get_generation_key()  # type: ignore[attr-defined]
        generation = trial.system_attrs.get(key, None)
        if generation is not None:
            return generation
        counts = self._sync_history(study)["counts"]
        max_generation = max([0, *counts])
        max_generation_count = counts.get(max_generation, 0)
        assert self._population_size is not None, "Population size must be set."  # type: ignore[attr-defined]
        if max_generation_count < self._population_size:  # type: ignore[attr-defined]
            generation = max_generation
        else:
            generation = max_generation + 1
        study._storage.set_trial_system_attr(trial._trial_id, key, generation)
        return generation

    def get_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        return [t for _, t in self._sync_history(study)["by_generation"].get(generation, [])]

    def get_parent_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        if generation == 0:
            return []
        parents = self._history()["parents"]
        if generation in parents:
            return parents[generation]
        key = self._get_parent_cache_key_prefix() + str(generation)  # type: ignore[attr-defined]
        ids = study._storage.get_study_system_attrs(study._study_id).get(key, None)
        if ids is not None:
            wanted = set(ids)
            population = [t for t in study._get_trials(deepcopy=False) if t._trial_id in wanted]
        else:
            population = self.select_parent(study, generation)  # type: ignore[attr-defined]
            study._storage.set_study_system_attr(study._study_id, key, [t._trial_id for t in population])
            # Optuna answers later calls from the stored ids, in trial-number order.
            parents[generation] = sorted(population, key=lambda t: t.number)
            return population
        parents[generation] = population
        return population


class CachedNSGAIISampler(_CachedGeneticHistory, optuna.samplers.NSGAIISampler):
    """Optuna's ``NSGAIISampler``, proposal for proposal, with its history filed once."""


class CachedNSGAIIISampler(_CachedGeneticHistory, optuna.samplers.NSGAIIISampler):
    """Optuna's ``NSGAIIISampler``, proposal for proposal, with its history filed once."""


class CachedQMCSampler(optuna.samplers.QMCSampler):
    """Optuna's ``QMCSampler``, proposal for proposal, without its per-proposal scans.

    Why private names: ``QMCSampler.infer_relative_search_space`` filters every trial to
    find the first finished one (whose parameters define the space), and ``_sample_qmc``
    builds a new scrambled Sobol/Halton engine and fast-forwards it to the sample index at
    every proposal. Here the first finished trial is tracked as trials finish, and the
    engine is kept: when the next index is the one after the last, it draws on (the same
    point a fresh engine fast-forwarded there gives); otherwise it is rebuilt as Optuna does.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._first: FrozenTrial | None = None
        self._filer = _TrialFiler(self._file_trial)
        self._engine: tuple[Any, int, int] | None = None  # (engine, dimension, next index)

    def _file_trial(self, trial: FrozenTrial) -> None:
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            if self._first is None or trial.number < self._first.number:
                self._first = trial

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._filer.sync(study, study._get_trials(deepcopy=False, use_cache=True)):
            self._first, self._engine = None, None
            self._filer.sync(study, study._get_trials(deepcopy=False, use_cache=True))
        if self._first is None:
            return super().infer_relative_search_space(study, trial)
        return dict(self._first.distributions)

    def _sample_qmc(self, study: optuna.Study, search_space: dict[str, BaseDistribution]) -> np.ndarray:
        sample_id = self._find_sample_id(study, search_space)
        d = len(search_space)
        kept = self._engine
        if kept is None or kept[1] != d or kept[2] != sample_id:
            from scipy.stats import qmc

            if self._qmc_type == "halton":
                engine = qmc.Halton(d, seed=self._seed, scramble=self._scramble)
            elif self._qmc_type == "sobol":
                with _qmc_lock:
                    engine = qmc.Sobol(d, seed=self._seed, scramble=self._scramble)
            else:
                raise ValueError("Invalid `qmc_type`")
            if sample_id > 0:
                engine.fast_forward(sample_id)
        else:
            engine = kept[0]
        sample = engine.random(1)
        self._engine = (engine, d, sample_id + 1)
        return sample
