"""PNG plots of a search: objective per trial, accuracy against costs, widths of the best trial.

Every function takes a :class:`~bitscout.study.SearchResult` (or records) and a path, draws
with matplotlib's Agg backend (no display needed) and returns the path written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitscout._atomic import atomic_path
from bitscout.config import PLOT_SOFTWARE
from bitscout.errors import SearchError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bitscout.study import SearchResult, TrialRecord

__all__ = [
    "plot_objective",
    "plot_pareto",
    "plot_best_widths",
    "plot_sensitivity",
    "choice_values",
    "layer_widths",
    "WIDTH_TENSORS",
]

#: The tensors whose width the width plot shows, in order.
WIDTH_TENSORS = ("data_in", "weight", "bias")


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, imported on first use.

    Imported lazily because it costs most of a second of start-up, and a search needs it
    only once, at the end. Agg draws to files only: it works without a display, in
    threads and over SSH.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        # Marked as bitscout's: a later search of the folder replaces it, not a plot of the
        # user's of the same name (bitscout.config.check_outputs_are_ours).
        fig.savefig(tmp, dpi=100, metadata={"Software": f"{PLOT_SOFTWARE} (matplotlib)"})
    _pyplot().close(fig)
    return path


def plot_objective(result: SearchResult, path: Path) -> Path:
    """Each objective value against the trial number, with the best so far as a line.

    Failed trials are marked with a red x on the lower edge; duplicates are drawn hollow.
    With constraints, infeasible trials are grey (the best-so-far line counts feasible
    ones only) and trials skipped as infeasible from their configuration are grey ticks
    on the lower edge.
    """
    n_obj = max(1, len(result.directions))
    fig, axes = _pyplot().subplots(n_obj, 1, figsize=(7, 3.2 * n_obj), squeeze=False)
    names = result.objective_names or [f"objective {i}" for i in range(n_obj)]
    complete = [t for t in result.trials if t.is_complete and len(t.values) == n_obj]
    failed = [t.number for t in result.trials if t.state == "FAIL"]
    skipped = [t.number for t in result.trials if t.skipped]
    infeasible = [t for t in complete if not t.feasible]
    complete_all, complete = complete, [t for t in complete if t.feasible]
    for i, ax in enumerate(axes[:, 0]):
        fresh = [t for t in complete if t.duplicate_of is None]
        dups = [t for t in complete if t.duplicate_of is not None]
        ax.scatter([t.number for t in fresh], [t.values[i] for t in fresh], s=14, label="evaluated", color="tab:blue")
        if infeasible:
            ax.scatter([t.number for t in infeasible], [t.values[i] for t in infeasible], s=14, color="0.65", label="infeasible")
        if skipped:
            y0 = min((t.values[i] for t in complete_all), default=0.0)
            ax.scatter(skipped, [y0] * len(skipped), marker="|", color="0.65", label="skipped (infeasible config)")
        if dups:
            ax.scatter([t.number for t in dups], [t.values[i] for t in dups], s=14, facecolors="none", edgecolors="tab:blue", label="duplicate")
        curve = result.best_so_far(i)
        if curve:
            xs, ys = zip(*curve)
            ax.step(xs, ys, where="post", color="tab:orange", label="best so far")
        if failed:
            y0 = min((t.values[i] for t in complete_all), default=0.0)
            ax.scatter(failed, [y0] * len(failed), marker="x", color="tab:red", label="failed")
        label = names[i] if i < len(names) else f"objective {i}"
        ax.set_ylabel(f"{label} ({result.directions[i] if result.directions else ''})")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("trial")
    axes[0, 0].set_title(f"{result.study_name}: objective per trial")
    return _save(fig, path)


def plot_pareto(
    records: Sequence[TrialRecord],
    x_metric: str,
    path: Path,
    *,
    y_metric: str = "accuracy",
    x_direction: str = "minimize",
    y_direction: str = "maximize",
    title: str | None = None,
    x_bounds: Sequence[tuple[str, float]] = (),
    y_bounds: Sequence[tuple[str, float]] = (),
    reference: tuple[float, float] | None = None,
) -> Path:
    """``y_metric`` against ``x_metric`` for every evaluated trial, the Pareto front marked.

    Infeasible trials (a constraint missed) are grey and left out of the front; each
    bound in ``x_bounds`` / ``y_bounds`` (``("max", 4.0)``) is drawn as a dashed budget
    line; ``reference`` (the float model's ``(x, y)``) is drawn as a black star.

    Raises:
        SearchError: No evaluated trial has both metrics.
    """
    from bitscout.study import pareto_front

    usable = [
        t for t in records
        if t.is_complete and t.duplicate_of is None and x_metric in t.metrics and y_metric in t.metrics
    ]
    points = [(t.metrics[x_metric], t.metrics[y_metric], t.number) for t in usable if t.feasible]
    others = [(t.metrics[x_metric], t.metrics[y_metric]) for t in usable if not t.feasible]
    if not points and not others:
        raise SearchError(f"no evaluated trial has both {x_metric!r} and {y_metric!r}: nothing to plot")
    front = pareto_front([(x, y) for x, y, _ in points], [x_direction, y_direction])
    front_pts = sorted((points[i][0], points[i][1]) for i in front)
    fig, ax = _pyplot().subplots(figsize=(6, 4.5))
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=14, alpha=0.6, label="trials", color="tab:blue")
    if others:
        ax.scatter([p[0] for p in others], [p[1] for p in others], s=14, alpha=0.6, label="infeasible", color="0.65")
    if front_pts:
        ax.plot([p[0] for p in front_pts], [p[1] for p in front_pts], "o-", color="tab:red", ms=5, label=f"Pareto front ({len(front)})")
    if reference is not None:
        ax.scatter([reference[0]], [reference[1]], marker="*", s=120, color="black", label="float model", zorder=3)
    for bound, value in x_bounds:
        ax.axvline(value, linestyle="--", color="tab:green", label=f"{x_metric} {bound} {value:g}")
    for bound, value in y_bounds:
        ax.axhline(value, linestyle="--", color="tab:green", label=f"{y_metric} {bound} {value:g}")
    ax.set_xlabel(f"{x_metric} ({x_direction})")
    ax.set_ylabel(f"{y_metric} ({y_direction})")
    ax.set_title(title or f"{y_metric} against {x_metric}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def layer_widths(record: TrialRecord) -> dict[str, dict[str, int]]:
    """Layer -> tensor -> width in bits for one trial; ``{}`` for a layer left in float.

    Width fields are read from the MASE flat config: ``<tensor>_width``. A float layer
    has no widths because the record does not say which tensors it has (a relu has no
    weight): the plot labels it "float" instead of drawing bars.
    """
    out: dict[str, dict[str, int]] = {}
    for layer, cfg in record.sampled_config.items():
        if not isinstance(cfg, dict) or cfg.get("name") in (None, "NA", "float"):
            out[layer] = {}
            continue
        widths = {}
        for tensor in WIDTH_TENSORS:
            value = cfg.get(f"{tensor}_width")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                widths[tensor] = int(value)
        out[layer] = widths
    return out


def plot_best_widths(record: TrialRecord, path: Path, *, title: str | None = None) -> Path:
    """Grouped bars: the width of each tensor of each layer in one trial's config.

    Each bar is labelled with its width and, for fixed point, its frac width (``8`` over
    ``4f``: 8 bits of which 4 are fraction bits).

    Raises:
        SearchError: The trial has no sampled configuration.
    """
    widths = layer_widths(record)
    if not widths:
        raise SearchError(f"trial {record.number} has no sampled configuration: nothing to plot")
    layers = list(widths)
    tensors = [t for t in WIDTH_TENSORS if any(t in w for w in widths.values())]
    fig, ax = _pyplot().subplots(figsize=(max(5.0, 0.9 * len(layers) * max(1, len(tensors))), 4))
    bar = 0.8 / max(1, len(tensors))
    for j, tensor in enumerate(tensors):
        xs = [i + (j - (len(tensors) - 1) / 2) * bar for i in range(len(layers))]
        ys = [widths[layer].get(tensor, 0) for layer in layers]
        bars = ax.bar(xs, ys, width=bar, label=tensor)
        for rect, y, layer in zip(bars, ys, layers):
            if y:
                # Fixed point: the frac width too (what hls4ml calls ap_fixed<W, W - F>).
                cfg = record.sampled_config.get(layer)
                frac = cfg.get(f"{tensor}_frac_width") if isinstance(cfg, dict) else None
                label = f"{y}" if frac is None else f"{y}\n{frac}f"
                ax.annotate(label, (rect.get_x() + rect.get_width() / 2, y), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([f"{layer}\n(float)" if not widths[layer] else layer for layer in layers], rotation=30, ha="right")
    ax.set_ylabel("width (bits)")
    ax.set_title(title or f"widths per layer, trial {record.number}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def choice_values(result: SearchResult) -> dict[str, dict[Any, list[float]]]:
    """Parameter -> choice -> the objective values of the evaluated, feasible trials that
    took that choice (first objective; duplicates counted once)."""
    evaluated = [t for t in result.trials if t.is_complete and t.duplicate_of is None and t.values and t.feasible]
    by_param: dict[str, dict[Any, list[float]]] = {}
    for t in evaluated:
        for name, choice in t.params.items():
            by_param.setdefault(name, {}).setdefault(choice, []).append(t.values[0])
    return by_param


def plot_sensitivity(result: SearchResult, path: Path) -> Path | None:
    """Per-layer sensitivity seen in the trials: the mean objective for each choice of each
    searched parameter (``<layer>/<field>``), over the evaluated trials (a main-effects view).

    A steep line is a layer whose width matters; a flat one can take the fewest bits. It
    reads what the trials show, whatever strategy drew them (a strategy that samples some
    choices rarely leaves those means uncertain: the number of trials is written beside each
    point). Single objective only; None when no parameter varies.
    """
    if result.is_multi_objective:
        return None
    varying = {name: groups for name, groups in choice_values(result).items() if len(groups) > 1}
    if not varying:
        return None
    fig, ax = _pyplot().subplots(figsize=(max(6.0, 0.6 * len(varying) + 4), 4.5))
    for name, groups in varying.items():
        try:
            choices = sorted(groups)
        except TypeError:  # mixed types (a number and "NA"): keep the order met
            choices = list(groups)
        xs = list(range(len(choices)))
        ys = [sum(groups[c]) / len(groups[c]) for c in choices]
        line = ax.plot(xs, ys, "o-", label=name, ms=4)[0]
        for x, y, c in zip(xs, ys, choices):
            ax.annotate(f"{c} (n={len(groups[c])})", (x, y), fontsize=6, color=line.get_color(),
                        xytext=(3, 3), textcoords="offset points")
    name = result.objective_names[0] if result.objective_names else "objective"
    ax.set_xlabel("choice (in increasing order; labels: the choice and its trial count)")
    ax.set_ylabel(f"mean {name} ({result.directions[0]})")
    ax.set_xticks([])
    ax.set_title("sensitivity per layer: mean objective for each choice")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    return _save(fig, path)
