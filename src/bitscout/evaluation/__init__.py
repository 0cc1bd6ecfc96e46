"""The evaluation seam: what a configuration is worth, behind one interface.

Owns :class:`Evaluator` (``evaluate(config) -> Evaluation``) and its implementations:
:class:`RunnerEvaluator` (run the metric runners and the objective: a search trial),
:class:`TableEvaluator` (answer from an exhaustive, prefix-sharing evaluation of the whole
space: :func:`evaluate_exhaustively`), :class:`FunctionEvaluator` (a user's function of
the quantized model) and :class:`CachedEvaluator` (each distinct configuration once).
The search loop (:mod:`bitscout.study`) and the comparison (:mod:`bitscout.compare`) take
an :class:`Evaluator` and nothing else.
"""

from __future__ import annotations

from bitscout.evaluation._base import (
    Evaluation,
    Evaluator,
    ObjectiveEvaluator,
    ObjectiveLike,
    error_text,
    objective_names,
)
from bitscout.evaluation._evaluators import (
    CachedEvaluator,
    FunctionEvaluator,
    MetricSource,
    RunnerEvaluator,
    TableEvaluator,
    needs_loss,
)
from bitscout.evaluation._exhaustive import (
    DEFAULT_BLOCK_ELEMENTS,
    ExhaustiveResult,
    evaluate_exhaustively,
    evaluate_runner_set_exhaustively,
    exhaustive_support,
)

__all__ = [
    "Evaluation",
    "Evaluator",
    "ObjectiveEvaluator",
    "ObjectiveLike",
    "MetricSource",
    "RunnerEvaluator",
    "TableEvaluator",
    "FunctionEvaluator",
    "CachedEvaluator",
    "ExhaustiveResult",
    "evaluate_exhaustively",
    "evaluate_runner_set_exhaustively",
    "exhaustive_support",
    "needs_loss",
    "DEFAULT_BLOCK_ELEMENTS",
    "error_text",
    "objective_names",
]
