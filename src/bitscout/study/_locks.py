"""One budget for many workers: the lock each worker takes to decide on and ask for a trial.

PostgreSQL: a session advisory lock keyed by the study name; a journal file or an SQLite
database: :class:`~bitscout._optuna_adapter.FlockLock` on ``<file>.ask.lock``; other
storages: a lock among this process's threads only.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import weakref
from typing import Any

from optuna.storages import BaseStorage, RDBStorage

from bitscout._optuna_adapter import FlockLock, backend_of, journal_file_path

__all__ = ["ask_lock", "rdb_ask_lock"]

_log = logging.getLogger(__name__)


class _ThreadOnlyLock:
    """Excludes the threads of this process only (a storage with no shared lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class _PostgresLock:
    """A PostgreSQL session advisory lock keyed by the study name.

    Held on a connection of its own (autocommit, so no transaction stays open); the
    server releases it when that connection ends, also when the worker is killed.
    """

    def __init__(self, engine: Any, study_name: str) -> None:
        digest = hashlib.sha256(f"bitscout:{study_name}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)
        self._engine = engine
        self._conn: Any = None
        self._pid = -1
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        if self._conn is None or self._pid != os.getpid():
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._pid = os.getpid()
        return self._conn

    def __enter__(self) -> None:
        import sqlalchemy

        self._lock.acquire()
        try:
            self._connection().execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        except BaseException:
            self._conn = None
            self._lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        import sqlalchemy

        try:
            self._connection().execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        except Exception:  # noqa: BLE001  (a broken connection has dropped the lock already)
            _log.debug("could not release the ask lock", exc_info=True)
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        finally:
            self._lock.release()


# Per storage object (weakly: a storage's locks go with it; keyed by id(), a new storage
# at a freed one's address got that storage's lock, on the other file or database),
# then per study name.
_LOCKS: weakref.WeakKeyDictionary[BaseStorage, dict[str, contextlib.AbstractContextManager[None]]] = (
    weakref.WeakKeyDictionary()
)
_LOCKS_GUARD = threading.Lock()


def ask_lock(storage: BaseStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """A lock that every worker of the study takes to decide on and ask for its next trial.

    PostgreSQL: a session advisory lock keyed by the study name; a journal file or an
    SQLite database: an ``flock`` on ``<file>.ask.lock``; other storages: a lock among
    this process's threads only (then several processes may each start one trial past
    ``n_trials``). One lock object per storage object and study, reused.
    """
    with _LOCKS_GUARD:
        locks = _LOCKS.setdefault(storage, {})
        lock = locks.get(study_name)
        if lock is None:
            backend = backend_of(storage)
            journal = journal_file_path(backend)
            if isinstance(backend, RDBStorage):
                lock = rdb_ask_lock(backend, study_name)
            elif journal is not None:
                lock = FlockLock(journal, suffix=".ask.lock")
            else:
                lock = _ThreadOnlyLock()
            locks[study_name] = lock
        return lock




def rdb_ask_lock(storage: RDBStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """The ask lock of a database: an advisory lock (PostgreSQL), a file lock next to the
    file (SQLite), else a lock among this process's threads."""
    if storage.engine.dialect.name == "postgresql":
        return _PostgresLock(storage.engine, study_name)
    if storage.engine.dialect.name == "sqlite" and storage.engine.url.database not in (None, "", ":memory:"):
        return FlockLock(str(storage.engine.url.database), suffix=".ask.lock")
    return _ThreadOnlyLock()
