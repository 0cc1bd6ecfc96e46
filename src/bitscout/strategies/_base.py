"""The strategy contract (:class:`Strategy`), its options, and the registry."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import optuna
import pydantic
from pydantic import BaseModel, ConfigDict

from bitscout.errors import ConfigError, SearchError, did_you_mean

if TYPE_CHECKING:
    from bitscout.space import SearchSpace

__all__ = [
    "Strategy",
    "StrategyOptions",
    "Exhaustible",
    "OPTIONS_PATH",
    "DIRECTIONS",
    "register_strategy",
    "get_strategy",
    "strategy_names",
]

OPTIONS_PATH = "search.strategy.setup.sampler_options"
"""TOML path of a strategy's options, for messages."""

DIRECTIONS = ("maximize", "minimize")

_REGISTRY: dict[str, type[Strategy]] = {}

# Names MASE configs and users have written for a registered strategy.
_ALIASES = {"brute": "brute_force", "bruteforce": "brute_force"}


class StrategyOptions(BaseModel):
    """Base of every strategy's options model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Exhaustible(abc.ABC):
    """A sampler that can run out of configurations (brute force).

    The study loop asks :meth:`is_exhausted` before each new trial and stops when it
    is True (``isinstance(sampler, Exhaustible)`` tells the samplers that can run out).
    """

    @abc.abstractmethod
    def is_exhausted(self, study: optuna.Study) -> bool:
        """True when the sampler has nothing left to hand out in ``study``."""


class Strategy(abc.ABC):
    """A way of proposing configurations of a search space: an Optuna sampler factory.

    The contract, the same for every strategy (and checked for each registered one by
    ``tests/strategies/test_contract.py``):

    * ``name`` is the short registry name (``"tpe"``, ``"brute_force"``); it is what the
      TOML gives as ``search.strategy.setup.sampler`` (with ``search.strategy.name =
      "optuna"``) or as ``search.strategy.name``.
    * ``Options`` is a :class:`StrategyOptions` model (pydantic, ``extra="forbid"``) of
      the strategy's own options, read from ``search.strategy.setup.sampler_options``;
      an empty mapping gives the documented defaults.
    * :meth:`make_sampler` returns a **new** ``optuna.samplers.BaseSampler`` for one
      study over ``space``. The study loop creates the study with it
      (``optuna.create_study(sampler=..., directions=directions)``) and suggests exactly
      ``space.distributions()`` in every trial (``trial.suggest_categorical(name,
      dist.choices)``); every proposal is then a member of the space. The sampler may
      use the study's storage and ``trial.number`` (unique per study, also across
      worker processes sharing a storage), and must not rely on the loop beyond this.
    * The same ``seed`` gives the same proposals for the same sequence of results (in
      one process, with ``n_jobs = 1``). ``seed=None`` draws a fresh one.
    * ``max_objectives`` says how many objectives it supports (None: any);
      :meth:`unavailable_reason` says why it cannot run at all (a missing package, a
      space it cannot model). In either case :meth:`make_sampler` raises
      :class:`bitscout.errors.SearchError` saying why and what to use instead.
    * Options that break the model's rules raise :class:`bitscout.errors.ConfigError`
      naming ``search.strategy.setup.sampler_options.<key>``, the rule and the value.
    * A strategy that can run out of configurations returns a sampler that is also
      :class:`Exhaustible`.

    To add a strategy, subclass, set ``name`` (and ``Options``), implement
    :meth:`build_sampler`, and call :func:`register_strategy` on the class: it then
    appears in :func:`strategy_names` and the contract test runs it.
    """

    name: ClassVar[str]
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    summary: ClassVar[str] = ""
    max_objectives: ClassVar[int | None] = None
    deprecated_options: ClassVar[Mapping[str, str]] = {}
    """Option -> why it is refused (an Optuna argument deprecated in the installed version)."""

    def make_sampler(
        self,
        space: SearchSpace,
        *,
        seed: int | None,
        directions: Sequence[str],
        options: Mapping[str, Any] | StrategyOptions,
        n_trials: int | None = None,
    ) -> optuna.samplers.BaseSampler:
        """Builds a sampler for one study over ``space``.

        Args:
            space: The search space.
            seed: Seed of the sampler's randomness; None for a fresh one.
            directions: ``"maximize"`` or ``"minimize"`` per objective (one for a summed
                objective, several for a Pareto search).
            options: The strategy's options (``search.strategy.setup.sampler_options``),
                as a mapping or an instance of :attr:`Options`.
            n_trials: Trials the study will run in total, if known; some strategies use
                it to size themselves (population sizes) or to accept a space they
                would otherwise refuse (brute force's ``max_configs``).

        Returns:
            A new sampler.

        Raises:
            ConfigError: An option is unknown or breaks its rule.
            SearchError: The strategy cannot run this search (too many objectives, a
                missing package, a space it cannot handle, a space too large).
        """
        opts = self.parse_options(options)
        dirs = tuple(directions)
        if not dirs or any(d not in DIRECTIONS for d in dirs):
            raise SearchError(
                f"directions must be one or more of {DIRECTIONS}; got {list(directions)!r}"
            )
        reason = self.unavailable_reason(space)
        if reason is not None:
            raise SearchError(f"sampler '{self.name}' cannot run this search: {reason}")
        if self.max_objectives is not None and len(dirs) > self.max_objectives:
            raise SearchError(
                f"sampler '{self.name}' supports at most {self.max_objectives} "
                f"objective(s); got {len(dirs)} ({', '.join(dirs)}). Use "
                "sum_scaled_metrics = true for one summed objective, or a multi-objective "
                "sampler such as 'nsgaii', 'tpe' or 'random'."
            )
        if n_trials is not None and n_trials < 1:
            raise SearchError(f"n_trials must be at least 1; got {n_trials}")
        return self.build_sampler(space, opts, seed=seed, directions=dirs, n_trials=n_trials)

    @abc.abstractmethod
    def build_sampler(
        self,
        space: SearchSpace,
        options: Any,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        """Builds the sampler from validated options (an instance of :attr:`Options`).

        Called by :meth:`make_sampler` after the checks; raise
        :class:`bitscout.errors.SearchError` or :class:`bitscout.errors.ConfigError`
        for what only the strategy can check.
        """

    def unavailable_reason(self, space: SearchSpace) -> str | None:
        """Why this strategy cannot search ``space`` at all (and what to use), or None."""
        return None

    def parse_options(
        self, options: Mapping[str, Any] | StrategyOptions, *, where: str = OPTIONS_PATH
    ) -> Any:
        """Validates options into :attr:`Options`.

        Raises:
            ConfigError: One line per problem: ``<where>.<key>: <rule>; got <value>``.
        """
        if isinstance(options, self.Options):
            return options
        if isinstance(options, StrategyOptions):
            raise ConfigError(
                f"{where}: options of type {type(options).__name__} given to strategy "
                f"'{self.name}', which takes {self.Options.__name__}"
            )
        problems = []
        raw = dict(options)
        for key in list(raw):
            if key in self.deprecated_options:
                problems.append(
                    f"{where}.{key}: not accepted by bitscout: {self.deprecated_options[key]}; "
                    f"got {raw.pop(key)!r}"
                )
        try:
            parsed = self.Options.model_validate(raw)
        except pydantic.ValidationError as err:
            problems.extend(self._describe(err, raw, where))
            parsed = None
        if problems:
            raise ConfigError("\n".join(problems))
        return parsed

    def _describe(
        self, err: pydantic.ValidationError, raw: Mapping[str, Any], where: str
    ) -> list[str]:
        fields = list(self.Options.model_fields)
        lines = []
        for error in err.errors():
            loc = ".".join(str(part) for part in error["loc"])
            path = f"{where}.{loc}" if loc else where
            value = error.get("input")
            if error["type"] == "extra_forbidden":
                hint = did_you_mean(loc, fields)
                hint = f"{hint} " if hint else ""
                accepted = ", ".join(fields) or "(none)"
                lines.append(
                    f"{path}: unknown option of sampler '{self.name}' ({hint}its options: "
                    f"{accepted}); got {value!r}"
                )
            else:
                msg = str(error["msg"])
                msg = msg.removeprefix("Value error, ")
                rule = msg[:1].lower() + msg[1:]
                if not loc:
                    value = dict(raw)
                lines.append(f"{path}: {rule}; got {value!r}")
        return lines


def _normalize(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return _ALIASES.get(key, key)


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Adds a strategy class to the registry (usable as a class decorator).

    Raises:
        ValueError: The class has no ``name``, or the name is taken by another class.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} must set the class attribute `name`")
    if name != _normalize(name):
        raise ValueError(f"strategy names are lower case with underscores; got {name!r}")
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"a strategy named {name!r} is already registered ({existing.__qualname__})"
        )
    _REGISTRY[name] = cls
    return cls


def strategy_names() -> list[str]:
    """Names of the registered strategies, sorted."""
    return sorted(_REGISTRY)


def get_strategy(name: str) -> Strategy:
    """A new instance of the strategy registered as ``name`` (case-insensitive).

    ``"brute"`` and ``"bruteforce"`` (spellings seen in MASE configs) mean
    ``"brute_force"``.

    Raises:
        ConfigError: No strategy has that name (lists the available ones and the
            nearest).
    """
    key = _normalize(name)
    cls = _REGISTRY.get(key)
    if cls is None:
        names = strategy_names()
        hint = did_you_mean(key, names, cutoff=0.5, sentence=True)
        hint = f" {hint}" if hint else ""
        raise ConfigError(
            f"unknown search strategy / sampler {name!r}.{hint} Available: {', '.join(names)}."
        )
    return cls()
