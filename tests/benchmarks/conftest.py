"""Shared set-up of the benchmark tests: the suite's table cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def _repo_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # The benchmark's cache lives in the repository's .cache (gitignored), wherever pytest
    # runs, unless BITSCOUT_SUITE_CACHE names another (a warm copy).
    default = str(BENCHMARKS.parent / ".cache" / "sample_efficiency")
    monkeypatch.setenv("BITSCOUT_SUITE_CACHE", os.environ.get("BITSCOUT_SUITE_CACHE", default))
