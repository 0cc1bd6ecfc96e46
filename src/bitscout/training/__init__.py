"""Training (``bitscout train``) and the evaluation every runner shares."""

from __future__ import annotations

from bitscout.training._evaluate import (
    EvalResult,
    EvalSet,
    check_labels,
    check_samples,
    evaluate,
    evaluate_set,
    model_device,
)
from bitscout.training._scores import (
    class_major,
    cross_entropy_sums,
    label_positions,
    score_chunk,
)
from bitscout.training._train import EpochMetrics, TrainResult, intra_op_threads, train

__all__ = [
    "EpochMetrics",
    "EvalResult",
    "EvalSet",
    "TrainResult",
    "check_labels",
    "class_major",
    "cross_entropy_sums",
    "check_samples",
    "evaluate",
    "evaluate_set",
    "intra_op_threads",
    "label_positions",
    "model_device",
    "score_chunk",
    "train",
]
