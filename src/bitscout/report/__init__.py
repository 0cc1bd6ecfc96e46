"""Reports of a search: PNG plots and plain-text summary tables.

Owns formatting and drawing only (it runs nothing): ``plot_objective`` (objective and
best so far per trial), ``plot_pareto`` (accuracy against a cost metric with the Pareto
front), ``plot_best_widths`` (widths per layer of one trial), ``write_plots`` (every plot
a search result allows, into its run folder) and ``format_summary`` (the table printed at
the end of ``bitscout search``). Comparisons of strategies live in :mod:`bitscout.compare`.
"""

from __future__ import annotations

from bitscout.report._plots import (
    WIDTH_TENSORS,
    layer_widths,
    plot_best_widths,
    plot_objective,
    plot_pareto,
    plot_sensitivity,
)
from bitscout.report._html import (
    REPORT_FILE,
    ReportContext,
    html_image,
    html_table,
    render_page,
    render_search_html,
    write_html,
)
from bitscout.report._outputs import write_plots, write_report
from bitscout.report._tables import (
    chance_level_note,
    describe_formats,
    describe_layer,
    fixed_point_text,
    format_config,
    format_metric,
    format_summary,
    format_table,
    metric_unit,
)

__all__ = [
    "WIDTH_TENSORS",
    "layer_widths",
    "plot_best_widths",
    "plot_objective",
    "plot_pareto",
    "plot_sensitivity",
    "write_plots",
    "write_report",
    "format_config",
    "describe_layer",
    "ReportContext",
    "render_search_html",
    "render_page",
    "html_table",
    "html_image",
    "write_html",
    "REPORT_FILE",
    "format_summary",
    "format_table",
    "format_metric",
    "metric_unit",
    "chance_level_note",
    "describe_formats",
    "fixed_point_text",
]
