"""The files of a run folder: log.json, trials.csv, best.json, config.toml (plots by the caller).

=================  ===================================================================
``study.journal``  the Optuna study (default storage; ``optuna-dashboard study.journal``)
``log.json``       every trial as a :class:`~bitscout.study.TrialRecord` (a JSON list)
``trials.csv``     one row per trial: number, state, values, with constraints their
                   values (``constraint.<metric>.<bound>``, <= 0 met) and ``feasible``,
                   metrics, ``<metric>_drop`` from the float model, scaled metrics, and
                   the sampled config flattened as ``<layer>.<field>`` columns
``best.json``      the best trial (``"best"``) or the Pareto set (``"pareto"``), with
                   the directions and the counts of trials, duplicates and failures
``config.toml``    the resolved config (``Config.to_toml()``) after a marker line
``*.png``          the plots, drawn by :func:`bitscout.report.write_plots` when the
                   caller passes it as ``plot``
=================  ===================================================================
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitscout._atomic import atomic_path, atomic_write_text
from bitscout.config import CONFIG_MARKER
from bitscout.study._records import SearchResult, TrialRecord

if TYPE_CHECKING:
    from bitscout.config import Config

__all__ = ["write_outputs", "write_trials_csv", "PlotWriter", "CSV_FILE", "CONFIG_FILE"]

CSV_FILE = "trials.csv"
CONFIG_FILE = "config.toml"

#: Draws the plots of a result into a folder and returns name -> path
#: (:func:`bitscout.report.write_plots`); given by the layer above study.
PlotWriter = Callable[[SearchResult, Path], Mapping[str, Path]]


def _flat_config(record: TrialRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer, cfg in record.sampled_config.items():
        if isinstance(cfg, Mapping):
            for key, value in cfg.items():
                out[f"{layer}.{key}"] = value
        else:
            out[f"{layer}.name"] = cfg
    return out


def write_trials_csv(result: SearchResult, path: Path) -> Path:
    """One row per trial; columns appear in the order first met.

    Two passes over the trials (the columns, then the rows), each row built when it is
    written: a 13,824-trial search does not hold every row at once.
    """
    names = result.objective_names or [f"objective_{i}" for i in range(len(result.directions))]
    constrained = result.constraint_names
    baseline = result.baseline_metrics
    columns: dict[str, None] = {}
    for t in result.trials:
        columns.update(dict.fromkeys(_csv_row(t, names, constrained, baseline)))
    if not columns:
        columns = dict.fromkeys(["number", "state"])
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), restval="")
        writer.writeheader()
        for t in result.trials:
            writer.writerow(_csv_row(t, names, constrained, baseline))
    return path


def _csv_row(
    t: TrialRecord, names: list[str], constrained: list[str], baseline: Mapping[str, float]
) -> dict[str, Any]:
    row: dict[str, Any] = {"number": t.number, "state": t.state}
    for i, name in enumerate(names):
        row[f"value.{name}"] = t.values[i] if i < len(t.values) else ""
    if constrained:
        for name in constrained:
            value = t.constraints.get(name)
            row[f"constraint.{name}"] = "" if value is None else value
        # A trial not measured (failed, running) is neither feasible nor not.
        row["feasible"] = "" if t.state in ("FAIL", "RUNNING", "WAITING") else t.feasible
    row["duplicate_of"] = "" if t.duplicate_of is None else t.duplicate_of
    row["duration_s"] = t.duration_s
    row["error"] = t.error or ""
    row.update(t.software_metrics)
    if baseline:
        row.update(t.drops(baseline))
    row.update(t.hardware_metrics)
    row.update({f"scaled.{k}": v for k, v in t.scaled_metrics.items()})
    row.update(_flat_config(t))
    return row


def write_outputs(
    result: SearchResult, run_dir: Path, *, config: Config | None = None, plot: PlotWriter | None = None
) -> dict[str, Path]:
    """Write every output of a search into ``run_dir``; returns name -> path.

    The plots are drawn by ``plot`` (:func:`bitscout.report.write_plots`) when given:
    study draws nothing itself.
    """
    run_dir = Path(run_dir)
    paths = dict(result.save(run_dir))
    paths["csv"] = write_trials_csv(result, run_dir / CSV_FILE)
    if config is not None:
        path = run_dir / CONFIG_FILE
        # The first line marks the file as the search's own: a later search of this folder
        # replaces it, but never a config.toml of the user's (config.check_outputs_are_ours).
        atomic_write_text(path, f"{CONFIG_MARKER}\n{config.to_toml()}")
        paths["config"] = path
    if plot is not None:
        paths.update(plot(result, run_dir))
    if result.storage and Path(result.storage).suffix == ".journal":
        paths = {"study": Path(result.storage), **paths}
    result.outputs = paths
    return paths
