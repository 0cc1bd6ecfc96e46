"""Plots of a constrained search: budgets read back from the trials, infeasible trials apart."""

from __future__ import annotations

from pathlib import Path

from bitscout.report import write_plots
from bitscout.report._outputs import constraint_bounds
from bitscout.study import SearchResult, TrialRecord


def _record(number: int, accuracy: float | None, bits: float) -> TrialRecord:
    constraints = {"average_bitwidth.max": bits - 4.0, "accuracy.min": None if accuracy is None else 0.5 - accuracy}
    if accuracy is None:  # over the budget: skipped, never evaluated
        return TrialRecord(number, "PRUNED", hardware_metrics={"average_bitwidth": bits}, constraints={"average_bitwidth.max": bits - 4.0, "accuracy.min": None}, skipped=True)
    return TrialRecord(
        number, "COMPLETE", values=(accuracy,), software_metrics={"accuracy": accuracy},
        hardware_metrics={"average_bitwidth": bits}, constraints=constraints,
        sampled_config={"fc": {"name": "integer", "weight_width": int(bits)}},
    )


def test_bounds_are_read_back_and_the_plots_are_drawn(tmp_path: Path) -> None:
    result = SearchResult(
        trials=[_record(0, 0.9, 3.0), _record(1, None, 6.0), _record(2, 0.4, 2.0), _record(3, 0.95, 4.0)],
        directions=["maximize"],
        objective_names=["objective"],
    )
    assert constraint_bounds(result) == {"average_bitwidth": [("max", 4.0)], "accuracy": [("min", 0.5)]}
    assert result.best.number == 3 and result.best_is_feasible  # trial 2 misses accuracy.min
    assert result.n_skipped == 1 and result.n_feasible == 2
    # The best so far counts feasible trials only: trial 2 (0.4) is not a feasible value.
    assert result.best_so_far() == [(0, 0.9), (3, 0.95)]
    paths = write_plots(result, tmp_path)
    assert {"objective_plot", "pareto_average_bitwidth_plot", "widths_plot"} <= set(paths)
    assert all(path.stat().st_size > 0 for path in paths.values())
