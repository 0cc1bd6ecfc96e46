"""Plain-text tables of a search: the summary printed at its end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitscout.metrics import SIZE_METRICS

if TYPE_CHECKING:
    from bitscout.study import SearchResult, TrialRecord

__all__ = [
    "format_table",
    "format_config",
    "format_summary",
    "describe_layer",
    "describe_formats",
    "fixed_point_text",
    "format_metric",
    "metric_unit",
    "chance_level_note",
]

# The unit of each metric that has one (docs/metrics.md): sizes are bytes, latency is
# milliseconds. Counts (flops, bitops), bitwidths, ratios and accuracies print bare.
_UNITS = {**dict.fromkeys(SIZE_METRICS, "bytes"), "latency": "ms"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def metric_unit(name: str) -> str | None:
    """The unit a metric (or its ``.max``/``.min`` constraint value) is in; None: none.

    ``"model_size"`` -> ``"bytes"``, ``"weight_bytes.max"`` -> ``"bytes"``,
    ``"latency"`` -> ``"ms"``; a ratio (``model_size_ratio``) has no unit.
    """
    return _UNITS.get(name.split(".", 1)[0])


def format_metric(name: str, value: Any) -> str:
    """A metric's value with its unit: ``6,312 bytes (6.16 KiB)``, ``2.04 ms``, ``0.94``.

    Sizes of at least 1 KiB also say their KiB, the unit budgets are usually given in
    (``model_size.max = "4 KiB"``).
    """
    unit = metric_unit(name)
    if unit is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return _fmt(value)
    if unit != "bytes":
        return f"{_fmt(value)} {unit}"
    number = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.6g}"
    text = f"{number} bytes"
    if abs(value) >= 1024:
        text += f" ({value / 1024:.3g} KiB)"
    return text


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """Rows as left-aligned columns separated by two spaces (a rule under the header)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    if header is not None:
        cells.insert(0, list(header))
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(max(map(len, cells)))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    if header is not None:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def describe_layer(cfg: Mapping[str, Any] | str) -> str:
    """One layer's configuration as people read it.

    Fixed point is written as width and fraction bits: ``weight 8b (4 frac)`` is what
    hls4ml calls ``ap_fixed<8,4>`` (integer bits = width - frac). Other fields of a
    tensor follow in the brackets, but for those left ``"NA"`` (the format's default); a
    layer left in floating point is ``float``.
    """
    if not isinstance(cfg, Mapping):
        return str(cfg)
    name = cfg.get("name", "?")
    parts = []
    for tensor in ("data_in", "weight", "bias"):
        width = cfg.get(f"{tensor}_width")
        if width is None:
            continue
        text = f"{tensor} {width}b"
        details = []
        frac = cfg.get(f"{tensor}_frac_width")
        if frac is not None:
            details.append(f"{frac} frac")
        prefix = f"{tensor}_"
        for key, value in cfg.items():
            # "NA" is "the format's default" (an int scale fitted to the data): saying
            # so on every tensor (`scale NA, zero_point NA`) hides the fields that matter.
            if key.startswith(prefix) and key not in (f"{tensor}_width", f"{tensor}_frac_width") and value != "NA":
                details.append(f"{key[len(prefix):]} {value}")
        if details:
            text += f" ({', '.join(details)})"
        parts.append(text)
    return f"{name}: " + ", ".join(parts) if parts else str(name)


def fixed_point_text(width: Any, frac: Any) -> str:
    """Fixed point as bitscout prints it everywhere: ``8b (4 frac)``, 8 bits of which 4
    are fraction bits (hls4ml's ``ap_fixed<8,4>``; MASE's ``width = 8, frac_width = 4``)."""
    return f"{width}b ({frac} frac)"


