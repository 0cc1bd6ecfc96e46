"""Sample efficiency: several strategies, several seeds, one space, one objective.

:func:`compare_strategies` runs every strategy with every seed as its own in-memory
Optuna study through :func:`bitscout.study.run_search` (the search's own ask/tell loop
and duplicate handling: a configuration already evaluated in that study is answered from
it and costs no evaluation). The objective is deterministic, so evaluations are shared
by all runs through a :class:`~bitscout.evaluation.CachedEvaluator` keyed by ``space.key``: the whole
comparison costs at most one evaluation per distinct configuration.

When the space has at most ``exact_limit`` distinct configurations, every one is
evaluated first, which gives the exact optimum (or Pareto front) and the exact mean
configuration value. Otherwise the "optimum" is the best value any run found, and the
mean is estimated from a uniform sample; the report says so.

The result is a :class:`Comparison` record: :meth:`Comparison.save` writes
``comparison.json``, ``comparison.md`` (the table and a plain-language reading generated
from the numbers) and ``best_so_far.png``; :meth:`Comparison.load` reads the JSON back.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from bitscout._atomic import atomic_path, atomic_write_text
from bitscout._optuna_adapter import hypervolume
from bitscout.compare._html import COMPARISON_HTML, render_comparison_html
from bitscout.config import PLOT_SOFTWARE
from bitscout.errors import SearchError
from bitscout.evaluation import (
    CachedEvaluator,
    Evaluation,
    Evaluator,
    ObjectiveEvaluator,
    RunnerEvaluator,
    TableEvaluator,
    exhaustive_support,
)
from bitscout.metrics import Constraints, RunnerSet
from bitscout.strategies import Exhaustible, get_strategy
from bitscout.report import write_html
from bitscout.study import pareto_front, run_search

__all__ = [
    "RunTrace",
    "seed_quantile",
    "StrategySummary",
    "Comparison",
    "compare_strategies",
    "format_comparison",
    "plot_best_so_far",
    "DEFAULT_BUDGETS",
    "DEFAULT_EXACT_LIMIT",
    "COMPARISON_JSON",
    "COMPARISON_MD",
    "BEST_SO_FAR_PNG",
]

DEFAULT_EXACT_LIMIT = 50_000
"""Largest number of distinct configurations enumerated for the exact optimum."""

DEFAULT_BUDGETS = (25, 50, 100, 200)
COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"
BEST_SO_FAR_PNG = "best_so_far.png"

# Strategy options used by a comparison unless the caller gives others: an unshuffled
# brute force visits the same order under every seed, which says nothing about seeds.
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {"brute_force": {"shuffle": True}}

# Two objective values closer than this (relative to the value range) are equal.
_TOLERANCE = 1e-12


# -- evaluations -------------------------------------------------------------------------


def _precompute(cache: CachedEvaluator, space: Any, runners: Any, *, progress: bool) -> str | None:
    """Answer the cache from one batched, prefix-sharing evaluation of the whole space.

    Applies when the runners are a :class:`bitscout.metrics.RunnerSet` that
    :func:`bitscout.evaluation.exhaustive_support` accepts (post-training evaluation);
    its results are bit-identical to evaluating each configuration alone. Each
    configuration is then charged an equal share of the batched evaluation's time.
    Returns a note for the report, or None when the runners are not supported.
    """
    if not isinstance(runners, RunnerSet) or not isinstance(cache.inner, ObjectiveEvaluator):
        return None
    if exhaustive_support(runners) is not None:
        return None
    table = TableEvaluator.from_runners(space, runners, cache.inner.objective, constraints=cache.inner.constraints)
    cache.use(table)
    if progress:
        print(f"evaluated {len(table.table):,} configurations at once in {table.seconds:.1f} s", flush=True)
    return (
        f"All {len(table.table):,} configurations were evaluated at once in {table.seconds:.1f} s "
        "(batched, sharing the work of common layer prefixes; bit-identical to one by one); "
        f"each evaluation is charged an equal share, {table.share_seconds * 1e3:.2f} ms."
    )


class _RunEvaluator(Evaluator):
    """The shared cache as one run sees it: records what each evaluation cost the run.

    ``charged`` holds, per evaluation the run asked for, what it cost when first made (as
    if the run had been alone); ``spent`` is the time of the evaluations made during
    this run (so that the loop's own time can be told apart).
    """

    def __init__(self, cache: CachedEvaluator) -> None:
        self.cache = cache
        self.charged: list[float] = []
        self.spent = 0.0

    @property
    def directions(self) -> list[str]:
        return self.cache.directions

    @property
    def objective_names(self) -> list[str]:
        return self.cache.objective_names

    def fingerprint(self) -> dict[str, Any]:
        return self.cache.fingerprint()

    @property
    def constraint_names(self) -> tuple[str, ...]:
        return self.cache.constraint_names

    def evaluate(self, config: Mapping[str, Any]) -> Evaluation:
        made = self.cache.evaluations
        start = time.perf_counter()
        entry = self.cache.evaluate(config)
        if self.cache.evaluations != made:
            self.spent += time.perf_counter() - start
        self.charged.append(entry.seconds)
        return entry


class _TimedSampler(optuna.samplers.BaseSampler):
    """Delegates to a sampler and adds up the time spent in it (see :func:`_timed`)."""

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner = inner
        self.seconds = 0.0

    def _timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._timed(self.inner.infer_relative_search_space, study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._timed(self.inner.sample_relative, study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._timed(self.inner.sample_independent, study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._timed(self.inner.before_trial, study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._timed(self.inner.after_trial, study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


class _TimedExhaustibleSampler(_TimedSampler, Exhaustible):
    """A timed sampler that can run out of configurations, as the one it wraps."""

    def __init__(self, inner: Exhaustible) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.exhaustible = inner

    def is_exhausted(self, study: optuna.Study) -> bool:
        return self._timed(self.exhaustible.is_exhausted, study)


def _timed(sampler: optuna.samplers.BaseSampler) -> _TimedSampler:
    """``sampler`` with its time counted; Exhaustible when it is (the loop stops on it)."""
    if isinstance(sampler, Exhaustible):
        return _TimedExhaustibleSampler(sampler)
    return _TimedSampler(sampler)


# -- records -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTrace:
    """One strategy run with one seed: what each trial got.

    Attributes:
        strategy: Registry name.
        seed: The sampler's seed.
        values: Per trial, its objective values (empty for a failed trial).
        duplicate: Per trial, whether it repeated a configuration of the same run.
        sampler_s: Time spent inside the sampler (its own cost).
        evaluation_s: Evaluation time of the run's unique evaluations, each at what it
            cost when first made (what the run would have spent alone).
        loop_s: The rest of the loop's time (storage, bookkeeping, cache lookups).
        stop_reason: Why the run stopped.
        feasible: Per trial, whether it met every constraint (empty: no constraints).
        skipped: Per trial, whether its configuration alone proved it infeasible, so
            that it was never evaluated (empty: no constraints).
    """

    strategy: str
    seed: int
    values: list[list[float]]
    duplicate: list[bool]
    sampler_s: float
    evaluation_s: float
    loop_s: float
    stop_reason: str = ""
    feasible: list[bool] = field(default_factory=list)
    skipped: list[bool] = field(default_factory=list)

    @property
    def n_trials(self) -> int:
        return len(self.values)

    @property
    def wall_s(self) -> float:
        """Sampler, loop and evaluation time together (as if run alone)."""
        return self.sampler_s + self.evaluation_s + self.loop_s

    def unique_counts(self) -> list[int]:
        """Per trial, the unique evaluations made up to and including it (skipped
        configurations are not evaluations)."""
        out, count = [], 0
        skipped = self.skipped or [False] * len(self.values)
        for dup, skip in zip(self.duplicate, skipped):
            count += not dup and not skip
            out.append(count)
        return out

    def counted_values(self) -> list[list[float]]:
        """Per trial, its values when it counts for the optimum (feasible), else empty."""
        if not self.feasible:
            return self.values
        return [vals if ok else [] for vals, ok in zip(self.values, self.feasible)]


@dataclass(frozen=True)
class StrategySummary:
    """The numbers of one strategy over every seed.

    ``None`` in a per-seed list means that seed never reached the optimum within the
    budget. Medians and 90th percentiles count such seeds as infinitely late: they are
    None when more than half (a tenth) of the seeds did not reach it.

    Attributes:
        strategy: Registry name.
        seeds: Seeds run.
        trials_to_optimum: Per seed, trials until the best value equalled the optimum
            (for several objectives: until the found front's hypervolume equalled the
            true front's).
        unique_to_optimum: Per seed, unique evaluations until then.
        regret: Budget (trials) -> median regret over seeds at that budget.
        duplicate_fraction: Duplicate proposals / trials, over all seeds.
        sampler_s: Mean sampler time per run.
        evaluation_s: Mean evaluation time per run (as if alone).
        wall_s: Mean wall time per run (as if alone).
        hypervolume: Budget -> median hypervolume ratio (found / true front), several
            objectives only.
        skipped: Why the strategy could not run (then the rest is empty).
    """

    strategy: str
    seeds: list[int]
    trials_to_optimum: list[int | None]
    unique_to_optimum: list[int | None]
    regret: dict[int, float | None]
    duplicate_fraction: float
    sampler_s: float
    evaluation_s: float
    wall_s: float
    hypervolume: dict[int, float | None] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def never(self) -> int:
        """Seeds that never reached the optimum."""
        return sum(v is None for v in self.trials_to_optimum)

    def median_trials(self) -> float | None:
        return seed_quantile(self.trials_to_optimum, 0.5)

    def p90_trials(self) -> float | None:
        return seed_quantile(self.trials_to_optimum, 0.9)

    def median_unique(self) -> float | None:
        return seed_quantile(self.unique_to_optimum, 0.5)

    def p90_unique(self) -> float | None:
        return seed_quantile(self.unique_to_optimum, 0.9)


def seed_quantile(values: Sequence[int | None], q: float) -> float | None:
    """Linear-interpolation quantile, None counting as +inf (None if it reaches one)."""
    if not values:
        return None
    ordered = sorted(math.inf if v is None else float(v) for v in values)
    position = q * (len(ordered) - 1)
    low, high = ordered[math.floor(position)], ordered[math.ceil(position)]
    if math.isinf(low) or math.isinf(high):
        return None
    return low + (high - low) * (position - math.floor(position))


@dataclass
class Comparison:
    """The result of :func:`compare_strategies`.

    Attributes:
        directions: The objective's directions (one: a summed objective).
        objective_names: Names of the objective values.
        space_size: Parameter vectors in the space.
        distinct_size: Distinct configurations.
        exact: Whether every configuration was evaluated (then ``optimum`` and
            ``mean_value`` are exact).
        optimum: The best value (one objective) or the Pareto front's values (several):
            exact when ``exact``, else the best found by any run.
        optimum_configs: How many distinct configurations reach the optimum (exact only).
        mean_value: The mean objective over the distinct configurations (one
            objective; estimated from ``mean_samples`` uniform samples when not exact).
        mean_samples: Configurations the mean was estimated from (0 when exact).
        reference_point: The hypervolume reference point (several objectives).
        evaluations: Evaluations the comparison made (at most one per configuration).
        evaluation_s: Their total time.
        cached_before: Evaluations that were already in the cache when it started.
        n_trials: Trials per run.
        budgets: Trial budgets at which regret is reported.
        strategies: The strategies' summaries, in the order given.
        runs: Every run.
        notes: Extra lines for the report (where the optimum lies, how it was found).
        created: When it was made (UTC, ISO format).
        feasible_size: With constraints and an exact optimum, the distinct
            configurations that meet them (what brute force with the constraints visits).
    """

    directions: list[str]
    objective_names: list[str]
    space_size: int
    distinct_size: int
    exact: bool
    optimum: Any
    optimum_configs: int | None
    mean_value: float | None
    mean_samples: int
    reference_point: list[float] | None
    evaluations: int
    evaluation_s: float
    cached_before: int
    n_trials: int
    budgets: list[int]
    strategies: list[StrategySummary]
    runs: list[RunTrace]
    notes: list[str] = field(default_factory=list)
    created: str = ""
    feasible_size: int | None = None

    def summary(self, strategy: str) -> StrategySummary:
        """The summary of ``strategy``.

        Raises:
            KeyError: The comparison has no such strategy.
        """
        for s in self.strategies:
            if s.strategy == strategy:
                return s
        raise KeyError(f"no strategy {strategy!r} in this comparison; it has: "
                       f"{', '.join(s.strategy for s in self.strategies)}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for s in out["strategies"]:
            s["regret"] = {str(k): v for k, v in s["regret"].items()}
            s["hypervolume"] = {str(k): v for k, v in s["hypervolume"].items()}
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Comparison:
        data = dict(raw)
        data["strategies"] = [
            StrategySummary(
                **{
                    **s,
                    "regret": {int(k): v for k, v in s["regret"].items()},
                    "hypervolume": {int(k): v for k, v in s.get("hypervolume", {}).items()},
                }
            )
            for s in raw["strategies"]
        ]
        data["runs"] = [RunTrace(**r) for r in raw["runs"]]
        return cls(**data)

    def save(self, out_dir: Path) -> dict[str, Path]:
        """Write ``comparison.json``, ``comparison.md``, ``best_so_far.png`` and ``report.html``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": out_dir / COMPARISON_JSON,
            "md": out_dir / COMPARISON_MD,
            "plot": out_dir / BEST_SO_FAR_PNG,
        }
        atomic_write_text(paths["json"], json.dumps(self.to_dict(), indent=1) + "\n")
        reading = format_comparison(self)
        atomic_write_text(paths["md"], reading + "\n")
        plot_best_so_far(self, paths["plot"])
        page = render_comparison_html(self, plot=paths["plot"], reading=reading)
        paths["html"] = write_html(page, out_dir / COMPARISON_HTML)
        return paths

    @classmethod
    def load(cls, path: Path) -> Comparison:
        """Read a saved comparison (the folder, or its ``comparison.json``).

        Raises:
            SearchError: The file is missing or not a comparison.
        """
        path = Path(path)
        if path.is_dir():
            path = path / COMPARISON_JSON
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise SearchError(f"no comparison at {path}; run `bitscout compare` first") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise SearchError(f"{path} is not a comparison written by bitscout ({exc!r})") from None


# -- measures of one run -------------------------------------------------------------------


def _signs(directions: Sequence[str]) -> np.ndarray:
    """+1 for maximize, -1 for minimize: ``sign * value`` is larger when better."""
    return np.array([1.0 if d == "maximize" else -1.0 for d in directions])


def best_so_far(run: RunTrace, direction: str) -> list[float | None]:
    """Per trial, the best value of the run so far (one objective; None before any)."""
    sign = 1.0 if direction == "maximize" else -1.0
    out: list[float | None] = []
    best: float | None = None
    for vals in run.counted_values():
        if vals and (best is None or sign * vals[0] > sign * best):
            best = vals[0]
        out.append(best)
    return out


def _reached(value: float | None, optimum: float, sign: float, scale: float) -> bool:
    return value is not None and sign * (optimum - value) <= _TOLERANCE * scale


def _hypervolume(points: np.ndarray, reference: np.ndarray, signs: np.ndarray) -> float:
    """Hypervolume dominated by ``points`` (raw values) up to ``reference`` (raw)."""
    if len(points) == 0:
        return 0.0
    loss = -signs * points  # minimization form
    ref = -signs * reference
    inside = (loss < ref).all(axis=1)
    if not inside.any():
        return 0.0
    return hypervolume(loss[inside], ref)


def _pareto(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """The non-dominated rows of ``points`` (duplicates kept once)."""
    if len(points) == 0:
        return points
    pts = np.unique(points, axis=0)
    return pts[pareto_front(pts, directions)]


# -- the comparison ------------------------------------------------------------------------


def compare_strategies(
    space: Any,
    runners: Any,
    objective: Any,
    strategies: Sequence[Any],
    *,
    seeds: int | Sequence[int] = 10,
    n_trials: int = 200,
    exact_limit: int = DEFAULT_EXACT_LIMIT,
    budgets: Sequence[int] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    cache: CachedEvaluator | None = None,
    mean_samples: int = 256,
    progress: bool = False,
    notes: Sequence[str] = (),
    constraints: Constraints | None = None,
) -> Comparison:
    """Run every strategy with every seed on one space and objective, and measure them.

    With constraints, the optimum is the best *feasible* value (exact: over every
    feasible configuration), a run reaches it only with a feasible trial, and a
    configuration its hardware-only constraints rule out is skipped, not evaluated: it
    uses a trial but no evaluation. Brute force and ``sensitivity`` get those
    constraints and never propose such configurations.

    Args:
        space: The search space (:class:`bitscout.space.SearchSpace`).
        runners: The metric runners (:class:`bitscout.metrics.RunnerSet`).
        objective: The objective (:class:`bitscout.metrics.Objective`).
        strategies: Registered strategy names (``"tpe"``, ``"sensitivity"``, ...) or
            :class:`bitscout.strategies.Strategy` instances (reported by their ``name``).
        seeds: How many seeds (0, 1, ...) or the seeds themselves.
        n_trials: Trials per run (duplicates included, as in a search).
        exact_limit: Enumerate every configuration when the space has at most this
            many distinct ones (exact optimum and mean).
        budgets: Trial counts at which regret is reported (default 25, 50, 100, 200,
            those up to ``n_trials``, plus ``n_trials``).
        options: Strategy name -> its options, each over its defaults (``brute_force``
            is shuffled unless ``shuffle = false`` is given, so that seeds differ).
        cache: A shared evaluation cache (a :class:`bitscout.evaluation.CachedEvaluator`
            keyed by ``space.key``, e.g. one pre-filled with :meth:`CachedEvaluator.add`).
        mean_samples: Uniform samples for the mean when the space is not enumerated.
        progress: Print one line per run.
        notes: Lines to add to the report.
        constraints: The constraints (:class:`bitscout.metrics.Constraints`); default:
            those of ``cache``'s evaluator, if any.

    Returns:
        The comparison (save it with :meth:`Comparison.save`).

    Raises:
        SearchError: No strategy given, an unknown strategy, or ``n_trials`` < 1.
        ConfigError: Bad strategy options.
    """
    if not strategies:
        raise SearchError("compare_strategies needs at least one strategy; got none")
    if n_trials < 1:
        raise SearchError(f"n_trials must be at least 1; got {n_trials}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise SearchError("compare_strategies needs at least one seed; got none")
    instances: dict[str, Any] = {}
    for item in strategies:  # unknown names fail here, before anything runs
        strategy = get_strategy(item) if isinstance(item, str) else item
        if strategy.name in instances:
            raise SearchError(f"strategy {strategy.name!r} is given twice; give each once")
        instances[strategy.name] = strategy
    directions = list(objective.directions)
    signs = _signs(directions)
    multi = len(directions) > 1
    if cache is None:
        cache = CachedEvaluator(RunnerEvaluator(runners, objective, constraints=constraints), key=space.key)
    if constraints is None and isinstance(cache.inner, ObjectiveEvaluator):
        constraints = cache.inner.constraints
    hardware_only = constraints.hardware_only if constraints else None
    cached_before = len(cache)
    made_before = cache.evaluations
    # Per option: brute_force given {"max_configs": N} still runs shuffled.
    chosen_options = {
        name: {**_DEFAULT_OPTIONS.get(name, {}), **dict((options or {}).get(name, {}))}
        for name in {*_DEFAULT_OPTIONS, *(options or {})}
    }
    budget_list = sorted({b for b in (budgets or DEFAULT_BUDGETS) if b <= n_trials} | {n_trials})
    extra_notes = list(notes)

    # A strategy that cannot run this search (cmaes ever; sensitivity with several
    # objectives) says so when asked for a sampler: ask each once now, so that bad options
    # and a list of strategies none of which can run stop before the enumeration.
    cannot: dict[str, str] = {}
    for name, strategy in instances.items():
        try:
            strategy.make_sampler(
                space, seed=seed_list[0], directions=directions, options=chosen_options.get(name, {}),
                n_trials=n_trials, constraints=hardware_only,
            )
        except SearchError as exc:
            cannot[name] = str(exc)
    if len(cannot) == len(instances):
        raise SearchError(
            "no strategy given can run this search; give one that can (tpe, random, ...):\n  "
            + "\n  ".join(f"{name}: {reason}" for name, reason in cannot.items())
        )

    # 1. The exact optimum and mean, by enumeration, when the space allows.
    exact = space.distinct_size <= exact_limit
    all_values: list[tuple[float, ...]] = []
    if exact:
        # A cache given every configuration beforehand (a benchmark's enumeration) needs no table.
        note = None if len(cache) >= space.distinct_size else _precompute(cache, space, runners, progress=progress)
        if note is not None:
            extra_notes.append(note)
        for i in range(space.distinct_size):
            entry = cache.evaluate(space.decode(space.distinct_params_at(i)))
            if entry.error is None and entry.feasible:
                all_values.append(entry.values)
        if progress:
            print(f"enumerated {space.distinct_size:,} configurations", flush=True)
        if constraints:
            extra_notes.append(
                f"Constraints: {constraints.describe()}; {len(all_values):,} of "
                f"{space.distinct_size:,} configurations meet them: the optimum, the mean and "
                "the regret are over those."
            )
            if not all_values:
                raise SearchError(
                    f"no configuration of the space meets the constraints ({constraints.describe()}); "
                    "relax a bound in [search.strategy.constraints]"
                )

    # 2. The runs.
    runs: list[RunTrace] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bitscout-compare-") as tmp:
        for name, strategy in instances.items():
            for seed in seed_list:
                try:
                    sampler = strategy.make_sampler(
                        space,
                        seed=seed,
                        directions=directions,
                        options=chosen_options.get(name, {}),
                        n_trials=n_trials,
                        constraints=hardware_only,
                    )
                except SearchError as exc:
                    skipped[name] = str(exc)
                    break
                runs.append(_run_one(name, seed, sampler, space, cache, n_trials, Path(tmp)))
                if progress:
                    print(f"{name} seed {seed}: {runs[-1].n_trials} trials", flush=True)

    # 3. The reference values.
    valid = [np.array(v) for run in runs for v in run.counted_values() if v]
    mean_value: float | None = None
    n_mean = 0
    if exact:
        pool = np.array(all_values) if all_values else np.zeros((0, len(directions)))
    else:
        rng = random.Random(0)
        sample = []
        for _ in range(min(mean_samples, space.distinct_size)):
            entry = cache.evaluate(space.decode(space.distinct_params_at(rng.randrange(space.distinct_size))))
            if entry.error is None and entry.feasible:
                sample.append(entry.values)
        n_mean = len(sample)
        pool = np.array(sample + [tuple(v) for v in valid]) if (sample or valid) else np.zeros((0, len(directions)))
        if not multi and sample:
            mean_value = float(np.mean([s[0] for s in sample]))
    if len(pool) == 0:
        raise SearchError("no configuration could be evaluated: every evaluation failed")
    reference_point: list[float] | None = None
    optimum_configs: int | None = None
    if multi:
        front = _pareto(pool, directions)
        worst = np.where(signs > 0, pool.min(axis=0), pool.max(axis=0))
        span = np.ptp(pool, axis=0)
        span[span == 0] = 1.0
        reference = worst - signs * 0.01 * span
        reference_point = reference.tolist()
        optimum: Any = front.tolist()
        true_hv = _hypervolume(front, reference, signs)
    else:
        column = pool[:, 0]
        best = float(column.max() if signs[0] > 0 else column.min())
        optimum = best
        if exact:
            mean_value = float(column.mean())
            scale = max(float(np.ptp(column)), abs(best), 1e-300)
            optimum_configs = int(np.sum(np.abs(column - best) <= _TOLERANCE * scale))
        true_hv = 0.0

    # 4. Per strategy.
    summaries = []
    for name in instances:
        mine = [r for r in runs if r.strategy == name]
        if name in skipped and not mine:
            summaries.append(
                StrategySummary(name, seed_list, [], [], {}, 0.0, 0.0, 0.0, 0.0, skipped=skipped[name])
            )
            continue
        summaries.append(
            _summarize(name, mine, directions, optimum, mean_value, budget_list,
                       reference_point, true_hv, pool)
        )
    if not exact:
        extra_notes.append(
            f"The space has {space.distinct_size:,} distinct configurations, more than the "
            f"exact limit of {exact_limit:,}: the optimum is the best value found by any run, "
            f"not the exact one, and the mean is estimated from {n_mean} uniform samples."
        )
    return Comparison(
        directions=directions,
        objective_names=cache.objective_names,
        space_size=int(space.size),
        distinct_size=int(space.distinct_size),
        exact=exact,
        optimum=optimum,
        optimum_configs=optimum_configs,
        mean_value=mean_value,
        mean_samples=n_mean,
        reference_point=reference_point,
        evaluations=cache.evaluations - made_before,
        evaluation_s=cache.seconds,
        cached_before=cached_before,
        n_trials=n_trials,
        budgets=budget_list,
        strategies=summaries,
        runs=runs,
        notes=extra_notes,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        feasible_size=len(all_values) if exact and constraints else None,
    )


def _run_one(
    name: str,
    seed: int,
    sampler: optuna.samplers.BaseSampler,
    space: Any,
    cache: CachedEvaluator,
    n_trials: int,
    tmp: Path,
) -> RunTrace:
    """One strategy run: an in-memory study driven by the search loop."""
    timed = _timed(sampler)
    runners = _RunEvaluator(cache)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        result = run_search(
            space,
            timed,
            runners,
            out_dir=tmp,
            storage=optuna.storages.InMemoryStorage(),
            study_name=f"{name}-{seed}",
            n_trials=n_trials,
            progress=False,
            write_outputs=False,
        )
    total = time.perf_counter() - start
    trials = [t for t in result.trials if t.state in ("COMPLETE", "FAIL", "PRUNED")]
    trials.sort(key=lambda t: t.number)
    constrained = bool(runners.constraint_names)
    evaluation = math.fsum(runners.charged)
    return RunTrace(
        strategy=name,
        seed=seed,
        values=[list(t.values) if t.state == "COMPLETE" else [] for t in trials],
        duplicate=[t.duplicate_of is not None for t in trials],
        sampler_s=timed.seconds,
        evaluation_s=evaluation,
        # Cache lookups, storage writes and bookkeeping: what the loop costs beyond the
        # sampler (a real evaluation made here is not counted: it is in evaluation_s).
        loop_s=max(0.0, total - timed.seconds - runners.spent),
        stop_reason=result.stop_reason,
        feasible=[t.state == "COMPLETE" and t.feasible for t in trials] if constrained else [],
        skipped=[t.skipped for t in trials] if constrained else [],
    )


def _summarize(
    name: str,
    runs: list[RunTrace],
    directions: list[str],
    optimum: Any,
    mean_value: float | None,
    budgets: list[int],
    reference: list[float] | None,
    true_hv: float,
    pool: np.ndarray,
) -> StrategySummary:
    signs = _signs(directions)
    to_opt: list[int | None] = []
    unique_to_opt: list[int | None] = []
    regret_at: dict[int, list[float]] = {b: [] for b in budgets}
    hv_at: dict[int, list[float]] = {b: [] for b in budgets}
    for run in runs:
        uniques = run.unique_counts()
        hit: int | None = None
        if len(directions) == 1:
            sign = float(signs[0])
            scale = max(float(np.ptp(pool[:, 0])), abs(float(optimum)), 1e-300)
            curve = best_so_far(run, directions[0])
            for i, value in enumerate(curve):
                if _reached(value, optimum, sign, scale):
                    hit = i
                    break
            gap = None if mean_value is None else sign * (optimum - mean_value)
            for b in budgets:
                value = curve[min(b, len(curve)) - 1] if curve else None
                if value is None or not gap:
                    regret_at[b].append(math.inf if value is None else 0.0)
                else:
                    regret_at[b].append(max(0.0, sign * (optimum - value)) / gap)
        else:
            ref = np.array(reference)
            points: list[np.ndarray] = []
            ratios = []
            for i, vals in enumerate(run.counted_values()):
                if vals:
                    points.append(np.array(vals))
                hv = _hypervolume(np.array(points), ref, signs) if points else 0.0
                ratio = hv / true_hv if true_hv > 0 else 1.0
                ratios.append(ratio)
                if hit is None and ratio >= 1.0 - 1e-9:
                    hit = i
            for b in budgets:
                r = ratios[min(b, len(ratios)) - 1] if ratios else 0.0
                hv_at[b].append(r)
                regret_at[b].append(1.0 - r)
        to_opt.append(None if hit is None else hit + 1)
        unique_to_opt.append(None if hit is None else uniques[hit])
    n_total = sum(r.n_trials for r in runs)
    dups = sum(sum(r.duplicate) for r in runs)
    count = max(len(runs), 1)
    return StrategySummary(
        strategy=name,
        seeds=[r.seed for r in runs],
        trials_to_optimum=to_opt,
        unique_to_optimum=unique_to_opt,
        regret={b: _finite_median(v) for b, v in regret_at.items()},
        duplicate_fraction=dups / n_total if n_total else 0.0,
        sampler_s=sum(r.sampler_s for r in runs) / count,
        evaluation_s=sum(r.evaluation_s for r in runs) / count,
        wall_s=sum(r.wall_s for r in runs) / count,
        hypervolume={b: _finite_median(v) for b, v in hv_at.items()} if len(directions) > 1 else {},
    )


def _finite_median(values: list[float]) -> float | None:
    if not values:
        return None
    m = float(np.median(values))
    return m if math.isfinite(m) else None


# -- the report ----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "never"
    return f"{value:.{digits}f}"


def _rank_key(s: StrategySummary) -> tuple[float, float]:
    median = s.median_unique()
    last = s.regret.get(max(s.regret)) if s.regret else None
    return (math.inf if median is None else median, math.inf if last is None else last)


def format_comparison(comparison: Comparison) -> str:
    """``comparison.md``: the setting, the table, and a plain-language reading."""
    c = comparison
    lines = ["# Strategy comparison", ""]
    what = "summed objective" if len(c.directions) == 1 else f"{len(c.directions)} objectives"
    seeds = max((len(s.seeds) for s in c.strategies), default=0)
    lines.append(
        f"Space: {c.space_size:,} configurations ({c.distinct_size:,} distinct); {what} "
        f"({', '.join(f'{n} {d}' for n, d in zip(c.objective_names, c.directions))}); "
        f"{seeds} seeds per strategy, {c.n_trials} trials per run."
    )
    if len(c.directions) == 1:
        label = "exact optimum (every configuration evaluated)" if c.exact else "best found by any run (NOT the exact optimum)"
        extra = f", reached by {c.optimum_configs} configuration(s)" if c.optimum_configs else ""
        lines.append(f"Optimum: {c.optimum:.6g}: {label}{extra}.")
        if c.mean_value is not None:
            how = "exact" if c.exact else f"estimated from {c.mean_samples} samples"
            lines.append(f"Mean configuration value: {c.mean_value:.6g} ({how}).")
    else:
        label = "exact Pareto front" if c.exact else "front of everything evaluated (NOT the exact front)"
        lines.append(f"True front: {len(c.optimum)} points ({label}); hypervolume reference point {c.reference_point}.")
    lines.append(
        f"Evaluations made: {c.evaluations:,} (shared by all runs through a cache keyed by "
        f"configuration; {c.cached_before:,} were given beforehand), {c.evaluation_s:.1f} s."
    )
    lines.extend(c.notes)
    lines.append("")
    budgets = c.budgets
    metric = "regret" if len(c.directions) == 1 else "1 - HV ratio"
    header = (
        ["strategy", "reached", "trials to opt. (median / p90)", "unique evals to opt. (median / p90)"]
        + [f"{metric} @{b}" for b in budgets]
        + ["duplicates", "sampler s/run", "wall s/run"]
    )
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for s in c.strategies:
        if s.skipped:
            lines.append(f"| {s.strategy} | skipped: {s.skipped} |" + " |" * (len(header) - 2))
            continue
        n = len(s.trials_to_optimum)
        row = [
            s.strategy,
            f"{n - s.never}/{n}",
            f"{_num(s.median_trials())} / {_num(s.p90_trials())}",
            f"{_num(s.median_unique())} / {_num(s.p90_unique())}",
        ]
        row += ["-" if s.regret.get(b) is None else f"{s.regret[b]:.3f}" for b in budgets]
        row += [f"{100 * s.duplicate_fraction:.0f}%", f"{s.sampler_s:.2f}", f"{s.wall_s:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(
        "Trials count every proposal, duplicates included; unique evaluations count only "
        "configurations new to the run (a duplicate is answered from the study). \"never\": "
        "the quantile falls on seeds that did not reach the optimum within the budget. "
        + (
            "Regret: (optimum - best so far) / (optimum - mean configuration value), median over seeds."
            if len(c.directions) == 1
            else "HV ratio: hypervolume of the run's front / the true front's, median over seeds."
        )
        + " Wall time: sampler + loop + the run's own unique evaluations (each at its measured cost)."
    )
    lines.append("")
    lines.append("## Reading")
    lines.append("")
    lines.extend(_reading(c))
    return "\n".join(lines)


def _reading(c: Comparison) -> list[str]:
    out = []
    ran = [s for s in c.strategies if not s.skipped]
    if not ran:
        return ["No strategy could run."]
    ranked = sorted(ran, key=_rank_key)
    target = "the optimum" if c.exact else "the best value found by any run"
    for s in ranked:
        n = len(s.trials_to_optimum)
        median, p90 = s.median_unique(), s.p90_unique()
        if s.never == n:
            last = max(s.regret) if s.regret else c.n_trials
            reg = s.regret.get(last)
            tail = f"; median regret after {last} trials: {reg:.3f}" if reg is not None else ""
            out.append(f"- **{s.strategy}** never reached {target} within {c.n_trials} trials{tail}.")
        elif median is None:
            out.append(
                f"- **{s.strategy}** reached {target} in {n - s.never} of {n} seeds, too few for a median."
            )
        else:
            p90_text = f"90% of seeds within {p90:.0f}" if p90 is not None else f"{s.never} seed(s) never did"
            out.append(
                f"- **{s.strategy}** reached {target} in a median of {median:.0f} unique evaluations "
                f"({s.median_trials():.0f} trials); {p90_text}."
            )
    best = ranked[0]
    others = [s for s in ranked[1:] if s.median_unique() is not None]
    if best.median_unique() is not None and len(ranked) > 1:
        tpe = next((s for s in ran if s.strategy == "tpe"), None)
        if tpe is not None and tpe is not best:
            tm = tpe.median_unique()
            if tm is not None:
                out.append(
                    f"- {best.strategy} needed {tm / best.median_unique():.1f}x fewer unique "
                    f"evaluations than TPE in median ({best.median_unique():.0f} against {tm:.0f})."
                )
            else:
                out.append(
                    f"- {best.strategy} reached {target} in a median of {best.median_unique():.0f} "
                    f"unique evaluations; TPE's median lies beyond the budget of {c.n_trials} trials."
                )
        elif others:
            out.append(f"- Fastest: {best.strategy}; next: {others[0].strategy}.")
    brute = next((s for s in ran if s.strategy == "brute_force"), None)
    if c.exact and len(c.directions) == 1 and c.optimum_configs:
        k = c.optimum_configs
        n = c.distinct_size if c.feasible_size is None else c.feasible_size
        expected = (n + 1) / (k + 1)
        share = "half the space" if k == 1 else f"1/{k + 1} of the space"
        among = f"N = {n:,}" + ("" if c.feasible_size is None else " feasible")
        text = (
            f"- Brute force in a random order needs on average (N + 1) / (k + 1) = "
            f"{expected:,.0f} evaluations to meet one of the k = {k} optimal configuration(s) "
            f"among {among} ({share}); it is sure to find it only after all N."
        )
        if brute is not None:
            text += f" Here it reached it in {len(brute.trials_to_optimum) - brute.never} of {len(brute.trials_to_optimum)} seeds within {c.n_trials} trials."
        out.append(text)
    dup = max(ran, key=lambda s: s.duplicate_fraction)
    if dup.duplicate_fraction > 0.05:
        out.append(
            f"- {dup.strategy} proposed the most duplicates ({100 * dup.duplicate_fraction:.0f}% of its "
            "trials): they cost no evaluation but use up the trial budget."
        )
    slow = max(ran, key=lambda s: s.sampler_s)
    out.append(
        f"- Sampler cost: {slow.strategy} spent the most time in its own sampler, "
        f"{slow.sampler_s:.2f} s per run of {c.n_trials} trials."
    )
    return out


def plot_best_so_far(comparison: Comparison, path: Path) -> Path:
    """Median and interquartile band of the best so far (or HV ratio) per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = comparison
    single = len(c.directions) == 1
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for s in c.strategies:
        runs = [r for r in c.runs if r.strategy == s.strategy]
        if not runs:
            continue
        length = max(r.n_trials for r in runs)
        curves = []
        for r in runs:
            if single:
                curve = [np.nan if v is None else v for v in best_so_far(r, c.directions[0])]
            else:
                curve = _hv_curve(r, c)
            curve = curve + [curve[-1]] * (length - len(curve)) if curve else [np.nan] * length
            curves.append(curve)
        data = np.array(curves, dtype=float)
        x = np.arange(1, length + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(data, axis=0)
            low = np.nanpercentile(data, 25, axis=0)
            high = np.nanpercentile(data, 75, axis=0)
        (line,) = ax.plot(x, med, label=s.strategy, linewidth=1.5)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if single:
        label = "optimum" if c.exact else "best found"
        ax.axhline(c.optimum, color="black", linestyle="--", linewidth=1, label=label)
        if c.mean_value is not None and c.mean_value != c.optimum:
            # The last steps to the optimum are what separates strategies: show the
            # band from the optimum down to 30% of the way to the mean configuration.
            edge = c.optimum - 0.3 * (c.optimum - c.mean_value)
            pad = 0.02 * abs(c.optimum - c.mean_value)
            if c.directions[0] == "maximize":
                ax.set_ylim(edge, c.optimum + pad)
            else:
                ax.set_ylim(c.optimum - pad, edge)
        ax.set_ylabel(f"best {c.objective_names[0]} so far")
    else:
        ax.set_ylabel("hypervolume / true front's")
    ax.set_xscale("log")
    ax.set_xlabel("trial")
    ax.set_title("best so far: median and interquartile range over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        # Marked as bitscout's, so that a later comparison replaces it (and no one else's).
        fig.savefig(tmp, dpi=110, metadata={"Software": f"{PLOT_SOFTWARE} (matplotlib)"})
    plt.close(fig)
    return path


def _hv_curve(run: RunTrace, c: Comparison) -> list[float]:
    signs = _signs(c.directions)
    ref = np.array(c.reference_point)
    true_hv = _hypervolume(np.array(c.optimum), ref, signs)
    points: list[list[float]] = []
    out = []
    for vals in run.counted_values():
        if vals:
            points.append(vals)
        hv = _hypervolume(np.array(points), ref, signs) if points else 0.0
        out.append(hv / true_hv if true_hv > 0 else 1.0)
    return out
