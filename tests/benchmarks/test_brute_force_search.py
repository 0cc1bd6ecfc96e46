"""benchmarks/brute_force_search.py: the table pass and the loop leave the same study."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_small_run_compares_both_ways_and_finds_the_same_study(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "brute_force_search.py"), "--widths", "2,4,8", "--data-widths", "4,8", "--rounds", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "brute-force search of the digits MLP: 216 configurations" in out
    assert "the same study both ways: True" in out
    # One journal entry a trial (the study's own few entries spread over 216) against the
    # loop's one per parameter, record and result.
    per_trial = {way: float(n) for way, n in re.findall(r"^  (table pass|loop)\s.*?; ([0-9.]+) journal entries per trial", out, re.M)}
    assert per_trial["table pass"] < 1.2 and per_trial["loop"] > 8, out
