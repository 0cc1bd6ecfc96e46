"""Fixtures for the config tests: the lab file and a writer of TOML variants of it."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

REPO = Path(__file__).resolve().parents[2]
LAB_CONFIG = REPO / "configs" / "jsc_tiny_lab.toml"

# MASE's own example search config (configs/examples/search_toy_tpe.toml in DeepWok/mase),
# in the form MASE users run: by name, one default seed, table-form runners, multi-objective.
MASE_TOY_TPE = """\
# basics
model = "toy"
dataset = "toy_tiny"
task = "cls"

max_epochs = 5
batch_size = 512
learning_rate = 1e-2
accelerator = "gpu"
project = "toy_toy_tiny"
seed = 42
log_every_n_steps = 5
# load_name = "../mase_output/toy_toy_tiny/software/training_ckpts/best.ckpt"
# load_type = "pl"

[search.search_space]
name = "graph/quantize/mixed_precision_ptq"

[search.search_space.setup]
by = "name"

[search.search_space.seed.default.config]
name = ["integer"]
data_in_width = [4, 8]
data_in_frac_width = [3, 4, 5, 6, 7, 8, 9]
weight_width = [2, 4, 8]
weight_frac_width = [3, 4, 5, 6, 7, 8, 9]
bias_width = [2, 4, 8]
bias_frac_width = [3, 4, 5, 6, 7, 8, 9]

[search.strategy]
name = "optuna"
eval_mode = true

[search.strategy.sw_runner.basic_evaluation]
data_loader = "val_dataloader"
num_samples = 512

[search.strategy.hw_runner.average_bitwidth]
compare_to = 32  # compare to FP32

[search.strategy.setup]
n_jobs = 1
n_trials = 20
timeout = 20000
sampler = "tpe"
# sum_scaled_metrics = true # single objective
# direction = "maximize"
sum_scaled_metrics = false  # multi objective

[search.strategy.metrics]
# loss.scale = 1.0
# loss.direction = "minimize"
accuracy.scale = 1.0
accuracy.direction = "maximize"
average_bitwidth.scale = 0.2
average_bitwidth.direction = "minimize"
"""


@pytest.fixture
def lab_doc() -> dict[str, Any]:
    """The lab config as a freshly parsed TOML document (safe to change)."""
    return tomllib.loads(LAB_CONFIG.read_text())


@pytest.fixture
def write_toml(tmp_path: Path) -> Callable[..., Path]:
    """Write a TOML document (a dict or text) to a file and return its path."""

    def write(document: dict[str, Any] | str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(document if isinstance(document, str) else tomli_w.dumps(document))
        return path

    return write


@pytest.fixture
def lab_path() -> Path:
    """The lab's jsc-tiny "by type" search config shipped in configs/."""
    return LAB_CONFIG


@pytest.fixture
def mase_toy_tpe() -> str:
    """The text of MASE's example TPE search config."""
    return MASE_TOY_TPE
