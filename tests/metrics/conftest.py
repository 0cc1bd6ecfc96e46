"""Fixtures for the metric tests: traced models in run contexts."""

from __future__ import annotations

import pytest
import torch

from bitscout.data import Dataset, load_dataset
from bitscout.metrics import RunContext
from bitscout.models import build_model
from tests.metrics.metrics_helpers import clusters_dataset, make_context


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def clusters() -> Dataset:
    return clusters_dataset()


@pytest.fixture()
def jsc_context(clusters: Dataset) -> RunContext:
    torch.manual_seed(0)
    return make_context(build_model("jsc-tiny", clusters.info), clusters)


@pytest.fixture()
def cnn_context(digits: Dataset) -> RunContext:
    torch.manual_seed(0)
    return make_context(build_model("cnn", digits.info), digits)


@pytest.fixture()
def mlp_context(digits: Dataset) -> RunContext:
    torch.manual_seed(0)
    return make_context(build_model("mlp", digits.info, {"hidden": [32]}), digits)
