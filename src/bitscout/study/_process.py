"""Which process runs a study or a trial, and whether it is known to have exited.

One record, ``{"host", "pid", "created"}`` (the process start time: pids are reused, the
pair is not), written for each process that runs a study and for each trial's owner, and
one test of it (:func:`is_gone`) used by both stale-trial paths: with a heartbeat
(:func:`bitscout.study.fail_stale_trials`) and without (the journal file's recovery at
start-up).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

__all__ = ["identity", "is_gone", "process_start"]

_ME: dict[str, Any] = {}


def process_start(pid: int) -> float | None:
    """The start time of process ``pid`` (psutil), or None when it cannot be read."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # noqa: BLE001  (psutil missing, process gone, /proc restricted)
        return None


def identity() -> dict[str, Any]:
    """This process: host, pid and start time."""
    if _ME.get("pid") != os.getpid():  # recomputed in a forked child
        _ME.clear()
        _ME.update(host=socket.gethostname(), pid=os.getpid(), created=process_start(os.getpid()))
    return dict(_ME)


def is_gone(record: Mapping[str, Any] | None) -> bool:
    """True only when the recorded process is known to have exited.

    That needs it to have run on this host (another host's processes cannot be looked
    at) and no process with its pid and start time to exist now. A process of another
    user (signal refused) counts as alive. This process itself is not gone: callers
    decide what an earlier run of the same process means.
    """
    if record is None or record.get("host") != socket.gethostname():
        return False
    pid = record.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    now_created = process_start(pid)
    if now_created is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False  # exists, owned by another user
        return False
    created = record.get("created")
    return created is not None and abs(now_created - float(created)) > 1e-3  # pid reused
