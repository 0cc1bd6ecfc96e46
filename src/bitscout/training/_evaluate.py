"""Evaluation of a classifier on tensors: accuracy, balanced accuracy, loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bitscout.errors import DataError
from bitscout.quant import ScratchBuffers
from bitscout.training._scores import label_positions, score_chunk

__all__ = ["EvalResult", "EvalSet", "evaluate", "evaluate_set", "model_device", "check_samples", "check_labels"]


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one evaluation.

    Attributes:
        accuracy: Top-1 accuracy, in [0, 1].
        balanced_accuracy: Mean per-class recall over the classes that occur in the
            labels or the predictions (torchmetrics' ``MulticlassAccuracy(average="macro")``,
            MASE's default accuracy metric).
        loss: Mean cross-entropy per sample.
        num_samples: Samples evaluated.
    """

    accuracy: float
    balanced_accuracy: float
    loss: float
    num_samples: int

    def as_dict(self) -> dict[str, float]:
        """The metrics as a plain dict (for JSON)."""
        return {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "loss": self.loss,
            "num_samples": self.num_samples,
        }


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU when it has none)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def check_samples(x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> int:
    """Check samples held as tensors before any pass over them; return their number.

    Raises:
        DataError: No samples, ``x`` and ``y`` of different lengths, or a batch size < 1.
    """
    n = int(y.shape[0])
    if n == 0:
        raise DataError("cannot evaluate on 0 samples")
    if int(x.shape[0]) != n:
        raise DataError(f"x has {x.shape[0]} samples but y has {n} labels")
    if batch_size is not None and batch_size < 1:
        raise DataError(f"batch_size must be >= 1; got {batch_size}")
    return n


def check_labels(y: torch.Tensor, num_classes: int, width: int) -> None:
    """Check that a model's ``width`` logits fit ``num_classes`` and the labels ``y``.

    Raises:
        DataError: The width differs from the class count, or a label lies outside
            ``0..num_classes-1``.
    """
    if width != num_classes:
        raise DataError(
            f"the model gives {width} outputs per sample but the data has {num_classes} classes"
        )
    low, high = (int(v) for v in torch.aminmax(y))
    if low < 0 or high >= num_classes:
        raise DataError(
            f"labels must lie in 0..{num_classes - 1}; got labels from {low} to {high}"
        )


#: Up to this many classes the per-class counts come from one confusion-matrix bincount.
_CONFUSION_MAX_CLASSES = 32


def _any_training(model: nn.Module) -> bool:
    return any(module.training for module in model.modules())


class EvalSet:
    """Samples held as tensors, prepared once for many evaluations (a search's trials).

    What does not depend on the model is done here, once: the checks of
    :func:`check_samples`, the labels as int64 on the device, the chunk size, and
    (after the first evaluation has checked the labels against the logits) the class
    counts. :func:`evaluate_set` then does per model only the forward passes and the
    metrics. ``evaluate(model, x, y, ...)`` is ``evaluate_set(model, EvalSet(x, y, ...))``.

    The set also holds the :class:`~bitscout.quant.ScratchBuffers` that a quantized
    model's layers write their quantized inputs into during its evaluations (memory
    reused from trial to trial; as large as the largest quantized layer input, for as
    long as the set lives).

    Args:
        x: Inputs, first dimension = samples (moved to ``device`` chunk by chunk).
        y: Integer class labels, shape ``(n,)``.
        batch_size: Samples per forward pass; ``None`` = all at once.
        num_classes: Number of classes; ``None`` = the width of the logits.
        device: Where the model runs.

    Raises:
        DataError: No samples, ``x`` and ``y`` of different lengths, or a batch size < 1.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int | None = None,
        num_classes: int | None = None,
        device: torch.device,
    ) -> None:
        self.n = check_samples(x, y, batch_size)
        self.x = x
        self.y = y.to(device=device, dtype=torch.long)
        self.step = self.n if batch_size is None else batch_size
        self.num_classes = num_classes
        self.device = device
        # Set by the first evaluation that checked the labels against its logits.
        self._checked_width: int | None = None
        self._support: list[int] | None = None
        self._offsets: np.ndarray | None = None
        self._offsets_classes = 0
        # The labels on the host, where the logits are scored, and per chunk of samples
        # the positions of their logits (made at the first evaluation).
        self.y_host = self.y.cpu().numpy()
        self._positions: dict[int, np.ndarray] = {}
        self.x_on_device = x.device == device
        self.scratch = ScratchBuffers()

    def check(self, width: int) -> int:
        """Checks the logits' width (and, once, the labels); returns the number of classes."""
        if width == self._checked_width:
            return width
        num_classes = width if self.num_classes is None else self.num_classes
        check_labels(self.y, num_classes, width)
        self._checked_width = width
        self._support = None
        return num_classes

    def support(self, num_classes: int) -> list[int]:
        """Samples per class (computed once)."""
        if self._support is None or len(self._support) != num_classes:
            self._support = torch.bincount(self.y, minlength=num_classes).tolist()
        return self._support

    def label_offsets(self, num_classes: int) -> np.ndarray | None:
        """``C * (y + 1)`` (computed once), so that ``C * (y + 1) - (C - prediction)``
        indexes the confusion matrix; None when the matrix would be large (over 32
        classes): then counting hits and predictions apart costs less than reading back
        ``C**2`` counts."""
        if num_classes > _CONFUSION_MAX_CLASSES:
            return None
        if self._offsets is None or self._offsets_classes != num_classes:
            self._offsets = (self.y_host + 1) * num_classes
            self._offsets_classes = num_classes
        return self._offsets

    def positions(self, start: int) -> np.ndarray:
        """:func:`~bitscout.training.label_positions` of the chunk from sample ``start``."""
        found = self._positions.get(start)
        if found is None:
            found = self._positions[start] = label_positions(self.y[start : start + self.step])
        return found


def evaluate_set(model: nn.Module, data: EvalSet, *, switch_mode: bool = True) -> EvalResult:
    """:func:`evaluate` on samples prepared with :class:`EvalSet`.

    Args:
        model: Maps ``(n, *input_shape)`` to logits ``(n, num_classes)``.
        data: The samples.
        switch_mode: Put a model with a training module in eval mode for the call (and
            back after). A caller that knows the model is in eval mode (a search's
            candidates) passes False and saves the walk over every module.

    Raises:
        DataError: Logits of another width than ``num_classes``, or labels outside
            ``0..num_classes-1``.
    """
    # Switching modes walks every module twice; a search's candidates are already in
    # eval mode, so only a model with a training module is switched (and restored).
    was_training = model.training if switch_mode and _any_training(model) else None
    if was_training is not None:
        model.eval()
    try:
        with torch.inference_mode(), data.scratch.active():
            n = data.n
            num_classes = data.num_classes
            # The chunks' loss sums are float64, added in chunk order (Python floats: the
            # same IEEE additions as float64 arrays).
            loss_sum: float | None = None
            ranks = []
            for start in range(0, n, data.step):
                if data.step >= n:  # one pass over every sample (no slicing, no copy)
                    logits = model(data.x if data.x_on_device else data.x.to(data.device))
                else:
                    logits = model(data.x[start : start + data.step].to(data.device))
                if start == 0:
                    num_classes = data.check(int(logits.shape[-1]))
                loss, rank = score_chunk(logits, data.positions(start))
                loss_sum = loss if loss_sum is None else loss_sum + loss
                ranks.append(rank)
            assert loss_sum is not None and num_classes is not None  # n >= 1: one pass ran
            # The prediction k of each sample as its rank C - k (see score_chunk).
            rank = ranks[0] if len(ranks) == 1 else np.concatenate(ranks)
            # Per-class counts, read once: the per-class arithmetic on the host is exact
            # and costs less than a dozen tiny array operations.
            support = data.support(num_classes)
            offsets = data.label_offsets(num_classes)
            if offsets is not None:
                # The confusion matrix in one bincount: bucket C*y + p = C*(y + 1) - rank.
                confusion = np.bincount(offsets - rank, minlength=num_classes * num_classes).tolist()
                hits = confusion[:: num_classes + 1]
                predicted = [sum(confusion[k::num_classes]) for k in range(num_classes)]
            else:
                # Bucket k counts the wrong predictions of class k, bucket C + k the right ones.
                pred = num_classes - rank.astype(np.int64)
                counts = np.bincount(pred + (pred == data.y_host) * num_classes, minlength=2 * num_classes).tolist()
                hits = counts[num_classes:]
                predicted = [wrong + right for wrong, right in zip(counts[:num_classes], hits)]
            recall = [
                hit / max(count, 1)
                for hit, count, guessed in zip(hits, support, predicted)
                if count > 0 or guessed > 0
            ]
            return EvalResult(
                accuracy=sum(hits) / n,
                # The mean in float64 by torch, as before: the sum's order is torch's.
                balanced_accuracy=float(torch.tensor(recall, dtype=torch.float64).mean()),
                loss=loss_sum / n,
                num_samples=n,
            )
    finally:
        if was_training is not None:
            model.train(was_training)


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int | None = None,
    num_classes: int | None = None,
    device: torch.device | None = None,
) -> EvalResult:
    """Evaluate a classifier on samples held as tensors.

    Runs under ``torch.inference_mode`` with the model in eval mode (when any of its
    modules was training, the model's previous mode is restored afterwards); inputs are
    moved to the model's device batch by batch.

    Balanced accuracy is the mean per-class recall exactly as torchmetrics'
    ``MulticlassAccuracy(average="macro")`` (MASE's accuracy metric) computes it: the
    mean, over every class that occurs in ``y`` or is predicted at least once, of the
    fraction of that class's samples predicted correctly (0 for a class predicted but
    absent from ``y``). A class neither present nor predicted is left out. When every
    class occurs in ``y`` this equals scikit-learn's ``balanced_accuracy_score``.

    Many evaluations on the same samples (a search) prepare them once with
    :class:`EvalSet` and call :func:`evaluate_set`: the same numbers, without the
    per-call checks and conversions.

    Args:
        model: Maps ``(n, *input_shape)`` to logits ``(n, num_classes)``.
        x: Inputs, first dimension = samples.
        y: Integer class labels, shape ``(n,)``.
        batch_size: Samples per forward pass; ``None`` = all at once.
        num_classes: Number of classes; ``None`` = the width of the logits.
        device: The model's device, when the caller knows it (a search evaluates
            thousands of candidates); ``None`` = that of its first parameter.

    Raises:
        DataError: No samples, ``x`` and ``y`` of different lengths, logits of another
            width than ``num_classes``, or labels outside ``0..num_classes-1``.
    """
    data = EvalSet(
        x,
        y,
        batch_size=batch_size,
        num_classes=num_classes,
        device=model_device(model) if device is None else device,
    )
    return evaluate_set(model, data)
