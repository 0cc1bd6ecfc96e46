"""The runners of one search, built from the config, and the typed record they produce."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pydantic

from bitscout.config._problems import describe_validation_error
from bitscout.errors import ConfigError, SearchError
from bitscout.metrics._runner import Candidate, RunContext, Runner, RunnerKind, get_runner

if TYPE_CHECKING:
    from bitscout.config import StrategyConfig
    from bitscout.quant import LayerQuantConfig

__all__ = ["TrialMetrics", "RunnerSet", "build_runners", "validate_runner_options", "validate_runners"]

_TABLE = {"software": "sw_runner", "hardware": "hw_runner"}


@dataclass(frozen=True)
class TrialMetrics:
    """The metrics of one trial, computed fresh for it.

    Attributes:
        software: Metrics measured on data (``accuracy``, ``loss``, ...).
        hardware: Costs (``average_bitwidth``, ``bitops``, ..., each with ``<name>_ratio``).
    """

    software: dict[str, float] = field(default_factory=dict)
    hardware: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Private copies: a record must not change when the dicts it was made from do.
        object.__setattr__(self, "software", {k: float(v) for k, v in self.software.items()})
        object.__setattr__(self, "hardware", {k: float(v) for k, v in self.hardware.items()})

    def __getitem__(self, name: str) -> float:
        if name in self.software:
            return self.software[name]
        if name in self.hardware:
            return self.hardware[name]
        raise KeyError(
            f"no metric {name!r} in this trial; it has: {', '.join(self.all()) or '(none)'}"
        )

    def __contains__(self, name: object) -> bool:
        return name in self.software or name in self.hardware

    def all(self) -> dict[str, float]:
        """Every metric in one dict (software first)."""
        return {**self.software, **self.hardware}

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{"software": {...}, "hardware": {...}}``, ready for JSON."""
        return {"software": dict(self.software), "hardware": dict(self.hardware)}


class RunnerSet:
    """The configured runners of a search, run in a fixed order for each candidate.

    :meth:`run` applies every runner's :meth:`Runner.prepare` hook (software runners
    first, in the configured order), then measures the prepared candidate with the
    software runners, then with the hardware runners.

    Args:
        runners: The runners; no two may produce a metric of the same name.
        context: The run context the runners were made with.

    Raises:
        ConfigError: Two runners produce a metric of the same name.
    """

    def __init__(self, runners: Sequence[Runner], context: RunContext) -> None:
        self.context = context
        self.software: tuple[Runner, ...] = tuple(r for r in runners if r.kind == "software")
        self.hardware: tuple[Runner, ...] = tuple(r for r in runners if r.kind == "hardware")
        self._producer: dict[str, Runner] = {}
        for runner in self.runners:
            for metric in runner.produces():
                other = self._producer.get(metric)
                if other is not None:
                    raise ConfigError(
                        f"runners {other.name!r} and {runner.name!r} both produce the metric "
                        f"{metric!r}; configure only one of them"
                    )
                self._producer[metric] = runner
        # What each runner must return, worked out once rather than per trial.
        self._expected = {runner: frozenset(runner.produces()) for runner in self.runners}
        self._reference: TrialMetrics | None = None
        self._reference_lock = threading.Lock()

    @property
    def runners(self) -> tuple[Runner, ...]:
        """Every runner, software ones first."""
        return self.software + self.hardware

    def produces(self) -> dict[str, str]:
        """Metric name -> name of the runner that produces it."""
        return {metric: runner.name for metric, runner in self._producer.items()}

    def producer(self, metric: str) -> Runner:
        """The runner that produces ``metric``.

        Raises:
            KeyError: No configured runner produces it.
        """
        return self._producer[metric]

    def kind_of(self, metric: str) -> RunnerKind:
        """Whether ``metric`` is a software or a hardware metric."""
        return self._producer[metric].kind

    def natural_direction(self, metric: str) -> Literal["maximize", "minimize"]:
        """The direction in which ``metric`` gets better (its runner's declaration)."""
        return "maximize" if metric in self._producer[metric].maximize else "minimize"

    def is_constant_under_quantization(self, metric: str) -> bool:
        """Whether ``metric`` is the same for every quantization config of the model."""
        return metric in self._producer[metric].constant_under_quantization

    def candidate(self, config: Mapping[str, LayerQuantConfig | None]) -> Candidate:
        """A new candidate for ``config`` in this set's context."""
        return Candidate(config, self.context)

    def run(self, candidate: Candidate | Mapping[str, LayerQuantConfig | None]) -> TrialMetrics:
        """Measure one candidate with every runner.

        Args:
            candidate: A candidate, or a per-layer config to make one from.

        Raises:
            SearchError: A runner returned other metrics than it declares.
        """
        if not isinstance(candidate, Candidate):
            candidate = self.candidate(candidate)
        for runner in self.runners:
            candidate = runner.prepare(candidate)
        software: dict[str, float] = {}
        for runner in self.software:
            software.update(self._checked(runner, runner.run(candidate)))
        hardware: dict[str, float] = {}
        for runner in self.hardware:
            hardware.update(self._checked(runner, runner.run(candidate)))
        return TrialMetrics(software=software, hardware=hardware)

    def config_metrics(self, config: Mapping[str, LayerQuantConfig | None]) -> dict[str, float]:
        """The metrics of the ``config_only`` runners: known without a model or data.

        What a trial that the configuration alone proves infeasible still records
        (``average_bitwidth``, ``model_size``, ... and their ratios), in microseconds.
        """
        candidate = self.candidate(config)
        metrics: dict[str, float] = {}
        for runner in self.runners:
            if runner.config_only:
                metrics.update(self._checked(runner, runner.run(candidate)))
        return metrics

    def reference(self) -> TrialMetrics:
        """The metrics of the unquantized model, measured exactly as a trial is.

        Computed on the first call and then reused. Prepare hooks run as for any trial
        (with ``basic_train``, the float model is fine-tuned the same way), so a ratio to
        the reference compares like with like.
        """
        with self._reference_lock:
            if self._reference is None:
                self._reference = self.run(Candidate.float_reference(self.context))
            return self._reference

    def _checked(self, runner: Runner, values: Mapping[str, float]) -> dict[str, float]:
        expected = self._expected[runner]
        if values.keys() != expected:
            raise SearchError(
                f"runner {runner.name!r} returned the metrics {sorted(values)} but declares "
                f"{sorted(expected)}; this is a bug in the runner"
            )
        return {name: float(values[name]) for name in runner.produces()}

    def __repr__(self) -> str:
        names = ", ".join(r.name for r in self.runners)
        return f"RunnerSet({names})"


