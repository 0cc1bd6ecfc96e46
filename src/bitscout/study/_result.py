"""Trial records read back from an Optuna study (this process's, or any worker's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from bitscout.study._index import DUPLICATE_ATTR, RECORD_ATTR, RULED_OUT_ATTR, is_interrupted
from bitscout.study._records import SearchResult, TrialRecord

__all__ = ["record_from_trial", "result_from_study", "sampled_config"]


def sampled_config(config: Mapping[str, Any]) -> dict[str, dict[str, Any] | str]:
    """Layer -> MASE flat config dict, or ``"float"`` for a layer left in floating point."""
    return {name: "float" if cfg is None else cfg.to_dict() for name, cfg in config.items()}


def record_from_trial(trial: FrozenTrial, originals: Mapping[int, TrialRecord] | None = None) -> TrialRecord:
    """The record of one stored trial.

    Args:
        trial: The stored trial.
        originals: Records by trial number, to fill a duplicate's metrics from the trial
            that evaluated its configuration.
    """
    raw: Mapping[str, Any] = trial.user_attrs.get(RECORD_ATTR) or {}
    duplicate_of = trial.user_attrs.get(DUPLICATE_ATTR)
    if duplicate_of is not None and originals is not None and duplicate_of in originals:
        original = originals[duplicate_of]
        raw = {
            "software_metrics": original.software_metrics,
            "hardware_metrics": original.hardware_metrics,
            "scaled_metrics": original.scaled_metrics,
            "sampled_config": original.sampled_config,
            "duration_s": 0.0,
            "constraints": original.constraints,
        }
    error = raw.get("error")
    if error is None and is_interrupted(trial):
        error = "interrupted: the process running this trial stopped before it finished"
    # The record's dicts are the stored trial's own (not copies): a search of 13,824
    # trials holds its study and its records at once while it writes its outputs, and
    # nothing changes either. A duplicate shares its original's.
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,  # type: ignore[arg-type]
        values=tuple(trial.values) if trial.values is not None else (),
        software_metrics=_dict(raw.get("software_metrics")),
        hardware_metrics=_dict(raw.get("hardware_metrics")),
        scaled_metrics=_dict(raw.get("scaled_metrics")),
        sampled_config=_dict(raw.get("sampled_config")),
        duration_s=float(raw.get("duration_s") or 0.0),
        duplicate_of=None if duplicate_of is None else int(duplicate_of),
        error=error,
        params=_dict(trial.params),
        constraints=_dict(raw.get("constraints")),
        skipped=bool(raw.get("skipped", False)),
    )


def _dict(value: Any) -> dict[str, Any]:
    """``value`` itself when it is a dict, else a dict of it (empty for None)."""
    return value if type(value) is dict else dict(value or {})


def result_from_study(
    study: optuna.Study, *, storage_name: str = "", objective_names: list[str] | None = None
) -> SearchResult:
    """Every trial of ``study`` as a :class:`SearchResult` (one storage read)."""
    # WAITING trials are queued for a later run (an interrupted configuration): not results.
    trials = [t for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING]
    originals: dict[int, TrialRecord] = {}
    for trial in trials:
        if DUPLICATE_ATTR not in trial.user_attrs:
            originals[trial.number] = record_from_trial(trial)
    records = [originals.get(t.number) or record_from_trial(t, originals) for t in trials]
    directions = [d.name.lower() for d in study.directions]
    names = list(objective_names or study.user_attrs.get("bitscout_objective_names") or [])
    return SearchResult(
        trials=records,
        directions=directions,
        study_name=study.study_name,
        storage=storage_name,
        objective_names=names,
        ruled_out=int(study.user_attrs.get(RULED_OUT_ATTR, 0)),
    )
