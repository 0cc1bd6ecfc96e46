"""Own data and plugins from the CLI: every command reads `dataset = "file"` or a factory,
bad data is one `error:` line naming the file or spec (exit 2), and a runner registered
by a module named in `plugins` is accepted by check and search."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bitscout.cli import main
from bitscout.config import _mase
from bitscout.metrics import _runner

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SEARCH = textwrap.dedent(
    """
    [search.search_space]
    name = "graph/quantize/mixed_precision_ptq"
    [search.search_space.setup]
    by = "type"
    [search.search_space.seed.default.config]
    name = ["NA"]
    [search.search_space.seed.linear.config]
    name = ["integer"]
    data_in_width = [8]
    weight_width = [4, 8]
    bias_width = [8]
    [search.strategy]
    name = "optuna"
    [search.strategy.sw_runner.basic_evaluation]
    [search.strategy.hw_runner.average_bitwidth]
    [search.strategy.setup]
    n_trials = 2
    sampler = "brute_force"
    [search.strategy.metrics]
    accuracy.scale = 1.0
    average_bitwidth.scale = 0.01
    """
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder with data files, a data factory module and a runner plugin, as the cwd."""
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    x = rng.normal(size=(150, 6)) + y[:, None]
    np.savez(tmp_path / "data.npz", x=x, y=y)
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)])
    table["label"] = y
    table.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "junk.npz").write_bytes(b"not an archive")
    (tmp_path / "owndata_factories.py").write_text(textwrap.dedent("""
        def broken():
            raise OSError("the share is not mounted")
    """))
    (tmp_path / "owndata_runners.py").write_text(textwrap.dedent("""
        from bitscout.metrics import Runner, register_runner

        @register_runner
        class QuantizedShare(Runner):
            name = "quantized_share"
            kind = "software"
            metrics = ("quantized_share",)

            def run(self, candidate):
                configs = list(candidate.config.values())
                return {"quantized_share": sum(c is not None for c in configs) / len(configs)}
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # The plugin registers a runner: keep it out of the registries other tests read.
    monkeypatch.setattr(_runner, "_REGISTRY", dict(_runner._REGISTRY))
    monkeypatch.setattr(_mase, "_ADDED_RUNNERS", {k: set(v) for k, v in _mase._ADDED_RUNNERS.items()})
    yield tmp_path
    for name in ("owndata_factories", "owndata_runners"):
        sys.modules.pop(name, None)


def _config(folder: Path, head: str, name: str = "c.toml", search: str = SEARCH) -> str:
    (folder / name).write_text(head + search)
    return name


def test_every_command_reads_a_data_file(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(folder, 'model = "mlp"\ndataset = "data.npz"\nmax_epochs = 2\nout = "runs/t"\n')
    assert main(["check", path]) == 0
    assert main(["train", path]) == 0
    printed = capsys.readouterr().out
    assert "on data.npz (one x/y, split stratified with seed 0: 90 train / 45 val / 15 test) on " in printed
    assert printed.count("90 train / 45 val / 15 test") == 1  # user8: the counts were printed twice
    assert main(["search", path, "--out", "runs/s", "--no-progress"]) == 0
    assert len(json.loads((folder / "runs/s/log.json").read_text())) == 2
    assert main(["export", "runs/s"]) == 0
    csv = _config(folder, 'model = "mlp"\ndataset = "data.csv"\nlabel_column = "label"\n', "csv.toml")
    assert main(["search", csv, "--out", "runs/csv", "--no-progress"]) == 0


@pytest.mark.parametrize(
    ("head", "message"),
    [
        ('dataset = "junk.npz"', "dataset 'junk.npz': not a readable .npz file"),
        ('dataset = "missing.npz"', "dataset 'missing.npz': file not found"),
        ('dataset = "owndata_factories:broken"',
         "dataset 'owndata_factories:broken': calling broken() failed: OSError: the share is not mounted"),
        ('dataset = "data.csv"\nlabel_column = "class"',
         "dataset 'data.csv': has no column 'class' (label_column); its columns: 'f0'"),
    ],
)
@pytest.mark.parametrize("command", ["check", "train", "quantize", "search"])
def test_bad_data_is_one_error_line(
    folder: Path, capsys: pytest.CaptureFixture[str], head: str, message: str, command: str
) -> None:
    quantize = '[passes.quantize]\nby = "type"\n[passes.quantize.linear.config]\nname = "integer"\n'
    quantize += "data_in_width = 8\nweight_width = 8\nbias_width = 8\n"
    path = _config(folder, f'model = "mlp"\n{head}\n{quantize}')
    assert main([command, path]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1 and "Traceback" not in err


def test_export_names_a_data_file_gone_since_the_search(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(folder, 'model = "mlp"\ndataset = "data.npz"\n')
    assert main(["search", path, "--out", "runs/s", "--no-progress"]) == 0
    (folder / "data.npz").unlink()
    capsys.readouterr()
    assert main(["export", "runs/s"]) == 2
    assert "error: dataset 'data.npz': file not found" in capsys.readouterr().err


def test_a_plugin_runner_is_accepted_by_check_and_search(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    search = SEARCH.replace("[search.strategy.hw_runner", "[search.strategy.sw_runner.quantized_share]\n[search.strategy.hw_runner")
    path = _config(folder, 'plugins = ["owndata_runners"]\nmodel = "mlp"\ndataset = "data.npz"\n', search=search)
    assert main(["check", path]) == 0
    assert main(["search", path, "--out", "runs/p", "--no-progress"]) == 0
    records = json.loads((folder / "runs/p/log.json").read_text())
    # by type: the two linear layers of three quantizable kinds (linear, relu) are searched
    for record in records:
        chosen = record["sampled_config"]
        share = sum(v != "float" for v in chosen.values()) / len(chosen)
        assert record["software_metrics"]["quantized_share"] == pytest.approx(share)


def test_a_runner_without_its_plugin_and_a_bad_plugin_are_config_errors(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    search = SEARCH.replace("[search.strategy.hw_runner", "[search.strategy.sw_runner.quantized_shares]\n[search.strategy.hw_runner")
    path = _config(folder, 'model = "mlp"\ndataset = "data.npz"\n', search=search)
    assert main(["check", path]) == 2
    assert "unknown software runner" in capsys.readouterr().err
    path = _config(folder, 'plugins = ["owndata_nothing"]\nmodel = "mlp"\ndataset = "data.npz"\n', "bad.toml")
    assert main(["check", path]) == 2
    err = capsys.readouterr().err
    assert "bad.toml: plugins: plugin 'owndata_nothing': cannot import module 'owndata_nothing'" in err
