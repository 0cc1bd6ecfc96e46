"""The objective: trial metrics -> the value(s) the strategy optimizes."""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bitscout.errors import ConfigError, did_you_mean
from bitscout.metrics._runner import RunnerKind, _all_metrics, _producers, get_runner, runner_names
from bitscout.metrics._runner_set import RunnerSet, TrialMetrics

if TYPE_CHECKING:
    from bitscout.config import StrategyConfig

__all__ = ["MetricWarning", "ObjectiveTerm", "ObjectiveResult", "Objective"]

Direction = Literal["maximize", "minimize"]

#: A scaled term this many times larger than every other one dominates a sum.
DOMINANCE_FACTOR = 100.0


class MetricWarning(UserWarning):
    """An objective that runs but probably does not do what its author meant."""


@dataclass(frozen=True)
class ObjectiveTerm:
    """One metric of the objective.

    Attributes:
        metric: The metric's name in ``[search.strategy.metrics]``.
        scale: Its factor.
        direction: The direction in which the metric gets better (given, or natural).
        normalize: Whether the ratio to the float model is used instead of the value.
        kind: Whether a software or a hardware runner produces it.
        sign: +1, or -1 when the metric enters a sum whose direction is opposite to its own.
        reference: The float model's value of a normalized software metric (the
            denominator of its ratio); ``None`` otherwise.
    """

    metric: str
    scale: float
    direction: Direction
    normalize: bool
    kind: RunnerKind
    sign: float = 1.0
    reference: float | None = None

    def raw(self, metrics: TrialMetrics | Mapping[str, float]) -> float:
        """The metric's value (or its ratio to the float model) in one trial."""
        if not self.normalize:
            return metrics[self.metric]
        if self.reference is not None:
            return metrics[self.metric] / self.reference
        return metrics[f"{self.metric}_ratio"]

    def scaled(self, metrics: TrialMetrics | Mapping[str, float]) -> float:
        """``sign * scale * raw``."""
        return self.sign * self.scale * self.raw(metrics)


@dataclass(frozen=True)
class ObjectiveResult:
    """What the objective makes of one trial.

    Attributes:
        values: One value per direction of :attr:`Objective.directions`.
        scaled: Metric name -> its signed, scaled term.
    """

    values: tuple[float, ...]
    scaled: dict[str, float]


