"""Experiment.from_config: data, model, checkpoint and device from a config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bitscout.config import Config
from bitscout.errors import CheckpointError, ConfigError
from bitscout.experiment import Experiment, build_fresh_model, resolve_device
from bitscout.models import save_checkpoint


def _config(**kw) -> Config:
    return Config(**{"model": "jsc-toy", "dataset": "synthetic", "accelerator": "cpu", **kw})


def test_without_checkpoint_builds_seeded_model_in_eval_mode() -> None:
    exp = Experiment.from_config(_config(seed=3))
    assert exp.checkpoint is None and exp.device == torch.device("cpu")
    assert exp.dataset.info.name == "synthetic" and not exp.model.training
    torch.manual_seed(3)
    from bitscout.models import build_model

    reference = build_model("jsc-toy", exp.dataset.info)
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in exp.model.state_dict().items())


def test_relative_load_name_resolves_against_cwd(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _config(seed=1, load_name=Path("ckpt/best.pt"))
    trained = build_fresh_model(_config(seed=99), Experiment.from_config(_config()).dataset.info)
    save_checkpoint(trained, tmp_path / "ckpt" / "best.pt", {"model": "jsc-toy"})
    exp = Experiment.from_config(cfg, require_checkpoint=True)
    assert exp.checkpoint == Path("ckpt/best.pt")
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in exp.model.state_dict().items())


def test_missing_checkpoint_says_to_train_first(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _config(load_name=Path("runs/x/best.pt"), source=Path("my.toml"))
    with pytest.raises(CheckpointError, match=r"runs/x/best.pt .*does not exist.*`bitscout train my.toml`"):
        Experiment.from_config(cfg)


def test_require_checkpoint_without_load_name() -> None:
    with pytest.raises(CheckpointError, match="names no checkpoint.*bitscout train CONFIG"):
        Experiment.from_config(_config(), require_checkpoint=True)


def test_checkpoint_of_another_model_is_named(tmp_path: Path) -> None:
    info = Experiment.from_config(_config()).dataset.info
    save_checkpoint(build_fresh_model(_config(model="jsc-tiny"), info), tmp_path / "t.pt", {})
    with pytest.raises(CheckpointError, match="does not fit the model"):
        Experiment.from_config(_config(load_name=tmp_path / "t.pt"))


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="accelerator must be one of"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
# ids avoid the bare word "gpu": conftest skips tests with that keyword when CUDA is absent.
@pytest.mark.parametrize("name", ["cuda", "gpu"], ids=["name-cuda", "name-gpu"])
def test_cuda_without_cuda_is_a_clear_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"accelerator = '{name}' but PyTorch sees no CUDA device.*cpu"):
        resolve_device(name)


@pytest.mark.gpu
def test_cuda_device_when_available() -> None:
    exp = Experiment.from_config(_config(accelerator="cuda"))
    assert exp.device.type == "cuda"
    assert next(exp.model.parameters()).device.type == "cuda"
