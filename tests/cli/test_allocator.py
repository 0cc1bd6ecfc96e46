"""The allocator setting the ``bitscout`` command makes at start-up (issue 16, jsc-s).

glibc's ``mallopt`` is process-wide, so each check runs in a fresh interpreter. What is
checked is the allocator's behaviour, not only the function's answer: with the mmap
threshold fixed at 256 MiB a 64 MiB block comes from the heap (glibc's default serves
anything over 32 MiB with ``mmap``), as ``mallinfo2`` shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bitscout._allocator import MMAP_THRESHOLD, OPT_OUT_ENV, TRIM_THRESHOLD

SRC = Path(__file__).resolve().parents[2] / "src"

# Runs `bitscout` (an unknown command: argparse stops it after start-up) or only
# tune_allocator, then allocates 64 MiB and reports where glibc put it.
_PROBE = r"""
import ctypes, json, sys
import bitscout._allocator as allocator
status = None
if sys.argv[1] == "cli":
    from bitscout.cli import main
    try:
        status = main(["no-such-command"])
    except SystemExit as exc:
        status = exc.code
else:
    allocator.tune_allocator()
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
before = libc.mallinfo2().hblkhd
block = libc.malloc(64 << 20)
ctypes.memset(block, 1, 64 << 20)
mmapped = libc.mallinfo2().hblkhd - before
print(json.dumps({"status": status, "applied": allocator._applied, "mmapped": mmapped}))
"""


def _glibc_with_mallinfo2() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return False
    major, _, minor = version.partition(" ")[2].partition(".")
    return version.startswith("glibc") and (int(major), int(minor)) >= (2, 33)


needs_glibc = pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="glibc >= 2.33 (mallinfo2) only")


def _run(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in (OPT_OUT_ENV, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    environ.update(env, PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, "-c", code, *args], env=environ, capture_output=True, text=True, timeout=120)


@needs_glibc
def test_the_command_sets_the_allocator_and_large_blocks_come_from_the_heap() -> None:
    proc = _run(_PROBE, "cli")
    probe = json.loads(proc.stdout.splitlines()[-1])
    assert probe["status"] == 2  # argparse refused the command, after start-up
    assert probe["applied"] == {"M_MMAP_THRESHOLD": MMAP_THRESHOLD, "M_TRIM_THRESHOLD": TRIM_THRESHOLD}
    assert probe["mmapped"] == 0  # 64 MiB under the 256 MiB threshold: a heap block


@needs_glibc
def test_the_opt_out_leaves_glibcs_allocator_as_it_is() -> None:
    probe = json.loads(_run(_PROBE, "function", **{OPT_OUT_ENV: "default"}).stdout.splitlines()[-1])
    assert probe["applied"] is None
    assert probe["mmapped"] >= 64 << 20  # glibc's default: over 32 MiB is always mmap


@needs_glibc
def test_the_users_own_malloc_settings_are_kept() -> None:
    probe = json.loads(_run(_PROBE, "function", MALLOC_MMAP_THRESHOLD_="1048576").stdout.splitlines()[-1])
    assert probe["applied"] is None
    assert probe["mmapped"] >= 64 << 20  # the user's 1 MiB threshold, not bitscout's


def test_a_wrong_opt_out_value_is_one_error_line() -> None:
    proc = _run("import sys; from bitscout.cli import main; sys.exit(main(['check', 'x.toml']))", **{OPT_OUT_ENV: "off"})
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: BITSCOUT_MALLOC='off': the only value is 'default'")
    assert "Traceback" not in proc.stderr
