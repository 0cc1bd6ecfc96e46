"""Search strategies: Optuna samplers by name, brute force, and a registry.

A strategy turns a :class:`bitscout.space.SearchSpace` into an Optuna sampler::

    strategy = get_strategy("tpe")
    sampler = strategy.make_sampler(space, seed=0, directions=["maximize"], options={})
    study = optuna.create_study(sampler=sampler, direction="maximize")

The contract every strategy keeps is documented once, on :class:`Strategy`. Registered:
``tpe``, ``random``, ``nsgaii``, ``nsgaiii``, ``qmc``, ``gp``, ``cmaes`` (refuses with
the reason: bitscout's parameters are categorical), ``brute_force`` and ``sensitivity``
(bitscout's own: a per-parameter sensitivity profile, then an additive surrogate and a
local search over neighbouring widths), and ``pareto`` (bitscout's own for several
objectives: additive Bayesian models per objective, proposals on the front of a posterior
draw). A new strategy
subclasses :class:`Strategy` and calls :func:`register_strategy`.
"""

from bitscout.strategies._base import (
    DIRECTIONS,
    OPTIONS_PATH,
    ConfigConstraints,
    ConstraintAware,
    Exhaustible,
    Strategy,
    StrategyOptions,
    get_strategy,
    register_strategy,
    strategy_names,
)
from bitscout.strategies._brute_force import (
    BruteForceSampler,
    BruteForceStrategy,
    SeededPermutation,
)
from bitscout.strategies._optuna import (
    CmaEsStrategy,
    GPStrategy,
    NSGAIIIStrategy,
    NSGAIIStrategy,
    QMCStrategy,
    RandomStrategy,
    TPEStrategy,
    genetic_population_size,
    reference_point_count,
)
from bitscout.strategies._pareto import ParetoSampler, ParetoStrategy
from bitscout.strategies._sensitivity import SensitivitySampler, SensitivityStrategy

__all__ = [
    "Strategy",
    "StrategyOptions",
    "Exhaustible",
    "ConfigConstraints",
    "ConstraintAware",
    "register_strategy",
    "get_strategy",
    "strategy_names",
    "OPTIONS_PATH",
    "DIRECTIONS",
    "TPEStrategy",
    "RandomStrategy",
    "NSGAIIStrategy",
    "NSGAIIIStrategy",
    "QMCStrategy",
    "CmaEsStrategy",
    "GPStrategy",
    "BruteForceStrategy",
    "BruteForceSampler",
    "SensitivityStrategy",
    "SensitivitySampler",
    "ParetoStrategy",
    "ParetoSampler",
    "SeededPermutation",
    "genetic_population_size",
    "reference_point_count",
]
