"""`bitscout search`: options, printed space and summary, resume, errors for people."""

from __future__ import annotations

import json
import textwrap

import pytest

from bitscout.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TOML = textwrap.dedent(
    """
    model = "mlp"
    dataset = "digits"
    seed = 0
    project = "cli"

    [search.search_space]
    name = "graph/quantize/mixed_precision_ptq"
    [search.search_space.setup]
    by = "name"
    [search.search_space.seed.default.config]
    name = ["NA"]
    [search.search_space.seed.fc1.config]
    name = ["integer"]
    data_in_width = [8]
    weight_width = [2, 4, 8]
    bias_width = [8]
    [search.search_space.seed.fc3.config]
    name = ["integer"]
    data_in_width = [4, 8]
    weight_width = [4]
    bias_width = [8]

    [search.strategy]
    name = "optuna"
    [search.strategy.sw_runner.basic_evaluation]
    num_samples = 100
    [search.strategy.hw_runner.average_bitwidth]
    [search.strategy.setup]
    n_trials = 3
    sampler = "tpe"
    [search.strategy.metrics]
    accuracy.scale = 1.0
    average_bitwidth.scale = 0.01
    """
)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "cli.toml"
    path.write_text(TOML)
    return path


def test_search_prints_the_space_and_the_summary_and_writes_the_run_folder(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", str(config_file), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    space_at = printed.index("total: 6 configurations (2 searched parameters)")
    summary_at = printed.index("unique evaluations")
    assert space_at < summary_at
    assert "best trial:" in printed and str(out / "log.json") in printed
    assert f"optuna-dashboard {out / 'study.journal'}" in printed
    assert len(json.loads((out / "log.json").read_text())) == 3


def test_options_override_the_file_and_resume_continues_the_study(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--config", str(config_file), "--out", str(out), "--no-progress", "--sampler", "brute_force", "--n-trials", "2", "--study-name", "mine"]) == 0
    # A brute force cut short says that its best is the best of a sample.
    assert "strategy: brute_force, 2 of the 6 configurations (n_trials = 2: the best found is the best of those; set n_trials to 6 to evaluate every one)" in capsys.readouterr().out
    assert main(["search", "--config", str(config_file), "--out", str(out), "--no-progress", "--sampler", "brute_force", "--n-trials", "5", "--study-name", "mine"]) == 0
    log = json.loads((out / "log.json").read_text())
    assert [r["number"] for r in log] == [0, 1, 2, 3, 4]
    best = json.loads((out / "best.json").read_text())
    assert best["study_name"] == "mine" and best["n_unique"] == 5
    resolved = (out / "config.toml").read_text()
    assert 'sampler = "brute_force"' in resolved and "n_trials = 5" in resolved


def test_resuming_with_another_space_is_refused_plainly(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", str(config_file), "--out", str(out), "--no-progress", "--n-trials", "1"]) == 0
    config_file.write_text(TOML.replace("weight_width = [2, 4, 8]", "weight_width = [2, 3, 4, 8]"))
    capsys.readouterr()
    assert main(["search", str(config_file), "--out", str(out), "--no-progress"]) == 2
    warning, err = capsys.readouterr().err.split("\n", 1)
    assert warning.startswith("warning: ") and "names no checkpoint" in warning  # no load_name here
    assert err.startswith("error: the study 'cli'")
    assert "the space differs" in err and "fc1/weight_width" in err and "--study-name" in err
    assert "Traceback" not in err


def test_a_config_without_search_section_is_an_error(tmp_path, capsys):
    path = tmp_path / "plain.toml"
    path.write_text('model = "mlp"\ndataset = "digits"\n')
    assert main(["search", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "has no [search] section" in capsys.readouterr().err


def test_the_start_line_of_a_brute_force_counts_what_the_constraints_leave():
    from bitscout.cli._search import _enumeration
    from bitscout.strategies import Exhaustible

    class Enumeration(Exhaustible):
        total = 384  # the configurations the constraints allow

        def is_exhausted(self, study):
            return False

    assert _enumeration(Enumeration(), 3072, 5000) == (
        "384 trials (every configuration once the constraints allow: 2,688 of the 3,072 are "
        "ruled out by their configuration alone; n_trials = 5000)"
    )
    assert _enumeration(Enumeration(), 3072, 100).startswith(
        "100 of the 384 configurations the constraints allow: 2,688 of the 3,072 are ruled out"
    )
    assert _enumeration(Enumeration(), 3072, 100).endswith("set n_trials to 384 to evaluate every one)")
