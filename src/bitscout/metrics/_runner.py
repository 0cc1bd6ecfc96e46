"""The metric-runner extension point: candidates, the run context, the base and its registry."""

from __future__ import annotations

import abc
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, Literal

import pydantic
import torch
from torch import nn

from bitscout.config._mase import add_runner_name
from bitscout.errors import ConfigError, QuantConfigError

if TYPE_CHECKING:
    from bitscout.data import Dataset
    from bitscout.graph import TracedModel
    from bitscout.quant import LayerQuantConfig, Quantizer

__all__ = [
    "RunContext",
    "Candidate",
    "Runner",
    "RunnerKind",
    "register_runner",
    "get_runner",
    "runner_names",
]

RunnerKind = Literal["software", "hardware"]


@dataclass(frozen=True)
class RunContext:
    """What every runner of a search shares: the model, its data and where to run.

    Attributes:
        traced: The traced float model and its layer table. Runners never modify it.
        quantizer: Builds candidate models from per-layer configs (bound to ``traced``).
        dataset: The data set, held in memory as tensors.
        device: Where models and evaluation tensors live.
        batch_size: The search's batch size (the config's top-level ``batch_size``).
        seed: The search's seed; runners that draw random numbers derive theirs from it.
    """

    traced: TracedModel
    quantizer: Quantizer
    dataset: Dataset
    device: torch.device
    batch_size: int
    seed: int = 0


class Candidate:
    """One configuration under evaluation, and the model built from it on first use.

    The model is built by ``context.quantizer.build(config)`` the first time
    :attr:`model` is read, and at most once: hardware runners that only need the config
    never pay for a build. A :meth:`Runner.prepare` hook that changes the model (a
    fine-tune) returns a new candidate with :meth:`with_model`.

    Args:
        config: Node name -> layer config (``None``: the layer stays in floating point).
            A layer of the model missing from the mapping stays in floating point too.
        context: The run context the model is built in.
        model: An already built model for ``config`` (used by :meth:`with_model`).
        notes: Numbers a prepare hook measured on the way (``train_loss``), read back by
            its runner's :meth:`Runner.run`.

    Raises:
        QuantConfigError: The config names a node that is not a quantizable layer of the
            traced model.
    """

    def __init__(
        self,
        config: Mapping[str, LayerQuantConfig | None],
        context: RunContext,
        *,
        model: nn.Module | None = None,
        notes: Mapping[str, float] | None = None,
    ) -> None:
        table = context.traced.table
        unknown = [name for name in config if name not in table]
        if unknown:
            raise QuantConfigError(
                f"the config names {', '.join(repr(n) for n in unknown)}, which "
                f"{'is not a quantizable layer' if len(unknown) == 1 else 'are not quantizable layers'} "
                f"of the model; its layers are: {', '.join(table.names()) or '(none)'}"
            )
        self._config: Mapping[str, LayerQuantConfig | None] = MappingProxyType(dict(config))
        self._context = context
        self._model = model
        self._notes: Mapping[str, float] = MappingProxyType(dict(notes or {}))
        self._lock = threading.Lock()

    @classmethod
    def float_reference(cls, context: RunContext) -> Candidate:
        """The unquantized model: every layer in floating point."""
        return cls({name: None for name in context.traced.table.names()}, context)

    @property
    def config(self) -> Mapping[str, LayerQuantConfig | None]:
        """The per-layer config (read-only)."""
        return self._config

    @property
    def context(self) -> RunContext:
        """The run context the candidate belongs to."""
        return self._context

    @property
    def notes(self) -> Mapping[str, float]:
        """Numbers measured by prepare hooks (read-only)."""
        return self._notes

    @property
    def is_built(self) -> bool:
        """Whether the model exists yet."""
        return self._model is not None

    @property
    def model(self) -> nn.Module:
        """The model of this config, built on first access and then reused."""
        with self._lock:
            if self._model is None:
                self._model = self._context.quantizer.build(self._config)
            return self._model

    def layer_config(self, name: str) -> LayerQuantConfig | None:
        """The config of one layer (``None`` when it stays in floating point)."""
        return self._config.get(name)

    def with_model(self, model: nn.Module, *, notes: Mapping[str, float] | None = None) -> Candidate:
        """A candidate with the same config and a given model (for prepare hooks).

        Args:
            model: The model that replaces this candidate's (a fine-tuned copy).
            notes: Numbers to add to :attr:`notes`.
        """
        return Candidate(
            self._config, self._context, model=model, notes={**self._notes, **(notes or {})}
        )

    def __repr__(self) -> str:
        quantized = sum(cfg is not None for cfg in self._config.values())
        return f"Candidate({quantized} of {len(self._context.traced.table)} layers quantized)"


