"""scripts/lab3.py (the seed coursework's search lab, docs/lab3.md) runs end to end.

On JSC-format data made here (SYNTHETIC jets: random features, labels from a fixed linear
rule, written in the OpenML CSV form that real JSC downloads have) and on the bundled digits.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bitscout.data._jsc import JSC_FEATURES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import lab3  # noqa: E402


def _synthetic_jsc_csv(path: Path, n: int = 3000) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, len(JSC_FEATURES))).astype(np.float32)
    y = (x[:, :5] * np.array([1.0, 0.8, 0.6, 0.4, 0.2])).argmax(axis=1)
    frame = pd.DataFrame(x, columns=list(JSC_FEATURES))
    frame["class"] = np.array(["g", "q", "w", "z", "t"])[y]
    frame.to_csv(path, index=False)
    return path


def _check_report(out: Path, space: int, brute_force: int) -> str:
    text = (out / "lab3.md").read_text()
    # Task 3 evaluated brute_force distinct configurations exactly once; over the whole space its
    # optimum is the exact one compare found, and never better than it.
    best = json.loads((out / "task3" / "best.json").read_text())
    comparison = json.loads((out / "task4" / "comparison.json").read_text())
    assert comparison["distinct_size"] == space
    assert best["n_unique"] == best["n_trials"] == brute_force
    if brute_force == space:
        assert best["best"]["values"][0] == pytest.approx(comparison["optimum"], abs=1e-12)
    else:
        assert best["best"]["values"][0] <= comparison["optimum"] + 1e-12
    # The FLOPs term is constant: one value for every trial of task 2.
    log = json.loads((out / "task2" / "log.json").read_text())
    assert len({t["scaled_metrics"]["flops"] for t in log if t["state"] == "COMPLETE"}) == 1
    rho = float(re.search(r"minus loss over these configurations is (-?[0-9]+\.[0-9]+)", text).group(1))
    assert -1.0 <= rho <= 1.0
    for heading in ("## 1.", "## 2.", "## 3.", "## 4."):
        assert heading in text
    return text


def test_lab3_on_jsc_format_data(tmp_path):
    data = _synthetic_jsc_csv(tmp_path / "jets.csv")
    out = tmp_path / "lab"
    assert lab3.main(["--jsc", str(data), "--out", str(out), "--seeds", "3", "--budget", "18", "--max-epochs", "3"]) == 0
    text = _check_report(out, space=18, brute_force=18)  # jsc-tiny has one Linear layer: 2 x 3 x 3 choices
    assert "jsc-tiny on" in text


@pytest.mark.slow
def test_lab3_on_digits(tmp_path):
    out = tmp_path / "lab"
    args = ["--out", str(out), "--seeds", "2", "--budget", "40", "--max-epochs", "2", "--max-trials", "150"]
    assert lab3.main(args) == 0
    text = _check_report(out, space=18**3, brute_force=150)  # the MLP has three Linear layers
    assert "of 5,832 (capped by --max-trials)" in text
