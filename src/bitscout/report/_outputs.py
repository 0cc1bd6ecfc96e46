"""The plots of a search's run folder: what :func:`write_plots` draws.

=================== ===================================================================
``objective.png``   objective value and best so far against the trial number
``pareto_<m>.png``  accuracy against each cost metric ``m`` that varies, front marked
``best_widths.png`` widths per layer of the best trial
``report.html``     one self-contained page: the answer, the plots, every trial
=================== ===================================================================
"""

from __future__ import annotations

from pathlib import Path

from bitscout.metrics import get_runner, runner_names
from bitscout.report._html import REPORT_FILE, ReportContext, render_search_html, write_html
from bitscout.report._plots import plot_best_widths, plot_objective, plot_pareto
from bitscout.study import SearchResult

__all__ = ["write_plots", "write_report"]


def _natural_direction(metric: str) -> str:
    """The direction a metric improves in, from the runner that declares it.

    A metric no registered runner declares is taken to improve downwards (a cost).
    """
    try:
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


def write_report(result: SearchResult, run_dir: Path) -> dict[str, Path]:
    """Draw the plots and write ``report.html`` (the plots embedded); returns name -> path.

    What ``bitscout search`` and ``bitscout report`` hand to the study as its plot writer.
    The float baseline is shown when the result has one (``result.baseline``).
    """
    run_dir = Path(run_dir)
    paths = write_plots(result, run_dir)
    baseline = None
    if result.baseline is not None and result.baseline.ok:
        baseline = result.baseline.metrics.all()
    config_file = run_dir / "config.toml"
    ctx = ReportContext(
        baseline=baseline,
        config_toml=config_file.read_text() if config_file.is_file() else None,
        images={name.removesuffix("_plot").replace("_", " "): path for name, path in paths.items()},
    )
    paths["report"] = write_html(render_search_html(result, ctx), run_dir / REPORT_FILE)
    return paths
