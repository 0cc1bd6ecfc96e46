"""A run folder never has its outputs written over the config's own input files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitscout.config import check_outputs_spare_inputs, load_config
from bitscout.errors import ConfigError
from bitscout.study import prepare_search

CONFIG = """
model = "mlp"
dataset = "data.npz"
load_name = "model.pt"
[search.search_space]
setup.by = "type"
[search.search_space.seed.linear.config]
name = ["integer"]
weight_width = [4, 8]
data_in_width = [8]
bias_width = [8]
[search.strategy.sw_runner.basic_evaluation]
[search.strategy.metrics]
accuracy.scale = 1.0
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text(CONFIG)
    (tmp_path / "model.pt").write_bytes(b"the user's checkpoint")
    (tmp_path / "data.npz").write_bytes(b"the user's data")
    return tmp_path


def test_search_into_the_configs_own_folder_is_refused_before_anything_is_written(project: Path) -> None:
    # `bitscout search config.toml --out .` used to replace config.toml with the resolved
    # config (the user's comments gone).
    config = load_config(project / "config.toml")
    before = sorted(p.name for p in project.iterdir())
    with pytest.raises(ConfigError) as caught:
        prepare_search(config, out=project)
    assert str(caught.value) == (
        f"run folder {project}: bitscout would write config.toml in {project} over the config file, "
        f"{project / 'config.toml'}; choose another folder (--out DIR), or move the file"
    )
    assert sorted(p.name for p in project.iterdir()) == before
    assert (project / "config.toml").read_text() == CONFIG


def test_each_input_is_protected_and_other_folders_are_free(project: Path) -> None:
    config = load_config(project / "config.toml")
    with pytest.raises(ConfigError, match=r"write model.pt in \. over the checkpoint \(load_name\), model.pt"):
        check_outputs_spare_inputs(config, Path("."), ("model.pt", "quantize.toml"), "--out .")
    with pytest.raises(ConfigError, match=r"write data.npz in .* over the data file \(dataset\), data.npz"):
        check_outputs_spare_inputs(config, project, ("*.npz",), "--out x")
    # Names bitscout does not write there, and a folder without inputs, pass.
    check_outputs_spare_inputs(config, project, ("log.json", "trials.csv"), "--out .")
    (project / "runs").mkdir()
    check_outputs_spare_inputs(config, project / "runs", ("config.toml", "model.pt"), "--out runs")
    check_outputs_spare_inputs(config, project / "new", ("config.toml",), "--out new")
