"""``bitscout train``: where it saves, what it saves, --if-missing, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bitscout.cli import main
from bitscout.config import load_config
from bitscout.experiment import Experiment
from bitscout.training import evaluate

CONFIG = """\
model = "jsc-toy"
dataset = "synthetic"
batch_size = 32
max_epochs = 3
learning_rate = 0.01
accelerator = "cpu"
seed = 0
project = "syn"
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(path: Path, extra: str = "") -> Path:
    path.write_text(CONFIG + extra)
    return path


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_default_run_folder_and_saved_metrics(workdir: Path, capsys) -> None:
    cfg = _write(workdir / "c.toml")
    assert main(["train", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    ckpt = Path("runs/syn/train/best.pt")
    assert f"saved checkpoint: {ckpt}" in out
    assert out.count("epoch ") >= 3 and "val loss" in out
    summary = json.loads(ckpt.with_suffix(".json").read_text())
    assert summary["model"] == "jsc-toy" and summary["dataset"] == "synthetic"
    assert summary["synthetic_data"] is True and len(summary["history"]) == 3
    # The saved metrics are what the saved weights give, recomputed from the checkpoint.
    exp = Experiment.from_config(load_config(cfg).model_copy(update={"load_name": ckpt}))
    val = evaluate(exp.model, exp.dataset.val.x, exp.dataset.val.y)
    test = evaluate(exp.model, exp.dataset.test.x, exp.dataset.test.y)
    assert summary["val"]["accuracy"] == pytest.approx(val.accuracy)
    assert summary["test"]["accuracy"] == pytest.approx(test.accuracy)
    assert summary["val"]["loss"] == pytest.approx(val.loss, rel=1e-6)
    assert summary["val"]["accuracy"] == max(h["val_accuracy"] for h in summary["history"])
    assert torch.load(ckpt, weights_only=True)["metrics"]["val"]["accuracy"] == summary["val"]["accuracy"]


def test_saves_at_load_name_so_search_finds_it(workdir: Path) -> None:
    cfg = _write(workdir / "c.toml", 'load_name = "models/jsc/model.pt"\n')
    assert main(["train", str(cfg), "--no-progress"]) == 0
    assert Path("models/jsc/model.pt").is_file() and Path("models/jsc/model.json").is_file()
    exp = Experiment.from_config(load_config(cfg), require_checkpoint=True)
    assert exp.checkpoint == Path("models/jsc/model.pt")


def test_out_option_and_if_missing(workdir: Path, capsys) -> None:
    cfg = _write(workdir / "c.toml")
    assert main(["train", str(cfg), "--out", "o", "--no-progress"]) == 0
    ckpt = Path("o/best.pt")
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert main(["train", str(cfg), "--out", "o", "--if-missing", "--seed", "7"]) == 0
    assert "not training again" in capsys.readouterr().out
    assert ckpt.read_bytes() == before


def test_same_seed_same_weights(workdir: Path) -> None:
    cfg = _write(workdir / "c.toml")
    for out, seed in (("a", "4"), ("b", "4"), ("c", "5")):
        assert main(["train", str(cfg), "--out", out, "--seed", seed, "--no-progress"]) == 0
    a, b, c = (_state(Path(d) / "best.pt") for d in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith("weight"))


def test_unknown_model_is_an_error_message(workdir: Path, capsys) -> None:
    cfg = workdir / "c.toml"
    cfg.write_text(CONFIG.replace('"jsc-toy"', '"jsc-tyni"'))
    assert main(["train", str(cfg)]) == 2
    assert "error: unknown model 'jsc-tyni'" in capsys.readouterr().err


def test_ctrl_c_saves_the_best_epoch_so_far_and_exits_130(workdir: Path, capsys, monkeypatch) -> None:
    import bitscout.cli._train as cli_train

    cfg = _write(workdir / "c.toml", "")
    cfg.write_text(cfg.read_text().replace("max_epochs = 3", "max_epochs = 40"))
    shown = cli_train._format_epoch

    def ctrl_c_after_epoch_2(metrics, epochs):
        if metrics.epoch == 2:
            raise KeyboardInterrupt
        return shown(metrics, epochs)

    monkeypatch.setattr(cli_train, "_format_epoch", ctrl_c_after_epoch_2)
    assert main(["train", str(cfg), "--no-progress"]) == 130
    captured = capsys.readouterr()
    assert "interrupted (Ctrl-C) after epoch 2 of 40: saving the best epoch so far" in captured.err
    ckpt = Path("runs/syn/train/best.pt")
    summary = json.loads(ckpt.with_suffix(".json").read_text())
    assert summary["interrupted"] is True and len(summary["history"]) == 2
    assert summary["best_epoch"] in (1, 2) and f"saved checkpoint: {ckpt}" in captured.out
    # The saved weights are the best epoch's: they give back its validation accuracy.
    exp = Experiment.from_config(load_config(cfg).model_copy(update={"load_name": ckpt}))
    assert evaluate(exp.model, exp.dataset.val.x, exp.dataset.val.y).accuracy == summary["val"]["accuracy"]
