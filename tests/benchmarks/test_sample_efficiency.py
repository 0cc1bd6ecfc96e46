"""The suite's runner (benchmarks/sample_efficiency.py): its arithmetic and the --quick table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import sample_efficiency as se  # noqa: E402
import suite  # noqa: E402


@pytest.fixture(autouse=True)
def _repo_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # The benchmark's cache lives in the repository's .cache (gitignored), wherever pytest runs.
    monkeypatch.setenv("BITSCOUT_SUITE_CACHE", str(BENCHMARKS.parent / ".cache" / "sample_efficiency"))


def test_quantile_counts_missing_seeds_as_never() -> None:
    assert se.seed_quantile([10, 20, 30], 0.5) == 20
    assert se.seed_quantile([10, None, 30, 40], 0.5) == 35
    assert se.seed_quantile([10, None, None], 0.5) is None


def test_targets() -> None:
    def row(strategy: str, w500: int, w1000: int, median: float | None, hv: tuple[float, float] | None = None) -> se.Row:
        return se.Row("m", strategy, 20, w500, w1000, median, 20, hv and hv[0], hv and hv[1], 0.0)

    rows = [row("sensitivity", 19, 20, 100, None), row("tpe", 10, 20, 400), row("random", 19, 19, 50)]
    se.mark_targets(rows)
    assert [r.target for r in rows] == [True, False, False]  # random: behind TPE at 1,000
    pareto = [row("new", 0, 0, None, (0.95, 0.99)), row("nsgaii", 0, 0, None, (0.9, 0.95)), row("tpe", 0, 0, None, (0.9, 0.96))]
    se.mark_targets(pareto)
    assert [r.target for r in pareto] == [False, False, False]
    pareto[0].hv200 = 0.96
    se.mark_targets(pareto)
    assert pareto[0].target is True


@pytest.mark.slow
def test_quick_benchmark_table(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert se.main(["--quick", "--out", str(out), "--fresh"]) == 0
    data = json.loads((out / "suite.json").read_text())
    rows = {(r["member"], r["strategy"]): r for r in data["rows"]}
    assert set(rows) == {(m, s) for m in suite.names(quick=True) for s in se.QUICK_STRATEGIES}
    runs = data["runs"]
    assert len(runs) == len(suite.names(quick=True)) * len(se.QUICK_STRATEGIES) * 3
    for (member, strategy), row in rows.items():
        m = suite.load(member)
        if m.multi:
            if strategy == "sensitivity":
                assert row["refused"]  # one objective only: it says so
                continue
            assert 0.0 < row["hv200"] <= 1.0 + 1e-12
        else:
            mine = [r for r in runs if r["member"] == member and r["strategy"] == strategy]
            assert row["within_500"] == sum(r["unique_to_opt"] is not None for r in mine)
            for r in mine:
                # A run that reached the optimum holds it as its best; one that did not is below it.
                assert (r["unique_to_opt"] is not None) == m.reached(r["best"])
                assert r["unique"] <= 200
        assert 1 <= row["distinct"] <= 3
    # Random search with different seeds follows different paths.
    assert rows[("mlp/w1", "random")]["distinct"] == 3
    text = (out / "suite.md").read_text()
    assert "| mlp-shuffled/w1 | 46,656 |" in text
