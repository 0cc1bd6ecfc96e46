"""The evaluators: runner-based, table (exhaustive), user function, and the cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from bitscout.evaluation._base import Evaluation, Evaluator, ObjectiveEvaluator, ObjectiveLike
from bitscout.evaluation._exhaustive import ExhaustiveResult, evaluate_runner_set_exhaustively
from bitscout.metrics import DROP_SUFFIX, Constraints, RunnerSet, TrialMetrics

if TYPE_CHECKING:
    from torch import nn

    from bitscout.space import SearchSpace

__all__ = ["MetricSource", "RunnerEvaluator", "TableEvaluator", "FunctionEvaluator", "CachedEvaluator", "needs_loss"]


class _MetricsLike(Protocol):
    software: Mapping[str, float]
    hardware: Mapping[str, float]


class MetricSource(Protocol):
    """What :class:`RunnerEvaluator` needs of the runners (:class:`bitscout.metrics.RunnerSet`)."""

    def run(self, config: Any) -> _MetricsLike: ...


class RunnerEvaluator(ObjectiveEvaluator):
    """What a trial does: run the metric runners on the built candidate, then the objective.

    Args:
        runners: The configured runners (:class:`bitscout.metrics.RunnerSet`).
        objective: The objective (:class:`bitscout.metrics.Objective`).
        constraints: The search's constraints (see :class:`ObjectiveEvaluator`).
    """

    def __init__(
        self, runners: MetricSource, objective: ObjectiveLike, *, constraints: Constraints | None = None
    ) -> None:
        super().__init__(objective, constraints=constraints)
        self.runners = runners

    def config_metrics(self, config: Mapping[str, Any]) -> TrialMetrics:
        """Every metric of the ``config_only`` runners (no model built, no data)."""
        if isinstance(self.runners, RunnerSet):
            return TrialMetrics(hardware=self.runners.config_metrics(config))
        return super().config_metrics(config)

    def measure(self, config: Mapping[str, Any]) -> TrialMetrics:
        metrics = self.runners.run(config)
        if isinstance(metrics, TrialMetrics):
            return metrics
        return TrialMetrics(software=dict(metrics.software), hardware=dict(metrics.hardware))

    def baseline(self) -> Evaluation | None:
        """The float model measured as a trial is (:meth:`RunnerSet.reference`), scored."""
        if not isinstance(self.runners, RunnerSet):
            return None
        start = time.perf_counter()
        return self.score(self.runners.reference(), seconds=time.perf_counter() - start)


class TableEvaluator(ObjectiveEvaluator):
    """Answers every configuration from an exhaustive evaluation of the whole space.

    The table is bit-identical to what :class:`RunnerEvaluator` measures (see
    :func:`bitscout.evaluation.evaluate_exhaustively`); each evaluation is charged an
    equal share of the table's time.

    Args:
        table: The metrics of every distinct configuration.
        objective: The objective.
        seconds: What the table cost in all (default: its own measured time).
        constraints: The search's constraints (see :class:`ObjectiveEvaluator`); a
            configuration they rule out from its configuration alone is skipped, as a
            trial would skip it.
    """

    def __init__(
        self,
        table: ExhaustiveResult,
        objective: ObjectiveLike,
        *,
        seconds: float | None = None,
        constraints: Constraints | None = None,
    ) -> None:
        super().__init__(objective, constraints=constraints)
        self.table = table
        self.runners: RunnerSet | None = None  # set by from_runners: measures the baseline
        self.seconds = table.seconds if seconds is None else seconds
        self.share_seconds = self.seconds / max(1, len(table))

    @classmethod
    def from_runners(
        cls,
        space: SearchSpace,
        runners: RunnerSet,
        objective: ObjectiveLike,
        *,
        constraints: Constraints | None = None,
    ) -> TableEvaluator:
        """Evaluate every configuration of ``space`` as ``runners`` would, at once.

        The cross-entropy is computed only when the objective or a constraint reads
        ``loss`` (or ``loss_drop``): without it the enumeration costs about half as
        much, and the table's trials record accuracy and balanced accuracy only.

        Raises:
            SearchError: The runners cannot be evaluated exhaustively
                (:func:`bitscout.evaluation.exhaustive_support` says why).
        """
        start = time.perf_counter()
        table = evaluate_runner_set_exhaustively(space, runners, loss=needs_loss(objective, constraints))
        evaluator = cls(table, objective, seconds=time.perf_counter() - start, constraints=constraints)
        evaluator.runners = runners
        return evaluator

    def measure(self, config: Mapping[str, Any]) -> TrialMetrics:
        return self.table.metrics_for(config)

    def baseline(self) -> Evaluation | None:
        """The float model as the table's runners measure it (None for a bare table)."""
        if self.runners is None:
            return None
        start = time.perf_counter()
        return self.score(self.runners.reference(), seconds=time.perf_counter() - start)

    def seconds_of(self, elapsed: float) -> float:
        return self.share_seconds


