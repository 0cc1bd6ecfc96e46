"""benchmarks/pareto.py's baseline runs: a run cached under an older source digest still counts."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import pareto as bench  # noqa: E402
import sample_efficiency as runner  # noqa: E402


def _run(member: str, hv: dict[str, float], points: list) -> runner.Run:
    return runner.Run(
        member=member, strategy="nsgaii", seed=3, trials=1500, unique=3, skipped=0, trials_to_opt=None,
        unique_to_opt=None, best=None, target=None, trajectory="t", sampler_s=0.0, wall_s=0.0,
        stop="reached n_trials = 1500", max_unique=1000, hv=hv, points=points,
    )


def test_cached_baseline_falls_back_to_an_older_digest_and_rejudges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Accuracy (max) against cost (min); the front (0.8, 2) and (0.9, 4) from (0.0, 10):
    # hypervolume 0.8 * 8 + 0.1 * 6 = 7.0.
    member = SimpleNamespace(
        name="toy/pareto", directions=("maximize", "minimize"),
        optimum=SimpleNamespace(reference_point=[0.0, 10.0], hypervolume=7.0),
    )
    current = tmp_path / "nsgaii-s3-current.json"
    monkeypatch.setattr(runner, "_run_path", lambda m, strategy, seed, u, t: tmp_path / f"{strategy}-s{seed}-current.json")
    assert bench.cached_baseline(member, "nsgaii", 3) == (None, False)

    # Only (0.8, 2) found within 1,000 evaluations (the third point came after): 6.4 / 7.0.
    points = [[1, [0.8, 2.0]], [2, [0.5, 3.0]], [1001, [0.9, 4.0]]]
    (tmp_path / "nsgaii-s3-older.json").write_text(json.dumps(asdict(_run("toy/pareto", {"1000": 0.5}, points))))
    (tmp_path / "nsgaii-s3-other.json").write_text(json.dumps(asdict(_run("other/pareto", {"1000": 0.1}, points))))
    run, exact = bench.cached_baseline(member, "nsgaii", 3)
    assert not exact and run is not None and run.member == "toy/pareto"
    assert run.hv["1000"] == pytest.approx(6.4 / 7.0)  # recomputed, not the stored 0.5

    # The current digest's run wins, as stored.
    current.write_text(json.dumps(asdict(_run("toy/pareto", {"1000": 0.75}, points))))
    run, exact = bench.cached_baseline(member, "nsgaii", 3)
    assert exact and run is not None and run.hv["1000"] == 0.75
