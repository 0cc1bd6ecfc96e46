"""Every example config in configs/ runs a real search, on a small budget.

Configs that read a checkpoint get one written here (an untrained model of the right
shape, saved in bitscout's format): the search machinery is under test, not the
training. JSC configs read a small test-written file in OpenML's CSV format through
BITSCOUT_DATA when the real JSC file is absent.
"""

from __future__ import annotations

import json
import tomllib
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from bitscout.cli import main
from bitscout.config import ConfigOverrides, load_config
from bitscout.data import load_dataset
from bitscout.report import write_plots
from bitscout.data._jsc import JSC_CLASS_NAMES, JSC_FEATURES
from bitscout.models import build_model, save_checkpoint
from bitscout.study import SearchResult, prepare_search

optuna.logging.set_verbosity(optuna.logging.WARNING)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL = sorted(p.name for p in CONFIGS.glob("*.toml"))
TRIALS = 3


@pytest.fixture(scope="module")
def jsc_file(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame(rng.normal(size=(n, len(JSC_FEATURES))).astype("float32"), columns=list(JSC_FEATURES))
    frame["class"] = rng.choice(list(JSC_CLASS_NAMES), size=n)
    path = tmp_path_factory.mktemp("jsc") / "hls4ml_lhc_jets_hlf.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(autouse=True)
def _jsc_data(monkeypatch, jsc_file):
    monkeypatch.setenv("BITSCOUT_DATA", str(jsc_file))


def _checkpoint(config, tmp_path: Path) -> Path:
    info = load_dataset(config.dataset, path=config.dataset_path, seed=config.seed).info
    model = build_model(config.model, info, config.model_options)
    path = tmp_path / "ckpt" / "best.pt"
    save_checkpoint(model, path, {"model": config.model, "dataset": config.dataset})
    return path


def test_every_expected_example_exists():
    assert set(ALL) >= {
        "digits.toml", "jsc_tiny_lab.toml", "digits_by_name.toml", "digits_cnn_by_name.toml",
        "digits_nsgaii.toml", "digits_brute_force.toml", "digits_qat.toml", "jsc_coursework.toml",
    }


# Fine-tuning every candidate takes longer than the others: marked slow.
_SLOW = {"digits_qat.toml"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in ALL if n != "jsc_tiny_lab.toml"],
)
def test_example_config_runs_a_search(name, tmp_path):
    path = CONFIGS / name
    config = load_config(path)
    assert config.search is not None, f"{name} has no [search] section"
    overrides = ConfigOverrides(n_trials=TRIALS, out=tmp_path / "run")
    if config.load_name is not None:
        overrides = ConfigOverrides(n_trials=TRIALS, out=tmp_path / "run", load=_checkpoint(config, tmp_path))
    config = load_config(path, overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the objective's advice (constant FLOPs, ...) is expected here
        prepared = prepare_search(config)
        result = prepared.run(progress=False, plot=write_plots)  # plots are drawn above study

    assert result.n_trials == TRIALS
    assert result.n_failed == 0, [t.error for t in result.trials if t.error]
    saved = SearchResult.load(tmp_path / "run")
    assert saved.trials == result.trials
    metrics = set(config.search.strategy.metrics)
    for record in result.complete:
        assert metrics <= set(record.metrics)
    objective_plot = tmp_path / "run" / "objective.png"
    assert objective_plot.stat().st_size > 5000
    resolved = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert resolved["search"]["strategy"]["setup"]["n_trials"] == TRIALS


def test_mase_lab_config_runs_unchanged_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["search", "--config", str(CONFIGS / "jsc_tiny_lab.toml"), "--out", str(out), "--n-trials", str(TRIALS), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "total: " in printed and "best trial:" in printed  # the space, then the summary
    log = json.loads((out / "log.json").read_text())
    assert len(log) == TRIALS
    best = json.loads((out / "best.json").read_text())["best"]
    complete = [r for r in log if r["state"] == "COMPLETE"]
    assert best["values"][0] == max(r["values"][0] for r in complete)
    # MASE's metrics, each named as MASE names them
    assert set(best["software_metrics"]) >= {"accuracy", "loss"}
    assert set(best["hardware_metrics"]) >= {"average_bitwidth", "memory_density"}
    assert best["values"][0] == pytest.approx(
        best["software_metrics"]["accuracy"] - 0.2 * best["hardware_metrics"]["average_bitwidth"], abs=1e-9
    )


def test_mase_lab_config_quantizes_once_and_reports_before_and_after(tmp_path, capsys):
    # Issue 3's "done when": `bitscout quantize` on the lab config (integer 8-bit data in,
    # 8-bit weights, 8-bit bias with 4 fractional bits, by type on linear) reports
    # accuracy before and after, and the node table shows what was quantized.
    from bitscout.config import load_config

    config = load_config(CONFIGS / "jsc_tiny_lab.toml")
    ckpt = _checkpoint(config, tmp_path)
    code = main(["quantize", str(CONFIGS / "jsc_tiny_lab.toml"), "--load", str(ckpt)])
    printed = capsys.readouterr().out
    assert code == 0
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.strip()}
    assert "accuracy" in printed
    assert len(rows["float"]) == len(rows["quantized"]) == 3  # accuracy, balanced, loss
    assert rows["seq_blocks_2"][0] == "linear"
    # Fixed point as the search summary writes it (user9: quantize wrote int8.4).
    assert " ".join(rows["seq_blocks_2"][-12:]) == "data_in 8b (4 frac), weight 8b (4 frac), bias 8b (4 frac)"
