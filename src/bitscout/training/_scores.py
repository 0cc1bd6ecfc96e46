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
  the same function of the row's values whether the row stands alone or in a block;
* the largest logit and the label's are exact (a maximum and a gather), and
  ``x_label - m`` is the same subtraction whether taken from the shifted logits or apart.

The tests check each of these on the numpy they run with.

Per sample, with ``m`` the largest logit: ``loss = log(sum_k exp(x_k - m)) - (x_label - m)``
in the logits' precision (float32, or float64 for a float64 model); the losses of a chunk
of samples are summed in float64. PyTorch's ``cross_entropy`` computes the same
quantity; the two differ by about one float32 rounding (relative 1e-7).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["class_major", "label_positions", "cross_entropy_sums", "score_chunk"]


def class_major(logits: torch.Tensor, *, transposed: bool = False) -> torch.Tensor:
    """Logits ``(..., samples, classes)`` as a contiguous CPU tensor ``(..., classes, samples)``.

    Half-precision logits become float32 (their losses lose too much in the sum);
    float32 and float64 keep their precision. With ``transposed`` the logits are
    already ``(..., classes, samples)``.
    """
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()
    logits = logits.detach().cpu()
    if transposed:
        return logits.contiguous()
    # numpy's transposing copy: several times faster than PyTorch's for a few classes.
    return torch.from_numpy(np.ascontiguousarray(logits.numpy().swapaxes(-1, -2)))


def label_positions(labels: torch.Tensor) -> np.ndarray:
    """Where each sample's label logit lies in a flattened ``(classes, samples)`` plane.

    Made once per chunk of samples (checked labels) and passed to :func:`score_chunk`.
    """
    labels = labels.detach().cpu().numpy().astype(np.int64)
    n = labels.shape[0]
    return labels * n + np.arange(n, dtype=np.int64)


def cross_entropy_sums(by_class: torch.Tensor, maxima: torch.Tensor, own: torch.Tensor) -> np.ndarray:
    """The summed cross-entropy of every plane of class-major logits.

    Args:
        by_class: ``(..., classes, samples)`` logits (:func:`class_major`).
        maxima: Every sample's largest logit, ``by_class.amax(dim=-2)``.
        own: Every sample's logit of its label, ``(..., samples)``.

    Returns:
        float64 array of shape ``by_class.shape[:-2]``: each plane's per-sample losses
        summed. Non-finite logits give NaN or inf, as PyTorch's ``cross_entropy`` does.
    """
    # The elementwise steps in PyTorch (exp and log position-free, see above), the sums
    # in numpy (their order above).
    sums = (by_class - maxima.unsqueeze(-2)).exp_().numpy().sum(axis=-2)
    losses = torch.from_numpy(sums).log_()
    losses -= own - maxima
    return losses.numpy().astype(np.float64).sum(axis=-1)


def score_chunk(logits: torch.Tensor, positions: np.ndarray) -> tuple[float, np.ndarray]:
    """The summed cross-entropy and the predictions of one chunk of ``(samples, classes)`` logits.

    The loss is :func:`cross_entropy_sums` of the chunk, bit for bit (the tests check
    it), in fewer steps: a trial on a few hundred samples pays for every call, so the
    steps that need no particular library run in numpy, whose calls cost less than
    PyTorch's. The prediction is ``argmax`` over the classes (the first largest; a NaN
    counts as the largest, as in PyTorch).

    Args:
        logits: ``(samples, classes)``.
        positions: :func:`label_positions` of the samples' labels.

    Returns:
        ``(loss sum, ranks)``: each sample's predicted class ``k`` as the rank
        ``classes - k`` (so that ``C * (label + 1) - rank`` indexes a confusion matrix in
        one subtraction).
    """
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()
    if logits.device.type != "cpu":
        logits = logits.cpu()
    if logits.requires_grad:
        logits = logits.detach()
    values = np.ascontiguousarray(logits.numpy().T)
    # The ufuncs' own reductions: ndarray.max() and .sum() are these behind a Python wrapper.
    top = np.maximum.reduce(values, axis=0)
    # Finite maxima (the rule) leave no inf - inf to warn about; otherwise silence it.
    if np.logical_and.reduce(np.isfinite(top)):
        loss = _chunk_loss(values, top, positions)
    else:
        with np.errstate(all="ignore"):  # NaN or inf logits: a NaN or inf loss, no warning
            loss = _chunk_loss(values, top, positions)
        if np.isnan(top).any():
            return loss, values.shape[0] - values.argmax(axis=0)
    # The first class reaching the maximum has the largest rank among those that do.
    rank = _ranks(values.shape[0])
    hits = (values == top).view(np.uint8)
    if rank.dtype == np.uint8:
        return loss, np.maximum.reduce(np.multiply(hits, rank, out=hits), axis=0)
    return loss, np.maximum.reduce(hits * rank, axis=0)


def _chunk_loss(values: np.ndarray, top: np.ndarray, positions: np.ndarray) -> float:
    """:func:`cross_entropy_sums` of one ``(classes, samples)`` plane, step by step."""
    shifted = values - top
    own = values.take(positions) - top  # take() reads the plane flattened
    torch.from_numpy(shifted).exp_()  # in place: ``shifted`` now holds the exponentials
    losses = torch.from_numpy(np.add.reduce(shifted, axis=0)).log_().numpy()
    losses -= own
    return float(np.add.reduce(losses.astype(np.float64)))


def _ranks(classes: int) -> np.ndarray:
    """The ranks C..1 as a column: where classes reach the maximum, the largest rank is
    the first such class."""
    rank = _RANKS.get(classes)
    if rank is None:
        rank = _RANKS[classes] = np.arange(classes, 0, -1).astype(np.uint8 if classes < 256 else np.int64)[:, None]
    return rank


#: Class count -> the ranks C..1 as a column (made once per count).
_RANKS: dict[int, np.ndarray] = {}
