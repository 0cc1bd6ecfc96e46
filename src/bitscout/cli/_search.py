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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
import warnings

from bitscout.cli._check import raise_config_problems
from bitscout.cli._common import (
    add_config_argument,
    add_override_options,
    check_output_folder,
    config_from_args,
    config_path_from_args,
)
from bitscout.errors import ConfigError, SearchError

if TYPE_CHECKING:
    from bitscout.config import Config
    from bitscout.study import SearchResult

__all__ = ["register", "run", "dashboard_hint"]


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
    # Set by `--workers K` on the worker processes it starts: run trials, write no outputs
    # (the process that started them writes those once, for the whole study).
    parser.add_argument("--worker-process", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"warning: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the search; 0 when it finished, 130 when interrupted with Ctrl-C."""
    import optuna

    from bitscout.strategies import Exhaustible
    from bitscout.study import prepare_search

    # Optuna logs every trial at INFO; the progress bar and the summary say it better.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = config_from_args(args)
    _check_before_loading(config, worker=args.worker_process)
    if config.search is not None and config.search.strategy.setup.workers > 1 and not args.worker_process:
        return _run_workers(args, config)
    with warnings.catch_warnings():
        # Advice about the config (a cost subtracted where MASE adds it, a constant
        # metric) reads as one line, not as a Python warning with a source line.
        warnings.showwarning = _show_warning
        prepared = prepare_search(config)
        setup = prepared.config.search.strategy.setup  # type: ignore[union-attr]
        print(prepared.space.describe())
        total = f"{setup.n_trials} trials in total"
        if isinstance(prepared.sampler, Exhaustible):
            total = _enumeration(prepared.sampler, prepared.space.distinct_size, setup.n_trials)
        print(
            f"\nstrategy: {prepared.config.search.strategy.strategy_name}, "  # type: ignore[union-attr]
            f"{total}, run folder: {prepared.out_dir}",
            flush=True,
        )
        result = prepared.run(
            progress=not args.no_progress,
            write_outputs=not args.worker_process,
            precompute=not args.worker_process,
            plot=_write_report,
        )
    if args.worker_process:
        finished = sum(t.state != "RUNNING" for t in result.trials)
        print(f"worker done ({result.stop_reason or 'stopped'}); the study has {finished} finished trials")
        return 130 if result.interrupted else 0
    from bitscout.report import format_summary

    print()
    print(format_summary(result))
    info = prepared.experiment.dataset.info
    _warn_at_chance(result, info.num_classes, info.class_names)
    study_file = result.outputs.get("study") or (result.storage if setup.storage else None)
    if study_file is not None:
        print(f"\n{dashboard_hint(str(study_file))}")
    if result.interrupted:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 0


def _warn_at_chance(result: SearchResult, num_classes: int | None, class_names: Sequence[str]) -> None:
    """After the summary: a warning when the float model scores about chance on the data."""
    from bitscout.report import chance_level_note

    if num_classes is None:
        return
    note = chance_level_note(result.baseline_metrics, num_classes, tuple(class_names))
    if note is not None:
        print(f"\nwarning: {note}", file=sys.stderr)


def _write_report(result: SearchResult, run_dir: Path) -> dict[str, Path]:
    """:func:`bitscout.report.write_report`, imported when the trials are done: the
    report's modules are no part of the first trial's start-up."""
    from bitscout.report import write_report

    return write_report(result, run_dir)


def _check_before_loading(config: Config, *, worker: bool) -> None:
    """What can be judged before the data and the model are loaded, all at once.

    The config as ``bitscout check`` judges it (model, data set, every seed, runners),
    then the run folder (writable, not a file), and a warning when no checkpoint is given.

    Raises:
        ConfigError: The config's problems, or a run folder that cannot be written.
    """
    from bitscout.study import default_run_dir

    from bitscout.config import check_outputs_are_ours

    raise_config_problems(config)
    out_dir = default_run_dir(config)
    check_output_folder(out_dir, f"--out {config.out}" if config.out is not None else "the run folder")
    storage = config.search.strategy.setup.storage if config.search is not None else None
    if not worker:
        # Here too, not only in each process of --workers K: one error, before any worker
        # starts (each would refuse the same file; prepare_search checks it again).
        check_outputs_are_ours(out_dir, f"run folder {out_dir}", journal=storage is None)
    if storage is not None and storage.endswith(".journal") and "://" not in storage:
        journal = Path(storage).expanduser()
        if journal.is_dir():
            raise ConfigError(
                f"storage {storage}: is a folder; give the journal file's path (a new name is fine)"
            )
        check_output_folder(
            journal.parent, f"storage {storage}", remedy="give a journal path in a folder you can write to"
        )
    if config.load_name is None and not worker:
        label = config.source if config.source is not None else "the config"
        print(
            f"warning: {label} names no checkpoint (load_name is not set and no --load): the "
            "search runs on an UNTRAINED model, whose accuracy means nothing; pass --load "
            "CKPT (or set load_name), e.g. after `bitscout train`",
            file=sys.stderr,
            flush=True,
        )


def dashboard_hint(storage: str) -> str:
    """How to browse a study in optuna-dashboard, with a URL that works as printed.

    SQLAlchemy 2.1 reads ``postgresql://`` as psycopg 3, while bitscout's ``postgres``
    extra installs psycopg2; a PostgreSQL URL without a driver gets ``+psycopg2`` when
    psycopg 3 is not installed, so that the printed command runs.
    """
    import importlib.util

    scheme, sep, rest = storage.partition("://")
    if sep and scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None:
        storage = f"postgresql+psycopg2://{rest}"
    return (
        f"browse the study with: optuna-dashboard {storage}\n"
        "  (optuna-dashboard is a separate package: pip install optuna-dashboard)"
    )


def _enumeration(sampler: Exhaustible, distinct: int, n_trials: int) -> str:
    """What a brute force will visit, for the line that starts the search."""
    # The configurations the constraints rule out from the configuration alone are
    # never handed out (BruteForceSampler.total counts the others).
    visits = int(getattr(sampler, "total", distinct))
    allowed = "" if visits == distinct else f" the constraints allow: {distinct - visits:,} of the {distinct:,} are ruled out by their configuration alone"
    if visits <= n_trials:
        return f"{visits} trials (every configuration once{allowed}; n_trials = {n_trials})"
    # A brute force cut short is a sample: its best need not be the space's.
    return (
        f"{n_trials} of the {visits:,} configurations{allowed} (n_trials = {n_trials}: the best "
        f"found is the best of those; set n_trials to {visits} to evaluate every one)"
    )


# Options passed on, as given, to each worker process of `--workers K` (dest -> option).
_PASSED_ON = {
    "load": "--load",
    "load_type": "--load-type",
    "seed": "--seed",
    "accelerator": "--accelerator",
    "n_trials": "--n-trials",
    "sampler": "--sampler",
    "storage": "--storage",
    "study_name": "--study-name",
}


def _last_error(log: Path) -> str | None:
    """The last ``error: ...`` line of a worker's log, without the prefix."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    errors = [line[len("error: ") :] for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else None


def _run_workers(args: argparse.Namespace, config: Config) -> int:
    """``--workers K``: K worker processes on one study, then the outputs of the study."""
    import optuna

    from bitscout.report import format_summary, write_report
    from bitscout.study import default_run_dir
    from bitscout.study._pool import WORKERS_DIR, run_local_workers, worker_command
    from bitscout.study._study_report import report_study, stored_baseline, study_names
    from bitscout.study._worker_storage import open_worker_storage

    setup = config.search.strategy.setup  # type: ignore[union-attr]
    out_dir = default_run_dir(config)
    name = setup.study_name or config.project or "bitscout"
    storage, storage_name = open_worker_storage(setup.storage, out_dir)
    argv = ["search", str(config_path_from_args(args)), "--out", str(out_dir)]
    for dest, option in _PASSED_ON.items():
        if getattr(args, dest, None) is not None:
            argv += [option, str(getattr(args, dest))]
    argv += ["--workers", "1", "--no-progress", "--worker-process"]
    print(
        f"{setup.workers} worker processes on study {name!r} in {storage_name}, {setup.n_trials} "
        f"trials in total; worker logs in {out_dir / WORKERS_DIR}",
        flush=True,
    )
    workers = run_local_workers(
        worker_command(argv),
        setup.workers,
        run_dir=out_dir,
        storage=storage,
        study_name=name,
        total=setup.n_trials,
        progress=not args.no_progress,
    )
    if not workers.interrupted and workers.returncodes and all(code == 2 for code in workers.returncodes):
        # Every worker stopped on the same bad input (a study that cannot be resumed, a
        # budget no configuration meets): say it once, and do not report the old study.
        raise SearchError(
            f"{_last_error(workers.logs[0]) or 'every worker process stopped with exit status 2'} "
            f"(all {setup.workers} worker processes stopped on it; logs in {out_dir / WORKERS_DIR})"
        )
    if name not in study_names(storage):
        raise SearchError(
            f"none of the {setup.workers} worker processes started the study: "
            + (workers.errors[0] if workers.errors else f"see their logs in {out_dir / WORKERS_DIR}")
        )
    for error in workers.errors:
        print(f"warning: {error}", file=sys.stderr)
    result = report_study(storage, name, out_dir, storage_name=storage_name, config=config, plot=write_report)
    done = sum(code == 0 for code in workers.returncodes)
    result.stop_reason = f"{done} of {setup.workers} workers finished"
    print()
    print(format_summary(result))
    # The workers evaluated the float model and stored it with the data's classes: this
    # process loaded neither, so that is where the chance-level warning reads them.
    _, num_classes, class_names = stored_baseline(optuna.load_study(study_name=name, storage=storage))
    _warn_at_chance(result, num_classes, class_names)
    print()
    print(dashboard_hint(storage_name))
    if workers.interrupted:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 0 if done else max(1, *workers.returncodes)
