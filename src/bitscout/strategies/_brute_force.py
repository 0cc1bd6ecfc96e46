"""Brute force: every distinct configuration of the space exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from pydantic import Field

from bitscout._optuna_adapter import n_trials as count_trials
from bitscout.errors import ConfigError, SearchError
from bitscout.space import SearchSpace
from bitscout.strategies._base import (
    OPTIONS_PATH,
    Exhaustible,
    Strategy,
    StrategyOptions,
    register_strategy,
)

__all__ = ["BruteForceStrategy", "BruteForceSampler", "SeededPermutation"]

_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finalizer: a well-mixed 64-bit hash of a 64-bit integer."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class SeededPermutation:
    """A seeded bijection of ``range(n)``, computed per element (no array of size n).

    A balanced Feistel network over the smallest ``2^(2h) >= n`` (a bijection of that
    range for any round function), restricted to ``range(n)`` by cycle walking: apply it
    again until the value falls below ``n`` (fewer than 4 times on average, since
    ``2^(2h) < 4n``). The same ``(n, seed)`` gives the same permutation on every machine.

    Args:
        n: Size of the range (at least 1).
        seed: Any integer.
        rounds: Feistel rounds.
    """

    def __init__(self, n: int, seed: int, rounds: int = 6) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1; got {n}")
        self.n = n
        self._half = max(1, ((n - 1).bit_length() + 1) // 2)
        self._mask = (1 << self._half) - 1
        base = _mix(seed & _MASK64)
        self._keys = tuple(_mix(base ^ (r * 0x9E3779B97F4A7C15 & _MASK64)) for r in range(rounds))

    def _round_trip(self, x: int) -> int:
        left, right = x >> self._half, x & self._mask
        for key in self._keys:
            left, right = right, left ^ (_mix(right ^ key) & self._mask)
        return (left << self._half) | right

    def __call__(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(f"index must be in 0..{self.n - 1}; got {i}")
        x = self._round_trip(i)
        while x >= self.n:
            x = self._round_trip(x)
        return x

    def __len__(self) -> int:
        return self.n


class BruteForceSampler(optuna.samplers.BaseSampler, Exhaustible):
    """Hands out every distinct configuration of a space exactly once, then stops.

    Order: trial ``n`` gets distinct configuration ``order(n)`` of
    :meth:`SearchSpace.distinct_params_at`, where ``order`` is the identity (the
    space's index order: first parameter slowest, vectors that build the same model
    counted once) or, with ``shuffle``, a :class:`SeededPermutation`. Because Optuna
    gives every trial of a study a unique ``number`` (atomically, also across processes
    that share a storage), several workers never receive the same configuration in this
    main pass, without talking to each other.

    After the main pass (``trial.number >= distinct_size``) the sampler reads the study:
    configurations that no trial completed, that are not running, and whose trials have
    failed at most ``retry_failed`` times (or that were never handed out, e.g. because
    the study started with another sampler) are handed out again, one by one in the
    same order. When none is left the sampler is exhausted. (A retry handed out in the
    instant before another worker's retry of the same configuration records its
    parameters can be evaluated twice; the main pass has no such window.)

    Contract with the study loop (``bitscout.study``):

    * Suggest exactly ``space.distributions()`` in every trial; the sampler answers them
      through ``sample_relative``.
    * Before asking for a trial, call :meth:`is_exhausted` and stop when it is True. Inside
      ``study.optimize`` the sampler also calls ``study.stop()`` once exhausted.
    * Should a trial be asked for anyway once nothing is left (a worker racing the
      others to the end), it receives a configuration that is already completed, so the
      loop's duplicate check answers it from the stored result without evaluating it.
    * ``n_trials`` still caps the study; a capped shuffled run is a sample without
      replacement.

    Args:
        space: The search space.
        seed: Seed of the shuffle (required when ``shuffle`` is True, so that every
            worker computes the same order).
        shuffle: Visit the configurations in a seeded random order.
        retry_failed: How many more times a configuration whose trial failed is handed
            out after the main pass.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int | None = None,
        shuffle: bool = False,
        retry_failed: int = 1,
    ) -> None:
        if shuffle and seed is None:
            raise ConfigError(
                f"{OPTIONS_PATH}.shuffle: a shuffled brute force needs a seed "
                "(search.strategy.setup.seed) so that every worker follows the same "
                "order; got shuffle = true with no seed"
            )
        self._space = space
        self._n = space.distinct_size
        self._perm = SeededPermutation(self._n, seed) if shuffle and seed is not None else None
        self._retry_failed = retry_failed
        self._distributions = space.distributions()
        self._lock = threading.Lock()
        self._index_cache: dict[int, int | None] = {}
        self._handed: dict[int, int] = {}

    @property
    def space(self) -> SearchSpace:
        """The space being enumerated."""
        return self._space

    @property
    def total(self) -> int:
        """Distinct configurations in the main pass."""
        return self._n

    def order(self, position: int) -> int:
        """The distinct-configuration index handed out at main-pass ``position``."""
        if self._perm is None:
            if not 0 <= position < self._n:
                raise IndexError(f"position must be in 0..{self._n - 1}; got {position}")
            return position
        return self._perm(position)

    def params_for(self, position: int) -> dict[str, Any]:
        """The parameters trial ``position`` receives in the main pass."""
        return self._space.distinct_params_at(self.order(position))

    # -- Optuna's sampler interface ----------------------------------------------------

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        number = trial.number
        if number < self._n:
            return self.params_for(number)
        with self._lock:
            pending, completed = self._scan(study.get_trials(deepcopy=False), exclude=number)
            if pending:
                index = pending[0]
            elif completed:
                index = completed[0]
            else:
                index = self.order((number - self._n) % self._n)
            self._handed[number] = index
        return self._space.distinct_params_at(index)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        raise SearchError(
            f"brute_force enumerates its search space only; the trial asked for "
            f"parameter {param_name!r} ({param_distribution}), which the space does not have "
            f"(its parameters: {', '.join(self._distributions) or '(none)'})"
        )

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._handed.pop(trial.number, None)
        # Optuna stores the trial's state only after this hook: pass it along.
        if trial.number + 1 >= self._n and self._exhausted(study, (trial, state)):
            try:
                study.stop()
            except RuntimeError:
                pass  # Outside study.optimize (ask-and-tell): the loop asks is_exhausted.

    # -- exhaustion --------------------------------------------------------------------

    def is_exhausted(self, study: optuna.Study) -> bool:
        """True when no configuration is left to hand out in ``study``.

        Cheap during the main pass (one count of the study's trials); afterwards it reads
        the study's trials. Configurations of running trials count as handed out.
        """
        return self._exhausted(study, None)

    def _exhausted(
        self, study: optuna.Study, finishing: tuple[FrozenTrial, TrialState] | None
    ) -> bool:
        # A count, not get_trials(): an RDB storage answers it with one COUNT query.
        if count_trials(study) < self._n:
            return False
        with self._lock:
            trials = study.get_trials(deepcopy=False)
            pending, _ = self._scan(trials, exclude=None, finishing=finishing)
            return not pending

    def _trial_index(self, trial: FrozenTrial) -> int | None:
        """The configuration a trial holds or was given; None if not known yet."""
        if trial.number in self._index_cache:
            return self._index_cache[trial.number]
        try:
            index: int | None = self._space.distinct_index_of(trial.params)
        except SearchError:
            # No parameters yet (or not ours): a main-pass trial's configuration is
            # known from its number all the same.
            index = self.order(trial.number) if trial.number < self._n else None
        if trial.state.is_finished():
            self._index_cache[trial.number] = index
        return index

    def _scan(
        self,
        trials: list[FrozenTrial],
        *,
        exclude: int | None,
        finishing: tuple[FrozenTrial, TrialState] | None = None,
    ) -> tuple[list[int], list[int]]:
        """(configurations still to hand out, completed ones), both in visiting order."""
        completed: set[int] = set()
        busy: set[int] = set()
        failures: Counter[int] = Counter()
        for t in trials:
            if t.number == exclude:
                continue
            state = t.state
            if finishing is not None and t.number == finishing[0].number:
                t, state = finishing
            index = self._trial_index(t)
            if index is None:
                continue
            if state in (TrialState.COMPLETE, TrialState.PRUNED):
                completed.add(index)
            elif state == TrialState.FAIL:
                failures[index] += 1
            else:
                busy.add(index)
        busy.update(i for number, i in self._handed.items() if number != exclude)
        pending = []
        done = []
        for position in range(self._n):
            index = self.order(position)
            if index in completed:
                done.append(index)
            elif index not in busy and failures[index] <= self._retry_failed:
                pending.append(index)
        return pending, done


