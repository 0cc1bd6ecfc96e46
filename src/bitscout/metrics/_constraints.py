"""Constraints: bounds on metrics, in Optuna's convention (a value <= 0 is feasible).

``[search.strategy.constraints]`` bounds any metric a configured runner produces, and the
derived ``<metric>_drop`` of every software metric: the float model's value minus the
candidate's (``accuracy_drop = 0.02``: two points below the float model). Each bound
becomes one :class:`Constraint` whose value is ``metric - max`` or ``min - metric``, so a
trial is feasible when every value is <= 0, as Optuna's ``trial.set_constraint`` expects.

Constraints on metrics a ``config_only`` runner computes from the configuration alone
(the analytic hardware runners: ``average_bitwidth``, ``model_size``, ``weight_bytes``,
``bitops``, ...) are known
before anything is built or run: :attr:`Constraints.hardware_only` holds them, and
:meth:`Constraints.config_violation` proves a configuration infeasible without a data
pass. Latency is a hardware metric too, but it is measured on the built model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bitscout.errors import ConfigError
from bitscout.metrics._objective import _unknown_metric
from bitscout.metrics._runner import Candidate, RunContext, Runner, _producers, get_runner
from bitscout.metrics._runner_set import RunnerSet, TrialMetrics, validate_runners

if TYPE_CHECKING:
    from bitscout.config import StrategyConfig
    from bitscout.quant import LayerQuantConfig

__all__ = [
    "DROP_SUFFIX",
    "SIZE_METRICS",
    "Constraint",
    "ConstraintKind",
    "Constraints",
    "constraint_problems",
    "is_feasible",
    "metric_drops",
]

DROP_SUFFIX = "_drop"

#: Metrics measured in bytes: the only ones a bound with a unit ("4 KiB") may apply to.
SIZE_METRICS = frozenset({"model_size", "weight_bytes"})

ConstraintKind = Literal["config", "measured", "data"]
"""How a constrained metric is known: from the configuration alone (analytic hardware
metrics), measured on the built model without data (latency), or on data (software
metrics and their drops)."""

Config = Mapping[str, "LayerQuantConfig | None"]


def metric_drops(metrics: TrialMetrics, baseline: TrialMetrics) -> dict[str, float]:
    """``<metric>_drop`` = baseline - value, for every software metric of ``metrics``.

    Args:
        metrics: A trial's metrics.
        baseline: The float model's metrics, measured the same way
            (:meth:`bitscout.metrics.RunnerSet.reference`).
    """
    return {
        f"{name}{DROP_SUFFIX}": baseline.software[name] - value
        for name, value in metrics.software.items()
        if name in baseline.software
    }


@dataclass(frozen=True)
class Constraint:
    """One bound on one metric.

    Attributes:
        metric: The metric bounded (``average_bitwidth``, ``accuracy_drop``, ...).
        bound: ``"max"`` (the metric must be at most ``limit``) or ``"min"``.
        limit: The bound, in the metric's unit (bytes for sizes).
        kind: How the metric is known (:data:`ConstraintKind`).
    """

    metric: str
    bound: Literal["max", "min"]
    limit: float
    kind: ConstraintKind

    @property
    def key(self) -> str:
        """``<metric>.<bound>``: its name in ``trial.set_constraint`` and ``trials.csv``."""
        return f"{self.metric}.{self.bound}"

    @property
    def scale(self) -> float:
        """What one unit of violation is measured against: ``|limit|``, or 1 when it is 0."""
        return abs(self.limit) or 1.0

    def value(self, value: float) -> float:
        """The constraint value of a metric value: <= 0 when the bound holds."""
        return value - self.limit if self.bound == "max" else self.limit - value

    def describe(self) -> str:
        """``average_bitwidth <= 4``."""
        return f"{self.metric} {'<=' if self.bound == 'max' else '>='} {self.limit:g}"


class Constraints:
    """The constraints of a search: values per trial, feasibility, what the config proves.

    Args:
        items: The constraints, in the config's order (``max`` before ``min`` per metric).
        runner_set: The runners that produce the metrics (used to compute the
            ``config`` kind from a configuration, and for the baseline).
        baseline: The float model's metrics, for ``<metric>_drop``; None: measured with
            ``runner_set.reference()`` the first time a drop is needed.
    """

    def __init__(
        self,
        items: Sequence[Constraint],
        runner_set: RunnerSet | None = None,
        *,
        baseline: TrialMetrics | None = None,
    ) -> None:
        self.items: tuple[Constraint, ...] = tuple(items)
        self._runner_set = runner_set
        self._baseline = baseline
        needs_runners = any(item.kind == "config" for item in self.items)
        if needs_runners and runner_set is None:
            raise ValueError("constraints on hardware metrics need the runner set that computes them")
        # The analytic runners that compute the config-kind metrics: what a configuration
        # alone is checked with, in microseconds and without building a model.
        config_metrics = {item.metric for item in self.items if item.kind == "config"}
        self._config_runners: tuple[Runner, ...] = ()
        if runner_set is not None:
            self._config_runners = tuple(
                dict.fromkeys(runner_set.producer(metric) for metric in sorted(config_metrics))
            )

    @classmethod
    def from_config(
        cls,
        strategy_cfg: StrategyConfig,
        runner_set: RunnerSet,
        *,
        baseline: TrialMetrics | None = None,
    ) -> Constraints:
        """The constraints of ``[search.strategy.constraints]``.

        Args:
            strategy_cfg: The strategy config.
            runner_set: The configured runners; every constrained metric must be one they
                produce, or the drop of a software metric they produce.
            baseline: The float model's metrics, if already measured.

        Raises:
            ConfigError: Every problem at once, one line each, with its TOML path: a
                metric no configured runner produces (naming the runner that would), a
                drop of a hardware metric, a bound with a unit on a metric that is not a
                size.
        """
        producers = {metric: type(runner_set.producer(metric)) for metric in runner_set.produces()}
        items, problems = _judge(strategy_cfg, producers)
        if problems:
            raise ConfigError("\n".join(problems))
        return cls(items, runner_set, baseline=baseline)

    # -- the collection ----------------------------------------------------------------

    def __iter__(self) -> Iterator[Constraint]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def keys(self) -> tuple[str, ...]:
        """``<metric>.<bound>`` of each constraint, in order."""
        return tuple(item.key for item in self.items)

    @property
    def hardware_only(self) -> Constraints:
        """The constraints a configuration alone decides (analytic hardware metrics)."""
        return Constraints(
            [item for item in self.items if item.kind == "config"],
            self._runner_set,
            baseline=self._baseline,
        )

    @property
    def needs_baseline(self) -> bool:
        """Whether a constraint bounds a drop from the float model."""
        return any(item.metric.endswith(DROP_SUFFIX) and item.kind == "data" for item in self.items)

    def with_baseline(self, baseline: TrialMetrics) -> Constraints:
        """The same constraints measuring drops from ``baseline``."""
        return Constraints(self.items, self._runner_set, baseline=baseline)

    @property
    def baseline(self) -> TrialMetrics | None:
        """The float model's metrics (measured on first use when a drop is bounded)."""
        if self._baseline is None and self.needs_baseline and self._runner_set is not None:
            self._baseline = self._runner_set.reference()
        return self._baseline

    # -- values ------------------------------------------------------------------------

    def values(self, metrics: TrialMetrics | Mapping[str, float]) -> tuple[float, ...]:
        """One value per constraint, <= 0 when it holds (Optuna's convention).

        A metric that is NaN (a failed trial) gives NaN: neither feasible nor infeasible
        by an amount, and never passed to ``trial.set_constraint``.

        Args:
            metrics: A trial's metrics; ``<metric>_drop`` is computed from the baseline
                when ``metrics`` does not hold it.
        """
        return tuple(item.value(self._metric(metrics, item.metric)) for item in self.items)

    def feasible(self, metrics: TrialMetrics | Mapping[str, float]) -> bool:
        """Whether every constraint holds for a trial's metrics."""
        return is_feasible(self.values(metrics))

    def violation(self, values: Sequence[float]) -> float:
        """How far constraint values are from feasible: sum of positive values / scale.

        Each value is divided by its bound's magnitude, so that bytes and bits and
        accuracy points add up sensibly; 0 for a feasible trial, inf for NaN values.
        """
        if any(math.isnan(v) for v in values):
            return math.inf
        return math.fsum(max(0.0, v) / item.scale for v, item in zip(values, self.items))

    def config_metrics(self, config: Config) -> dict[str, float]:
        """The analytic hardware metrics of a configuration (no model built, no data)."""
        if not self._config_runners:
            return {}
        candidate = Candidate(config, self._context)
        metrics: dict[str, float] = {}
        for runner in self._config_runners:
            metrics.update(runner.run(candidate))
        return metrics

    def config_values(self, config: Config) -> tuple[float, ...]:
        """The values of the :attr:`hardware_only` constraints for a configuration."""
        metrics = self.config_metrics(config)
        return tuple(item.value(metrics[item.metric]) for item in self.items if item.kind == "config")

    def config_violation(self, config: Config) -> float:
        """How far a configuration is from satisfying the hardware-only constraints.

        0.0 when they all hold (or there are none); > 0 proves the configuration
        infeasible before it is evaluated. The scale is that of :meth:`violation`.
        """
        config_items = [item for item in self.items if item.kind == "config"]
        if not config_items:
            return 0.0
        values = self.config_values(config)
        return math.fsum(max(0.0, v) / item.scale for v, item in zip(values, config_items))

    def describe(self) -> str:
        """``average_bitwidth <= 4, accuracy_drop <= 0.01`` (or ``none``)."""
        return ", ".join(item.describe() for item in self.items) or "none"

    def __repr__(self) -> str:
        return f"Constraints({self.describe()})"

    # -- helpers -----------------------------------------------------------------------

    @property
    def _context(self) -> RunContext:
        if self._runner_set is None:  # __init__ refuses config-kind items without one
            raise ValueError("these constraints have no runner set")
        return self._runner_set.context

    def _metric(self, metrics: TrialMetrics | Mapping[str, float], name: str) -> float:
        if name in metrics:
            return float(metrics[name])
        if name.endswith(DROP_SUFFIX):
            base = name[: -len(DROP_SUFFIX)]
            baseline = self.baseline
            if baseline is not None and base in metrics and base in baseline.software:
                return baseline.software[base] - float(metrics[base])
        raise KeyError(f"the trial's metrics do not hold {name!r}, which a constraint bounds")


