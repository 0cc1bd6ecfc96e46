"""Metric runners and the objective: what a candidate is worth.

A search measures each candidate with a :class:`RunnerSet` built from the config by
:func:`build_runners`: software runners on data (``basic_evaluation``: accuracy,
balanced accuracy, loss; ``basic_train``: fine-tune first) and hardware runners for
costs (``average_bitwidth``/``memory_density``, ``activation_bitwidth``, ``model_size``,
``flops``, ``bitops``, ``latency``, each also as ``<metric>_ratio`` to the float model).
The result is a :class:`TrialMetrics` record, fresh for every trial. An
:class:`Objective` turns it into the value(s) the strategy optimizes; the
:class:`Constraints` of ``[search.strategy.constraints]`` into constraint values (<= 0
feasible), some of them known from the configuration alone.

New runners subclass :class:`Runner` (its docstring is the contract) and register with
:func:`register_runner`.
"""

from __future__ import annotations

from bitscout.metrics._runner import (
    Candidate,
    RunContext,
    Runner,
    RunnerKind,
    get_runner,
    register_runner,
    runner_names,
)
from bitscout.metrics._runner_set import (
    RunnerSet,
    TrialMetrics,
    build_runners,
    validate_runner_options,
    validate_runners,
)
from bitscout.metrics._software import BasicEvaluation, BasicTrain
from bitscout.metrics._hardware import (
    FLOAT_BITS,
    ActivationBitwidth,
    AverageBitwidth,
    Bitops,
    Flops,
    Latency,
    ModelSize,
    has_weight_parameter,
    tensor_bits,
)
from bitscout.metrics._objective import MetricWarning, Objective, ObjectiveResult, ObjectiveTerm
from bitscout.metrics._constraints import (
    DROP_SUFFIX,
    SIZE_METRICS,
    Constraint,
    ConstraintKind,
    Constraints,
    constraint_problems,
    is_feasible,
    metric_drops,
)

__all__ = [
    "Candidate",
    "RunContext",
    "Runner",
    "RunnerKind",
    "get_runner",
    "register_runner",
    "runner_names",
    "RunnerSet",
    "TrialMetrics",
    "build_runners",
    "validate_runner_options",
    "validate_runners",
    "BasicEvaluation",
    "BasicTrain",
    "FLOAT_BITS",
    "ActivationBitwidth",
    "AverageBitwidth",
    "Bitops",
    "Flops",
    "Latency",
    "ModelSize",
    "has_weight_parameter",
    "tensor_bits",
    "MetricWarning",
    "Objective",
    "ObjectiveResult",
    "ObjectiveTerm",
    "DROP_SUFFIX",
    "SIZE_METRICS",
    "Constraint",
    "ConstraintKind",
    "Constraints",
    "constraint_problems",
    "is_feasible",
    "metric_drops",
]
