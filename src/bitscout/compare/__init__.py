"""Comparing search strategies (``bitscout compare``): sample efficiency on one space.

Owns :func:`compare_strategies` (every strategy with every seed through
:func:`bitscout.study.run_search`, evaluations shared through a
:class:`bitscout.evaluation.CachedEvaluator`), its records (:class:`Comparison`,
:class:`StrategySummary`, :class:`RunTrace`) and their files (``comparison.json``,
``comparison.md``, ``best_so_far.png``). It sits above :mod:`bitscout.study`; nothing
below imports it.
"""

from __future__ import annotations

from bitscout.compare._compare import (
    BEST_SO_FAR_PNG,
    COMPARISON_JSON,
    COMPARISON_MD,
    DEFAULT_BUDGETS,
    DEFAULT_EXACT_LIMIT,
    Comparison,
    RunTrace,
    StrategySummary,
    best_so_far,
    compare_strategies,
    format_comparison,
    plot_best_so_far,
    seed_quantile,
)

__all__ = [
    "compare_strategies",
    "Comparison",
    "StrategySummary",
    "RunTrace",
    "best_so_far",
    "format_comparison",
    "plot_best_so_far",
    "DEFAULT_EXACT_LIMIT",
    "seed_quantile",
    "DEFAULT_BUDGETS",
    "COMPARISON_JSON",
    "COMPARISON_MD",
    "BEST_SO_FAR_PNG",
]
