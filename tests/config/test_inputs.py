"""A run folder never has its outputs written over the config's own input files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitscout.config import check_outputs_are_ours, check_outputs_spare_inputs, load_config
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


# ----- files of the same names that a search did not write (user8) -----------------------

_OURS = {
    "log.json": '[\n  {\n    "number": 0,\n    "state": "COMPLETE",\n    "sampled_config": {}\n  }\n]\n',
    "best.json": '{"study_name": "s", "directions": ["maximize"], "n_trials": 1, "best": null}',
    "trials.csv": "number,state,value.objective\n0,COMPLETE,0.5\n",
}
_FOREIGN = {
    # MASE's log.json: an object of trials by index.
    "log.json": ('{"0": {"number": 0, "sampled_config": {}}}', "as MASE's log.json is"),
    # What `bitscout train --out DIR` saves beside best.pt.
    "best.json": ('{"checkpoint": "best.pt", "best_epoch": 3}', "metrics `bitscout train` saved"),
    "trials.csv": ("trial,accuracy\n0,0.9\n", "header does not start with number,state"),
}


def test_records_an_earlier_search_wrote_may_be_replaced(tmp_path: Path) -> None:
    for name, text in _OURS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "log.json").write_text("[]")  # a search of no trials
    check_outputs_are_ours(tmp_path, "here")
    check_outputs_are_ours(tmp_path / "empty", "here")
    check_outputs_are_ours(tmp_path / "not-yet", "here")  # a folder to be made


@pytest.mark.parametrize("name", sorted(_FOREIGN))
def test_a_record_no_search_wrote_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    for other, text in _OURS.items():
        (tmp_path / other).write_text(text)
    text, why = _FOREIGN[name]
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as info:
        check_outputs_are_ours(tmp_path, "--out x")
    message = str(info.value)
    assert message.startswith(f"--out x: {tmp_path / name} was not written by a bitscout search (")
    assert why in message and "choose another folder (--out DIR), or move the file" in message


def test_a_search_into_a_folder_holding_a_mase_log_refuses_before_loading(project: Path) -> None:
    out = project / "run"
    out.mkdir()
    mase = _FOREIGN["log.json"][0]
    (out / "log.json").write_text(mase)
    # data.npz is not readable data: the refusal must come before anything is loaded.
    with pytest.raises(ConfigError, match=r"run/log.json was not written by a bitscout search"):
        prepare_search(load_config(project / "config.toml"), out=out)
    assert (out / "log.json").read_text() == mase
    assert sorted(p.name for p in out.iterdir()) == ["log.json"]
