"""Training (``bitscout train``) and the evaluation every runner shares."""

from __future__ import annotations

from bitscout.training._evaluate import (
    EvalResult,
    check_labels,
    check_samples,
    evaluate,
    model_device,
)
from bitscout.training._train import EpochMetrics, TrainResult, intra_op_threads, train

__all__ = [
    "EpochMetrics",
    "EvalResult",
    "TrainResult",
    "check_labels",
    "check_samples",
    "evaluate",
    "intra_op_threads",
    "model_device",
    "train",
]