def needs_loss(objective: ObjectiveLike, constraints: Constraints | None = None) -> bool:
    """Whether the objective or a constraint reads the cross-entropy (``loss``, ``loss_drop``)."""
    names = set(objective.metric_names) | {c.metric for c in constraints or ()}
    return bool(names & {"loss", f"loss{DROP_SUFFIX}"})


class FunctionEvaluator(ObjectiveEvaluator):
    """Evaluates a configuration with a user's function of the quantized model.

    ``fn(qmodel)`` returns a dict of metric name -> value (recorded as software
    metrics); the objective reads them by name.

    Args:
        fn: The user's evaluation function.
        objective: The objective over ``fn``'s metrics.
        build: Builds the quantized model of a decoded configuration
            (e.g. ``lambda config: quantizer.build(config)``).
        constraints: Constraints over ``fn``'s metrics (see :class:`ObjectiveEvaluator`).
    """

    def __init__(
        self,
        fn: Callable[[nn.Module], Mapping[str, float]],
        objective: ObjectiveLike,
        *,
        build: Callable[[Mapping[str, Any]], nn.Module],
        constraints: Constraints | None = None,
    ) -> None:
        super().__init__(objective, constraints=constraints)
        self.fn = fn
        self.build = build

    def measure(self, config: Mapping[str, Any]) -> TrialMetrics:
        return TrialMetrics(software=dict(self.fn(self.build(config))))


class CachedEvaluator(Evaluator):
    """Evaluates each distinct configuration once and answers repeats from memory.

    Thread-safe. What is measured is the inner evaluator's (directions, names and
    fingerprint are its own).

    Args:
        inner: The evaluator that makes the evaluations.
        key: Configuration -> hashable key; equal keys are the same configuration
            (``space.key``).

    Attributes:
        evaluations: Evaluations made through this cache (added ones not counted).
        seconds: Their total cost.
    """

    def __init__(self, inner: Evaluator, key: Callable[[Mapping[str, Any]], Hashable]) -> None:
        self.inner = inner
        self.key = key
        self._entries: dict[Hashable, Evaluation] = {}
        self._lock = threading.Lock()
        self.evaluations = 0
        self.seconds = 0.0

    @property
    def directions(self) -> list[str]:
        return self.inner.directions

    @property
    def objective_names(self) -> list[str]:
        return self.inner.objective_names

    def fingerprint(self) -> dict[str, Any]:
        return self.inner.fingerprint()

    def baseline(self) -> Evaluation | None:
        return self.inner.baseline()

    @property
    def constraint_names(self) -> tuple[str, ...]:
        return self.inner.constraint_names

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, config: Mapping[str, Any]) -> bool:
        return self.key(config) in self._entries

    def use(self, inner: Evaluator) -> None:
        """Make the evaluations of later misses with ``inner`` (one that gives the same
        results faster, e.g. a :class:`TableEvaluator` of the same runners)."""
        if list(inner.directions) != list(self.inner.directions):
            raise ValueError(f"directions differ: {inner.directions} != {self.inner.directions}")
        self.inner = inner

    def add(self, config: Mapping[str, Any], evaluation: Evaluation) -> None:
        """Store an evaluation made elsewhere for ``config``."""
        with self._lock:
            self._entries[self.key(config)] = evaluation

    def evaluate(self, config: Mapping[str, Any]) -> Evaluation:
        """The stored evaluation of ``config``, or the inner evaluator's, made now and stored."""
        key = self.key(config)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                return hit
            entry = self.inner.evaluate(config)
            self.evaluations += 1
            self.seconds += entry.seconds
            self._entries[key] = entry
            return entry

    def evaluate_many(self, configs: Sequence[Mapping[str, Any]]) -> list[Evaluation]:
        return [self.evaluate(config) for config in configs]
