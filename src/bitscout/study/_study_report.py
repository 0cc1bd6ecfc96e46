"""Reports of a stored study (a shared one included): its files, its name, how to browse it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.storages import BaseStorage

from bitscout.errors import SearchError
from bitscout.study._outputs import PlotWriter, write_outputs
from bitscout.study._records import SearchResult
from bitscout.study._result import result_from_study

if TYPE_CHECKING:
    from bitscout.config import Config
    from bitscout.evaluation import Evaluation

__all__ = ["study_names", "report_study", "dashboard_hint"]


def study_names(storage: BaseStorage) -> list[str]:
    """Names of the studies in a storage, in creation order."""
    return [s.study_name for s in storage.get_all_studies()]


def report_study(
    storage: BaseStorage,
    study_name: str | None,
    out_dir: Path,
    *,
    storage_name: str = "",
    config: Config | None = None,
    plot: PlotWriter | None = None,
    baseline: Evaluation | None = None,
) -> SearchResult:
    """Write log.json, trials.csv, best.json and (with ``plot``) the plots of a stored study.

    Uses the same writers as a search (:func:`bitscout.study.write_outputs`), so a
    report of a shared study has the files of a local run.

    Args:
        storage: The study's storage.
        study_name: The study; None when the storage holds exactly one.
        out_dir: Where to write (created when missing).
        storage_name: How to name the storage in best.json and messages.
        config: The resolved config, written as config.toml when given.
        baseline: The float model's evaluation, which the study does not hold (the
            search kept it in best.json); kept in the rewritten best.json when given.

    Raises:
        SearchError: No such study (the message lists the studies there), or several and
            none named.
    """
    names = study_names(storage)
    where = storage_name or type(storage).__name__
    if study_name is None:
        if len(names) != 1:
            listed = ", ".join(repr(n) for n in names) or "none"
            raise SearchError(
                f"{where} holds {len(names)} studies ({listed}); say which one with --study-name NAME"
            )
        study_name = names[0]
    if study_name not in names:
        listed = ", ".join(repr(n) for n in names) or "none"
        raise SearchError(
            f"there is no study named {study_name!r} in {where}; the studies there: {listed}. "
            "Give the --study-name the workers were started with (default: the config's project)."
        )
    study = optuna.load_study(study_name=study_name, storage=storage)
    result = result_from_study(study, storage_name=storage_name)
    result.baseline = baseline
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start is not None]
    ends = [t.datetime_complete for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None]
    # All workers together: from the first trial's start to the last trial's end.
    result.wall_time_s = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    result.outputs = write_outputs(result, Path(out_dir), config=config, plot=plot)
    result.run_dir = Path(out_dir)
    return result


def dashboard_hint(storage_name: str) -> str:
    """How to browse a study in optuna-dashboard (a separate package)."""
    return (
        f"browse the study with: optuna-dashboard {storage_name}\n"
        "  (optuna-dashboard is a separate package: pip install optuna-dashboard)"
    )