class Objective:
    """Turns a trial's metrics into the value(s) a study optimizes.

    Summed (``sum_scaled_metrics = true``): one value, ``sum(sign * scale * metric)``,
    optimized in the study's direction; a metric whose own direction is opposite enters
    with a minus sign, so that a cost lowers the score of a maximize study. MASE adds
    every term with a plus sign, which in a maximize study rewards more bits.
    Not summed: one value ``scale * metric`` per metric, each in its own direction (a
    Pareto search).

    A normalized metric (``normalize = true``) uses its ratio to the unquantized float
    model: the hardware runners report ``<metric>_ratio`` themselves; for a software
    metric the float model is measured once, when the objective is made.

    Args:
        terms: The metrics, in the config's order.
        sum_scaled: Whether the terms are summed into one value.
        direction: The direction of the sum (ignored when not summed).
    """

    def __init__(
        self, terms: Sequence[ObjectiveTerm], *, sum_scaled: bool, direction: Direction
    ) -> None:
        if not terms:
            raise ConfigError("an objective needs at least one metric")
        self.terms = tuple(terms)
        self.sum_scaled = sum_scaled
        self.direction = direction
        self._checked = False
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        strategy_cfg: StrategyConfig,
        runner_set: RunnerSet,
        *,
        changes_architecture: bool = False,
    ) -> Objective:
        """Build the objective of ``[search.strategy.metrics]`` and ``setup``.

        Args:
            strategy_cfg: The strategy config (``metrics``, ``setup.sum_scaled_metrics``,
                ``setup.direction``).
            runner_set: The configured runners; every metric must be one they produce.
            changes_architecture: Whether the search space changes the architecture
                (then FLOPs can differ between candidates).

        Raises:
            ConfigError: No metric is named, a metric is not produced by any configured
                runner (the message lists what they produce), or a metric cannot be
                normalized.
        """
        setup = strategy_cfg.setup
        specs = strategy_cfg.metrics
        if not specs:
            raise ConfigError(
                "search.strategy.metrics: no metric to optimize; name at least one, e.g. "
                "[search.strategy.metrics.accuracy] with scale = 1.0"
            )
        produced = runner_set.produces()
        problems = [
            _unknown_metric(name, runner_set) for name in specs if name not in produced
        ]
        if problems:
            raise ConfigError("\n".join(problems))

        study_direction: Direction = setup.direction
        terms: list[ObjectiveTerm] = []
        for name, spec in specs.items():
            where = f"search.strategy.metrics.{name}"
            direction: Direction = spec.direction or runner_set.natural_direction(name)
            kind = runner_set.kind_of(name)
            reference: float | None = None
            if spec.normalize:
                if kind == "software":
                    reference = runner_set.reference().software[name]
                    if reference == 0 or not math.isfinite(reference):
                        raise ConfigError(
                            f"{where}.normalize: the float model's {name} is {reference}, so "
                            "there is no ratio to it; set normalize = false and choose a scale"
                        )
                elif f"{name}_ratio" not in produced:
                    raise ConfigError(
                        f"{where}.normalize: {name!r} is already a ratio to the float model "
                        f"(or has none); set normalize = false"
                    )
            sign = 1.0 if not setup.sum_scaled_metrics or direction == study_direction else -1.0
            terms.append(
                ObjectiveTerm(
                    metric=name,
                    scale=float(spec.scale),
                    direction=direction,
                    normalize=spec.normalize,
                    kind=kind,
                    sign=sign,
                    reference=reference,
                )
            )
        objective = cls(terms, sum_scaled=setup.sum_scaled_metrics, direction=study_direction)
        objective._warn_about_config(runner_set, changes_architecture=changes_architecture)
        return objective

    @property
    def directions(self) -> list[str]:
        """One direction per objective value (what the Optuna study is created with)."""
        if self.sum_scaled:
            return [self.direction]
        return [term.direction for term in self.terms]

    @property
    def metric_names(self) -> list[str]:
        """The metrics the objective reads, in order."""
        return [term.metric for term in self.terms]

    def evaluate(self, metrics: TrialMetrics | Mapping[str, float]) -> ObjectiveResult:
        """The objective value(s) and the scaled terms of one trial.

        The first call with finite values also warns (once) when one scaled term of a
        sum is more than 100 times larger than every other one: the others then hardly
        matter.
        """
        scaled = {term.metric: term.scaled(metrics) for term in self.terms}
        if self.sum_scaled:
            values: tuple[float, ...] = (math.fsum(scaled.values()),)
        else:
            values = tuple(scaled.values())
        if all(map(math.isfinite, scaled.values())):  # a failed trial says nothing of scales
            with self._lock:
                first, self._checked = not self._checked, True
            if first:
                self.check_scales(scaled)
        return ObjectiveResult(values=values, scaled=scaled)

    def values(self, metrics: TrialMetrics | Mapping[str, float]) -> list[float]:
        """The objective value(s) of one trial (see :meth:`evaluate`)."""
        return list(self.evaluate(metrics).values)

    def check_scales(self, scaled: Mapping[str, float]) -> bool:
        """Warn when one term of a sum is more than 100 times every other one.

        Args:
            scaled: Metric name -> signed scaled term (:attr:`ObjectiveResult.scaled`).

        Returns:
            Whether it warned.
        """
        live = {name: abs(v) for name, v in scaled.items() if self._term(name).scale != 0}
        if not self.sum_scaled or len(live) < 2 or not all(map(math.isfinite, live.values())):
            return False
        ranked = sorted(live.items(), key=lambda item: item[1], reverse=True)
        (top, top_value), (_, second_value) = ranked[0], ranked[1]
        if top_value <= DOMINANCE_FACTOR * second_value:
            return False
        others = ", ".join(f"{name} = {scaled[name]:.4g}" for name, _ in ranked[1:])
        second = ranked[1][0]
        term = self._term(top)
        # normalize only helps a metric whose own values are large (bitops in the
        # millions); accuracy in 0..1 stays about the same as a ratio to the float model.
        large = not term.normalize and top_value / term.scale > 1.0
        hint = (
            f"{'set normalize = true or ' if large else ''}lower its scale in "
            f"[search.strategy.metrics.{top}], or raise the scale of {second} in "
            f"[search.strategy.metrics.{second}]"
        )
        warnings.warn(
            f"the scaled metric {top} = {scaled[top]:.4g} is more than "
            f"{DOMINANCE_FACTOR:g} times every other term of the sum ({others}), so the "
            f"others hardly change the ranking; {hint}",
            MetricWarning,
            stacklevel=2,
        )
        return True

    def _term(self, name: str) -> ObjectiveTerm:
        return next(term for term in self.terms if term.metric == name)

    def _warn_about_config(self, runner_set: RunnerSet, *, changes_architecture: bool) -> None:
        if self.sum_scaled:
            # A term scaled by 0 takes no part in the ranking, whatever its sign.
            opposite = [term.metric for term in self.terms if term.sign < 0 and term.scale != 0]
            if opposite:
                warnings.warn(
                    f"{', '.join(opposite)} {'is' if len(opposite) == 1 else 'are'} to be "
                    f"{'minimized' if self.direction == 'maximize' else 'maximized'} while the "
                    f"study is to {self.direction} the sum, so bitscout subtracts "
                    f"{'it' if len(opposite) == 1 else 'them'}; MASE adds every scaled metric "
                    "with a plus sign (in a maximize study that rewards more bits), so "
                    "bitscout's ranking differs from MASE's for this config",
                    MetricWarning,
                    stacklevel=3,
                )
        if not changes_architecture:
            constant = [
                term.metric
                for term in self.terms
                if runner_set.is_constant_under_quantization(term.metric)
            ]
            if constant:
                warnings.warn(
                    f"{', '.join(constant)} {'is' if len(constant) == 1 else 'are'} the same "
                    "for every candidate of a quantization-only search (quantization does not "
                    "change the float model's operations), so it cannot change the ranking; "
                    "it only shifts every objective value by the same amount",
                    MetricWarning,
                    stacklevel=3,
                )


