"""`bitscout check` and the shared config options of the CLI."""

from __future__ import annotations

import argparse
import tomllib
import warnings
from pathlib import Path

import pytest

from bitscout import cli
from bitscout.cli._common import (
    add_config_argument,
    add_override_options,
    config_from_args,
    config_path_from_args,
)
from bitscout.config import BitscoutConfigWarning, load_config
from bitscout.errors import ConfigError


@pytest.fixture(autouse=True)
def _only_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other subcommands are built elsewhere; `check` must not depend on them.
    monkeypatch.setattr(cli, "_COMMANDS", ("check",))


def _lab(lab_path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BitscoutConfigWarning)
        return load_config(lab_path)


def test_check_prints_the_resolved_config_and_a_summary(lab_path: Path, capsys) -> None:
    assert cli.main(["check", str(lab_path)]) == 0
    out, err = capsys.readouterr()

    config = _lab(lab_path)
    # The whole output is TOML (the summary is a comment) and means the same config.
    assert tomllib.loads(out) == tomllib.loads(config.to_toml())
    assert out.rstrip().splitlines()[-1] == (
        "# ok: model 'jsc-tiny' on dataset 'jsc'; strategy 'tpe', 20 trials; metrics: "
        "accuracy (x1, maximize), average_bitwidth (x0.2, minimize); objective: their scaled sum, maximize"
    )
    assert err == (
        f"warning: {lab_path}: log_every_n_steps: ignored "
        "(a PyTorch Lightning trainer setting; bitscout trains with its own loop)\n"
    )


def test_check_accepts_mases_config_spelling_and_overrides(lab_path: Path, capsys) -> None:
    assert cli.main(["check", "--config", str(lab_path), "--n-trials", "50", "--sampler", "brute_force"]) == 0
    out, _ = capsys.readouterr()
    document = tomllib.loads(out)
    assert document["search"]["strategy"]["setup"]["n_trials"] == 50
    assert "strategy 'brute_force', 50 trials" in out.splitlines()[-1]


def test_check_of_an_invalid_config_exits_2_with_every_problem(lab_doc: dict, write_toml, capsys) -> None:
    lab_doc["batch_size"] = 0
    lab_doc["search"]["strategy"]["setup"]["direction"] = "maximise"
    path = write_toml(lab_doc)

    assert cli.main(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-3:] == [
        f"error: 2 problems in {path}:",
        f"  {path}: batch_size: must be an integer >= 1; got 0",
        f"  {path}: search.strategy.setup.direction: must be one of 'maximize', 'minimize'; got 'maximise'",
    ]
    # The ignored key is still pointed out: it may be what the user got wrong.
    assert err.splitlines()[0].startswith(f"warning: {path}: log_every_n_steps: ignored")


def test_check_validates_runner_and_strategy_options(lab_doc: dict, write_toml, capsys) -> None:
    evaluation = lab_doc["search"]["strategy"]["sw_runner"]["basic_evaluation"]
    evaluation["dataloader"] = evaluation.pop("data_loader")
    lab_doc["search"]["strategy"]["setup"]["sampler_options"] = {"n_startup_trial": 5}
    path = write_toml(lab_doc)

    assert cli.main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: problems in {path}:" in err
    assert (
        "search.strategy.sw_runner.basic_evaluation.dataloader: unknown option "
        "(this runner takes: data_loader, num_samples); got 'val_dataloader'; "
        "did you mean 'data_loader'?"
    ) in err
    assert "search.strategy.setup.sampler_options.n_startup_trial" in err
    assert "n_startup_trials" in err


