"""glibc's allocator set for large tensors, once, when the ``bitscout`` command starts.

Why: glibc serves a large allocation from ``mmap`` or from its heap by a threshold that it
moves as memory is freed, and gives freed heap memory back to the system past a second
one. A search frees and allocates the same large tensors every trial, so with the
defaults the same code sometimes gets fresh pages from the system for a 20 MB tensor and
sometimes not: on jsc-s (160,000 rows) 0 to 40,000 page faults a trial, and a float
forward of 100 to 280 ms CPU for the same computation (benchmarks/RESULTS.md). With both
thresholds fixed high, freed blocks are reused: the page faults go and a trial runs at
the pace of its arithmetic (15-37 % less CPU a jsc-s trial). The price is memory that is
freed but kept by the process (measured: +2 MB peak on the lab case, +5 MB on a
13,824-trial brute force, +30-100 MB on jsc-s's 160,000 rows).

The command calls :func:`tune_allocator` first thing (before torch allocates anything);
the Python API leaves the allocator alone (it is the host program's). It does nothing

- when ``BITSCOUT_MALLOC=default`` is set (the opt-out; any other value is an error),
- when ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` is set (glibc has then
  read the user's own choice at start-up, which is kept),
- on anything but Linux with glibc (macOS, Windows, musl): there is no ``mallopt`` to call.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

from bitscout.errors import ConfigError

__all__ = ["tune_allocator", "OPT_OUT_ENV", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: ``BITSCOUT_MALLOC=default`` leaves glibc's allocator as it is.
OPT_OUT_ENV = "BITSCOUT_MALLOC"

#: Allocations up to this size come from the heap, and are reused once freed (glibc's
#: default moves between 128 KiB and 32 MiB as the process frees memory).
MMAP_THRESHOLD = 256 * 2**20

#: Free memory at the top of the heap is given back past this size (default: twice the
#: moving mmap threshold, so that a freed 20 MB tensor can be given back and faulted in
#: again by the next trial).
TRIM_THRESHOLD = 2**30

# mallopt's parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# The settings made in this process (mallopt is process-wide: one call is enough).
_applied: dict[str, int] | None = None


def tune_allocator(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """Fix glibc's mmap and trim thresholds for this process (see the module docstring).

    Args:
        environ: The environment to read (default ``os.environ``).

    Returns:
        What was set (``{"M_MMAP_THRESHOLD": ..., "M_TRIM_THRESHOLD": ...}``), also on a
        second call; empty when nothing was (opted out, set by the user, not glibc).

    Raises:
        ConfigError: ``BITSCOUT_MALLOC`` has another value than ``default``.
    """
    global _applied
    env = os.environ if environ is None else environ
    choice = env.get(OPT_OUT_ENV)
    if choice is not None and choice != "default":
        raise ConfigError(
            f"{OPT_OUT_ENV}={choice!r}: the only value is 'default' (leave glibc's allocator "
            f"as it is); unset {OPT_OUT_ENV} to let bitscout set it for large tensors"
        )
    if _applied is not None:
        return dict(_applied)
    if choice == "default" or "MALLOC_MMAP_THRESHOLD_" in env or "MALLOC_TRIM_THRESHOLD_" in env:
        return {}
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return {}
    settings = {"M_MMAP_THRESHOLD": MMAP_THRESHOLD, "M_TRIM_THRESHOLD": TRIM_THRESHOLD}
    # The mmap threshold first: setting it also stops glibc moving both thresholds.
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _applied = settings if ok else {}
    return dict(_applied)


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt`` (None elsewhere: another system or C library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL(None)  # the C library the interpreter is linked with
        mallopt = libc.mallopt
    except (ValueError, OSError, AttributeError):  # musl: no CS_GNU_LIBC_VERSION, no mallopt
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt
