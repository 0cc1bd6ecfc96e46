"""Typed trial records and the result of a search, saved as ``log.json`` and ``best.json``.

A :class:`TrialRecord` is what one trial produced: its objective values, the software,
hardware and scaled metrics, the configuration it sampled, how long it took, and, for a
configuration already evaluated in the study, the number of the trial that evaluated it
first (``duplicate_of``). The field names of ``log.json`` follow MASE's search log
(``number``, ``software_metrics``, ``hardware_metrics``, ``scaled_metrics``,
``sampled_config``) so that scripts written for MASE's logs keep reading them.

A :class:`SearchResult` holds every record of a study plus its directions; it picks the
best trial (one objective) or the Pareto set (several) from the COMPLETE trials only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bitscout._atomic import atomic_path, atomic_write_text
from bitscout.errors import SearchError
from bitscout.evaluation import Evaluation
from bitscout.metrics import TrialMetrics

__all__ = [
    "TrialRecord",
    "SearchResult",
    "TrialState",
    "LOG_FILE",
    "BEST_FILE",
    "pareto_front",
]

LOG_FILE = "log.json"
BEST_FILE = "best.json"

TrialState = Literal["COMPLETE", "FAIL", "RUNNING", "WAITING", "PRUNED"]

# The sampled configuration of one layer: MASE's flat dict ("name", "data_in_width", ...)
# or the string "float" for a layer left in floating point.
LayerEntry = dict[str, Any] | str


@dataclass(frozen=True)
class TrialRecord:
    """What one trial of a search produced.

    Attributes:
        number: the Optuna trial number (0-based, unique in the study).
        state: ``"COMPLETE"``, ``"FAIL"``, ``"RUNNING"``, ``"WAITING"`` or ``"PRUNED"``.
        values: the objective values (one per direction), empty unless COMPLETE.
        software_metrics: accuracy, loss, ... measured on data.
        hardware_metrics: average_bitwidth, bitops, ... computed for the configuration.
        scaled_metrics: each objective term (scale x metric, signed by direction).
        sampled_config: layer name -> MASE flat config dict, or ``"float"``.
        duration_s: wall time of the evaluation (0 for a duplicate).
        duplicate_of: number of the trial that evaluated this configuration first, or None.
        error: why the trial failed, or None.
        params: the raw Optuna parameters of the trial (``"<layer>/<field>"`` -> choice).
        constraints: ``<metric>.<bound>`` -> constraint value (<= 0: met; None: not
            known, as for a measured-on-data constraint of a skipped trial).
        skipped: the configuration alone proved it infeasible (a hardware-only
            constraint), so it was not evaluated: a PRUNED trial without values.
    """

    number: int
    state: TrialState
    values: tuple[float, ...] = ()
    software_metrics: dict[str, float] = field(default_factory=dict)
    hardware_metrics: dict[str, float] = field(default_factory=dict)
    scaled_metrics: dict[str, float] = field(default_factory=dict)
    sampled_config: dict[str, LayerEntry] = field(default_factory=dict)
    duration_s: float = 0.0
    duplicate_of: int | None = None
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, float | None] = field(default_factory=dict)
    skipped: bool = False

    @property
    def is_complete(self) -> bool:
        return self.state == "COMPLETE"

    @property
    def feasible(self) -> bool:
        """Every constraint met (True when the search has none; False when skipped)."""
        return not self.skipped and all(v is not None and v <= 0 for v in self.constraints.values())

    @property
    def violation(self) -> float:
        """Sum of the positive constraint values (0 when feasible): Optuna's measure."""
        return math.fsum(v for v in self.constraints.values() if v is not None and v > 0)

    def drops(self, baseline: Mapping[str, float]) -> dict[str, float]:
        """``<metric>_drop`` = the float model's value minus this trial's, per software metric."""
        return {
            f"{name}_drop": baseline[name] - value
            for name, value in self.software_metrics.items()
            if name in baseline
        }

    @property
    def metrics(self) -> dict[str, float]:
        """Software and hardware metrics in one dict (software first)."""
        return {**self.software_metrics, **self.hardware_metrics}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["values"] = list(self.values)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrialRecord:
        try:
            return cls(
                number=int(raw["number"]),
                state=raw["state"],
                values=tuple(float(v) for v in raw.get("values") or ()),
                software_metrics=dict(raw.get("software_metrics") or {}),
                hardware_metrics=dict(raw.get("hardware_metrics") or {}),
                scaled_metrics=dict(raw.get("scaled_metrics") or {}),
                sampled_config=dict(raw.get("sampled_config") or {}),
                duration_s=float(raw.get("duration_s") or 0.0),
                duplicate_of=raw.get("duplicate_of"),
                error=raw.get("error"),
                params=dict(raw.get("params") or {}),
                constraints=dict(raw.get("constraints") or {}),
                skipped=bool(raw.get("skipped", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SearchError(
                f"A trial record cannot be read ({exc!r}); got {dict(raw)!r}. The log was "
                "probably written by another tool: rerun `bitscout report` on the study."
            ) from exc

    def with_updates(self, **changes: Any) -> TrialRecord:
        return replace(self, **changes)


def pareto_front(
    points: Sequence[Sequence[float]] | np.ndarray, directions: Sequence[str]
) -> list[int]:
    """Indices of the non-dominated points: bitscout's one Pareto implementation.

    A point dominates another when it is at least as good in every coordinate and
    better in one. Points are visited best first in lexicographic order: a point's
    dominators all come before it, and whenever one does, so does a non-dominated point
    that dominates it, so each point is compared with the front found so far only
    (O(n x front) instead of O(n^2): 13,824 brute-force trials in milliseconds).

    Args:
        points: one value vector per point.
        directions: ``"maximize"`` or ``"minimize"`` per coordinate.

    Returns:
        The indices of the points no other point dominates, in input order. Points with
        equal vectors are all kept.
    """
    pts = np.asarray(points, dtype=float)
    if len(pts) == 0:
        return []
    better = pts.reshape(len(pts), -1) * np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    # Best first: np.lexsort sorts by its last key first, ascending.
    order = np.lexsort(-better.T[::-1])
    front = np.empty((0, better.shape[1]))
    keep = []
    for i in order.tolist():
        p = better[i]
        if len(front) and ((front >= p).all(axis=1) & (front > p).any(axis=1)).any():
            continue
        keep.append(i)
        front = np.vstack([front, p])
    return sorted(keep)


@dataclass
class SearchResult:
    """Every trial of a study with its directions, and the best trial or the Pareto set.

    Attributes:
        trials: one record per trial, by trial number.
        directions: ``"maximize"``/``"minimize"`` per objective.
        study_name: the Optuna study name.
        storage: where the study lives (a URL or a file path), for messages.
        run_dir: the folder the outputs were written to, when saved.
        wall_time_s: wall time of the run that produced this result (0 when loaded).
        objective_names: a name per objective (the metric for one objective per metric,
            ``"objective"`` for a sum).
        interrupted: the run was stopped by Ctrl-C (its finished trials are all here).
        stop_reason: why the run stopped (``"reached n_trials = 20"``, ...).
        outputs: output name (``"log"``, ``"best"``, ``"csv"``, plots...) -> path.
        baseline: the unquantized model's evaluation (``run_search(..., baseline=True)``
            with an evaluator that has one), else None. ``best.json`` keeps its metrics.
        ruled_out: configurations the strategy never proposed because the constraints
            rule them out from the configuration alone (a brute force under a budget);
            no trial holds them.

    With constraints, "best" means best *feasible*: the best trial meets every
    constraint, the Pareto set holds feasible trials only, and when no trial is
    feasible the best is the least-violating one (:attr:`best_is_feasible` is then
    False).
    """

    trials: list[TrialRecord]
    directions: list[str]
    study_name: str = "bitscout"
    storage: str = ""
    run_dir: Path | None = None
    wall_time_s: float = 0.0
    objective_names: list[str] = field(default_factory=list)
    interrupted: bool = False
    stop_reason: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)
    baseline: Evaluation | None = None
    ruled_out: int = 0

    # ----- counts ---------------------------------------------------------------------

    @property
    def complete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.is_complete]

    @property
    def n_trials(self) -> int:
        """Finished trials (COMPLETE or FAIL), duplicates included."""
        return sum(t.state in ("COMPLETE", "FAIL", "PRUNED") for t in self.trials)

    @property
    def n_unique(self) -> int:
        """Configurations evaluated (COMPLETE trials that are not duplicates)."""
        return sum(t.is_complete and t.duplicate_of is None for t in self.trials)

    @property
    def n_duplicates(self) -> int:
        return sum(t.is_complete and t.duplicate_of is not None for t in self.trials)

    @property
    def n_failed(self) -> int:
        return sum(t.state == "FAIL" for t in self.trials)

    @property
    def baseline_metrics(self) -> dict[str, float]:
        """The float model's metrics (empty without a baseline): what drops are measured from."""
        if self.baseline is None or self.baseline.error is not None:
            return {}
        return self.baseline.metrics.all()

    @property
    def n_skipped(self) -> int:
        """Trials whose configuration alone proved them infeasible (never evaluated)."""
        return sum(t.skipped for t in self.trials)

    @property
    def constraint_names(self) -> list[str]:
        """The constraints the trials recorded, in order of first appearance."""
        return list(dict.fromkeys(name for t in self.trials for name in t.constraints))

    @property
    def has_constraints(self) -> bool:
        return any(t.constraints for t in self.trials)

    @property
    def n_feasible(self) -> int:
        """Evaluated configurations that meet every constraint (duplicates left out)."""
        return sum(t.feasible for t in self._unique_complete())

    @property
    def is_multi_objective(self) -> bool:
        return len(self.directions) > 1

    # ----- best / Pareto ---------------------------------------------------------------

    def _unique_complete(self) -> list[TrialRecord]:
        return [t for t in self.complete if t.duplicate_of is None and len(t.values) == len(self.directions)]

    @property
    def best(self) -> TrialRecord | None:
        """The best COMPLETE trial of a single-objective study (the earliest on ties).

        Raises:
            SearchError: for a multi-objective study (use :attr:`pareto`).
        """
        if self.is_multi_objective:
            raise SearchError(
                f"This study has {len(self.directions)} objectives {self.directions}: it has "
                "no single best trial. Use `pareto` for the Pareto set."
            )
        candidates = self._feasible_complete()
        sign = 1.0 if self.directions[0] == "maximize" else -1.0
        if candidates:
            return max(candidates, key=lambda t: (sign * t.values[0], -t.number))
        return self._least_violating(sign)

    @property
    def best_is_feasible(self) -> bool:
        """Whether :attr:`best` (or every trial of :attr:`best_trials`) meets every constraint."""
        return all(t.feasible for t in self.best_trials) if self.best_trials else not self.has_constraints

    @property
    def pareto(self) -> list[TrialRecord]:
        """The non-dominated feasible COMPLETE trials (duplicates left out), by trial number."""
        candidates = self._feasible_complete()
        keep = pareto_front([t.values for t in candidates], self.directions)
        return [candidates[i] for i in keep]

    def _feasible_complete(self) -> list[TrialRecord]:
        return [t for t in self._unique_complete() if t.feasible]

    def _least_violating(self, sign: float) -> TrialRecord | None:
        """No trial is feasible: the one closest to it (then the best value, the earliest)."""
        pool = self._unique_complete() + [t for t in self.trials if t.skipped and t.duplicate_of is None]
        if not pool:
            return None
        return min(
            pool,
            key=lambda t: (t.violation, -sign * t.values[0] if t.values else math.inf, t.number),
        )

    @property
    def best_trials(self) -> list[TrialRecord]:
        """The best trial as a one-element list, or the Pareto set."""
        if self.is_multi_objective:
            return self.pareto
        best = self.best
        return [] if best is None else [best]

    def best_so_far(self, objective: int = 0) -> list[tuple[int, float]]:
        """(trial number, best value up to that trial) for each feasible COMPLETE trial, in order."""
        sign = 1.0 if self.directions[objective] == "maximize" else -1.0
        out: list[tuple[int, float]] = []
        best = -math.inf
        for t in sorted(self.complete, key=lambda r: r.number):
            if len(t.values) <= objective or not t.feasible:
                continue
            best = max(best, sign * t.values[objective])
            out.append((t.number, sign * best))
        return out

    # ----- save / load -----------------------------------------------------------------

    def best_dict(self) -> dict[str, Any]:
        """What ``best.json`` holds."""
        out: dict[str, Any] = {
            "study_name": self.study_name,
            "storage": self.storage,
            "directions": list(self.directions),
            "objective_names": list(self.objective_names),
            "n_trials": self.n_trials,
            "n_unique": self.n_unique,
            "n_duplicates": self.n_duplicates,
            "n_failed": self.n_failed,
            "wall_time_s": self.wall_time_s,
        }
        if self.has_constraints:
            out["constraints"] = self.constraint_names
            out["n_feasible"] = self.n_feasible
            out["n_skipped"] = self.n_skipped
            out["n_ruled_out"] = self.ruled_out
            out["best_is_feasible"] = self.best_is_feasible
        base = self.baseline
        if base is not None and base.error is None:
            out["baseline"] = {"metrics": base.metrics.to_dict(), "values": list(base.values)}
        if self.is_multi_objective:
            out["pareto"] = [t.to_dict() for t in self.pareto]
        else:
            best = self.best
            out["best"] = None if best is None else best.to_dict()
        return out

    def save(self, run_dir: Path) -> dict[str, Path]:
        """Write ``log.json`` and ``best.json`` into ``run_dir``; returns their paths."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / LOG_FILE
        best_path = run_dir / BEST_FILE
        _write_json_list(log_path, (t.to_dict() for t in self.trials))
        _write_json(best_path, self.best_dict())
        self.run_dir = run_dir
        return {"log": log_path, "best": best_path}

    @classmethod
    def load(cls, run_dir: Path) -> SearchResult:
        """Read a result saved by :meth:`save` (``log.json`` and ``best.json``)."""
        run_dir = Path(run_dir)
        log_path, best_path = run_dir / LOG_FILE, run_dir / BEST_FILE
        for path in (log_path, best_path):
            if not path.is_file():
                raise SearchError(
                    f"{path} does not exist: {run_dir} is not the run folder of a finished "
                    "search. Give the folder `bitscout search` wrote (its --out)."
                )
        raw_log = json.loads(log_path.read_text())
        raw_best = json.loads(best_path.read_text())
        return cls(
            trials=[TrialRecord.from_dict(r) for r in raw_log],
            directions=list(raw_best["directions"]),
            study_name=raw_best.get("study_name", "bitscout"),
            storage=raw_best.get("storage", ""),
            run_dir=run_dir,
            wall_time_s=float(raw_best.get("wall_time_s", 0.0)),
            objective_names=list(raw_best.get("objective_names", [])),
            baseline=_baseline_from(raw_best.get("baseline")),
            ruled_out=int(raw_best.get("n_ruled_out", 0)),
        )


def _baseline_from(raw: Mapping[str, Any] | None) -> Evaluation | None:
    """The baseline of a saved result (``best.json``'s ``"baseline"``)."""
    if not raw:
        return None
    metrics = raw.get("metrics") or {}
    return Evaluation(
        metrics=TrialMetrics(software=dict(metrics.get("software") or {}), hardware=dict(metrics.get("hardware") or {})),
        values=tuple(float(v) for v in raw.get("values") or ()),
    )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default, allow_nan=True))


def _write_json_list(path: Path, items: Iterable[Any]) -> None:
    """Write a JSON list atomically, one item at a time: the same text as
    :func:`_write_json` of the whole list, without the whole list and its text in memory
    at once (on a 13,824-trial brute force, writing the outputs that way raised the
    peak by about 200 MB over the search's)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        first = True
        for item in items:
            text = json.dumps(item, indent=2, default=_json_default, allow_nan=True)
            f.write("[\n  " if first else ",\n  ")
            # json.dumps escapes newlines inside strings: every newline is the layout's.
            f.write(text.replace("\n", "\n  "))
            first = False
        f.write("[]" if first else "\n]")