def test_check_with_a_wrong_override_names_the_option(lab_path: Path, capsys) -> None:
    assert cli.main(["check", str(lab_path), "--n-trials", "0"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: --n-trials: must be an integer from 1 to 1,000,000,000; got 0"


def test_check_of_a_config_without_search(write_toml, capsys) -> None:
    path = write_toml('model = "mlp"\ndataset = "digits"\n')
    assert cli.main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "# ok: model 'mlp' on dataset 'digits'; no [search] section"
    assert err == ""


def test_check_judges_names_and_the_quantize_pass_without_loading_anything(write_toml, capsys) -> None:
    # Each of these passed `check` and then failed `bitscout quantize`/`search`.
    path = write_toml(
        'model = "mlpp"\ndataset = "digitz"\n'
        "[passes.quantize.linear.config]\n"
        'name = "integer"\ndata_in_width = 8\nweight_width = 8\ndata_in_exponent_width = 3\n'
        "[passes.quantize.relu.config]\n"
        'name = "integer"\ndata_in_width = 4\nweight_width = 0\n'  # a relu has no weight
    )
    assert cli.main(["check", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: problems in {path}:",
        "  model: unknown model 'mlpp'; available: cnn, jsc-s, jsc-tiny, jsc-toy, mlp, "
        "or a factory of your own given as 'package.module:function'",
        "  dataset: unknown dataset 'digitz'; available: breast_cancer, digits, jsc, mnist5k, "
        "synthetic, wine",
        "  passes.quantize.linear.config: field 'data_in_exponent_width' is not a field of "
        "format 'integer' (did you mean 'data_in_width'?); got 3",
        # Each tensor is judged on its own, so the missing bias width is no longer hidden.
        "  passes.quantize.linear.config: field 'bias_width' is required by format 'integer' "
        "(it has no default); got nothing",
    ]


def test_check_judges_the_model_options(write_toml, capsys) -> None:
    path = write_toml('model = "mlp"\ndataset = "digits"\n[model_options]\nhiden = [32]\n')
    assert cli.main(["check", str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[1] == (
        "  model: bad options for model 'mlp': model_options.hiden: unknown option "
        "(model 'mlp' takes: hidden, batch_norm); got [32]; did you mean 'hidden'?"
    )


def test_check_of_a_missing_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "missing.toml"
    assert cli.main(["check", str(path)]) == 2
    assert capsys.readouterr().err == f"error: config file not found: {path}\n"


def _parser(search: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_config_argument(parser)
    add_override_options(parser, search=search)
    return parser


def test_config_given_twice_or_not_at_all_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"given twice \(a.toml and --config b.toml\)"):
        config_path_from_args(_parser().parse_args(["a.toml", "--config", "b.toml"]))
    with pytest.raises(ConfigError, match="no config file given: pass it as CONFIG or as --config CONFIG"):
        config_path_from_args(_parser().parse_args([]))
    assert config_path_from_args(_parser().parse_args(["--config", "b.toml"])) == Path("b.toml")


def test_search_options_exist_only_when_asked_for(lab_path: Path) -> None:
    with pytest.raises(SystemExit):
        _parser(search=False).parse_args([str(lab_path), "--n-trials", "3"])
    args = _parser(search=True).parse_args(
        [str(lab_path), "--n-trials", "3", "--workers", "2", "--study-name", "s", "--load-type", "pt", "--seed", "4"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BitscoutConfigWarning)
        config = config_from_args(args)
    setup = config.search.strategy.setup
    assert (setup.n_trials, setup.workers, setup.study_name, setup.seed) == (3, 2, "s", 4)
    assert (config.load_type, config.seed) == ("pt", 4)


def test_check_accepts_a_seed_listing_formats_with_different_fields(tmp_path: Path, capsys) -> None:
    # Each listed format takes its own fields; before, `check` refused minifloat's exponent
    # widths as "not a field of format 'integer'" and then called them missing.
    seed = """
model = "mlp"
dataset = "digits"
[search.search_space]
name = "graph/quantize/mixed_precision_ptq"
[search.search_space.setup]
by = "type"
[search.search_space.seed.linear.config]
name = ["integer", "int", "minifloat"]
data_in_width = [4, 8]
weight_width = [3, 4, 8]
bias_width = [8]
data_in_exponent_width = [EXP]
weight_exponent_width = [1]
bias_exponent_width = [4]
[search.strategy.metrics]
accuracy.scale = 1.0
"""
    good = tmp_path / "formats.toml"
    good.write_text(seed.replace("EXP", "2"))
    assert cli.main(["check", str(good)]) == 0
    capsys.readouterr()
    # A value minifloat cannot take is still reported, with its rule.
    bad = tmp_path / "bad.toml"
    bad.write_text(seed.replace("EXP", "3"))
    assert cli.main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "data_in_exponent_width' must leave at least one mantissa bit" in err
    assert "not a field of format" not in err and "got nothing" not in err
