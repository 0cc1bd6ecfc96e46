"""The cross-entropy and the predicted classes, computed class by class on the host.

One definition serves a trial's evaluation (:func:`bitscout.training.evaluate_set`) and
the exhaustive engine (:mod:`bitscout.evaluation`), which must agree to the bit. Logits
are laid out class by class, ``(..., classes, samples)``, so that every operation runs
along the samples: PyTorch's row-wise ``log_softmax`` and ``argmax`` over a handful of
classes cost about 90 and 30 ns a sample on the CPU (a vector per row, mostly empty);
these passes cost a few ns a sample.

Why the bits agree however the samples are grouped:

* PyTorch's ``exp`` and ``log`` compute every element with the same vector code
  whatever its position (a short tail is loaded masked into a vector, not finished
  with the scalar ``std::exp``, whose last bit can differ), in any number of threads;
* the sum over the classes runs class after class for every sample (a reduction over a
  leading axis adds whole rows in order);
* the sum over the samples of one evaluation is numpy's float64 sum of a contiguous row,
  the same function of the row's values whether the row stands alone or in a block.

The tests check each of these on the numpy they run with.

Per sample, with ``m`` the largest logit: ``loss = log(sum_k exp(x_k - m)) - (x_label - m)``
in the logits' precision (float32, or float64 for a float64 model); the losses of a chunk
of samples are summed in float64. PyTorch's ``cross_entropy`` computes the same
quantity; the two differ by about one float32 rounding (relative 1e-7).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["class_major", "class_maxima", "label_positions", "cross_entropy_sums", "predicted_classes"]


def class_major(logits: torch.Tensor, *, transposed: bool = False) -> np.ndarray:
    """Logits ``(..., samples, classes)`` as a C-contiguous host array ``(..., classes, samples)``.

    Half-precision logits become float32 (their losses lose too much in the sum);
    float32 and float64 keep their precision. With ``transposed`` the logits are
    already ``(..., classes, samples)``.
    """
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()
    values = logits.detach().cpu().numpy()
    return np.ascontiguousarray(values if transposed else values.swapaxes(-1, -2))


def label_positions(labels: np.ndarray) -> np.ndarray:
    """Where each sample's label logit lies in a flattened ``(classes, samples)`` plane.

    Made once per chunk of samples (checked labels) and passed to :func:`cross_entropy_sums`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    return labels * n + np.arange(n, dtype=np.int64)


def class_maxima(by_class: np.ndarray) -> np.ndarray:
    """Every sample's largest logit: ``by_class.max(axis=-2)`` (NaN where a logit is NaN)."""
    return by_class.max(axis=-2)


def cross_entropy_sums(by_class: np.ndarray, positions: np.ndarray, maxima: np.ndarray) -> np.ndarray:
    """The summed cross-entropy of every plane of class-major logits.

    Args:
        by_class: ``(..., classes, samples)`` logits (:func:`class_major`).
        positions: :func:`label_positions` of the samples' labels.
        maxima: :func:`class_maxima` of ``by_class``.

    Returns:
        float64 array of shape ``by_class.shape[:-2]``: each plane's per-sample losses
        summed. Non-finite logits give NaN or inf, as PyTorch's ``cross_entropy`` does.
    """
    *lead, classes, n = by_class.shape
    # The elementwise steps in PyTorch (no warnings for inf - inf; exp and log as
    # position-free as numpy's, and faster here), the sums in numpy (their order above).
    shifted = torch.from_numpy(by_class).view(-1, classes, n) - torch.from_numpy(maxima).view(-1, 1, n)
    flat = shifted.numpy().reshape(-1, classes * n)
    picked = flat[0].take(positions) if len(flat) == 1 else np.take_along_axis(flat, positions[None, :], axis=1)
    sums = shifted.exp_().numpy().sum(axis=1)
    losses = torch.from_numpy(sums).log_().numpy()
    losses -= picked
    return losses.astype(np.float64).sum(axis=-1).reshape(lead)


def predicted_classes(by_class: np.ndarray, maxima: np.ndarray, *, nan: bool = True) -> np.ndarray:
    """``argmax`` over the classes of one ``(classes, samples)`` plane: the first largest.

    As PyTorch's ``argmax``, a NaN counts as the largest value (its first occurrence).

    Args:
        by_class: ``(classes, samples)`` logits.
        maxima: :func:`class_maxima` of ``by_class``.
        nan: Whether a logit may be NaN; False skips the check (a caller whose loss
            came out finite knows that none is).
    """
    classes = by_class.shape[0]
    if nan and np.isnan(maxima).any():
        return by_class.argmax(axis=0)
    # Rank classes C..1 where they reach the maximum: the largest rank is the first class.
    rank = _RANKS.get(classes)
    if rank is None:
        rank = _RANKS[classes] = np.arange(classes, 0, -1).astype(np.uint8 if classes < 256 else np.int64)[:, None]
    top_rank = np.multiply(by_class == maxima, rank, dtype=rank.dtype).max(axis=0)
    return classes - top_rank.astype(np.int64)


#: Class count -> the ranks C..1 as a column (made once per count).
_RANKS: dict[int, np.ndarray] = {}
