"""Command-line overrides: applied after the file is validated, judged by the same rules."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from bitscout.config import ConfigOverrides, apply_overrides, load_config, parse_config
from bitscout.errors import ConfigError
from tests.config.test_config_errors import MZ_RULE

pytestmark = pytest.mark.filterwarnings("ignore::bitscout.config.BitscoutConfigWarning")


def test_no_overrides_keep_the_file(lab_path: Path) -> None:
    assert load_config(lab_path, ConfigOverrides()) == load_config(lab_path)


def test_each_override_replaces_the_files_value(lab_path: Path) -> None:
    overrides = ConfigOverrides(
        load="ckpt/best.ckpt",
        load_type="pl",
        out=Path("runs/x"),
        seed=5,
        accelerator="gpu",
        n_trials=7,
        storage="postgresql://u@h:5432/db",
        study_name="lab",
        workers=3,
    )
    config = load_config(lab_path, overrides)

    assert (config.load_name, config.load_type, config.out) == (Path("ckpt/best.ckpt"), "pl", Path("runs/x"))
    assert (config.seed, config.accelerator) == (5, "cuda")
    setup = config.search.strategy.setup
    assert (setup.n_trials, setup.seed, setup.storage, setup.study_name, setup.workers) == (
        7,
        5,
        "postgresql://u@h:5432/db",
        "lab",
        3,
    )
    # Everything else is the file's.
    assert config.search.strategy.setup.timeout == 20000.0
    assert config.batch_size == 512
    assert config.source == lab_path


def test_overrides_return_a_new_config_and_leave_the_old_one(lab_path: Path) -> None:
    config = load_config(lab_path)
    changed = apply_overrides(config, ConfigOverrides(n_trials=3))
    assert changed.search.strategy.setup.n_trials == 3
    assert config.search.strategy.setup.n_trials == 20


def test_sampler_override_chooses_the_strategy(lab_path: Path, lab_doc: dict, write_toml) -> None:
    random = load_config(lab_path, ConfigOverrides(sampler="Random"))
    assert random.strategy_name == "random"

    lab_doc["search"]["strategy"]["name"] = "brute_force"
    brute = load_config(write_toml(lab_doc))
    assert brute.strategy_name == "brute_force"
    tpe = apply_overrides(brute, ConfigOverrides(sampler="tpe"))
    assert (tpe.search.strategy.name, tpe.strategy_name) == ("optuna", "tpe")
    assert apply_overrides(tpe, ConfigOverrides(sampler="brute_force")).strategy_name == "brute_force"


def test_seed_override_without_a_search_section_sets_the_seed() -> None:
    config = apply_overrides(parse_config({"model": "m", "dataset": "d"}), ConfigOverrides(seed=9))
    assert config.seed == 9


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (ConfigOverrides(n_trials=0), "--n-trials: must be an integer from 1 to 1,000,000,000; got 0"),
        (ConfigOverrides(workers=-2), "--workers: must be an integer from 1 to 1024; got -2"),
        (ConfigOverrides(seed=-1), "--seed: must be an integer from 0 to 4294967295 (2**32 - 1); got -1"),
        (
            ConfigOverrides(seed=2**32),
            "--seed: must be an integer from 0 to 4294967295 (2**32 - 1); got 4294967296",
        ),
        (
            ConfigOverrides(n_trials=2**63 - 1),
            "--n-trials: must be an integer from 1 to 1,000,000,000; got 9223372036854775807",
        ),
        (
            ConfigOverrides(storage="runs"),
            "--storage: must be an Optuna storage URL (postgresql://user@host:5432/db, "
            "sqlite:///path/study.db) or a path ending in .journal; got 'runs'",
        ),
        (
            ConfigOverrides(accelerator="tpu"),
            "--accelerator: must be one of 'cpu', 'cuda', 'auto' ('gpu' is read as 'cuda'); got 'tpu'",
        ),
        (ConfigOverrides(load_type="mz"), "--load-type: " + MZ_RULE),
        (ConfigOverrides(sampler=""), "--sampler: must be a non-empty string; got ''"),
        (ConfigOverrides(study_name="  "), "--study-name: must be a non-empty string; got '  '"),
    ],
)
def test_a_wrong_override_names_the_option(lab_path: Path, overrides: ConfigOverrides, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(lab_path, overrides)
    assert str(caught.value) == expected


def test_all_wrong_overrides_are_reported_together(lab_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(lab_path, ConfigOverrides(n_trials=0, accelerator="tpu"))
    assert str(caught.value).splitlines() == [
        "2 problems in the command-line options:",
        "  --accelerator: must be one of 'cpu', 'cuda', 'auto' ('gpu' is read as 'cuda'); got 'tpu'",
        "  --n-trials: must be an integer from 1 to 1,000,000,000; got 0",
    ]


def test_search_override_needs_a_search_section() -> None:
    with pytest.raises(ConfigError) as caught:
        apply_overrides(parse_config({"model": "m", "dataset": "d"}), ConfigOverrides(n_trials=5))
    assert str(caught.value) == "--n-trials: needs a [search] section, and the config has none"


def test_the_file_is_validated_before_the_overrides(lab_doc: dict, write_toml) -> None:
    # An invalid file value is reported even when an option would replace it.
    lab_doc["search"]["strategy"]["setup"]["n_trials"] = 0
    path = write_toml(lab_doc)
    with pytest.raises(ConfigError) as caught:
        load_config(path, ConfigOverrides(n_trials=5))
    assert str(caught.value) == f"{path}: search.strategy.setup.n_trials: must be an integer from 1 to 1,000,000,000; got 0"


def test_overridden_config_round_trips(lab_path: Path, write_toml) -> None:
    config = load_config(lab_path, ConfigOverrides(n_trials=3, seed=1, out="runs/y", sampler="nsgaii"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_config(write_toml(config.to_toml())) == config
