"""Searches on a CUDA device agree with the same searches on the CPU.

Every test here is marked ``gpu`` and skipped without a CUDA device (tests/conftest.py).
``benchmarks/gpu_check.sh`` runs them on a GPU machine.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from bitscout.config import ConfigOverrides, load_config
from bitscout.data import load_dataset
from bitscout.graph import trace
from bitscout.metrics import AverageBitwidth, BasicEvaluation, RunContext, RunnerSet
from bitscout.models import build_model, save_checkpoint
from bitscout.quant import Quantizer
from bitscout.space import SearchSpace
from bitscout.study import prepare_search
from bitscout.evaluation import evaluate_runner_set_exhaustively

pytestmark = pytest.mark.gpu

#: The device compared with the CPU: "cuda", or "cpu" for the dry run of
#: benchmarks/gpu_check.sh (BITSCOUT_GPU_TEST_DEVICE=cpu, which also lifts the skip).
DEVICE = os.environ.get("BITSCOUT_GPU_TEST_DEVICE", "cuda")

_CONFIG = """
model = "mlp"
dataset = "digits"
task = "cls"
batch_size = 64
seed = 0
project = "digits-gpu-check"
load_name = "{checkpoint}"
load_type = "bitscout"

[search.search_space]
name = "graph/quantize/mixed_precision_ptq"
[search.search_space.setup]
by = "type"
[search.search_space.seed.default.config]
name = ["NA"]
[search.search_space.seed.linear.config]
name = ["integer"]
data_in_width = [8]
weight_width = [2, 3, 8]
bias_width = [8]

[search.strategy]
name = "brute_force"
[search.strategy.sw_runner.basic_evaluation]
data_loader = "val_dataloader"
num_samples = 540
[search.strategy.hw_runner.average_bitwidth]
compare_to = 32
[search.strategy.setup]
n_trials = 100
sum_scaled_metrics = true
direction = "maximize"
[search.strategy.metrics]
accuracy.scale = 1.0
average_bitwidth.scale = 0.02
"""


def _trained_checkpoint(path: Path) -> Path:
    """A digits MLP fitted by a few full-batch gradient steps on the CPU, saved."""
    digits = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("mlp", digits.info)
    x, y = digits.train.x, digits.train.y
    for _ in range(60):
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
    save_checkpoint(model, path, {"model": "mlp", "dataset": "digits", "metrics": {}})
    return path


def _run(config_file: Path, accelerator: str, out: Path) -> Any:
    config = load_config(config_file, ConfigOverrides(accelerator=accelerator, out=out))
    prepared = prepare_search(config)
    assert prepared.experiment.device.type == accelerator
    return prepared.run(progress=False)


def test_brute_force_search_on_cuda_matches_cpu(tmp_path: Path) -> None:
    checkpoint = _trained_checkpoint(tmp_path / "mlp.pt")
    config_file = tmp_path / "search.toml"
    config_file.write_text(_CONFIG.format(checkpoint=checkpoint.as_posix()))
    cpu = _run(config_file, "cpu", tmp_path / "cpu")
    gpu = _run(config_file, DEVICE, tmp_path / "cuda")
    assert len(cpu.complete) == len(gpu.complete) == 27

    def by_config(result: Any) -> dict[str, Any]:
        return {repr(sorted(t.params.items())): t for t in result.complete}

    cpu_trials, gpu_trials = by_config(cpu), by_config(gpu)
    assert cpu_trials.keys() == gpu_trials.keys()
    n = 540
    for key, c in cpu_trials.items():
        g = gpu_trials[key]
        assert g.hardware_metrics == c.hardware_metrics
        # A float rounding difference may flip the argmax of a sample on a near tie.
        assert abs(g.software_metrics["accuracy"] - c.software_metrics["accuracy"]) <= 2 / n
        assert math.isclose(g.software_metrics["loss"], c.software_metrics["loss"], rel_tol=1e-4)
    values = sorted((t.values[0] for t in cpu.complete), reverse=True)
    if values[0] - values[1] > 4 / n:  # a clear winner must be found on both devices
        assert gpu.best.params == cpu.best.params
    assert math.isclose(gpu.best.values[0], cpu.best.values[0], abs_tol=2 / n)


def test_exhaustive_evaluation_on_cuda_matches_trial_by_trial_on_cuda(tmp_path: Path) -> None:
    digits = load_dataset("digits", seed=0)
    device = torch.device(DEVICE)
    torch.manual_seed(0)
    model = build_model("mlp", digits.info, {"hidden": [32, 16]}).to(device).eval()
    traced = trace(model, digits.val.x[:2].to(device))
    context = RunContext(
        traced=traced, quantizer=Quantizer(traced), dataset=digits, device=device, batch_size=64
    )
    runners = RunnerSet(
        [
            BasicEvaluation(BasicEvaluation.Options(num_samples=540), context),
            AverageBitwidth(AverageBitwidth.Options(), context),
        ],
        context,
    )
    widths = [2, 4, 8]
    choices = {
        layer.name: {"name": "integer", "data_in_width": widths, "weight_width": widths, "bias_width": 8}
        for layer in traced.table
        if layer.op == "linear"
    }
    space = SearchSpace(traced.table, choices)
    result = evaluate_runner_set_exhaustively(space, runners)
    for index in random.Random(0).sample(range(space.distinct_size), 40):
        config = space.decode(space.distinct_params_at(index))
        expected = runners.run(config)
        got = result.metrics_at(index)
        assert got.hardware == expected.hardware
        assert got.software["accuracy"] == expected.software["accuracy"]
        assert got.software["balanced_accuracy"] == expected.software["balanced_accuracy"]
        assert math.isclose(got.software["loss"], expected.software["loss"], rel_tol=1e-6)
