"""Writing a file whole or not at all, safely when several processes write the same file.

Every output bitscout writes (``log.json``, ``best.json``, ``trials.csv``, plots, the
resolved ``config.toml``, checkpoints, reports) goes through :func:`atomic_path`: the
content is written to a temporary file next to the destination, then renamed over it
with :func:`os.replace`, which is atomic on one file system. A reader therefore sees the
old file or the new one, never half of one.

The temporary name is unique to the process, the thread and the call, so that several
``bitscout search`` processes on one run folder (or threads of one) never rename each
other's temporary file away (a fixed ``best.json.tmp`` made one of them fail with
``FileNotFoundError``). When two writers race, the last rename wins, and each file is a
complete one.

This module imports nothing from bitscout, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "temporary_name"]


def temporary_name(path: Path) -> Path:
    """A hidden name next to ``path``, unique to this process, thread and call.

    It keeps ``path``'s suffix last, so that writers that pick a format from the suffix
    (``savefig``) write the same format.
    """
    unique = f"{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}"
    return path.with_name(f".{path.stem}.{unique}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    On an error the temporary file is removed and ``path`` is left as it was.

    Example::

        with atomic_path(run_dir / "best.png") as tmp:
            fig.savefig(tmp)
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` whole or not at all; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