def is_feasible(values: Sequence[float]) -> bool:
    """Whether constraint values are all <= 0 (NaN is not)."""
    return all(v <= 0.0 for v in values)


def constraint_problems(strategy_cfg: StrategyConfig) -> list[str]:
    """What is wrong with ``[search.strategy.constraints]``, judged from the runner classes.

    The same judgement as :meth:`Constraints.from_config`, without a model or data (for
    ``bitscout check``): every constrained metric must be produced by a configured runner
    (or be the drop of a software metric one produces), and units only bound sizes.
    Problems with the runners' own options are left to
    :func:`bitscout.metrics.validate_runners`.

    Returns:
        One line per problem, each with its TOML path; empty when the constraints are fine.
    """
    if not strategy_cfg.constraints:
        return []
    try:
        chosen = validate_runners(strategy_cfg)
    except ConfigError:
        return []  # reported by validate_runners itself
    classes = [cls for cls, _ in chosen.values()]
    for cls in list(classes):
        classes += [get_runner(name) for name in cls.requires if name not in chosen]
    producers = {metric: cls for cls in classes for metric in cls.metrics}
    return _judge(strategy_cfg, producers)[1]


def _judge(
    strategy_cfg: StrategyConfig, producers: Mapping[str, type[Runner]]
) -> tuple[list[Constraint], list[str]]:
    """The constraints of a config, and the problems with them (one line each)."""
    produced = {metric: cls.name for metric, cls in producers.items()}
    problems: list[str] = []
    items: list[Constraint] = []
    for metric, spec in strategy_cfg.constraints.items():
        where = f"search.strategy.constraints.{metric}"
        kind = _kind(metric, producers)
        if kind is None:
            problems.append(_unknown_constraint(metric, produced, where))
            continue
        for bound, limit, raw in (("max", spec.max_value, spec.max), ("min", spec.min_value, spec.min)):
            if limit is None:
                continue
            # A string bound is a size with a unit (the config parsed it as one).
            if isinstance(raw, str) and metric not in SIZE_METRICS:
                problems.append(
                    f"{where}.{bound}: a unit applies to sizes in bytes only "
                    f"({', '.join(sorted(SIZE_METRICS))}); {metric!r} is not one: give a "
                    f"plain number in its own unit; got {raw!r}"
                )
                continue
            items.append(Constraint(metric, bound, limit, kind))  # type: ignore[arg-type]
    return items, problems


def _kind(metric: str, producers: Mapping[str, type[Runner]]) -> ConstraintKind | None:
    runner = producers.get(metric)
    if runner is not None:
        if runner.kind == "software":
            return "data"
        return "config" if runner.config_only else "measured"
    base = metric.removesuffix(DROP_SUFFIX)
    if metric.endswith(DROP_SUFFIX) and base in producers and producers[base].kind == "software":
        return "data"
    return None


def _unknown_constraint(metric: str, produced: Mapping[str, str], where: str) -> str:
    base = metric.removesuffix(DROP_SUFFIX)
    if metric.endswith(DROP_SUFFIX) and base in produced:
        return (
            f"{where}: {metric!r} is the drop from the float model, defined for software "
            f"metrics; {base!r} is a hardware metric: bound it directly "
            f"([search.strategy.constraints] {base}.max = ...)"
        )
    if metric.endswith(DROP_SUFFIX) and base and _producers(base):
        return _unknown_metric(base, produced, where=where, derived=metric)
    return _unknown_metric(metric, produced, where=where)
