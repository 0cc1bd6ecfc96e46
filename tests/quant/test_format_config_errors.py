"""Bad values of the format and calibration keys: one clear error naming the TOML path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitscout.cli import main

HEAD = 'model = "mlp"\ndataset = "digits"\naccelerator = "cpu"\n'

PASS = """
[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
data_in_width = 8
data_in_frac_width = "atuo"
weight_width = 8
weight_frac_width = "auto"
"""

SPACE = """
[search.search_space]
name = "graph/quantize/mixed_precision_ptq"
[search.search_space.setup]
by = "type"
[search.search_space.seed.default.config]
name = ["NA"]
[search.search_space.seed.{key}.config]
name = ["int"]
data_in_width = [8]
{field} = ["channel"]
[search.strategy.setup]
n_trials = 2
"""


def _run(tmp_path: Path, capsys, text: str, *command: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main([*command, str(path), *(["--out", str(tmp_path / "run")] if command[0] == "search" else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_misspelled_auto_names_the_pass_table_and_the_field(tmp_path: Path, capsys) -> None:
    err = _run(tmp_path, capsys, HEAD + PASS, "check")
    assert "passes.quantize.linear.config: field 'data_in_frac_width' must be an integer, 'auto'" in err
    assert "got 'atuo'" in err


@pytest.mark.parametrize(
    ("line", "where", "rule"),
    [
        ('calibration_observer = "mse"', "calibration_observer", "must be one of 'minmax', 'percentile'"),
        ("calibration_samples = 0", "calibration_samples", "must be an integer >= 1"),
        ("calibration_percentile = 30", "calibration_percentile", "must be a number in (50, 100]"),
        ('fold_bn = "yes"', "fold_bn", "must be true or false"),
    ],
)
def test_bad_calibration_keys_name_the_key(tmp_path: Path, capsys, line: str, where: str, rule: str) -> None:
    err = _run(tmp_path, capsys, HEAD + line + "\n", "check")
    assert f"{where}: {rule}" in err


@pytest.mark.parametrize(
    ("key", "field", "rule"),
    [
        ("relu", "data_in_granularity", "must be 'tensor' for data_in (per-channel scales are for weights"),
        ("linear", "bias_granularity", "must be 'tensor' for bias"),
    ],
)
def test_per_channel_where_there_are_no_channels_names_the_space_table(
    tmp_path: Path, capsys, key: str, field: str, rule: str
) -> None:
    text = HEAD + SPACE.format(key=key, field=field)
    if key == "linear":
        text = text.replace('data_in_width = [8]', 'data_in_width = [8]\nweight_width = [8]\nbias_width = [8]')
    err = _run(tmp_path, capsys, text, "search")
    # search judges every seed as check does, before it loads the model or the data.
    assert f"search.search_space.seed.{key}.config: field '{field}' {rule}" in err


def test_per_channel_weight_of_an_add_names_the_pass_table(tmp_path: Path, capsys) -> None:
    text = HEAD + """
[passes.quantize]
by = "type"
[passes.quantize.add.config]
name = "int"
data_in_width = 8
weight_width = 8
weight_granularity = "channel"
"""
    err = _run(tmp_path, capsys, text, "check")
    assert "passes.quantize.add.config: field 'weight_granularity' must be 'tensor' for a layer of type 'add'" in err
