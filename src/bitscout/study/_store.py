"""Where a study lives: the default journal file, any Optuna storage URL, and resume checks.

The default storage is Optuna's journal (``study.journal`` in the run folder, readable by
``optuna-dashboard study.journal``): an append-only log, one JSON line per operation.
Measured on the 2-core development machine, Optuna's stock journal backend costs about
7 ms per trial more than in-memory storage (it calls ``fsync`` and takes a symlink lock on
every one of the ~10 writes of a trial), and SQLite 18-47 ms. bitscout's
:class:`LocalJournalBackend` writes the same file format with an ``flock`` lock and
without ``fsync``: a write reaches the operating system before the call returns, so a
search killed at any point (Ctrl-C, SIGKILL, an out-of-memory kill) loses no finished
trial; only a crash of the whole machine can lose the last writes. Pass
``fsync=True`` (or a ``sqlite:///`` / ``postgresql://`` URL) to survive that too. The
storage over it (:class:`bitscout._optuna_adapter.IndexedJournalStorage`, under the
heartbeat of :mod:`bitscout.study._worker_storage`) keeps each study's trial list up to
date as entries are replayed, so that a trial costs the same at trial 10 and at trial
10,000 (Optuna's ``JournalStorage`` rebuilds the list from every trial at each read).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Mapping
from typing import Any

import optuna

from bitscout._optuna_adapter import FlockLock, LocalJournalBackend
from bitscout.errors import SearchError
from bitscout.study._process import identity, is_gone

__all__ = [
    "JOURNAL_FILE",
    "LocalJournalBackend",
    "FlockLock",
    "Fingerprint",
    "check_fingerprint",
    "FINGERPRINT_ATTR",
]

JOURNAL_FILE = "study.journal"
FINGERPRINT_ATTR = "bitscout_fingerprint"


#: Keys that older bitscout versions wrote into a part and that no longer count, so that
#: their studies still resume (``eval_mode`` never changed an evaluation).
_RETIRED_KEYS: dict[str, tuple[str, ...]] = {"evaluation": ("eval_mode",)}


def _without_retired(name: str, text: str | None) -> str | None:
    if text is None or name not in _RETIRED_KEYS:
        return text
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(data, dict):
        for key in _RETIRED_KEYS[name]:
            data.pop(key, None)
    return json.dumps(data, sort_keys=True, default=str)


class Fingerprint:
    """What a study's results depend on, stored with the study to guard resumes.

    Each part is a canonical JSON text; a resumed study must match every part.

    Args:
        parts: Part name (``"space"``, ``"objective"``, ``"evaluation"``) -> a JSON-able
            description.
    """

    def __init__(self, parts: Mapping[str, Any]) -> None:
        self.parts = {k: json.dumps(v, sort_keys=True, default=str) for k, v in parts.items()}

    def to_attr(self) -> dict[str, str]:
        return {k: hashlib.sha256(v.encode()).hexdigest()[:16] for k, v in self.parts.items()} | {
            f"{k}_text": v for k, v in self.parts.items()
        }

    def differences(self, stored: Mapping[str, Any]) -> list[str]:
        """The parts whose stored hash differs from this one, with a short diff each."""
        out = []
        mine = self.to_attr()
        for name, text in self.parts.items():
            if stored.get(name) != mine[name]:
                old = stored.get(f"{name}_text")
                if old is not None and _without_retired(name, old) == text:
                    continue  # an older study: it differs only in keys that no longer count
                out.append(f"the {name} differs: {_short_diff(old, text)}")
        return out


def _short_diff(old: str | None, new: str) -> str:
    if old is None:
        return "the stored study has none recorded"
    try:
        a, b = json.loads(old), json.loads(new)
    except json.JSONDecodeError:
        return "stored and current descriptions differ"
    if isinstance(a, dict) and isinstance(b, dict):
        changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        shown = [f"{k}: stored {a.get(k)!r}, now {b.get(k)!r}" for k in changed[:3]]
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        return "; ".join(shown) + more
    return f"stored {a!r}, now {b!r}"


def check_fingerprint(study: optuna.Study, fingerprint: Fingerprint, *, where: str) -> bool:
    """Record the fingerprint in a new study, or check it against a resumed one.

    Args:
        study: The study (just created or loaded).
        fingerprint: The current search's fingerprint.
        where: The storage and study name, for the message.

    Returns:
        Whether the study already had trials or a fingerprint (a resume).

    Raises:
        SearchError: The stored study was made for another space or objective.
    """
    stored = study.user_attrs.get(FINGERPRINT_ATTR)
    if stored is None:
        if study.trials:
            raise SearchError(
                f"the study {where} already has {len(study.trials)} trials that bitscout did "
                "not write (no fingerprint); use another --out or --study-name"
            )
        study.set_user_attr(FINGERPRINT_ATTR, fingerprint.to_attr())
        return False
    problems = fingerprint.differences(stored)
    if problems:
        raise SearchError(
            f"the study {where} was made for another search, so it cannot be resumed:\n  "
            + "\n  ".join(problems)
            + "\nUse another --out (run folder) or --study-name to start a new study, or "
            "restore the config it was made with to resume it."
        )
    return True


def worker_identity() -> dict[str, Any]:
    """This process, as recorded in the study to tell live workers from dead ones."""
    return identity()


def worker_may_be_alive(worker: Mapping[str, Any]) -> bool:
    """Whether a recorded worker could still be running (not known to have exited).

    An earlier run in this very process has ended: that record is not alive.
    """
    if worker.get("host") == socket.gethostname() and worker.get("pid") == os.getpid():
        return False
    return not is_gone(worker)
