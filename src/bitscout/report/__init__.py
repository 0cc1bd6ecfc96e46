"""Reports of a search: PNG plots and plain-text summary tables.

``plot_objective`` (objective and best so far per trial), ``plot_pareto`` (accuracy
against a cost metric with the Pareto front), ``plot_best_widths`` (widths per layer of
one trial), ``format_summary`` (the table printed at the end of ``bitscout search``) and
``compare_strategies`` (sample efficiency of strategies on one space: ``bitscout compare``).
"""

from __future__ import annotations

from bitscout.report._compare import (
    DEFAULT_BUDGETS,
    DEFAULT_EXACT_LIMIT,
    Comparison,
    Evaluation,
    EvaluationCache,
    RunTrace,
    StrategySummary,
    compare_strategies,
    format_comparison,
    plot_best_so_far,
)
from bitscout.report._plots import (
    WIDTH_TENSORS,
    layer_widths,
    plot_best_widths,
    plot_objective,
    plot_pareto,
)
from bitscout.report._html import REPORT_FILE, ReportContext, render_page, render_search_html, write_html
from bitscout.report._tables import describe_layer, format_config, format_summary, format_table

__all__ = [
    "compare_strategies",
    "Comparison",
    "StrategySummary",
    "RunTrace",
    "EvaluationCache",
    "Evaluation",
    "format_comparison",
    "plot_best_so_far",
    "DEFAULT_EXACT_LIMIT",
    "DEFAULT_BUDGETS",
    "WIDTH_TENSORS",
    "layer_widths",
    "plot_best_widths",
    "plot_objective",
    "plot_pareto",
    "format_config",
    "describe_layer",
    "ReportContext",
    "render_search_html",
    "render_page",
    "write_html",
    "REPORT_FILE",
    "format_summary",
    "format_table",
]
