"""One self-contained HTML page per search: the answer first, then how it was found.

The page needs no network and no other file: the plots are embedded as base64 PNGs and
the only script (sorting the trials table by a click on a column head) is inline. It
opens with the best configuration (or the Pareto set) and its metrics next to the float
model's, then the objective, the plots, every trial, and the facts of the run.
"""

from __future__ import annotations

import base64
import html
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitscout.report._tables import describe_layer, format_metric, metric_unit

if TYPE_CHECKING:
    from bitscout.study import SearchResult, TrialRecord

__all__ = ["ReportContext", "render_search_html", "render_page", "html_table", "html_image", "write_html", "REPORT_FILE"]

REPORT_FILE = "report.html"


_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#1b1b1b}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:hover{background:#e6e6e6}
.answer{background:#f4f9f4;border:1px solid #b9d9b9;padding:.6em 1em;border-radius:4px}
.muted{color:#666;font-size:.9em}img{max-width:100%;border:1px solid #eee;margin:.4em 0}
pre{white-space:pre-wrap;font-size:.85em}.bad{color:#a11}.scroll{overflow-x:auto;max-height:40em;overflow-y:auto}
"""

# Sorting by a click on a column head: numbers numerically, text as text; a second
# click on the same head reverses the order.
_SCRIPT = """
(function(){
  function key(cell){var t=cell.getAttribute('data-sort');if(t===null)t=cell.textContent;
    var n=parseFloat(t);return isNaN(n)?[1,t]:[0,n];}
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('th').forEach(function(th,col){
      th.addEventListener('click',function(){
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        var asc=th.getAttribute('data-order')!=='asc';
        table.querySelectorAll('th').forEach(function(h){h.removeAttribute('data-order');});
        th.setAttribute('data-order',asc?'asc':'desc');
        rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
          if(x[0]!==y[0])return x[0]-y[0];var r=x[1]<y[1]?-1:x[1]>y[1]?1:0;return asc?r:-r;});
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
  document.body.setAttribute('data-ready','1');
})();
"""


@dataclass(frozen=True)
class ReportContext:
    """What a report says beyond the trials themselves (all optional).

    Attributes:
        title: The page title (default: the study name).
        baseline: The float model's metrics (software and hardware), measured once.
        objective: One line per objective term, e.g. ``"+1 x accuracy (maximize)"``.
        space: A description of the search space (printed as preformatted text).
        facts: Extra facts of the run (strategy, seed, ...), shown in order.
        images: Plot name -> PNG path; each is embedded in the page.
        constraints: One line per constraint, e.g. ``"average_bitwidth <= 4"``.
        config_toml: The resolved config of the run (its ``config.toml``).
    """

    title: str | None = None
    baseline: Mapping[str, float] | None = None
    objective: Sequence[str] = ()
    space: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    images: Mapping[str, Path] = field(default_factory=dict)
    constraints: Sequence[str] = ()
    config_toml: str | None = None


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    """A number as people read it: integers without a point, others to 6 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _e(value)
    if isinstance(value, float) and not math.isfinite(value):
        return _e(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.6g}"


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, sortable: bool = False) -> str:
    """A table; numbers right-aligned and sorted as numbers; ``sortable``: click a head to sort."""
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                cells.append(f'<td class="num" data-sort="{_e(repr(float(value)))}">{_num(value)}</td>')
            else:
                cells.append(f"<td>{_e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_image(name: str, path: Path) -> str:
    """A PNG embedded in the page (base64), with its caption."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img alt="{_e(name)}" src="data:image/png;base64,{data}"><figcaption class="muted">{_e(name)}</figcaption></figure>'


def _drop(reference: float, value: float) -> float:
    """The drop from the float model: float value minus this one, for every metric (as
    ``<metric>_drop`` in trials.csv; 8 weight bits against float's 32 drop by 24)."""
    return reference - value


def _with_unit(name: str) -> str:
    """A metric's name with its unit for a column or row head: ``model_size (bytes)``."""
    unit = metric_unit(name)
    return f"{name} ({unit})" if unit else name


def _metrics_table(record: TrialRecord, baseline: Mapping[str, float] | None) -> str:
    rows = []
    for name, value in record.metrics.items():
        if name.endswith("_ratio"):
            continue
        ref = None if baseline is None else baseline.get(name)
        scaled = record.scaled_metrics.get(name, "")
        if ref is None:
            rows.append((_with_unit(name), value, "", "", scaled))
        else:
            rows.append((_with_unit(name), value, ref, _drop(ref, value), scaled))
    return html_table(["metric", "value", "float model", "drop from float", "scaled term in objective"], rows)


def _config_table(record: TrialRecord) -> str:
    return html_table(["layer", "configuration"], [(layer, describe_layer(cfg)) for layer, cfg in record.sampled_config.items()])


def _budget_note(result: SearchResult, t: TrialRecord) -> str:
    """Whether the best trial meets ``[search.strategy.constraints]`` (empty without any)."""
    if not result.has_constraints:
        return ""
    values = ", ".join(f"{_e(k)} = {'unknown' if v is None else _e(format_metric(k, v))}" for k, v in t.constraints.items())
    if result.best_is_feasible:
        return f"<p>Meets every constraint (values &lt;= 0 are met: {values}).</p>"
    return (
        '<p class="bad">No trial meets the constraints: this is the least-violating one '
        f"(values &lt;= 0 are met: {values}). Relax a bound, or search more.</p>"
    )


def _answer(result: SearchResult, ctx: ReportContext) -> str:
    names = result.objective_names or [f"objective {i}" for i in range(len(result.directions))]
    best = result.best_trials
    if not best:
        return '<div class="answer"><p class="bad">No trial completed: there is no best configuration. See the failed trials below.</p></div>'
    if not result.is_multi_objective:
        t = best[0]
        # Every trial skipped as over budget: the least violating one was never measured.
        value = f"{_e(names[0])} = {_num(t.values[0])}" if t.values else "not evaluated (skipped: over the budget)"
        parts = [
            f"<p><b>Best trial {t.number}</b>: {value} ({_e(result.directions[0])})</p>",
            _budget_note(result, t),
            _config_table(t),
            _metrics_table(t, ctx.baseline),
        ]
        return '<div class="answer">' + "".join(parts) + "</div>"
    metric_names = [m for m in dict.fromkeys(k for t in best for k in t.metrics) if not m.endswith("_ratio")]
    header = ["trial", *[f"{n} (objective)" for n in names], *map(_with_unit, metric_names), "configuration"]
    rows = [
        [t.number, *t.values, *[t.metrics.get(m, "") for m in metric_names], "; ".join(f"{layer}: {describe_layer(c)}" for layer, c in t.sampled_config.items())]
        for t in best
    ]
    intro = (
        f"<p><b>Pareto set: {len(best)} trials</b> ("
        + ", ".join(f"{_e(n)} {_e(d)}" for n, d in zip(names, result.directions))
        + "). Objective columns are the scaled values the search optimized; the metric columns are raw.</p>"
    )
    base = ""
    if ctx.baseline:
        base = "<p>Float model: " + ", ".join(f"{_e(k)} = {_e(format_metric(k, v))}" for k, v in ctx.baseline.items() if not k.endswith("_ratio")) + "</p>"
    return '<div class="answer">' + intro + html_table(header, rows, sortable=True) + base + "</div>"


def _trials_table(result: SearchResult) -> str:
    names = result.objective_names or [f"objective {i}" for i in range(len(result.directions))]
    metric_names = [m for m in dict.fromkeys(k for t in result.trials for k in t.metrics) if not m.endswith("_ratio")]
    header = ["trial", "state", *names, *map(_with_unit, metric_names), "duplicate of", "seconds", "configuration", "error"]
    rows = []
    for t in result.trials:
        values = [t.values[i] if i < len(t.values) else "" for i in range(len(names))]
        config = "; ".join(f"{layer}: {describe_layer(c)}" for layer, c in t.sampled_config.items())
        rows.append([
            t.number, t.state, *values, *[t.metrics.get(m, "") for m in metric_names],
            "" if t.duplicate_of is None else t.duplicate_of, t.duration_s, config, t.error or "",
        ])
    return '<div class="scroll">' + html_table(header, rows, sortable=True) + "</div>"


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("bitscout", "torch", "optuna"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def render_page(title: str, sections: Sequence[tuple[str, str]], *, lead: str = "") -> str:
    """A whole page: a title, an optional lead block, then (heading, HTML body) sections."""
    body = "".join(f"<h2>{_e(h)}</h2>{content}" for h, content in sections)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>{lead}{body}<script>{_SCRIPT}</script></body></html>"
    )


def render_search_html(result: SearchResult, ctx: ReportContext | None = None) -> str:
    """The report of one search as a self-contained HTML page.

    Args:
        result: The study's trials (:class:`bitscout.study.SearchResult`).
        ctx: The baseline, objective, space, facts and plots to show with them.
    """
    ctx = ctx or ReportContext()
    title = ctx.title or f"bitscout search: {result.study_name}"
    sections: list[tuple[str, str]] = []
    goal = [f"<li>{_e(line)}</li>" for line in ctx.objective]
    goal += [f"<li>subject to {_e(line)}</li>" for line in ctx.constraints]
    if goal:
        sections.append(("Objective", "<ul>" + "".join(goal) + "</ul>"))
    if ctx.space:
        sections.append(("Search space", f"<pre>{_e(ctx.space)}</pre>"))
    if ctx.images:
        sections.append(("Plots", "".join(html_image(name, path) for name, path in ctx.images.items() if Path(path).is_file())))
    sections.append((f"Trials ({len(result.trials)}; click a column head to sort)", _trials_table(result)))
    if ctx.config_toml:
        sections.append(("Config (config.toml)", f"<pre>{_e(ctx.config_toml)}</pre>"))
    facts: dict[str, Any] = {
        "study": f"{result.study_name} ({result.storage})" if result.storage else result.study_name,
        **dict(ctx.facts),
        "trials": result.n_trials,
        "unique evaluations": result.n_unique,
        "duplicates": result.n_duplicates,
        "failures": result.n_failed,
        "wall time (s)": round(result.wall_time_s, 3),
    }
    if result.stop_reason:
        facts["stopped"] = result.stop_reason
    facts.update(_versions())
    sections.append(("Run", html_table(["fact", "value"], list(facts.items()))))
    return render_page(title, sections, lead=_answer(result, ctx))


def write_html(page: str, path: Path) -> Path:
    """Write a page atomically (a reader never sees half of it); returns the path."""
    from bitscout._atomic import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, page)
