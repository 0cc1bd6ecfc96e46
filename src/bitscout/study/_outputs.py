"""The files of a run folder: log.json, trials.csv, best.json, config.toml and the plots.

=================  ===================================================================
``study.journal``  the Optuna study (default storage; ``optuna-dashboard study.journal``)
``log.json``       every trial as a :class:`~bitscout.study.TrialRecord` (a JSON list)
``trials.csv``     one row per trial: number, state, values, metrics, scaled metrics,
                   and the sampled config flattened as ``<layer>.<field>`` columns
``best.json``      the best trial (``"best"``) or the Pareto set (``"pareto"``), with
                   the directions and the counts of trials, duplicates and failures
``config.toml``    the resolved config (``Config.to_toml()``)
``objective.png``  objective value and best so far against the trial number
``pareto_<m>.png`` accuracy against each cost metric ``m`` that varies, front marked
``best_widths.png`` widths per layer of the best trial
=================  ===================================================================
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitscout.study._records import SearchResult, TrialRecord

if TYPE_CHECKING:
    from bitscout.config import Config

__all__ = ["write_outputs", "write_trials_csv", "write_plots", "CSV_FILE", "CONFIG_FILE"]

CSV_FILE = "trials.csv"
CONFIG_FILE = "config.toml"


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
    """One row per trial; columns appear in the order first met."""
    names = result.objective_names or [f"objective_{i}" for i in range(len(result.directions))]
    rows: list[dict[str, Any]] = []
    for t in result.trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state}
        for i, name in enumerate(names):
            row[f"value.{name}"] = t.values[i] if i < len(t.values) else ""
        row["duplicate_of"] = "" if t.duplicate_of is None else t.duplicate_of
        row["duration_s"] = t.duration_s
        row["error"] = t.error or ""
        row.update(t.software_metrics)
        row.update(t.hardware_metrics)
        row.update({f"scaled.{k}": v for k, v in t.scaled_metrics.items()})
        row.update(_flat_config(t))
        rows.append(row)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    if not columns:
        columns = dict.fromkeys(["number", "state"])
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), restval="")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path


def _natural_direction(metric: str) -> str:
    """The direction a metric improves in, from the runner that declares it.

    Looked up only when bitscout's runners are loaded (they are whenever they produced
    the metrics); otherwise a cost is taken to improve downwards.
    """
    metrics_module = sys.modules.get("bitscout.metrics")
    if metrics_module is None:
        return "minimize"
    try:
        get_runner, runner_names = metrics_module.get_runner, metrics_module.runner_names
        for name in runner_names():
            cls = get_runner(name)
            if metric in cls.metrics:
                return "maximize" if metric in cls.maximize else "minimize"
    except Exception:  # noqa: BLE001  (plots must not fail on a metric registry problem)
        pass
    return "minimize"


def _varying_costs(result: SearchResult) -> list[str]:
    evaluated = [t for t in result.trials if t.is_complete and t.duplicate_of is None]
    names: dict[str, None] = {}
    for t in evaluated:
        names.update(dict.fromkeys(k for k in t.hardware_metrics if not k.endswith("_ratio")))
    out = []
    for name in names:
        values = {t.hardware_metrics[name] for t in evaluated if name in t.hardware_metrics}
        if len(values) > 1:
            out.append(name)
    return out


def write_plots(result: SearchResult, run_dir: Path) -> dict[str, Path]:
    """Draw the plots that the trials allow; returns name -> path."""
    from bitscout.report import plot_best_widths, plot_objective, plot_pareto

    paths: dict[str, Path] = {}
    if not result.complete:
        return paths
    paths["objective_plot"] = plot_objective(result, run_dir / "objective.png")
    evaluated = [t for t in result.trials if t.is_complete and t.duplicate_of is None]
    if any("accuracy" in t.software_metrics for t in evaluated):
        for metric in _varying_costs(result):
            paths[f"pareto_{metric}_plot"] = plot_pareto(
                evaluated, metric, run_dir / f"pareto_{metric}.png", x_direction=_natural_direction(metric)
            )
    best = result.best_trials
    if best:
        if result.is_multi_objective:
            sign = 1.0 if result.directions[0] == "maximize" else -1.0
            top = max(best, key=lambda t: sign * t.values[0])
            title = f"widths per layer, trial {top.number} (Pareto set, best {result.objective_names[0] if result.objective_names else 'objective 0'})"
        else:
            top, title = best[0], f"widths per layer, best trial {best[0].number}"
        if top.sampled_config:
            paths["widths_plot"] = plot_best_widths(top, run_dir / "best_widths.png", title=title)
    return paths


def write_outputs(result: SearchResult, run_dir: Path, *, config: Config | None = None) -> dict[str, Path]:
    """Write every output of a search into ``run_dir``; returns name -> path."""
    run_dir = Path(run_dir)
    paths = dict(result.save(run_dir))
    paths["csv"] = write_trials_csv(result, run_dir / CSV_FILE)
    if config is not None:
        path = run_dir / CONFIG_FILE
        path.write_text(config.to_toml())
        paths["config"] = path
    paths.update(write_plots(result, run_dir))
    if result.storage and Path(result.storage).suffix == ".journal":
        paths = {"study": Path(result.storage), **paths}
    result.outputs = paths
    return paths