def validate_runner_options(
    kind: RunnerKind, name: str, raw: Mapping[str, Any]
) -> tuple[type[Runner], pydantic.BaseModel]:
    """Look a runner up and validate its options with its ``Options`` model.

    Args:
        kind: ``"software"`` (``sw_runner`` table) or ``"hardware"`` (``hw_runner``).
        name: The runner's name (the table's key).
        raw: The options as read from the TOML table.

    Returns:
        The runner class and its validated options.

    Raises:
        ConfigError: Unknown runner, or bad options; one line per problem, naming its
            TOML path (``search.strategy.sw_runner.basic_evaluation.num_samples``), the
            rule and the value received.
    """
    where = f"search.strategy.{_TABLE[kind]}.{name}"
    try:
        cls = get_runner(name, kind)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    try:
        return cls, cls.Options.model_validate(dict(raw))
    except pydantic.ValidationError as exc:
        fields = list(cls.Options.model_fields)
        problems = describe_validation_error(exc, where, owner="this runner", fields=fields)
        raise ConfigError("\n".join(problems)) from None


def validate_runners(
    strategy_cfg: StrategyConfig,
) -> dict[str, tuple[type[Runner], pydantic.BaseModel]]:
    """Validate the options of every runner a strategy config names.

    Args:
        strategy_cfg: The ``[search.strategy]`` config (``sw_runners``, ``hw_runners``).

    Returns:
        Runner name -> its class and validated options, in the configured order
        (software runners first).

    Raises:
        ConfigError: Unknown runners or bad options: every problem at once, one per line.
    """
    chosen: dict[str, tuple[type[Runner], pydantic.BaseModel]] = {}
    problems: list[str] = []
    entries: tuple[tuple[RunnerKind, Mapping[str, Any]], ...] = (
        ("software", strategy_cfg.sw_runners),
        ("hardware", strategy_cfg.hw_runners),
    )
    for kind, tables in entries:
        for name, raw in tables.items():
            try:
                chosen[name] = validate_runner_options(kind, name, raw)
            except ConfigError as exc:
                problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return chosen


def build_runners(strategy_cfg: StrategyConfig, context: RunContext) -> RunnerSet:
    """Make the runners a strategy config names, with validated options.

    A runner that needs another to be useful (``basic_train`` fine-tunes, and
    ``basic_evaluation`` then measures the fine-tuned model) brings it in with its
    default options when the config does not name it: see :attr:`requires` of the
    runner class (:attr:`Runner.requires`).

    Args:
        strategy_cfg: The ``[search.strategy]`` config (``sw_runners``, ``hw_runners``).
        context: What the runners share.

    Raises:
        ConfigError: Unknown runners or bad options (every problem at once).
    """
    chosen = validate_runners(strategy_cfg)
    for cls, _ in list(chosen.values()):
        for needed in cls.requires:
            if needed not in chosen:
                needed_cls = get_runner(needed)
                chosen[needed] = (needed_cls, needed_cls.Options())
    return RunnerSet([cls(options, context) for cls, options in chosen.values()], context)