def describe_formats(config: Any, tensors: Sequence[str]) -> str:
    """One quantized layer's resolved formats, as ``bitscout quantize`` prints them.

    Fixed point (``integer``) and scaled integers (``int``) read as the search summary
    writes them, ``integer: data_in 8b (7 frac), weight 4b (2 frac)``,
    ``int: data_in 8b (symmetric False, scale 0.0123, zero_point -5), weight 8b
    (granularity channel)``; other formats by their short name (``fp8e4m3b7``). ``config`` is a
    :class:`bitscout.quant.LayerQuantConfig`.
    """
    from bitscout.quant import IntegerFormat, IntFormat

    parts = []
    for tensor in tensors:
        fmt = getattr(config, tensor)
        if fmt is None:
            parts.append(f"{tensor} float")
        elif isinstance(fmt, IntegerFormat) and isinstance(fmt.frac_width, int):
            parts.append(f"{tensor} {fixed_point_text(fmt.width, fmt.frac_width)}")
        elif isinstance(fmt, IntFormat):
            # As the summary writes a sampled `int` config: the width, then the fields
            # that differ from the defaults (and the fitted scale, once calibrated).
            details = [] if fmt.symmetric else ["symmetric False"]
            if fmt.granularity != "tensor":
                details.append(f"granularity {fmt.granularity}")
            if fmt.scale is not None:
                details.append(f"scale {fmt.scale:.4g}")
            if fmt.zero_point is not None and not fmt.symmetric:
                details.append(f"zero_point {fmt.zero_point}")
            parts.append(f"{tensor} {fmt.width}b" + (f" ({', '.join(details)})" if details else ""))
        else:
            parts.append(f"{tensor} {fmt.describe()}")
    return f"{config.format}: " + ", ".join(parts)


def format_config(sampled_config: Mapping[str, Any]) -> str:
    """One line per layer: ``layer  integer: data_in 4b (2 frac), weight 6b (3 frac)``."""
    return format_table([(layer, describe_layer(cfg)) for layer, cfg in sampled_config.items()])


def _metrics_line(record: TrialRecord) -> str:
    metrics = {**record.software_metrics, **record.hardware_metrics}
    shown = [f"{k} = {format_metric(k, v)}" for k, v in metrics.items() if not k.endswith("_ratio")]
    return ", ".join(shown) or "(none)"


def _drops_line(record: TrialRecord, baseline: Mapping[str, float]) -> str:
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in record.drops(baseline).items())


def _constraints_line(record: TrialRecord) -> str:
    return ", ".join(
        f"{k} = {'unknown' if v is None else format_metric(k, v)}" for k, v in record.constraints.items()
    )