@register_strategy
class BruteForceStrategy(Strategy):
    """Every distinct configuration exactly once (see :class:`BruteForceSampler`).

    A space of more than ``max_configs`` distinct configurations is refused, saying its
    size, unless ``n_trials`` is at most ``max_configs`` (then only ``n_trials``
    configurations are visited, in order or shuffled).
    """

    name = "brute_force"
    summary = "every configuration exactly once (optionally shuffled); any objectives"

    class Options(StrategyOptions):
        """Options of ``brute_force``.

        Attributes:
            shuffle: Visit configurations in a seeded random order (False: index order).
            max_configs: Largest space accepted without an ``n_trials`` cap (1,000,000).
            retry_failed: Extra attempts for a configuration whose trial failed (1).
        """

        shuffle: bool = False
        max_configs: int = Field(1_000_000, ge=1)
        retry_failed: int = Field(1, ge=0)

    def build_sampler(
        self,
        space: SearchSpace,
        options: BruteForceStrategy.Options,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        total = space.distinct_size
        capped = n_trials is not None and n_trials <= options.max_configs
        if total > options.max_configs and not capped:
            counted = (
                f"{total:,} distinct configurations"
                if total == space.size
                else f"{total:,} distinct configurations ({space.size:,} parameter combinations)"
            )
            raise SearchError(
                f"brute_force: the search space has {counted}, more than "
                f"{OPTIONS_PATH}.max_configs = {options.max_configs:,}. Set "
                f"search.strategy.setup.n_trials to at most {options.max_configs:,} to "
                "visit only that many (with sampler_options.shuffle = true for a random "
                "sample), raise max_configs, or use fewer choices"
                + (f" (n_trials is {n_trials:,})" if n_trials is not None else "")
                + "."
            )
        return BruteForceSampler(
            space, seed=seed, shuffle=options.shuffle, retry_failed=options.retry_failed
        )
