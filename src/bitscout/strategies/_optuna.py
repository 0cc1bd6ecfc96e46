"""Strategies that are Optuna's own samplers, with their options and bitscout's defaults.

Every option below is passed to Optuna only as written here; bitscout's defaults equal
Optuna 5.0's except where a docstring says otherwise (QMC's ``scramble``, and the
genetic samplers' ``population_size`` when ``n_trials`` is known).
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from typing import Literal

import optuna
from optuna.exceptions import ExperimentalWarning
from pydantic import Field, model_validator

from bitscout._optuna_adapter import (
    CachedNSGAIIISampler,
    CachedNSGAIISampler,
    CachedQMCSampler,
    CachedTPESampler,
)
from bitscout.errors import SearchError
from bitscout.space import SearchSpace
from bitscout.strategies._base import Strategy, StrategyOptions, register_strategy

__all__ = [
    "TPEStrategy",
    "RandomStrategy",
    "NSGAIIStrategy",
    "NSGAIIIStrategy",
    "QMCStrategy",
    "CmaEsStrategy",
    "GPStrategy",
    "genetic_population_size",
    "reference_point_count",
]

_OPTUNA_DEFAULT_POPULATION = 50


def genetic_population_size(n_trials: int | None, *, minimum: int = 2) -> int:
    """The population size bitscout gives NSGA-II/III when none is set.

    Optuna's default is 50, which in a search of 20 to 200 trials leaves the genetic
    algorithm one generation or none: the search is then random. With ``n_trials``
    known, bitscout uses ``n_trials // 5`` (five generations), at least 10 and at most
    50; unknown, Optuna's 50. Never below ``minimum``.
    """
    if n_trials is None:
        size = _OPTUNA_DEFAULT_POPULATION
    else:
        size = min(_OPTUNA_DEFAULT_POPULATION, max(10, n_trials // 5))
    return max(size, minimum)


@register_strategy
class TPEStrategy(Strategy):
    """Tree-structured Parzen Estimator: Optuna's ``TPESampler``, proposal for proposal.

    The sampler is :class:`bitscout._optuna_adapter.CachedTPESampler`, a subclass of
    Optuna's that files each finished trial once instead of re-reading the whole history
    at every proposal: the same seed and results give exactly Optuna's proposals, at a cost
    per proposal that barely grows with the number of trials. What bitscout passes: ``seed`` and the options below, whose defaults are Optuna
    5.0's. In Optuna 5.0, ``multivariate`` defaults to "auto" (multivariate TPE for one
    objective, independent TPE for several) and ``constant_liar`` to True (running
    trials count as bad results, so parallel workers do not propose the same
    configuration; with one worker it changes nothing). The Parzen-estimator knobs that
    Optuna 5.0 deprecates (``consider_endpoints``, ``consider_prior``, ``prior_weight``,
    ``consider_magic_clip``, ``gamma``, ``weights``, ``warn_independent_sampling``) are
    refused with that reason rather than passed on to warn at every run.
    """

    name = "tpe"
    summary = "Tree-structured Parzen Estimator (Optuna's default); 1 or more objectives"

    class Options(StrategyOptions):
        """Options of ``tpe``.

        Attributes:
            n_startup_trials: Random trials before TPE starts modelling (10).
            n_ei_candidates: Candidates scored per proposal (24).
            multivariate: True: model the parameters jointly; False: one by one;
                None: Optuna 5's automatic choice (joint for one objective).
            group: Multivariate TPE on groups of parameters that appear together (only
                useful when trials have different parameters; bitscout's spaces do not).
            constant_liar: Treat running trials as bad results (True).
        """

        n_startup_trials: int = Field(10, ge=0)
        n_ei_candidates: int = Field(24, ge=1)
        multivariate: bool | None = None
        group: bool = False
        constant_liar: bool = True

        @model_validator(mode="after")
        def _group_needs_multivariate(self) -> TPEStrategy.Options:
            if self.group and self.multivariate is False:
                raise ValueError("group = true needs multivariate = true (or unset)")
            return self

    deprecated_options = {
        name: "deprecated in Optuna 5.0 (to be removed in 6.0); the Optuna default applies"
        for name in (
            "consider_endpoints",
            "consider_prior",
            "prior_weight",
            "consider_magic_clip",
            "gamma",
            "weights",
            "warn_independent_sampling",
        )
    }

    def build_sampler(
        self,
        space: SearchSpace,
        options: TPEStrategy.Options,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        with warnings.catch_warnings():
            # `group` is marked experimental; bitscout chose it knowingly.
            warnings.simplefilter("ignore", ExperimentalWarning)
            return CachedTPESampler(
                seed=seed,
                n_startup_trials=options.n_startup_trials,
                n_ei_candidates=options.n_ei_candidates,
                multivariate=options.multivariate,
                group=options.group,
                constant_liar=options.constant_liar,
            )


@register_strategy
class RandomStrategy(Strategy):
    """Uniformly random configurations (``optuna.samplers.RandomSampler``); no options."""

    name = "random"
    summary = "uniform random sampling; 1 or more objectives"

    def build_sampler(
        self,
        space: SearchSpace,
        options: StrategyOptions,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)


class _GeneticOptions(StrategyOptions):
    """Options shared by the NSGA samplers.

    Attributes:
        population_size: Individuals per generation; None: see
            :func:`genetic_population_size`.
        mutation_prob: Probability of mutating each parameter of a child; None:
            ``1 / number of parameters`` (Optuna's rule).
        crossover_prob: Probability that a child comes from crossover (0.9).
        swapping_prob: Probability of taking each parameter from the other parent in
            uniform crossover (0.5).
    """

    population_size: int | None = Field(None, ge=2)
    mutation_prob: float | None = Field(None, ge=0.0, le=1.0)
    crossover_prob: float = Field(0.9, ge=0.0, le=1.0)
    swapping_prob: float = Field(0.5, ge=0.0, le=1.0)


@register_strategy
class NSGAIIStrategy(Strategy):
    """NSGA-II genetic algorithm (``optuna.samplers.NSGAIISampler``).

    The sampler is :class:`bitscout._optuna_adapter.CachedNSGAIISampler`: Optuna's,
    proposal for proposal, with its generations filed as trials finish instead of read
    from every trial at every proposal.

    Meant for several objectives (a Pareto search); also runs with one. bitscout
    differs from Optuna in one default: ``population_size`` follows
    :func:`genetic_population_size` when ``n_trials`` is known.
    """

    name = "nsgaii"
    summary = "NSGA-II genetic algorithm; made for several objectives"

    class Options(_GeneticOptions):
        """Options of ``nsgaii`` (see the shared attributes)."""

    def build_sampler(
        self,
        space: SearchSpace,
        options: NSGAIIStrategy.Options,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        return CachedNSGAIISampler(
            seed=seed,
            population_size=options.population_size or genetic_population_size(n_trials),
            mutation_prob=options.mutation_prob,
            crossover_prob=options.crossover_prob,
            swapping_prob=options.swapping_prob,
        )


def reference_point_count(n_objectives: int, dividing_parameter: int) -> int:
    """Reference points NSGA-III places on the simplex: C(M + p - 1, p)."""
    return math.comb(n_objectives + dividing_parameter - 1, dividing_parameter)


@register_strategy
class NSGAIIIStrategy(Strategy):
    """NSGA-III (``optuna.samplers.NSGAIIISampler``), for three or more objectives.

    The sampler is :class:`bitscout._optuna_adapter.CachedNSGAIIISampler` (Optuna's,
    proposal for proposal, with its generations filed once, as for ``nsgaii``).

    Optuna places ``C(M + p - 1, p)`` reference points for ``M`` objectives and
    ``dividing_parameter`` ``p`` (3 by default: 4 points for 2 objectives, 10 for 3,
    20 for 4). The population should hold at least one individual per reference point,
    so when ``population_size`` is not set bitscout uses the larger of
    :func:`genetic_population_size` and that count rounded up to a multiple of 4.
    """

    name = "nsgaiii"
    summary = "NSGA-III genetic algorithm with reference points; for 3+ objectives"

    class Options(_GeneticOptions):
        """Options of ``nsgaiii``.

        Attributes:
            dividing_parameter: Divisions of each objective axis for the reference
                points (3).
        """

        dividing_parameter: int = Field(3, ge=1)

    def build_sampler(
        self,
        space: SearchSpace,
        options: NSGAIIIStrategy.Options,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        population = options.population_size
        if population is None:
            points = reference_point_count(len(directions), options.dividing_parameter)
            population = genetic_population_size(n_trials, minimum=-(-points // 4) * 4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return CachedNSGAIIISampler(
                seed=seed,
                population_size=population,
                mutation_prob=options.mutation_prob,
                crossover_prob=options.crossover_prob,
                swapping_prob=options.swapping_prob,
                dividing_parameter=options.dividing_parameter,
            )


@register_strategy
class QMCStrategy(Strategy):
    """Quasi-Monte Carlo sequences (``optuna.samplers.QMCSampler``).

    The sampler is :class:`bitscout._optuna_adapter.CachedQMCSampler`: Optuna's, point for
    point, keeping its sequence engine between proposals instead of rebuilding it.

    Each categorical parameter takes one coordinate of a Sobol or Halton sequence, so
    the first trials cover the space more evenly than random ones (the first trial is
    random: Optuna learns the space from it). bitscout differs from Optuna in one
    default: ``scramble`` is True, so that different seeds give different sequences
    (without scrambling every seed gives the same one). Use the same seed in every
    worker.
    """

    name = "qmc"
    summary = "quasi-Monte Carlo (Sobol/Halton) space filling; 1 or more objectives"

    class Options(StrategyOptions):
        """Options of ``qmc``.

        Attributes:
            qmc_type: ``"sobol"`` or ``"halton"``.
            scramble: Randomize the sequence with the seed (True; Optuna: False).
        """

        qmc_type: Literal["sobol", "halton"] = "sobol"
        scramble: bool = True

    def build_sampler(
        self,
        space: SearchSpace,
        options: QMCStrategy.Options,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return CachedQMCSampler(
                seed=seed, qmc_type=options.qmc_type, scramble=options.scramble
            )


@register_strategy
class CmaEsStrategy(Strategy):
    """CMA-ES (``optuna.samplers.CmaEsSampler``): registered to explain why it cannot run.

    CMA-ES models continuous and integer parameters only. Every parameter of a bitscout
    space is a choice from a list (categorical), which Optuna's CMA-ES hands to an
    independent random sampler: the search would be random search under another name.
    It also needs the ``cmaes`` package. :meth:`make_sampler` therefore always raises
    :class:`bitscout.errors.SearchError`, saying so and naming the alternatives.
    """

    name = "cmaes"
    summary = "CMA-ES: not usable (bitscout's parameters are categorical)"
    max_objectives = 1

    def unavailable_reason(self, space: SearchSpace) -> str | None:
        missing = importlib.util.find_spec("cmaes") is None
        return (
            "CMA-ES cannot model categorical parameters, and every parameter of a "
            "bitscout search space is a choice from a list: Optuna's CmaEsSampler would "
            "propose every value at random"
            + (" (it also needs the `cmaes` package, which is not installed)" if missing else "")
            + ". Use 'tpe' or 'gp' for a model-based search, or 'random'."
        )

    def build_sampler(
        self,
        space: SearchSpace,
        options: StrategyOptions,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        # Reached only by calling build_sampler directly, past make_sampler's check.
        reason = self.unavailable_reason(space)
        raise SearchError(f"sampler 'cmaes' cannot run this search: {reason}")


@register_strategy
class GPStrategy(Strategy):
    """Gaussian-process Bayesian optimization (``optuna.samplers.GPSampler``).

    Handles categorical parameters and several objectives in Optuna 5.0 (it needs
    ``torch`` and ``scipy``, which bitscout installs). Its own cost grows quickly with
    the number of trials (seconds per proposal after a few hundred on a small CPU):
    meant for expensive evaluations and budgets of tens to a few hundred trials.
    """

    name = "gp"
    summary = "Gaussian-process Bayesian optimization; costly per proposal"

    class Options(StrategyOptions):
        """Options of ``gp``.

        Attributes:
            n_startup_trials: Random trials before the GP starts modelling (10).
            deterministic_objective: The objective has no noise (False). True suits a
                post-training evaluation on fixed samples.
        """

        n_startup_trials: int = Field(10, ge=0)
        deterministic_objective: bool = False

    def unavailable_reason(self, space: SearchSpace) -> str | None:
        missing = [m for m in ("torch", "scipy") if importlib.util.find_spec(m) is None]
        if missing:
            return (
                f"Optuna's GPSampler needs {' and '.join(missing)}, not installed; "
                "use 'tpe' instead"
            )
        return None

    def build_sampler(
        self,
        space: SearchSpace,
        options: GPStrategy.Options,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return optuna.samplers.GPSampler(
                seed=seed,
                n_startup_trials=options.n_startup_trials,
                deterministic_objective=options.deterministic_objective,
            )