def format_summary(result: SearchResult, outputs: Mapping[str, Path] | None = None) -> str:
    """The table printed at the end of a search.

    Trials, unique evaluations, duplicates, failures, wall time (and with constraints
    how many trials were feasible or skipped); the float model's metrics; the best
    *feasible* trial (or the Pareto set of feasible trials) with its value(s), metrics,
    drops from the float model and configuration, or the least-violating trial, flagged,
    when none is feasible; the paths of the outputs.
    """
    lines: list[str] = []
    rows: list[tuple[str, Any]] = [
        ("study", f"{result.study_name} ({result.storage})" if result.storage else result.study_name),
        ("trials", result.n_trials),
        ("unique evaluations", result.n_unique),
        ("duplicates", result.n_duplicates),
        ("failures", result.n_failed),
        ("wall time", f"{result.wall_time_s:.1f} s"),
    ]
    if result.has_constraints:
        rows.insert(3, ("feasible", f"{result.n_feasible} of {result.n_unique} evaluated"))
        skipped = f"{result.n_skipped} (infeasible from the configuration; never evaluated)"
        if result.ruled_out:
            skipped += f"; {result.ruled_out:,} more configurations ruled out so before the search (never proposed)"
        rows.insert(4, ("skipped", skipped))
    if result.stop_reason:
        rows.append(("stopped", result.stop_reason))
    lines.append(format_table(rows))
    baseline = result.baseline_metrics
    if baseline:
        shown = [f"{k} = {format_metric(k, v)}" for k, v in baseline.items() if not k.endswith("_ratio")]
        lines.append(f"\nfloat model (baseline): {', '.join(shown)}")
    if result.has_constraints and result.best_trials and not result.best_is_feasible:
        lines.append(
            "\nNO TRIAL MEETS THE CONSTRAINTS: the trial below is the least-violating one "
            "(relax a bound, or search more)"
        )
    names = result.objective_names or [f"objective {i}" for i in range(len(result.directions))]
    best = result.best_trials
    if not best:
        lines.append("\nno trial completed: there is no best configuration")
    elif result.is_multi_objective:
        lines.append(f"\nPareto set ({len(best)} trials; " + ", ".join(f"{n} {d}" for n, d in zip(names, result.directions)) + "):")
        # The objective values are scaled (scale x metric); the raw metric sits beside each,
        # then each trial's drop from the float model.
        raw = [n for n in names if any(n in t.metrics for t in best)]
        drop_names = list(best[0].drops(baseline)) if baseline else []
        rows = [
            [t.number, *t.values, *[t.metrics.get(n, "") for n in raw], *(t.drops(baseline).get(d, "") for d in drop_names)]
            for t in best
        ]
        units = [f"{n} ({metric_unit(n)})" if metric_unit(n) else n for n in raw]
        lines.append(format_table(rows, header=["trial", *[f"{n} (scaled)" for n in names], *units, *drop_names]))
        top = max(best, key=lambda t: t.values[0] if result.directions[0] == "maximize" else -t.values[0])
        lines.append(f"\nbest {names[0]} in the set: trial {top.number}; {_metrics_line(top)}")
        lines.append(format_config(top.sampled_config))
    else:
        t = best[0]
        value = f"{names[0]} = {_fmt(t.values[0])}" if t.values else "not evaluated (skipped)"
        lines.append(f"\nbest trial: {t.number}, {value} ({result.directions[0]})")
        lines.append(f"metrics: {_metrics_line(t)}")
        if baseline and t.software_metrics:
            lines.append(f"drop from the float model: {_drops_line(t, baseline)}")
        if t.constraints:
            lines.append(f"constraints (<= 0 met): {_constraints_line(t)}")
        lines.append(format_config(t.sampled_config))
    paths = dict(outputs if outputs is not None else result.outputs)
    if paths:
        lines.append("\noutputs:")
        lines.append(format_table([(k, str(v)) for k, v in paths.items()]))
    return "\n".join(lines)


def chance_level_note(
    baseline: Mapping[str, float], num_classes: int, class_names: Sequence[str] = ()
) -> str | None:
    """Why the float model's accuracy makes the search meaningless, or None.

    A float model whose balanced accuracy is within a tenth of the way from chance
    (``1 / num_classes``) to 1 does not classify the data: untrained weights, a checkpoint
    of another data set, or classes numbered in another order (text labels are numbered
    in sorted order). Every candidate is then compared with a model that guesses.
    """
    score = baseline.get("balanced_accuracy", baseline.get("accuracy"))
    if score is None or num_classes < 2:
        return None
    chance = 1.0 / num_classes
    if score > chance + 0.1 * (1.0 - chance):
        return None
    order = ""
    if class_names and not all(str(n) == str(i) for i, n in enumerate(class_names)):
        shown = ", ".join(f"{n}={i}" for i, n in enumerate(class_names[:4]))
        order = f" (this data's: {shown}{', ...' if len(class_names) > 4 else ''})"
    if score < chance / 2:
        # Far below guessing: the model tells the classes apart, under other numbers (two
        # classes swapped: 0.02 where chance is 0.5).
        return (
            f"the float model's balanced accuracy is {score:.3f}, far below chance for "
            f"{num_classes} classes ({chance:.3f}): it tells classes apart, but not under the "
            "numbers this data gives them, so every candidate is measured against a model that "
            "misnames them. Check that the model's output i is the data's class i (text labels "
            f"are numbered in sorted order){order}"
        )
    return (
        f"the float model's balanced accuracy is {score:.3f}, about chance for {num_classes} "
        f"classes ({chance:.3f}): it does not classify this data, so every candidate is measured "
        "against a model that guesses. Check that the checkpoint was trained on this data, with "
        f"its classes numbered as the data numbers them{order}"
    )