def _unknown_metric(
    name: str,
    runner_set: RunnerSet | Mapping[str, str],
    *,
    where: str | None = None,
    derived: str | None = None,
) -> str:
    """Why no configured runner gives ``name``, and which runner would.

    Args:
        name: The metric.
        runner_set: The configured runners, or what they produce (metric -> runner name).
        where: The TOML path named (default: ``search.strategy.metrics.<name>``).
        derived: A metric computed from ``name`` that was asked for (``accuracy_drop``).
    """
    where = where or f"search.strategy.metrics.{name}"
    by_runner: dict[str, list[str]] = {}
    produced = runner_set.produces() if isinstance(runner_set, RunnerSet) else runner_set
    for metric, runner in produced.items():
        by_runner.setdefault(runner, []).append(metric)
    configured = "; ".join(
        f"{', '.join(metrics)} ({runner})" for runner, metrics in by_runner.items()
    ) or "nothing (no runner is configured)"
    message = (
        f"{where}: no configured runner produces the metric {name!r}"
        + (f" (which {derived!r} is computed from)" if derived else "")
        + "; "
        f"the configured runners produce: {configured}"
    )
    providers = _producers(name)
    if providers:
        runner = get_runner(providers[0])
        table = "sw_runner" if runner.kind == "software" else "hw_runner"
        return f"{message}; to measure it, add [search.strategy.{table}.{runner.name}]"
    hint = did_you_mean(name, _all_metrics())
    hint = f"; {hint}" if hint else ""
    return (
        f"{message}; no bitscout runner produces it (runners: {', '.join(runner_names())}){hint}"
    )
