"""Config mistakes found by probing as a user would (issue 15): each is one clear error."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bitscout import cli
from bitscout.config import BitscoutConfigWarning, load_config
from bitscout.errors import ConfigError
from bitscout.quant import format_names


def test_a_duplicate_key_is_named_with_its_table_and_both_lines(write_toml: Callable[..., Path]) -> None:
    path = write_toml('model = "mlp"\ndataset = "digits"\n[passes.quantize]\nby = "type"\nby = "name"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: line 5: malformed TOML: key 'by' in table [passes.quantize] is set twice, "
        "first on line 4; keep one of them"
    )


def test_a_duplicate_top_level_key_and_a_table_declared_twice(write_toml: Callable[..., Path]) -> None:
    top = write_toml('model = "mlp"\nmodel = "cnn"\n', name="top.toml")
    with pytest.raises(ConfigError, match=r"line 2: malformed TOML: key 'model' is set twice, first on line 1"):
        load_config(top)
    table = write_toml('model = "mlp"\n[x]\na = 1\n[x]\nb = 2\n', name="table.toml")
    with pytest.raises(ConfigError, match=r"line 4: malformed TOML: table \[x\] is declared twice"):
        load_config(table)


@pytest.mark.parametrize("value", [2**32, 2**63 - 1, -1])
def test_a_seed_outside_numpys_range_is_refused_where_it_is_written(
    lab_doc: dict[str, Any], write_toml: Callable[..., Path], value: int
) -> None:
    lab_doc["search"]["strategy"]["setup"]["seed"] = value
    lab_doc["seed"] = value
    path = write_toml(lab_doc)
    with pytest.raises(ConfigError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore", BitscoutConfigWarning)
        load_config(path)
    rule = f"must be an integer from 0 to 4294967295 (2**32 - 1); got {value}"
    assert str(caught.value).splitlines()[1:] == [
        f"  {path}: search.strategy.setup.seed: {rule}",
        f"  {path}: seed: {rule}",
    ]


def test_the_largest_seed_is_accepted(lab_doc: dict[str, Any], write_toml: Callable[..., Path]) -> None:
    lab_doc["seed"] = 2**32 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BitscoutConfigWarning)
        config = load_config(write_toml(lab_doc))
    assert config.search.strategy.setup.seed == 4294967295


def test_mase_setup_keys_bitscout_does_not_use_are_warnings(
    lab_doc: dict[str, Any], write_toml: Callable[..., Path]
) -> None:
    lab_doc["search"]["strategy"]["setup"].update(pkl_ckpt="study.pkl", save_every_n_trials=5)
    path = write_toml(lab_doc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = load_config(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, BitscoutConfigWarning)]
    assert any(m.startswith(f"{path}: search.strategy.setup.pkl_ckpt: ignored (MASE resumes") for m in messages)
    assert any(m.startswith(f"{path}: search.strategy.setup.save_every_n_trials: ignored (") for m in messages)
    assert "pkl_ckpt" not in config.to_toml()


def test_storage_that_is_a_folder_is_refused_by_check(tmp_path: Path, lab_path: Path, capsys) -> None:
    folder = tmp_path / "studies"
    folder.mkdir()
    assert cli.main(["check", str(lab_path), "--storage", str(folder)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: --storage: must be an Optuna storage URL (postgresql://user@host:5432/db, "
        f"sqlite:///path/study.db) or a path ending in .journal (it is a folder); got {str(folder)!r}"
    )


def test_check_judges_every_seed_without_data_and_reports_every_problem(
    lab_doc: dict[str, Any], write_toml: Callable[..., Path], capsys
) -> None:
    seeds = lab_doc["search"]["search_space"]["seed"]
    seeds["linear"]["config"]["weight_width"] = [0, 4]
    # A name seed that setup.by = "type" ignores: still judged, every bad choice named.
    seeds["seq_blocks_2"] = {
        "config": {"name": ["integer"], "data_in_width": [8], "weight_width": [-2, 2.5], "weight_widht": [3]}
    }
    seeds["conv2d"] = {"config": {"name": ["integre"]}}
    lab_doc["dataset_path"] = "/data/jsc.csv"  # the lab's jsc reads a file: no problem
    path = write_toml(lab_doc)
    assert cli.main(["check", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    seed = "search.search_space.seed"
    assert [line for line in lines if not line.startswith("warning:")] == [
        f"error: problems in {path}:",
        f"  {seed}.linear.config: field 'weight_width' must be an integer in 1..32; got 0",
        f"  {seed}.seq_blocks_2.config: field 'weight_widht' is not a field of format 'integer' "
        "(did you mean 'weight_width'?); got 3",
        f"  {seed}.seq_blocks_2.config: field 'weight_width' must be an integer in 1..32; got -2",
        f"  {seed}.seq_blocks_2.config: field 'weight_width' must be an integer in 1..32; got 2.5",
        f"  {seed}.conv2d.config: field 'name' must be a known format ({', '.join(format_names())}) "
        "or 'NA'; got 'integre' (did you mean 'integer'?)",
    ]


def test_check_refuses_dataset_path_on_a_bundled_data_set(write_toml: Callable[..., Path], capsys) -> None:
    path = write_toml('model = "mlp"\ndataset = "digits"\ndataset_path = "digits.csv"\n')
    assert cli.main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: problems in {path}:\n  dataset_path: dataset 'digits' reads no file, so "
        "dataset_path = 'digits.csv' would be ignored; remove dataset_path"
    )


def test_check_needs_no_checkpoint(lab_path: Path, capsys) -> None:
    assert cli.main(["check", str(lab_path), "--load", "not/there.ckpt"]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("# ok: ")


def test_a_sqlite_file_name_given_as_storage_gets_its_url(lab_path: Path) -> None:
    from bitscout.config import ConfigOverrides

    with pytest.raises(ConfigError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore", BitscoutConfigWarning)
        load_config(lab_path, ConfigOverrides(storage="runs/study.db"))
    assert str(caught.value).endswith(
        "or a path ending in .journal (for this SQLite file: 'sqlite:///runs/study.db'); got 'runs/study.db'"
    )


def test_check_reports_every_problem_of_a_quantize_entry(write_toml: Callable[..., Path], capsys) -> None:
    path = write_toml(
        'model = "mlp"\ndataset = "digits"\n[passes.quantize]\nby = "type"\n'
        '[passes.quantize.linear.config]\nname = "integer"\ndata_in_width = 0\nweight_width = 2.5\n'
        'weight_widht = 3\nbias_width = 8\n'
    )
    assert cli.main(["check", str(path)]) == 2
    where = "passes.quantize.linear.config"
    assert capsys.readouterr().err.splitlines() == [
        f"error: problems in {path}:",
        f"  {where}: field 'data_in_width' must be an integer in 1..32; got 0",
        f"  {where}: field 'weight_widht' is not a field of format 'integer' (did you mean "
        "'weight_width'?); got 3",
        f"  {where}: field 'weight_width' must be an integer in 1..32; got 2.5",
    ]