class Runner(abc.ABC):
    """Measures metrics of a candidate: one extension point, two kinds.

    The contract, for every runner:

    * ``name`` is the key of its table in the config
      (``[search.strategy.sw_runner.basic_evaluation]``), ``kind`` says which table:
      ``"software"`` (``sw_runner``: measured on data) or ``"hardware"`` (``hw_runner``:
      costs, computed from the layer table or measured on the device).
    * ``Options`` is a pydantic model (``extra="forbid"``) of the options in that table;
      :func:`bitscout.metrics.build_runners` validates them before the runner is made.
    * ``metrics`` lists the metric names the runner reports; :meth:`produces` returns
      them for an instance (override it only if the options change the list). Metrics
      named in ``maximize`` are better when larger, every other one when smaller: that
      is the direction a ``[search.strategy.metrics]`` entry gets when it names none.
      ``constant_under_quantization`` lists metrics that are the same for every
      quantization config of one architecture (FLOPs of the float model).
      ``requires`` names runners that :func:`bitscout.metrics.build_runners` adds with
      their default options when the config does not name them.
    * :meth:`run` returns exactly the metrics of :meth:`produces`, as floats, computed
      fresh for this candidate: nothing may accumulate from one call to the next, and
      the same candidate measured twice gives the same numbers (latency aside).
    * A hardware runner also reports each of its metrics as ``<metric>_ratio``, its
      value over the unquantized float model's, so that metrics of different scales
      can share a sum.
    * :meth:`prepare` may replace the candidate before any runner measures it (a
      fine-tune); it must not modify the shared float model or the candidate it gets.
    * Runners may be called from several threads at once (Optuna's ``n_jobs``): state
      set in ``__init__`` is read-only afterwards, or guarded.

    Args:
        options: The validated options (an instance of :attr:`Options`).
        context: The run context shared by every runner of the search.
    """

    name: ClassVar[str]
    kind: ClassVar[RunnerKind]
    metrics: ClassVar[tuple[str, ...]]
    maximize: ClassVar[frozenset[str]] = frozenset()
    constant_under_quantization: ClassVar[frozenset[str]] = frozenset()
    requires: ClassVar[tuple[str, ...]] = ()

    class Options(pydantic.BaseModel):
        """Options of a runner that takes none."""

        model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    def __init__(self, options: pydantic.BaseModel, context: RunContext) -> None:
        if not isinstance(options, type(self).Options):
            raise TypeError(
                f"runner {self.name!r} takes a {type(self).__qualname__}.Options; got "
                f"{type(options).__qualname__} (validate options with validate_runner_options)"
            )
        self.options = options
        self.context = context

    def produces(self) -> tuple[str, ...]:
        """Names of the metrics :meth:`run` returns."""
        return self.metrics

    def prepare(self, candidate: Candidate) -> Candidate:
        """Replace the candidate before it is measured; by default, keep it."""
        return candidate

    @abc.abstractmethod
    def run(self, candidate: Candidate) -> dict[str, float]:
        """Measure the candidate.

        Returns:
            Metric name -> value, for exactly the names of :meth:`produces`.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"


_REGISTRY: dict[str, type[Runner]] = {}


def register_runner(cls: type[Runner]) -> type[Runner]:
    """Make a runner class available by its ``name`` (usable as a class decorator).

    Raises:
        ValueError: Another class already has that name.
    """
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"a runner named {cls.name!r} is already registered ({existing.__qualname__})")
    _REGISTRY[cls.name] = cls
    # Configs validate runner names before any runner is built: tell them of this one.
    add_runner_name("sw" if cls.kind == "software" else "hw", cls.name)
    return cls


def runner_names(kind: RunnerKind | None = None) -> list[str]:
    """Names of the registered runners (of one kind, when given), sorted."""
    return sorted(name for name, cls in _REGISTRY.items() if kind is None or cls.kind == kind)


def get_runner(name: str, kind: RunnerKind | None = None) -> type[Runner]:
    """Look a runner class up by name.

    Args:
        name: The runner's name.
        kind: When given, the runner must be of this kind.

    Raises:
        ConfigError: No runner has that name, or it is of the other kind (the message
            lists what is available).
    """
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(
            f"unknown {kind + ' ' if kind else ''}runner {name!r}; available: "
            f"{', '.join(runner_names(kind)) or '(none)'}"
        )
    if kind is not None and cls.kind != kind:
        table = "sw_runner" if cls.kind == "software" else "hw_runner"
        raise ConfigError(
            f"{name!r} is a {cls.kind} runner, not a {kind} one; configure it under "
            f"[search.strategy.{table}.{name}]"
        )
    return cls


def _producers(metric: str) -> list[str]:
    """Registered runners whose class declares ``metric`` (for suggestions)."""
    return sorted(name for name, cls in _REGISTRY.items() if metric in cls.metrics)


def _all_metrics() -> list[str]:
    """Every metric some registered runner declares, sorted (for suggestions)."""
    return sorted({metric for cls in _REGISTRY.values() for metric in cls.metrics})
