"""Shared test fixtures.

Tests run on small machines (2 cores) next to other work: torch is limited to one
thread per process so that timings and CPU use stay predictable.
"""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # BITSCOUT_GPU_TEST_DEVICE=cpu: the dry run of benchmarks/gpu_check.sh runs the gpu
    # tests' logic on the CPU (tests/test_gpu.py compares against that device).
    if _cuda_available() or os.environ.get("BITSCOUT_GPU_TEST_DEVICE") == "cpu":
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is available here")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the PostgreSQL server that scripts/test.sh started for this run.

    Skips the test with the reason when there is none, unless the run requires
    PostgreSQL (BITSCOUT_REQUIRE_POSTGRES=1, set by CI), in which case it fails.
    """
    url = os.environ.get("BITSCOUT_TEST_POSTGRES_URL")
    if url:
        return url
    reason = os.environ.get("BITSCOUT_TEST_POSTGRES_ERROR") or (
        "BITSCOUT_TEST_POSTGRES_URL is not set (run the suite with `make test`, "
        "which starts a private PostgreSQL server)"
    )
    if os.environ.get("BITSCOUT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required for this run but unavailable: {reason}")
    pytest.skip(f"no PostgreSQL server: {reason}")
