"""Config mistakes: each is reported with the file, the TOML path, the rule and the value.

Every case starts from the valid lab config, makes one mistake a user makes, and checks
the whole message, word for word.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bitscout.config import load_config, parse_config
from bitscout.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::bitscout.config.BitscoutConfigWarning")

Doc = dict[str, Any]

MZ_RULE = (
    "must be one of 'pt', 'pl', 'bitscout': MASE's 'mz' is a pickled MaseGraph, which "
    "bitscout does not unpickle (a pickle can run code); in MASE, save the weights with "
    "torch.save(mg.model.state_dict(), 'model.pt') and use load_type = 'pt'; got 'mz'"
)


def _strategy(doc: Doc) -> Doc:
    return doc["search"]["strategy"]


def _setup(doc: Doc) -> Doc:
    return doc["search"]["strategy"]["setup"]


def _linear_seed(doc: Doc) -> Doc:
    return doc["search"]["search_space"]["seed"]["linear"]["config"]


def _older_runner_form(doc: Doc, **strategy_keys: Any) -> None:
    strategy = _strategy(doc)
    del strategy["sw_runner"], strategy["hw_runner"]
    strategy.update(sw_runner="basic_evaluation", hw_runner="average_bitwidth", **strategy_keys)


SOFTWARE = "'basic_evaluation', 'basic_train'"
HARDWARE = "'average_bitwidth', 'activation_bitwidth', 'model_size', 'flops', 'bitops', 'latency'"

# (mistake, how to make it, the message after "<file>: ")
MISTAKES: list[tuple[str, Callable[[Doc], None], str]] = [
    (
        "n_trails typo",
        lambda d: _setup(d).update(n_trails=_setup(d).pop("n_trials")),
        "search.strategy.setup.n_trails: unknown key; did you mean 'n_trials'?",
    ),
    (
        "num_sample typo (older runner form)",
        lambda d: _older_runner_form(d, data_loader="val_dataloader", num_sample=512),
        "search.strategy.num_sample: unknown key; did you mean 'num_samples'?",
    ),
    (
        "dataloader for data_loader (older runner form)",
        lambda d: _older_runner_form(d, dataloader="val_dataloader", num_samples=512),
        "search.strategy.dataloader: unknown key; did you mean 'data_loader'?",
    ),
    (
        "negative n_trials",
        lambda d: _setup(d).update(n_trials=-5),
        "search.strategy.setup.n_trials: must be an integer from 1 to 1,000,000,000; got -5",
    ),
    (
        "n_trials written as a float",
        lambda d: _setup(d).update(n_trials=20.0),
        "search.strategy.setup.n_trials: must be an integer from 1 to 1,000,000,000; got 20.0",
    ),
    (
        "direction maximise",
        lambda d: _setup(d).update(direction="maximise"),
        "search.strategy.setup.direction: must be one of 'maximize', 'minimize'; got 'maximise'",
    ),
    (
        "sum_scaled_metrics as a string",
        lambda d: _setup(d).update(sum_scaled_metrics="yes"),
        "search.strategy.setup.sum_scaled_metrics: must be true or false; got 'yes'",
    ),
    (
        "unknown runner name (table form)",
        lambda d: _strategy(d)["sw_runner"].update(basic_evaluaton=_strategy(d)["sw_runner"].pop("basic_evaluation")),
        f"search.strategy.sw_runner.basic_evaluaton: unknown software runner (known: {SOFTWARE}); "
        "did you mean 'basic_evaluation'?",
    ),
    (
        "unknown runner name (older string form)",
        lambda d: _older_runner_form(d) or _strategy(d).update(hw_runner="avg_bitwidth"),
        f"search.strategy.hw_runner: unknown hardware runner (known: {HARDWARE}); got 'avg_bitwidth'; "
        "did you mean 'average_bitwidth'?",
    ),
    (
        "hardware runner under sw_runner",
        lambda d: _strategy(d)["sw_runner"].update(bitops={}),
        "search.strategy.sw_runner.bitops: 'bitops' is a hardware runner; put it under search.strategy.hw_runner",
    ),
    (
        "batch_size 0",
        lambda d: d.update(batch_size=0),
        "batch_size: must be an integer >= 1; got 0",
    ),
    (
        "learning_rate as a string",
        lambda d: d.update(learning_rate="1e-2"),
        "learning_rate: must be a number > 0; got '1e-2'",
    ),
    (
        "accelerator tpu",
        lambda d: d.update(accelerator="tpu"),
        "accelerator: must be one of 'cpu', 'cuda', 'auto' ('gpu' is read as 'cuda'); got 'tpu'",
    ),
    (
        "quantize by layer",
        lambda d: d["passes"]["quantize"].update(by="layer"),
        "passes.quantize.by: must be one of 'type', 'name'; got 'layer'",
    ),
    (
        "search space by layer",
        lambda d: d["search"]["search_space"]["setup"].update(by="layer"),
        "search.search_space.setup.by: must be one of 'type', 'name'; got 'layer'",
    ),
    (
        "metric scale as a string",
        lambda d: _strategy(d)["metrics"]["accuracy"].update(scale="1.0"),
        "search.strategy.metrics.accuracy.scale: must be a number >= 0; got '1.0'",
    ),
    (
        "negative metric scale",
        lambda d: _strategy(d)["metrics"]["average_bitwidth"].update(scale=-0.2),
        "search.strategy.metrics.average_bitwidth.scale: must be a number >= 0: a scale is the "
        "metric's weight, and its direction says whether it counts for or against the objective "
        "(a metric to be minimized, such as model_size, is subtracted from a maximized sum: give "
        "it a positive scale); got -0.2",
    ),
    (
        "metric scale typo",
        lambda d: _strategy(d)["metrics"]["accuracy"].update(scal=1.0),
        "search.strategy.metrics.accuracy.scal: unknown key; did you mean 'scale'?",
    ),
    (
        "metric direction up",
        lambda d: _strategy(d)["metrics"]["average_bitwidth"].update(direction="down"),
        "search.strategy.metrics.average_bitwidth.direction: must be one of 'maximize', 'minimize'; got 'down'",
    ),
    (
        "seed list of lists",
        lambda d: _linear_seed(d).update(weight_width=[[2, 4], 8]),
        "search.search_space.seed.linear.config.weight_width: must be a non-empty list of numbers, "
        "strings or booleans (or one such value); got [[2, 4], 8]",
    ),
    (
        "empty seed list",
        lambda d: _linear_seed(d).update(bias_width=[]),
        "search.search_space.seed.linear.config.bias_width: must be a non-empty list of numbers, "
        "strings or booleans (or one such value); got []",
    ),
    (
        "list in a fixed quantize config",
        lambda d: d["passes"]["quantize"]["linear"]["config"].update(weight_width=[8]),
        "passes.quantize.linear.config.weight_width: must be a number, string or boolean; got [8]",
    ),
    (
        "seed without its config table (MASE's LLM form)",
        lambda d: d["search"]["search_space"]["seed"].update(
            linear=d["search"]["search_space"]["seed"]["linear"]["config"]
        ),
        "search.search_space.seed.linear: must hold its fields in a 'config' table "
        "([search.search_space.seed.linear.config]); found 'name', 'data_in_width', 'data_in_frac_width', "
        "'weight_width', 'weight_frac_width', 'bias_width', 'bias_frac_width' directly under it",
    ),
    (
        "quantize entry not a table",
        lambda d: d["passes"]["quantize"].update(conv2d="integer"),
        "passes.quantize.conv2d: must be a table holding a 'config' table ([passes.quantize.conv2d.config]); "
        "got 'integer'",
    ),
    (
        "extra key beside a seed's config table",
        lambda d: d["search"]["search_space"]["seed"]["linear"].update(confg={}),
        "search.search_space.seed.linear.confg: unknown key; did you mean 'config'?",
    ),
    (
        "unsupported search space",
        lambda d: d["search"]["search_space"].update(name="module/manual_hf/quantize/llm_mixed_precision_ptq"),
        "search.search_space.name: must be 'graph/quantize/mixed_precision_ptq' (the only search space "
        "bitscout supports); got 'module/manual_hf/quantize/llm_mixed_precision_ptq'",
    ),
    (
        "search space setup.by missing",
        lambda d: d["search"]["search_space"].pop("setup"),
        "search.search_space.setup.by: is required",
    ),
    (
        "unknown top-level key",
        lambda d: d.update(modle="jsc-tiny"),
        "modle: unknown key; did you mean 'model'?",
    ),
    (
        "model missing",
        lambda d: d.pop("model"),
        "model: is required",
    ),
    (
        "task lm",
        lambda d: d.update(task="lm"),
        "task: must be 'cls' (classification, the only task bitscout runs; 'classification' is read as "
        "'cls'); got 'lm'",
    ),
    (
        "load_type mz",
        lambda d: d.update(load_type="mz"),
        "load_type: " + MZ_RULE,
    ),
    (
        "timeout 0",
        lambda d: _setup(d).update(timeout=0),
        "search.strategy.setup.timeout: must be a number > 0; got 0",
    ),
    (
        "eval_mode as 1",
        lambda d: _strategy(d).update(eval_mode=1),
        "search.strategy.eval_mode: must be true or false; got 1",
    ),
    (
        "strategy-level data_loader with table-form runners",
        lambda d: _strategy(d).update(data_loader="val_dataloader"),
        "search.strategy.data_loader: is only read with the older form sw_runner = \"<name>\"; "
        "got 'val_dataloader'; put it in the runner's table, e.g. [search.strategy.sw_runner.basic_evaluation]",
    ),
    # The older form's options are named where the file has them, not in a runner table
    # the file does not have.
    (
        "older-form num_samples 0",
        lambda d: _strategy(d).update(sw_runner="basic_evaluation", num_samples=0),
        "search.strategy.num_samples: must be an integer >= 1; got 0",
    ),
    (
        "older-form data_loader misspelt",
        lambda d: _strategy(d).update(sw_runner="basic_evaluation", data_loader="validation"),
        "search.strategy.data_loader: must be one of 'train', 'val', 'test', 'train_dataloader', "
        "'val_dataloader', 'test_dataloader'; got 'validation'",
    ),
    (
        "runner options not a table",
        lambda d: _strategy(d)["hw_runner"].update(average_bitwidth=32),
        "search.strategy.hw_runner.average_bitwidth: must be a table of the runner's options; got 32",
    ),
    (
        "unknown pass",
        lambda d: d["passes"].update(prune={"sparsity": 0.5}),
        "passes.prune: unknown key; valid keys here: 'quantize'",
    ),
    (
        "sampler options not a table",
        lambda d: _setup(d).update(sampler_options="seed=1"),
        "search.strategy.setup.sampler_options: must be a table; got 'seed=1'",
    ),
    (
        "search not a table",
        lambda d: d.update(search="optuna"),
        "search: must be a table; got 'optuna'",
    ),
]


@pytest.mark.parametrize(("make", "expected"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_reported_with_path_rule_and_value(
    make: Callable[[Doc], None], expected: str, lab_doc: Doc, write_toml
) -> None:
    make(lab_doc)
    path = write_toml(lab_doc, "lab.toml")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value) == f"{path}: {expected}"


def test_at_least_fifteen_distinct_mistakes_are_checked() -> None:
    assert len({expected for _, _, expected in MISTAKES}) >= 15


def test_every_problem_is_listed_in_one_error(lab_doc: Doc, write_toml) -> None:
    lab_doc["batch_size"] = 0
    _setup(lab_doc)["n_trails"] = 3
    _setup(lab_doc)["direction"] = "up"
    path = write_toml(lab_doc, "many.toml")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value).splitlines() == [
        f"3 problems in {path}:",
        f"  {path}: batch_size: must be an integer >= 1; got 0",
        f"  {path}: search.strategy.setup.direction: must be one of 'maximize', 'minimize'; got 'up'",
        f"  {path}: search.strategy.setup.n_trails: unknown key; did you mean 'n_trials'?",
    ]


def test_no_pydantic_wording_reaches_the_user(lab_doc: Doc, write_toml) -> None:
    lab_doc.update(batch_size="x", learning_rate=[1], seed=True, passes=3, model_options=2)
    path = write_toml(lab_doc)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value).replace(str(path), "<file>")  # the test's folder is named after it
    for pydantic_word in ("validation error", "Input should", "pydantic", "type=", "errors.pydantic.dev"):
        assert pydantic_word not in message
    assert message.startswith("5 problems in ")


def test_key_needing_quotes_is_quoted_in_the_path(lab_doc: Doc, write_toml) -> None:
    lab_doc["search"]["search_space"]["seed"]["seq.blocks 2"] = {"config": {"weight_width": []}}
    path = write_toml(lab_doc)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f'{path}: search.search_space.seed."seq.blocks 2".config.weight_width: ')


def test_malformed_toml_names_file_line_and_column(write_toml) -> None:
    path = write_toml('model = "jsc-tiny"\ndataset = "jsc"\n[search.strategy.setup]\nn_trials = = 20\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: line 4, column 12: malformed TOML: Invalid value"


def test_malformed_toml_at_the_end_of_the_file(write_toml) -> None:
    path = write_toml('model = "jsc-tiny"\ndataset = "jsc')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: at the end of the file: malformed TOML: Unterminated string"


def test_missing_file_is_said_plainly(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"config file not found: {path}"


def test_folder_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder, not a TOML config file"):
        load_config(tmp_path)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('project = "café"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: not UTF-8 text (bad byte at offset 14); TOML files must be UTF-8"


def test_source_is_not_a_toml_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"model": "m", "dataset": "d", "source": "x.toml"})
    assert str(caught.value) == "<config>: source: unknown key; it is set by bitscout itself"


def test_unknown_runner_in_code_is_refused() -> None:
    from pydantic import ValidationError

    from bitscout.config import StrategyConfig

    with pytest.raises(ValidationError, match="'basic_eval': unknown software runner"):
        StrategyConfig(sw_runners={"basic_eval": {}})
