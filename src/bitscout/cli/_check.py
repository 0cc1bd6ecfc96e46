"""``bitscout check CONFIG``: validate a config and print it resolved.

Prints the resolved config as TOML (what a run would use, overrides applied, ignored
MASE keys dropped) followed by a one-line summary written as a TOML comment, so the
whole output is itself a valid config. Besides the schema, the options of every runner
and of the strategy are validated by the runner and strategy themselves (a
``dataloader`` typo in ``[search.strategy.sw_runner.basic_evaluation]`` is caught here,
not at the first trial). Exit status 0 when valid; an invalid config is a
:class:`bitscout.errors.ConfigError`, printed by the dispatcher with status 2.
"""

from __future__ import annotations

import argparse

from bitscout.cli._common import add_config_argument, add_override_options, config_from_args
from bitscout.config import Config
from bitscout.errors import ConfigError

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
    check_search_options(config)
    print(config.to_toml(), end="")
    print(f"\n# ok: {config.summary()}")
    return 0


def check_search_options(config: Config) -> None:
    """Validate runner and strategy options, reporting every problem in one ConfigError."""
    if config.search is None:
        return
    from bitscout.metrics import validate_runner_options
    from bitscout.strategies import get_strategy

    strategy_cfg = config.search.strategy
    problems: list[str] = []
    for kind, runners in (("software", strategy_cfg.sw_runners), ("hardware", strategy_cfg.hw_runners)):
        for name, options in runners.items():
            try:
                validate_runner_options(kind, name, options)
            except ConfigError as exc:
                problems.append(str(exc))
    try:
        get_strategy(strategy_cfg.strategy_name).parse_options(strategy_cfg.setup.sampler_options)
    except ConfigError as exc:
        problems.append(str(exc))
    if problems:
        label = config.source if config.source is not None else "the config"
        raise ConfigError(f"problems in {label}:\n  " + "\n  ".join(problems))
