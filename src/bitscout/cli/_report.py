"""``bitscout report``: the outputs of a search, from its run folder or from a shared study.

Two forms::

    bitscout report RUN_DIR                                   # a local run folder
    bitscout report --storage URL --study-name NAME [--out DIR]   # a study shared by workers
    bitscout report RUN_DIR --repair                          # a damaged study.journal first

Both write what a search writes at its end (log.json, trials.csv, best.json and the
plots), with the study package's own writers, print the summary table, and say how to
browse the study in optuna-dashboard. Run it while workers are still busy to watch
progress: running trials are listed as RUNNING.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bitscout.errors import SearchError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="write the outputs of a search (a run folder, or a study shared by workers)",
        description=(
            "Write log.json, trials.csv, best.json and the plots of a search and print its "
            "summary: from a run folder (RUN_DIR), or from any Optuna storage (--storage URL "
            "--study-name NAME), such as the PostgreSQL database that workers on several "
            "machines share. Safe to run while the search goes on."
        ),
    )
    parser.add_argument(
        "run_dir", nargs="?", type=Path, metavar="RUN_DIR", help="a run folder written by `bitscout search`"
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="the study's storage: postgresql://user@host:5432/db, sqlite:///f.db or a .journal file",
    )
    parser.add_argument(
        "--study-name", metavar="NAME", help="the study (needed when the storage holds several)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where to write the outputs (default: RUN_DIR, or runs/<study name>/report)",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="first rewrite a damaged study journal (a line that is not an entry), keeping "
        "every complete trial; the damaged file is kept beside it",
    )
    parser.set_defaults(func=run)


#: The run files `report` writes besides the records (no config.toml, no calibration.json).
_REPORT_WRITES = ("report.html", "objective.png", "pareto_*.png", "best_widths.png", "sensitivity.png")


def run(args: argparse.Namespace) -> int:
    """Write the report; 0 on success."""
    import optuna

    from bitscout.config import check_outputs_are_ours
    from bitscout.report import format_summary, write_report
    from bitscout.study import JOURNAL_FILE, SearchResult, write_trials_csv
    from bitscout.study._worker_storage import open_worker_storage
    from bitscout.cli._search import dashboard_hint
    from bitscout.study._repair import repair_journal
    from bitscout.study._study_report import report_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir: Path | None = args.run_dir
    if run_dir is None and args.storage is None:
        raise SearchError(
            "say which search to report: a run folder (bitscout report RUN_DIR) or a shared "
            "study (bitscout report --storage URL --study-name NAME)"
        )
    if run_dir is not None and args.storage is not None:
        raise SearchError(
            f"give either a run folder ({run_dir}) or --storage ({args.storage}), not both"
        )
    if run_dir is not None and not run_dir.is_dir():
        raise SearchError(f"the run folder {run_dir} does not exist; give the --out folder of `bitscout search`")
    if args.repair:
        journal = run_dir / JOURNAL_FILE if run_dir is not None else Path(str(args.storage))
        if journal.suffix != ".journal" or "://" in str(args.storage or ""):
            raise SearchError(
                f"--repair rewrites a journal file (a run folder's {JOURNAL_FILE}, or --storage "
                f"FILE.journal); {args.storage} is a database, which keeps itself consistent"
            )
        print(repair_journal(journal).summary())

    if run_dir is not None and not (run_dir / JOURNAL_FILE).is_file():
        # A run folder whose study lives elsewhere (--storage at search time), or was
        # deleted: rebuild what can be rebuilt from log.json.
        out = Path(args.out) if args.out is not None else run_dir
        check_outputs_are_ours(run_dir, f"run folder {run_dir}", reading=True)  # it is read first
        check_outputs_are_ours(out, f"--out {out}", writes=_REPORT_WRITES)
        result = SearchResult.load(run_dir)
        outputs = dict(result.save(out))
        outputs["csv"] = write_trials_csv(result, out / "trials.csv")
        outputs.update(write_report(result, out))
        result.outputs = outputs
        print(format_summary(result))
        if result.storage:
            print(f"\nthe study itself is in {result.storage}")
            print(dashboard_hint(result.storage))
        return 0

    storage_arg = str(run_dir / JOURNAL_FILE) if run_dir is not None else str(args.storage)
    storage, storage_name = open_worker_storage(storage_arg, run_dir or Path("."))
    names = [s.study_name for s in storage.get_all_studies()]
    study_name = args.study_name
    if study_name is None and len(names) == 1:
        study_name = names[0]
    if args.out is not None:
        out = Path(args.out)
    elif run_dir is not None:
        out = run_dir
    else:
        out = Path("runs") / (study_name or "study") / "report"
    check_outputs_are_ours(out, f"--out {out}" if args.out is not None else f"run folder {out}", writes=_REPORT_WRITES)
    # The float model's metrics are not in the study: keep those the search saved.
    baseline = None
    if run_dir is not None and (run_dir / "best.json").is_file() and (run_dir / "log.json").is_file():
        check_outputs_are_ours(run_dir, f"run folder {run_dir}", reading=True)
        baseline = SearchResult.load(run_dir).baseline
    result = report_study(
        storage, study_name, out, storage_name=storage_name, plot=write_report, baseline=baseline
    )
    print(format_summary(result))
    running = sum(t.state == "RUNNING" for t in result.trials)
    if running:
        print(f"\n{running} trials are still running: run `bitscout report` again to update")
    print()
    print(dashboard_hint(storage_name))
    return 0
