"""``bitscout check CONFIG``: validate a config and print it resolved.

Prints the resolved config as TOML (what a run would use, overrides applied, ignored
MASE keys dropped) followed by a one-line summary written as a TOML comment, so the
whole output is itself a valid config. Besides the schema, the options of every runner
and of the strategy are validated by the runner and strategy themselves (a
``dataloader`` typo in ``[search.strategy.sw_runner.basic_evaluation]`` is caught here,
not at the first trial), and so are the model and data set names, the model's options,
every ``[passes.quantize]`` entry and the metrics ``[search.strategy.constraints]`` bounds. Exit status 0 when valid; an invalid config is a
:class:`bitscout.errors.ConfigError`, printed by the dispatcher with status 2.
"""

from __future__ import annotations

import argparse

from bitscout.cli._common import add_config_argument, add_override_options, config_from_args
from bitscout.config import Config, StrategyConfig
from bitscout.data import dataset_problem
from bitscout.config._plugins import import_object
from bitscout.errors import BitscoutError, ConfigError, ModelError
from bitscout.models import get_model_builder
from bitscout.quant import TENSOR_NAMES, parse_layer_config

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``check`` subcommand."""
    parser = subparsers.add_parser(
        "check",
        help="validate a config file and print it resolved",
        description=(
            "Validate a TOML config (MASE's search format or bitscout's) and print the "
            "resolved config with a one-line summary. Exit status 0: valid; 2: invalid."
        ),
    )
    add_config_argument(parser)
    add_override_options(parser, search=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate, print the resolved TOML and the summary; 0 when valid."""
    config = config_from_args(args)
    problems = config_problems(config)
    if problems:
        label = config.source if config.source is not None else "the config"
        raise ConfigError(f"problems in {label}:\n  " + "\n  ".join(problems))
    _trace_model(config)
    print(config.to_toml(), end="")
    print(f"\n# ok: {config.summary()}")
    return 0


def _trace_model(config: Config) -> None:
    """Build and trace the model on its data, so that check warns of parameters left in
    float (:class:`bitscout.graph.TraceCoverageWarning`) and fails on an untraceable model.

    A registered data set that is not on this machine (JSC without its file) is not an
    error of the config: the model is then not traced here.

    Raises:
        BitscoutError: The data file or factory cannot be read, the model cannot be
            built, or it cannot be traced.
    """
    from bitscout.data import dataset_kind, load_dataset
    from bitscout.errors import DataError
    from bitscout.experiment import build_fresh_model
    from bitscout.graph import trace, traceable_view

    try:
        dataset = load_dataset(
            config.dataset, path=config.dataset_path, seed=config.seed, label_column=config.label_column
        )
    except DataError:
        if dataset_kind(config.dataset) == "registry":
            return
        raise
    model = traceable_view(build_fresh_model(config, dataset.info).eval(), config.trace_into)
    x = next(split.x for split in (dataset.val, dataset.train, dataset.test) if len(split))
    trace(model, x[:2])


def config_problems(config: Config) -> list[str]:
    """What the schema cannot see: names and options judged by their registries.

    The model and data set names (and the model's options), each
    ``[passes.quantize]`` entry, and the options of every runner and of the strategy,
    checked without loading any data or building any model.

    Returns:
        One line per problem, each naming its TOML path; empty when the config is valid.
    """
    problems: list[str] = []
    try:
        if ":" in config.model:  # a user factory: it must import (its call needs data)
            import_object(config.model, what="model", error=ModelError)
        else:
            get_model_builder(config.model).parse_options(config.model_options)
    except BitscoutError as exc:
        problems.append(f"model: {exc}")
    dataset = dataset_problem(config.dataset, label_column=config.label_column)
    if dataset is not None:
        problems.append(f"dataset: {dataset}")
    quantize = config.passes.quantize
    if quantize is not None:
        for key, entry in quantize.entries.items():
            # A relu has only an input; every other layer may have all three tensors.
            tensors = ("data_in",) if quantize.by == "type" and key == "relu" else TENSOR_NAMES
            try:
                op = key if quantize.by == "type" and key != "default" else None
                parse_layer_config(entry, where=f"passes.quantize.{key}.config", tensors=tensors, op=op)
            except BitscoutError as exc:
                problems.append(str(exc))
    if config.search is not None:
        problems += _search_problems(config.search.strategy)
    return problems


def _search_problems(strategy_cfg: StrategyConfig) -> list[str]:
    from bitscout.metrics import constraint_problems, validate_runners
    from bitscout.strategies import get_strategy

    problems: list[str] = []
    try:
        validate_runners(strategy_cfg)
    except ConfigError as exc:
        problems += str(exc).splitlines()
    problems += constraint_problems(strategy_cfg)
    try:
        get_strategy(strategy_cfg.strategy_name).parse_options(strategy_cfg.setup.sampler_options)
    except ConfigError as exc:
        problems += str(exc).splitlines()
    return problems
