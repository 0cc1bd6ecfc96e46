"""``bitscout search`` judges everything it can before loading anything, and says so once
(issue 15, items 5 and 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bitscout.cli import main
from bitscout.cli._search import dashboard_hint
from bitscout.models import save_checkpoint
from tests.cli.test_search_cli import TOML

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "cli.toml"
    path.write_text(TOML)
    return path


def test_model_dataset_and_seed_problems_are_reported_together(config_file: Path, tmp_path: Path, capsys) -> None:
    text = config_file.read_text().replace('model = "mlp"', 'model = "mlpp"').replace(
        'dataset = "digits"', 'dataset = "digitz"'
    )
    text = text.replace("weight_width = [2, 4, 8]", "weight_width = [0, 4, 2.5]")
    config_file.write_text(text)
    assert main(["search", str(config_file), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"error: problems in {config_file}:"
    assert lines[1].startswith("  model: unknown model 'mlpp'")
    assert lines[2].startswith("  dataset: unknown dataset 'digitz'")
    seed = "search.search_space.seed.fc1.config: field 'weight_width' must be an integer in 1..32; got"
    assert lines[3:] == [f"  {seed} 0", f"  {seed} 2.5"]
    assert not (tmp_path / "run").exists()


def test_search_without_a_checkpoint_warns_that_the_model_is_untrained(config_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["search", str(config_file), "--out", str(tmp_path / "run"), "--no-progress", "--n-trials", "1"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(
        f"warning: {config_file} names no checkpoint (load_name is not set and no --load): the "
        "search runs on an UNTRAINED model"
    )


def test_search_of_a_model_at_chance_level_warns_after_the_summary(config_file: Path, tmp_path: Path, capsys) -> None:
    # user8: a checkpoint whose classes are numbered otherwise than the data's (text labels
    # are numbered in sorted order) scored every trial at chance, without a word.
    assert main(["search", str(config_file), "--out", str(tmp_path / "run"), "--no-progress", "--n-trials", "1"]) == 0
    baseline = json.loads((tmp_path / "run" / "best.json").read_text())["baseline"]["metrics"]["software"]
    assert baseline["balanced_accuracy"] <= 0.19  # the untrained MLP on 10 digit classes
    err = capsys.readouterr().err
    assert err.rstrip().endswith(
        f"warning: the float model's balanced accuracy is {baseline['balanced_accuracy']:.3f}, about "
        "chance for 10 classes (0.100): it does not classify this data, so every candidate is measured "
        "against a model that guesses. Check that the checkpoint was trained on this data, with its "
        "classes numbered as the data numbers them"
    )


def test_search_with_workers_warns_of_a_model_at_chance_level_once(config_file: Path, tmp_path: Path, capsys) -> None:
    # user9: `--workers 2` printed no chance-level warning: the process that started the
    # workers never evaluates the float model. The workers store it in the study.
    argv = ["search", str(config_file), "--out", str(tmp_path / "run"), "--no-progress", "--n-trials", "2"]
    assert main([*argv, "--workers", "2"]) == 0
    captured = capsys.readouterr()
    baseline = json.loads((tmp_path / "run" / "best.json").read_text())["baseline"]["metrics"]["software"]
    assert baseline["balanced_accuracy"] <= 0.19  # the untrained MLP on 10 digit classes
    assert f"float model (baseline): accuracy = {baseline['accuracy']:.6g}" in captured.out
    warning = (
        f"warning: the float model's balanced accuracy is {baseline['balanced_accuracy']:.3f}, about "
        "chance for 10 classes (0.100)"
    )
    assert captured.err.count(warning) == 1, captured.err


def test_search_with_a_checkpoint_does_not_warn(config_file: Path, tmp_path: Path, capsys) -> None:
    from bitscout.config import load_config
    from bitscout.data import load_dataset
    from bitscout.experiment import build_fresh_model

    config = load_config(config_file)
    model = build_fresh_model(config, load_dataset("digits").info)
    save_checkpoint(model, tmp_path / "m.pt", {"model": "mlp"})
    argv = ["search", str(config_file), "--out", str(tmp_path / "run"), "--no-progress", "--n-trials", "1"]
    assert main([*argv, "--load", str(tmp_path / "m.pt")]) == 0
    assert "names no checkpoint" not in capsys.readouterr().err


def test_nan_weights_in_the_checkpoint_are_refused_naming_the_first(config_file: Path, tmp_path: Path, capsys) -> None:
    from bitscout.config import load_config
    from bitscout.data import load_dataset
    from bitscout.experiment import build_fresh_model

    model = build_fresh_model(load_config(config_file), load_dataset("digits").info)
    with torch.no_grad():
        model.fc2.weight[3, 5] = float("nan")
        model.fc2.weight[7, 1] = float("inf")
    ckpt = tmp_path / "nan.pt"
    save_checkpoint(model, ckpt, {"model": "mlp"})
    argv = ["search", str(config_file), "--out", str(tmp_path / "run"), "--no-progress", "--load", str(ckpt)]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: checkpoint {ckpt}: fc2.weight[3, 5] is nan (2 of {model.fc2.weight.numel()} values "
        "of fc2.weight are NaN or infinite); the weights are broken (a diverged training?): train "
        "again or use another checkpoint"
    )


def test_a_truncated_checkpoint_says_so(config_file: Path, tmp_path: Path, capsys) -> None:
    from bitscout.config import load_config
    from bitscout.data import load_dataset
    from bitscout.experiment import build_fresh_model

    model = build_fresh_model(load_config(config_file), load_dataset("digits").info)
    whole = tmp_path / "whole.pt"
    save_checkpoint(model, whole, {"model": "mlp"})
    cut = tmp_path / "cut.pt"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    argv = ["search", str(config_file), "--out", str(tmp_path / "run"), "--no-progress", "--load", str(cut)]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: checkpoint {cut} is truncated or damaged ({len(data) // 2:,} bytes: the zip "
        "archive torch.save writes is incomplete); save or copy it again"
    )


@pytest.mark.parametrize(
    ("out", "rule"),
    [("afile", "afile is a file, not a folder"), ("afile/run", "afile/run is under afile, which is a file, not a folder")],
)
def test_an_out_under_a_file_is_refused_before_loading(
    config_file: Path, tmp_path: Path, capsys, monkeypatch, out: str, rule: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("x")
    assert main(["search", str(config_file), "--out", out, "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: --out {out}: {rule}; choose another run folder (--out DIR)"
    )


def test_the_dashboard_hint_names_the_driver_that_is_installed(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    hint = dashboard_hint("postgresql://bob:***@db:5432/studies")
    assert hint.splitlines()[0] == "browse the study with: optuna-dashboard postgresql+psycopg2://bob:***@db:5432/studies"
    # An explicit driver, SQLite and journal files are printed as given.
    for url in ("postgresql+psycopg2://db/s", "sqlite:///runs/s.db", "runs/x/study.journal"):
        assert dashboard_hint(url).splitlines()[0] == f"browse the study with: optuna-dashboard {url}"


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("d.journal", "storage d.journal: is a folder; give the journal file's path (a new name is fine)"),
        ("afile/x.journal", "storage afile/x.journal: afile is a file, not a folder; give a journal "
         "path in a folder you can write to"),
    ],
)
def test_a_journal_storage_that_cannot_be_written_is_refused_before_loading(
    config_file: Path, tmp_path: Path, capsys, monkeypatch, storage: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("d.journal").mkdir()
    Path("afile").write_text("x")
    argv = ["search", str(config_file), "--out", "run", "--no-progress", "--storage", storage]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {message}"


def test_compare_reports_the_configs_problems_and_a_bad_out_before_loading(
    config_file: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(config_file.read_text().replace("weight_width = [2, 4, 8]", "weight_width = [0, 4]"))
    assert main(["compare", str(bad), "--seeds", "1", "--n-trials", "2"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "  search.search_space.seed.fc1.config: field 'weight_width' must be an integer in 1..32; got 0"
    )
    Path("afile").write_text("x")
    assert main(["compare", str(config_file), "--seeds", "1", "--n-trials", "2", "--out", "afile"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: --out afile: afile is a file, not a folder; choose another run folder (--out DIR)"
    )

    # A misspelt strategy: refused before the space is built and anything is printed.
    assert main(["compare", str(config_file), "--strategies", "tpe,rnadom", "--seeds", "1", "--n-trials", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error: unknown search strategy / sampler 'rnadom'. Did you mean 'random'? Available: brute_force, "
        "cmaes, gp, nsgaii, nsgaiii, pareto, qmc, random, sensitivity, tpe."
    ]


def test_paths_the_system_refuses_are_one_error_line(config_file: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    long = "a" * 300  # longer than any file name the system accepts (255 bytes)
    assert main(["search", str(config_file), "--out", long, "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"error: --out {long}: {long} cannot be used (File name too long); choose another run "
        "folder (--out DIR)\n"
    )
    assert main(["search", str(config_file), "--load", long, "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"error: --load {long}: cannot be read (File name too long); give an existing checkpoint file\n"
    )
    # Where no check names the path first, the CLI still prints one line naming it.
    assert main(["search", str(config_file), "--out", "run", "--storage", f"{long}.journal", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {long}.journal: File name too long (refused by the operating system")
    assert "Traceback" not in err and err.count("\n") == 1


def test_bitscouts_own_warning_classes_print_as_one_warning_line(capsys) -> None:
    """MetricWarning (the objective's) is bitscout's too: `compare` printed it as a Python
    warning with a file path and line until every bitscout class was handled."""
    import warnings

    from bitscout.cli import _plain_warnings
    from bitscout.metrics import MetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with _plain_warnings():
            warnings.warn("average_bitwidth is subtracted", MetricWarning, stacklevel=1)
            warnings.warn("someone else's", DeprecationWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert "warning: average_bitwidth is subtracted\n" in err
    assert "warning: someone else's" not in err and "MetricWarning" not in err


def test_compare_keeps_optunas_info_lines_out(tmp_path, config_file) -> None:
    import optuna

    from bitscout.cli import main

    optuna.logging.set_verbosity(optuna.logging.INFO)
    out = tmp_path / "cmp"
    assert main(["compare", str(config_file), "--strategies", "random", "--seeds", "1", "--n-trials", "2", "--out", str(out)]) == 0
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING


def test_a_log_json_no_search_wrote_is_refused_and_one_it_wrote_is_replaced(config_file: Path, tmp_path: Path, capsys) -> None:
    # user8: a log.json of the user's in --out was overwritten without a word.
    out = tmp_path / "run"
    out.mkdir()
    mase_log = '{"0": {"number": 0, "sampled_config": {}, "software_metrics": {}}}\n'
    (out / "log.json").write_text(mase_log)
    argv = ["search", str(config_file), "--out", str(out), "--no-progress", "--n-trials", "1"]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning: ")]
    assert err == [
        f"error: run folder {out}: {out / 'log.json'} was not written by a bitscout search (it is a JSON "
        "object, as MASE's log.json is; a search's is a list of trials), and bitscout would replace it "
        "with its own log.json; choose another folder (--out DIR), or move the file"
    ]
    assert (out / "log.json").read_text() == mase_log
    (out / "log.json").unlink()
    assert main(argv) == 0
    assert main([*argv[:-1], "2"]) == 0  # the same folder again: our own log.json, resumed
    assert [t["number"] for t in json.loads((out / "log.json").read_text())] == [0, 1]
    capsys.readouterr()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "trials.csv").write_text("sample,label\n0,1\n")
    assert main(["report", str(out), "--out", str(tmp_path / "mine")]) == 2
    assert "mine/trials.csv was not written by a bitscout search" in capsys.readouterr().err
    assert (tmp_path / "mine" / "trials.csv").read_text() == "sample,label\n0,1\n"


def test_report_keeps_the_float_models_metrics_the_search_saved(config_file: Path, tmp_path: Path, capsys) -> None:
    # user8: `bitscout report RUN` rewrote best.json from the study, which does not hold
    # the float model's metrics: the baseline line and best.json's "baseline" were lost.
    out = tmp_path / "run"
    assert main(["search", str(config_file), "--out", str(out), "--no-progress", "--n-trials", "1"]) == 0
    saved = json.loads((out / "best.json").read_text())["baseline"]
    assert set(saved["metrics"]["software"]) >= {"accuracy", "loss"}
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"float model (baseline): accuracy = {saved['metrics']['software']['accuracy']:.6g}," in printed
    assert json.loads((out / "best.json").read_text())["baseline"] == saved
