"""quantize and search fold BatchNorm and calibrate once, the same way."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import bitscout.quant._calibration as calibration_module
from bitscout.cli import main
from bitscout.config import load_config
from bitscout.data import load_dataset
from bitscout.graph import fold_batchnorm, trace
from bitscout.models import build_model, save_checkpoint
from bitscout.quant import CALIBRATION_FILE, Calibration, calibrate
from bitscout.study import prepare_search
from bitscout.training import train

CONFIG = """\
model = "mlp"
dataset = "digits"
batch_size = 64
accelerator = "cpu"
seed = 0
calibration_samples = 100
load_name = "{ckpt}"
load_type = "bitscout"

[model_options]
hidden = [32, 16]
batch_norm = true
"""

PASS = """
[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
data_in_width = 8
data_in_frac_width = "auto"
weight_width = 8
weight_frac_width = "auto"
bias_width = 8
bias_frac_width = "auto"
"""

SEARCH = """
[search.search_space]
name = "graph/quantize/mixed_precision_ptq"
[search.search_space.setup]
by = "type"
[search.search_space.seed.default.config]
name = ["NA"]
[search.search_space.seed.linear.config]
name = ["int"]
data_in_width = [4, 8]
weight_width = [4, 8]
weight_granularity = ["channel"]
bias_width = [8]
[search.strategy]
name = "brute_force"
[search.strategy.sw_runner.basic_evaluation]
data_loader = "val_dataloader"
num_samples = 540
[search.strategy.setup]
n_trials = 4
[search.strategy.metrics]
accuracy.scale = 1.0
"""


def _checkpoint(tmp_path: Path) -> Path:
    dataset = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("mlp", dataset.info, {"hidden": (32, 16), "batch_norm": True})
    train(model, dataset, epochs=3, batch_size=64, learning_rate=3e-3, seed=0, progress=False)
    path = tmp_path / "best.pt"
    save_checkpoint(model, path, {"model": "mlp", "dataset": "digits"})
    return path


def test_quantize_folds_calibrates_and_shows_resolved_formats(tmp_path: Path, capsys) -> None:
    path = tmp_path / "q.toml"
    path.write_text(CONFIG.format(ckpt=_checkpoint(tmp_path)) + PASS)
    assert main(["quantize", str(path)]) == 0
    out = capsys.readouterr().out
    assert "BatchNorm folded into: fc1 (bn1), fc2 (bn2)" in out
    assert "calibration: minmax observer on 100 training samples" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("fc")}
    assert "linear+bn" in rows["fc1"] and "linear+bn" in rows["fc2"] and "linear+bn" not in rows["fc3"]
    assert "auto" not in rows["fc1"] and "data_in 8b (" in rows["fc1"]  # resolved from calibration


def test_search_calibrates_once_records_it_and_every_trial_shares_it(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.toml"
    path.write_text(CONFIG.format(ckpt=_checkpoint(tmp_path)) + SEARCH)
    calls = []
    real = calibration_module.calibrate

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(calibration_module, "calibrate", counting)
    prepared = prepare_search(load_config(path), out=tmp_path / "run")
    assert prepared.folded == {"fc1": "bn1", "fc2": "bn2"}
    result = prepared.run(progress=False)
    assert len(result.complete) == 4 and len(calls) == 1
    saved = Calibration.load(tmp_path / "run" / CALIBRATION_FILE)
    assert saved == prepared.calibration and saved.samples == 100 and saved.source == "train[:100]"
    # The same ranges, computed independently from the checkpoint's folded model.
    experiment_model = prepared.experiment.model
    dataset = prepared.experiment.dataset
    folded = fold_batchnorm(experiment_model).model
    again = real(trace(folded, dataset.val.x[:2]), dataset.train.x[:100])
    assert again.ranges == saved.ranges
    assert json.loads((tmp_path / "run" / CALIBRATION_FILE).read_text())["observer"] == "minmax"
    assert calibrate is real  # the public name is the real function
