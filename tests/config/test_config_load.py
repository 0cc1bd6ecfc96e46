"""Loading valid configs: the lab file, MASE's forms, defaults, round trips, warnings."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import pytest
import tomli_w

from bitscout.config import (
    IGNORED_KEYS,
    BitscoutConfigWarning,
    Config,
    MetricSpec,
    QuantizePass,
    Search,
    SearchSpaceConfig,
    Setup,
    StrategyConfig,
    load_config,
    parse_config,
)


def _load_quietly(path: Path) -> Config:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BitscoutConfigWarning)
        return load_config(path)


def test_lab_config_loads_with_every_value(lab_path: Path) -> None:
    config = _load_quietly(lab_path)

    assert (config.model, config.dataset, config.task) == ("jsc-tiny", "jsc", "cls")
    assert (config.max_epochs, config.batch_size, config.learning_rate) == (5, 512, 0.01)
    assert (config.project, config.seed, config.accelerator) == ("jsc-tiny", 42, "auto")
    assert config.source == lab_path
    assert config.passes.quantize == QuantizePass(
        by="type",
        entries={
            "default": {"name": "NA"},
            "linear": {
                "name": "integer",
                "data_in_width": 8,
                "data_in_frac_width": 4,
                "weight_width": 8,
                "weight_frac_width": 4,
                "bias_width": 8,
                "bias_frac_width": 4,
            },
        },
    )
    assert config.search is not None
    space = config.search.search_space
    assert space.name == "graph/quantize/mixed_precision_ptq"
    assert space.by == "type"
    assert space.seed == {
        "default": {"name": ("NA",)},
        "linear": {
            "name": ("integer",),
            "data_in_width": (4, 8),
            "data_in_frac_width": ("NA",),
            "weight_width": (2, 4, 8),
            "weight_frac_width": ("NA",),
            "bias_width": (2, 4, 8),
            "bias_frac_width": ("NA",),
        },
    }
    strategy = config.search.strategy
    assert (strategy.name, strategy.eval_mode, strategy.strategy_name) == ("optuna", True, "tpe")
    assert config.strategy_name == "tpe"
    assert strategy.sw_runners == {"basic_evaluation": {"data_loader": "val_dataloader", "num_samples": 512}}
    assert strategy.hw_runners == {"average_bitwidth": {"compare_to": 32}}
    assert strategy.setup == Setup(
        n_jobs=1,
        n_trials=20,
        timeout=20000.0,
        sampler="tpe",
        sum_scaled_metrics=True,
        direction="maximize",
        seed=42,  # filled from the top-level seed
    )
    assert strategy.metrics == {
        "accuracy": MetricSpec(scale=1.0, direction="maximize"),
        "average_bitwidth": MetricSpec(scale=0.2, direction="minimize"),
    }


def test_mase_toy_tpe_form_loads(write_toml, mase_toy_tpe: str) -> None:
    config = _load_quietly(write_toml(mase_toy_tpe))

    assert config.accelerator == "cuda"  # MASE's "gpu"
    assert config.search is not None
    space, strategy = config.search.search_space, config.search.strategy
    assert space.by == "name"
    assert space.seed["default"]["data_in_frac_width"] == (3, 4, 5, 6, 7, 8, 9)
    assert strategy.setup.sum_scaled_metrics is False
    assert strategy.setup.timeout == 20000.0
    assert strategy.strategy_name == "tpe"
    assert list(strategy.metrics) == ["accuracy", "average_bitwidth"]


def test_older_string_runner_form_is_folded_into_tables(write_toml, lab_doc: dict) -> None:
    tables = _load_quietly(write_toml(lab_doc, "tables.toml"))
    strategy = lab_doc["search"]["strategy"]
    del strategy["sw_runner"], strategy["hw_runner"]
    strategy.update(
        sw_runner="basic_evaluation",
        hw_runner="average_bitwidth",
        data_loader="val_dataloader",
        num_samples=512,
    )
    older = _load_quietly(write_toml(lab_doc, "older.toml"))

    assert older.search.strategy.sw_runners == {
        "basic_evaluation": {"data_loader": "val_dataloader", "num_samples": 512}
    }
    # The string form gives the hardware runner no options (MASE's defaults apply).
    assert older.search.strategy.hw_runners == {"average_bitwidth": {}}
    assert older.search.strategy.model_copy(update={"hw_runners": {}}) == tables.search.strategy.model_copy(
        update={"hw_runners": {}}
    )


def test_older_form_takes_a_list_of_runner_names(write_toml, lab_doc: dict) -> None:
    strategy = lab_doc["search"]["strategy"]
    strategy["hw_runner"] = ["average_bitwidth", "bitops"]
    config = _load_quietly(write_toml(lab_doc))
    assert config.search.strategy.hw_runners == {"average_bitwidth": {}, "bitops": {}}


def test_defaults_fill_project_and_sampler_seed() -> None:
    config = parse_config(
        {
            "model": "mlp",
            "dataset": "digits",
            "seed": 7,
            "search": {"search_space": {"setup": {"by": "type"}, "seed": {"default": {"config": {"name": "NA"}}}}},
        }
    )
    assert config.project == "mlp_digits"
    assert config.search.strategy.setup.seed == 7
    assert (config.batch_size, config.max_epochs, config.learning_rate) == (128, 10, 1e-3)
    assert config.search.strategy.setup.n_trials == 20
    # A scalar in a seed is one choice.
    assert config.search.search_space.seed == {"default": {"name": ("NA",)}}
    assert config.source is None


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ({}, "sensitivity"),  # one summed objective, no sampler named: bitscout's own
        ({"sum_scaled_metrics": False}, "tpe"),  # a Pareto search: sensitivity takes one objective
        ({"sampler": "tpe"}, "tpe"),  # named: kept (MASE's lab TOML names tpe)
        ({"sampler": "random", "sum_scaled_metrics": False}, "random"),
    ],
)
def test_the_default_sampler_depends_on_the_number_of_objectives(setup: dict, expected: str) -> None:
    config = parse_config(
        {
            "model": "mlp",
            "dataset": "digits",
            "search": {
                "search_space": {"setup": {"by": "type"}, "seed": {"default": {"config": {"name": "NA"}}}},
                "strategy": {"setup": setup},
            },
        }
    )
    assert config.strategy_name == expected
    assert parse_config(tomllib.loads(config.to_toml())).strategy_name == expected


def test_mase_spellings_are_read_as_bitscout_values() -> None:
    config = parse_config(
        {
            "model": "m",
            "dataset": "d",
            "task": "classification",
            "accelerator": "gpu",
            "search": {
                "search_space": {"setup": {"by": "name"}, "seed": {"default": {"config": {"name": ["NA"]}}}},
                "strategy": {"name": "Optuna", "setup": {"sampler": "TPE"}},
            },
        }
    )
    assert (config.task, config.accelerator) == ("cls", "cuda")
    assert config.search.strategy.name == "optuna"
    assert config.strategy_name == "tpe"


def test_brute_force_strategy_name_is_its_own_registry_name() -> None:
    strategy = StrategyConfig(name="brute_force", setup=Setup(sampler="random"))
    assert strategy.strategy_name == "brute_force"
    assert StrategyConfig(setup=Setup(sampler="nsgaii")).strategy_name == "nsgaii"


def test_repeated_choices_are_kept_once_with_int_float_bool_apart() -> None:
    space = SearchSpaceConfig(by="type", seed={"linear": {"weight_width": [4, 8, 4, 8.0, True, 1]}})
    assert space.seed["linear"]["weight_width"] == (4, 8, 8.0, True, 1)


def test_round_trip_through_to_toml_gives_an_equal_config(lab_path: Path, write_toml) -> None:
    config = _load_quietly(lab_path)
    text = config.to_toml()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ignored keys were dropped: no warning the second time
        again = load_config(write_toml(text))
    assert again == config
    assert again.source != config.source  # `source` is not part of the value


def test_round_trip_of_a_config_using_every_field(write_toml) -> None:
    config = parse_config(
        {
            "model": "pkg.models:build",
            "model_options": {"hidden": [64, 32], "dropout": 0.1},
            "dataset": "jsc",
            "dataset_path": "data/jsc.h5",
            "batch_size": 64,
            "max_epochs": 3,
            "learning_rate": 0.5,
            "accelerator": "cpu",
            "seed": 3,
            "load_name": "ckpt/best.ckpt",
            "load_type": "pl",
            "out": "runs/a",
            "passes": {"quantize": {"by": "name", "seq_blocks_2": {"config": {"name": "integer", "weight_width": 4}}}},
            "search": {
                "search_space": {
                    "setup": {"by": "name"},
                    "seed": {"seq_blocks_2": {"config": {"weight_width": [2, 4], "name": "integer"}}},
                },
                "strategy": {
                    "name": "brute_force",
                    "eval_mode": False,
                    "sw_runner": {"basic_train": {"max_steps": 5}, "basic_evaluation": {}},
                    "hw_runner": {"bitops": {}, "latency": {"repeats": 3}},
                    "setup": {
                        "n_jobs": 2,
                        "n_trials": 9,
                        "timeout": 1.5,
                        "sum_scaled_metrics": False,
                        "direction": "minimize",
                        "seed": 11,
                        "storage": "sqlite:///x.db",
                        "study_name": "s",
                        "workers": 4,
                        "sampler_options": {"shuffle": True},
                    },
                    "metrics": {"accuracy": {"direction": "maximize"}, "bitops": {"scale": 0.0, "normalize": True}},
                },
            },
        },
        source="inline.toml",
    )
    again = load_config(write_toml(config.to_toml()))
    assert again == config
    assert again.load_name == Path("ckpt/best.ckpt")
    assert again.search.strategy.setup.seed == 11  # an explicit sampler seed is kept


def test_to_toml_writes_mase_table_shape(lab_path: Path) -> None:
    document = tomllib.loads(_load_quietly(lab_path).to_toml())

    assert document["passes"]["quantize"]["linear"]["config"]["weight_width"] == 8
    assert document["search"]["search_space"]["setup"] == {"by": "type"}
    assert document["search"]["search_space"]["seed"]["linear"]["config"]["weight_width"] == [2, 4, 8]
    assert document["search"]["strategy"]["sw_runner"]["basic_evaluation"]["num_samples"] == 512
    assert document["search"]["strategy"]["hw_runner"] == {"average_bitwidth": {"compare_to": 32}}
    assert "source" not in document and "log_every_n_steps" not in document
    assert "weight_width = [2, 4, 8]" in _load_quietly(lab_path).to_toml()  # arrays on one line


def test_config_built_in_code_equals_the_loaded_one(lab_path: Path) -> None:
    loaded = _load_quietly(lab_path)
    built = Config(
        model="jsc-tiny",
        dataset="jsc",
        max_epochs=5,
        batch_size=512,
        learning_rate=1e-2,
        project="jsc-tiny",
        seed=42,
        passes={"quantize": loaded.passes.quantize},
        search=Search(
            search_space=loaded.search.search_space,
            strategy=StrategyConfig(
                sw_runners={"basic_evaluation": {"data_loader": "val_dataloader", "num_samples": 512}},
                hw_runners={"average_bitwidth": {"compare_to": 32}},
                setup=Setup(n_jobs=1, n_trials=20, timeout=20000, sampler="tpe"),
                metrics={
                    "accuracy": MetricSpec(scale=1.0, direction="maximize"),
                    "average_bitwidth": MetricSpec(scale=0.2, direction="minimize"),
                },
            ),
        ),
    )
    assert built == loaded


def test_config_is_frozen(lab_path: Path) -> None:
    config = _load_quietly(lab_path)
    with pytest.raises(Exception, match="frozen"):
        config.seed = 1  # type: ignore[misc]


def test_each_ignored_mase_key_warns_exactly_once(write_toml, lab_doc: dict) -> None:
    lab_doc.update(project_dir="/tmp/mase_output", num_workers=8, t_max=20)
    lab_doc["transform"] = {"style": "graph"}
    path = write_toml(lab_doc)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = load_config(path)

    messages = [str(w.message) for w in caught]
    assert all(issubclass(w.category, BitscoutConfigWarning) for w in caught)
    expected = ["log_every_n_steps", "project_dir", "num_workers", "t_max", "transform"]
    assert sorted(messages) == sorted(f"{path}: {key}: ignored ({IGNORED_KEYS[key]})" for key in expected)
    assert not any(hasattr(config, key) for key in expected)


@pytest.mark.parametrize(
    "key",
    [
        "log_every_n_steps",
        "project_dir",
        "target",
        "num_targets",
        "t_max",
        "eta_min",
        "weight_decay",
        "strategy",
        "num_devices",
        "num_workers",
        "is_pretrained",
        "disable_dataset_cache",
        "trainer_precision",
        "github_ci",
        "max_steps",
        "accumulate_grad_batches",
        "resume_training",
    ],
)
def test_mase_cli_keys_are_ignored_with_a_warning(key: str) -> None:
    with pytest.warns(BitscoutConfigWarning, match=f"^<config>: {key}: ignored ") as record:
        config = parse_config({"model": "m", "dataset": "d", key: 1})
    assert len(record) == 1
    assert config == parse_config({"model": "m", "dataset": "d"})


def test_metric_specs_and_setup_round_trip_through_tomli_w(write_toml) -> None:
    # A hand-written document in table form loads to the same values as the dotted form.
    dotted = 'model = "m"\ndataset = "d"\n[search.search_space]\nsetup.by = "type"\nseed.default.config.name = "NA"\n[search.strategy.metrics]\naccuracy.scale = 2\n'
    tables = tomli_w.dumps(
        {
            "model": "m",
            "dataset": "d",
            "search": {
                "search_space": {"setup": {"by": "type"}, "seed": {"default": {"config": {"name": ["NA"]}}}},
                "strategy": {"metrics": {"accuracy": {"scale": 2.0}}},
            },
        }
    )
    assert load_config(write_toml(dotted, "a.toml")) == load_config(write_toml(tables, "b.toml"))


def test_quantize_report_flag_is_ignored_with_a_warning() -> None:
    document = {
        "model": "toy",
        "dataset": "toy-tiny",
        "passes": {"quantize": {"by": "type", "report": True, "default": {"config": {"name": "integer"}}}},
    }
    with pytest.warns(BitscoutConfigWarning, match=r"^<config>: passes.quantize.report: ignored ") as record:
        config = parse_config(document)
    assert len(record) == 1
    assert config.passes.quantize == QuantizePass(by="type", entries={"default": {"name": "integer"}})
