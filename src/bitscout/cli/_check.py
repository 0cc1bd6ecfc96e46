"""``bitscout check CONFIG``: validate a config and print it resolved.

Prints the resolved config as TOML (what a run would use, overrides applied, ignored
MASE keys dropped) followed by a one-line summary written as a TOML comment, so the
whole output is itself a valid config. Exit status 0 when valid; an invalid config is a
:class:`bitscout.errors.ConfigError`, printed by the dispatcher with status 2.
"""

from __future__ import annotations

import argparse

from bitscout.cli._common import add_config_argument, add_override_options, config_from_args

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
    print(config.to_toml(), end="")
    print(f"\n# ok: {config.summary()}")
    return 0
