"""``report.html`` of a comparison: a strategy comparison as one self-contained page (the
same file name as a search's report, in the comparison's folder).

The answer first (the optimum and which strategy reached it in how many trials), then
the table per strategy, the best-so-far curves with their seed bands, and the full
plain-language reading of ``comparison.md``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from bitscout.report import html_image, html_table, render_page

if TYPE_CHECKING:
    from bitscout.compare._compare import Comparison, StrategySummary

__all__ = ["render_comparison_html", "COMPARISON_HTML"]

COMPARISON_HTML = "report.html"


def _reached(s: StrategySummary) -> str:
    return f"{len(s.trials_to_optimum) - s.never} of {len(s.trials_to_optimum)}"


def _or_dash(value: float | None) -> float | str:
    return "-" if value is None else value


def _lead(c: Comparison) -> str:
    if len(c.directions) != 1:
        kind = "exact Pareto front" if c.exact else "front of everything evaluated (not the exact front)"
        return f'<div class="answer"><p><b>{len(c.optimum)} points on the {kind}</b> of {c.distinct_size:,} configurations.</p></div>'
    kind = "the exact optimum" if c.exact else "the best any run found (not the exact optimum)"
    ranked = sorted(
        (s for s in c.strategies if s.skipped is None),
        key=lambda s: (s.never, s.median_unique() if s.median_unique() is not None else float("inf")),
    )
    first = ""
    if ranked and ranked[0].never < len(ranked[0].trials_to_optimum):
        s = ranked[0]
        median = s.median_unique()
        first = (
            f"<p>Most reliable: <b>{html.escape(s.strategy)}</b>, which reached it in {_reached(s)} seeds"
            + (f", in a median of {median:g} unique evaluations" if median is not None else "")
            + f" (budget {c.n_trials} trials per run).</p>"
        )
    else:
        first = f"<p>No strategy reached it within {c.n_trials} trials per run.</p>"
    return (
        f'<div class="answer"><p><b>{html.escape(c.objective_names[0] if c.objective_names else "objective")} '
        f"= {c.optimum:.6g}</b>: {kind} over {c.distinct_size:,} configurations.</p>{first}</div>"
    )


def render_comparison_html(comparison: Comparison, *, plot: Path | None = None, reading: str = "") -> str:
    """The page of a comparison.

    Args:
        comparison: The comparison (:func:`bitscout.compare.compare_strategies`).
        plot: The best-so-far PNG to embed (``best_so_far.png``).
        reading: The text of ``comparison.md``, shown in full at the end.
    """
    c = comparison
    budgets = sorted(c.budgets)
    header = ["strategy", "seeds reaching the optimum", "median trials to it", "90th pct trials",
              "median unique evaluations to it", *[f"regret at {b}" for b in budgets], "duplicates", "sampler s / run"]
    rows = []
    for s in c.strategies:
        if s.skipped is not None:
            rows.append([s.strategy, f"skipped: {s.skipped}", *[""] * (len(header) - 2)])
            continue
        rows.append([
            s.strategy, _reached(s), _or_dash(s.median_trials()), _or_dash(s.p90_trials()), _or_dash(s.median_unique()),
            *[_or_dash(s.regret.get(b)) for b in budgets], f"{100 * s.duplicate_fraction:.0f}%", s.sampler_s,
        ])
    sections = [(f"Strategies ({c.n_trials} trials per run)", html_table(header, rows, sortable=True))]
    if plot is not None and Path(plot).is_file():
        sections.append(("Best so far (median over seeds, band: 25th to 75th percentile)", html_image("best so far", plot)))
    if reading:
        sections.append(("Reading", f"<pre>{html.escape(reading)}</pre>"))
    return render_page("bitscout compare", sections, lead=_lead(c))
