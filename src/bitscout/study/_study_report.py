"""Reports of a stored study (a shared one included): its files, its name, how to browse it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage

from bitscout.errors import SearchError
from bitscout.study._outputs import PlotWriter, write_outputs
from bitscout.study._records import SearchResult
from bitscout.study._result import result_from_study

if TYPE_CHECKING:
    from bitscout.config import Config
    from bitscout.evaluation import Evaluation

__all__ = ["study_names", "report_study", "dashboard_hint", "store_baseline", "stored_baseline", "BASELINE_ATTR"]

#: The study's user attribute holding the float model's evaluation and the data's class
#: names, as the last search process measured them.
BASELINE_ATTR = "bitscout_baseline"


def store_baseline(
    study: optuna.Study, baseline: Evaluation, num_classes: int | None = None, class_names: tuple[str, ...] = ()
) -> None:
    """Keep the float model's evaluation (and the data's classes) in the study.

    The worker processes of ``--workers`` each evaluate the float model; the process that
    started them loads neither model nor data, and reads it from here for the summary,
    the drops and the chance-level warning.
    """
    value: dict[str, Any] = {"metrics": baseline.metrics.to_dict(), "values": [float(v) for v in baseline.values]}
    if num_classes is not None:
        value["num_classes"] = int(num_classes)
        value["class_names"] = [str(c) for c in class_names]
    if study.user_attrs.get(BASELINE_ATTR) != value:
        study.set_user_attr(BASELINE_ATTR, value)


def stored_baseline(study: optuna.Study) -> tuple[Evaluation | None, int | None, tuple[str, ...]]:
    """The float model's evaluation, the data's class count and class names a search
    stored in the study (:func:`store_baseline`); ``(None, None, ())`` when none did."""
    from bitscout.study._records import _baseline_from

    raw = study.user_attrs.get(BASELINE_ATTR)
    if not isinstance(raw, dict):
        return None, None, ()
    count = raw.get("num_classes")
    names = raw.get("class_names") or ()
    return (
        _baseline_from(raw),
        count if isinstance(count, int) else None,
        tuple(str(n) for n in names),
    )


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
        baseline: The float model's evaluation (the search kept it in best.json); kept
            in the rewritten best.json when given, else the one the study holds
            (:func:`stored_baseline`), if any.

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
    result.baseline = baseline if baseline is not None else stored_baseline(study)[0]
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
