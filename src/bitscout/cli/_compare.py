"""``bitscout compare CONFIG --strategies tpe,random,... --seeds 10 --n-trials 200``.

Builds the search the config describes (data, model with its checkpoint, space,
runners, objective) once, then runs every strategy with every seed on it through
:func:`bitscout.compare.compare_strategies`, sharing evaluations through a cache. Writes
``comparison.md``, ``comparison.json`` and ``best_so_far.png`` to ``--out`` (default
``runs/<project>/compare``) and prints the table and its reading.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bitscout.cli._check import raise_config_problems
from bitscout.cli._common import add_config_overrides, check_output_folder, config_from_args
from bitscout.config import check_compare_outputs_are_ours
from bitscout.errors import ConfigError

__all__ = ["register", "run", "DEFAULT_STRATEGIES"]

DEFAULT_STRATEGIES = "tpe,random,qmc,nsgaii,brute_force,sensitivity"

# bitscout.compare.DEFAULT_EXACT_LIMIT, as --help shows it: building the parser of every
# command must not import the compare package (a search would load it before its first
# trial for nothing). tests/cli checks that the two agree.
EXACT_LIMIT_SHOWN = 50_000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` subcommand."""
    parser = subparsers.add_parser(
        "compare",
        help="compare the sample efficiency of search strategies on one config",
        description=(
            "Run several strategies with several seeds on the config's search space and "
            "objective (evaluations shared through a cache), find the exact optimum by "
            "enumeration when the space is small enough, and report trials and unique "
            "evaluations to the optimum, regret at fixed budgets, duplicates and time."
        ),
    )
    add_config_overrides(parser)
    parser.add_argument(
        "--strategies",
        default=DEFAULT_STRATEGIES,
        metavar="LIST",
        help=f"comma-separated strategy names (default: {DEFAULT_STRATEGIES})",
    )
    parser.add_argument("--seeds", type=int, default=10, metavar="N", help="seeds per strategy: 0..N-1 (default 10)")
    parser.add_argument("--n-trials", type=int, default=200, metavar="N", help="trials per run (default 200)")
    parser.add_argument(
        "--exact-limit",
        type=int,
        default=None,
        metavar="N",
        help=(
            "enumerate the space for the exact optimum when it has at most N distinct "
            f"configurations (default {EXACT_LIMIT_SHOWN:,})"
        ),
    )
    parser.add_argument(
        "--budgets",
        default="25,50,100,200",
        metavar="LIST",
        help="trial budgets at which regret is reported (default 25,50,100,200)",
    )
    parser.set_defaults(func=run)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated integers; got {text!r}") from None
    if any(v < 1 for v in values):
        raise ConfigError(f"{option} values must be at least 1; got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    """Run the comparison and print its report; 0 on success."""
    import optuna

    from bitscout.compare import DEFAULT_EXACT_LIMIT, compare_strategies, format_comparison
    from bitscout.strategies import get_strategy
    from bitscout.study import prepare_search
    from bitscout.training import intra_op_threads

    if args.exact_limit is None:
        args.exact_limit = DEFAULT_EXACT_LIMIT
    for option, value in (("--seeds", args.seeds), ("--n-trials", args.n_trials), ("--exact-limit", args.exact_limit)):
        if value < 1:
            raise ConfigError(f"{option} must be at least 1; got {value}")
    names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--strategies names no strategy; got {args.strategies!r}")
    for name in names:  # a misspelt one is refused before the data and model are loaded
        get_strategy(name)
    budgets = _int_list(args.budgets, "--budgets")
    config = config_from_args(args)
    raise_config_problems(config)
    out = Path(args.out) if args.out is not None else Path("runs") / (config.project or "bitscout") / "compare"
    check_output_folder(out, f"--out {args.out}" if args.out is not None else "the compare folder")
    check_compare_outputs_are_ours(out, f"--out {args.out}" if args.out is not None else f"compare folder {out}")
    # The config's sampler_options belong to its strategy: they apply to that strategy's
    # runs, and are said to be unused when it is not compared.
    strategy_cfg = config.search.strategy if config.search is not None else None
    options: dict[str, dict[str, Any]] = {}
    if strategy_cfg is not None and strategy_cfg.setup.sampler_options:
        own = get_strategy(strategy_cfg.strategy_name).name
        if own in {get_strategy(n).name for n in names}:
            options[own] = dict(strategy_cfg.setup.sampler_options)
        else:
            print(
                f"warning: search.strategy.setup.sampler_options are options of {own!r}, which "
                f"is not among --strategies {','.join(names)}: not used",
                file=sys.stderr,
            )
    prepared = prepare_search(config)
    print(prepared.space.describe())
    print(
        f"comparing {', '.join(names)} with {args.seeds} seeds of {args.n_trials} trials each",
        flush=True,
    )
    # One intra-op thread on the CPU, as `search` runs its trials: these models are small,
    # and torch's threads on a busy machine cost more than they give (a user's 4-layer
    # model at load 5 on 2 cores: 129 ms a trial on 2 threads, 3 ms on 1).
    threads = 1 if prepared.experiment.device.type == "cpu" else None
    # Each run's in-memory study is bitscout's business, not a line of Optuna's log.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with intra_op_threads(threads):
        comparison = compare_strategies(
            prepared.space,
            prepared.runners,
            prepared.objective,
            names,
            seeds=args.seeds,
            n_trials=args.n_trials,
            exact_limit=args.exact_limit,
            budgets=budgets,
            progress=True,
            notes=[f"Config: {config.source}."] if config.source is not None else [],
            constraints=prepared.constraints,
            options=options,
        )
    paths = comparison.save(out)
    print(format_comparison(comparison))
    print()
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
