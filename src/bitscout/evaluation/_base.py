"""The evaluation seam: :class:`Evaluator` turns a configuration into an :class:`Evaluation`.

Every way of measuring a configuration (running the metric runners, reading a precomputed
table, answering from a cache, calling a user's function) is an :class:`Evaluator`, and
the search loop (:func:`bitscout.study.run_search`) and the comparison
(:func:`bitscout.compare.compare_strategies`) take nothing else. An evaluator never raises
for a configuration that cannot be evaluated: it returns an :class:`Evaluation` whose
``error`` says why, and the loop records the trial as failed.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bitscout.errors import BitscoutError, SearchError
from bitscout.metrics import Objective, TrialMetrics

__all__ = [
    "Evaluation",
    "Evaluator",
    "ObjectiveEvaluator",
    "ObjectiveLike",
    "objective_names",
    "error_text",
]


@dataclass(frozen=True)
class Evaluation:
    """What one configuration is worth.

    Attributes:
        metrics: Every metric measured (software and hardware); empty when it failed.
        values: The objective values, one per direction; empty when it failed.
        scaled: Metric name -> its signed, scaled objective term.
        error: Why the evaluation failed, or None.
        seconds: What the evaluation cost (for a table, its share of the batched pass).
        constraints: Constraint values, feasible when ``<= 0`` (Optuna's convention), one
            per name of :attr:`Evaluator.constraint_names`; the loop records each with
            ``trial.set_constraint`` when non-empty.
    """

    metrics: TrialMetrics = field(default_factory=TrialMetrics)
    values: tuple[float, ...] = ()
    scaled: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    constraints: tuple[float, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the configuration was evaluated (``error`` is None)."""
        return self.error is None

    @classmethod
    def failed(cls, error: str, *, seconds: float = 0.0) -> Evaluation:
        """The evaluation of a configuration that could not be evaluated."""
        return cls(error=error, seconds=seconds)


def error_text(exc: BaseException) -> str:
    """The message stored for a failed evaluation: a BitscoutError's own text, else the type too."""
    if isinstance(exc, BitscoutError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def objective_names(directions: Sequence[str], metric_names: Sequence[str], sum_scaled: bool) -> list[str]:
    """The names of the objective values: ``["objective"]`` for a sum, else the metrics'."""
    names = list(metric_names)
    if len(directions) == 1 and (len(names) != 1 or sum_scaled):
        return ["objective"]
    return names if len(names) == len(directions) else [f"objective_{i}" for i in range(len(directions))]


class Evaluator(abc.ABC):
    """Turns a decoded per-layer configuration into an :class:`Evaluation`.

    The contract:

    * :attr:`directions` gives one ``"maximize"``/``"minimize"`` per objective value;
      every successful :class:`Evaluation` has that many ``values``, all finite.
    * :meth:`evaluate` does not raise for a configuration that cannot be evaluated: it
      returns :meth:`Evaluation.failed` with the reason (KeyboardInterrupt still
      propagates). The same configuration gives the same values every time.
    * :meth:`fingerprint` describes what is measured, so that a stored study is resumed
      only by an evaluator that measures the same thing.
    """

    @property
    @abc.abstractmethod
    def directions(self) -> list[str]:
        """One direction per objective value."""

    @property
    def objective_names(self) -> list[str]:
        """Names of the objective values (``"objective"``, or one per value)."""
        return objective_names(self.directions, [], True)

    @property
    def constraint_names(self) -> tuple[str, ...]:
        """Names of the values in :attr:`Evaluation.constraints` (empty: none, or unnamed)."""
        return ()

    def fingerprint(self) -> dict[str, Any]:
        """What this evaluator measures, as JSON-ready data (part of a study's fingerprint)."""
        return {"directions": list(self.directions), "objective": type(self).__qualname__}

    @abc.abstractmethod
    def evaluate(self, config: Mapping[str, Any]) -> Evaluation:
        """The evaluation of one decoded configuration (``space.decode(params)``)."""

    def evaluate_many(self, configs: Sequence[Mapping[str, Any]]) -> list[Evaluation]:
        """The evaluations of several configurations, in order (batched where it pays)."""
        return [self.evaluate(config) for config in configs]

    def baseline(self) -> Evaluation | None:
        """The evaluation of the unquantized model, or None when this evaluator has none."""
        return None


class ObjectiveLike(Protocol):
    """What :class:`ObjectiveEvaluator` needs of an objective (:class:`bitscout.metrics.Objective`)."""

    @property
    def directions(self) -> list[str]: ...

    @property
    def metric_names(self) -> list[str]: ...

    @property
    def sum_scaled(self) -> bool: ...

    def evaluate(self, metrics: TrialMetrics) -> Any: ...


class ObjectiveEvaluator(Evaluator):
    """An evaluator that measures metrics and scores them with an objective.

    Subclasses implement :meth:`measure`; :meth:`evaluate` times it, applies the
    objective, refuses non-finite values and turns any exception into a failed
    :class:`Evaluation`.

    Args:
        objective: Turns metrics into values (:class:`bitscout.metrics.Objective`).
    """

    def __init__(self, objective: ObjectiveLike) -> None:
        self.objective = objective

    @property
    def directions(self) -> list[str]:
        return list(self.objective.directions)

    @property
    def objective_names(self) -> list[str]:
        return objective_names(self.directions, self.objective.metric_names, self.objective.sum_scaled)

    def fingerprint(self) -> dict[str, Any]:
        part: dict[str, Any] = {"directions": list(self.directions)}
        if isinstance(self.objective, Objective):
            part["terms"] = [
                {"metric": t.metric, "scale": t.scale, "direction": t.direction, "normalize": t.normalize, "sign": t.sign}
                for t in self.objective.terms
            ]
        else:
            part["objective"] = type(self.objective).__qualname__
        return part

    @abc.abstractmethod
    def measure(self, config: Mapping[str, Any]) -> TrialMetrics:
        """The metrics of one configuration (may raise: :meth:`evaluate` records why)."""

    def seconds_of(self, elapsed: float) -> float:
        """The cost charged to one evaluation that took ``elapsed`` seconds here."""
        return elapsed

    def evaluate(self, config: Mapping[str, Any]) -> Evaluation:
        start = time.perf_counter()
        try:
            metrics = self.measure(config)
            return self.score(metrics, seconds=self.seconds_of(time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001  (a failing configuration is a failed trial, not a failed search)
            return Evaluation.failed(error_text(exc), seconds=time.perf_counter() - start)

    def score(self, metrics: TrialMetrics, *, seconds: float = 0.0) -> Evaluation:
        """Apply the objective to measured metrics.

        Raises:
            SearchError: An objective value is NaN or infinite (the metrics are named).
        """
        result = self.objective.evaluate(metrics)
        values = tuple(float(v) for v in result.values)
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            shown = ", ".join(f"{k} = {v:g}" for k, v in metrics.all().items())
            raise SearchError(f"the objective value is {bad[0]} (metrics: {shown or 'none'})")
        return Evaluation(metrics=metrics, values=values, scaled=dict(result.scaled), seconds=seconds)
