"""``bitscout search CONFIG``: run (or resume) the search a config describes.

A thin layer over :func:`bitscout.study.prepare_search` and
:meth:`bitscout.study.PreparedSearch.run`: prints the search space, runs the trials with
a progress bar, then prints the summary table (counts, best trial or Pareto set, output
paths). Running the same command again on the same run folder (or ``--storage`` and
``--study-name``) continues the study up to ``n_trials`` in total.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from bitscout.cli._common import add_config_argument, add_override_options, config_from_args
from bitscout.errors import SearchError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``search`` subcommand."""
    parser = subparsers.add_parser(
        "search",
        help="search per-layer quantization settings",
        description=(
            "Search per-layer quantization settings of a model as the config's [search] "
            "section describes, storing every trial in the run folder (default "
            "runs/<project>/search, or --out). Run it again to resume the study up to "
            "n_trials in total."
        ),
    )
    add_config_argument(parser)
    add_override_options(parser, search=True)
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.set_defaults(func=run)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"warning: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the search; 0 when it finished, 130 when interrupted with Ctrl-C."""
    import optuna

    from bitscout.report import format_summary
    from bitscout.study import prepare_search

    # Optuna logs every trial at INFO; the progress bar and the summary say it better.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = config_from_args(args)
    if config.search is not None and config.search.strategy.setup.workers > 1:
        raise SearchError(
            f"--workers {config.search.strategy.setup.workers}: local worker processes are not "
            "available in this version; start the same `bitscout search` command in several "
            "shells with one --storage and --study-name instead"
        )
    with warnings.catch_warnings():
        # Advice about the config (a cost subtracted where MASE adds it, a constant
        # metric) reads as one line, not as a Python warning with a source line.
        warnings.showwarning = _show_warning
        prepared = prepare_search(config)
        setup = prepared.config.search.strategy.setup  # type: ignore[union-attr]
        print(prepared.space.describe())
        print(
            f"\nstrategy: {prepared.config.search.strategy.strategy_name}, "  # type: ignore[union-attr]
            f"{setup.n_trials} trials in total, run folder: {prepared.out_dir}",
            flush=True,
        )
        result = prepared.run(progress=not args.no_progress)
    print()
    print(format_summary(result))
    study_file = result.outputs.get("study")
    if study_file is not None:
        print(f"\nbrowse the study with: optuna-dashboard {study_file}")
    if result.interrupted:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 0
