"""The training loop behind ``bitscout train``: Adam, cross-entropy, best validation kept."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from bitscout.data import Dataset
from bitscout.errors import BitscoutError
from bitscout.training._evaluate import EvalResult, evaluate

__all__ = ["EpochMetrics", "TrainResult", "intra_op_threads", "train"]


@dataclass(frozen=True)
class EpochMetrics:
    """Metrics of one epoch.

    Attributes:
        epoch: 1-based epoch number.
        train_loss: Mean cross-entropy over the epoch's training batches (train mode,
            weights changing during the epoch, as usual).
        train_accuracy: Top-1 accuracy over the same batches.
        val_loss: Mean cross-entropy on the validation split after the epoch.
        val_accuracy: Top-1 accuracy on the validation split after the epoch.
        val_balanced_accuracy: Mean per-class recall on the validation split.
        seconds: Wall time of the epoch, validation included.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_balanced_accuracy: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        history: One record per epoch.
        best_epoch: The epoch with the highest validation accuracy (the first of ties).
        best_val: Validation metrics of the best epoch's weights.
        best_state: The best epoch's state dict (CPU tensors); also loaded into the model.
        seconds: Total wall time.
        interrupted: Ctrl-C stopped the training after ``len(history)`` epochs; the
            best of those is loaded.
    """

    history: tuple[EpochMetrics, ...]
    best_epoch: int
    best_val: EvalResult
    best_state: dict[str, torch.Tensor]
    seconds: float
    interrupted: bool = False


def train(
    model: nn.Module,
    dataset: Dataset,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    cpu_threads: int | None = 1,
) -> TrainResult:
    """Train a classifier with Adam and cross-entropy, keeping the best validation state.

    The training split is shuffled each epoch by a ``torch.Generator`` seeded with
    ``seed``, so the same model initialisation, data and seed give identical weights (on
    the CPU; CUDA kernels may not be bit-reproducible). After each epoch the model is
    evaluated on the validation split; the weights of the epoch with the highest
    validation accuracy are loaded back into ``model`` at the end.

    A final batch of a single sample is skipped, because BatchNorm cannot train on one
    sample.

    Ctrl-C (KeyboardInterrupt) after at least one finished epoch ends the training there:
    the best finished epoch is loaded and returned, marked ``interrupted``, so that hours
    of epochs are not lost. Before the first epoch finishes it is raised.

    On the CPU, training runs on ``cpu_threads`` intra-op threads (torch's setting is
    restored afterwards). The default is one: the batches of the small models bitscout
    targets are too small to split, and threads that wait on each other on a busy
    machine cost more than they give (measured on 2 shared cores: the digits MLP, 20
    epochs, 3.8 s on one thread, 52 s on two).

    Args:
        model: The model to train, in place.
        dataset: Provides the ``train`` and ``val`` splits.
        epochs: Number of passes over the training split (>= 1).
        batch_size: Samples per optimizer step (>= 1).
        learning_rate: Adam's learning rate (> 0).
        seed: Seed of the shuffling.
        device: Where to train; the model stays there afterwards.
        progress: Show a tqdm progress bar over the epochs.
        on_epoch: Called with each epoch's metrics (the CLI prints them).
        cpu_threads: Intra-op threads while training on the CPU; ``None`` keeps
            ``torch.get_num_threads()``.

    Raises:
        BitscoutError: A non-positive epoch count, batch size, thread count or
            learning rate.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("cpu_threads", cpu_threads)):
        if value is not None and value < 1:
            raise BitscoutError(f"train: {name} must be >= 1; got {value}")
    if not learning_rate > 0:
        raise BitscoutError(f"train: learning_rate must be > 0; got {learning_rate}")
    device = torch.device(device)
    with intra_op_threads(cpu_threads if device.type == "cpu" else None):
        start_time = time.perf_counter()
        model.to(device)
        x_train = dataset.train.x.to(device)
        y_train = dataset.train.y.to(device)
        n = len(dataset.train)
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        generator = torch.Generator().manual_seed(seed)
        num_classes = dataset.info.num_classes

        history: list[EpochMetrics] = []
        best: tuple[int, EvalResult, dict[str, torch.Tensor]] | None = None
        # disable=None: a bar only on a terminal, not in logs and pipes.
        bar = tqdm(range(1, epochs + 1), desc="train", unit="epoch", disable=None if progress else True, leave=False)
        interrupted = False
        try:
            for epoch in bar:
                epoch_start = time.perf_counter()
                model.train()
                order = torch.randperm(n, generator=generator).to(device)
                loss_sum = 0.0
                correct = 0
                seen = 0
                for start in range(0, n, batch_size):
                    idx = order[start : start + batch_size]
                    if idx.numel() < 2 and seen > 0:
                        continue
                    logits = model(x_train[idx])
                    loss = F.cross_entropy(logits, y_train[idx])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    loss_sum += float(loss.detach()) * idx.numel()
                    correct += int((logits.detach().argmax(dim=-1) == y_train[idx]).sum())
                    seen += idx.numel()
                val = evaluate(model, dataset.val.x, dataset.val.y, num_classes=num_classes)
                metrics = EpochMetrics(
                    epoch=epoch,
                    train_loss=loss_sum / seen,
                    train_accuracy=correct / seen,
                    val_loss=val.loss,
                    val_accuracy=val.accuracy,
                    val_balanced_accuracy=val.balanced_accuracy,
                    seconds=time.perf_counter() - epoch_start,
                )
                history.append(metrics)
                if best is None or val.accuracy > best[1].accuracy:
                    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                    best = (epoch, val, state)
                bar.set_postfix(loss=f"{metrics.train_loss:.3f}", val_acc=f"{val.accuracy:.3f}")
                if on_epoch is not None:
                    on_epoch(metrics)
        except KeyboardInterrupt:
            # Ctrl-C: keep what the finished epochs earned (the best is already copied).
            if best is None:
                raise
            interrupted = True
        bar.close()
        assert best is not None  # epochs >= 1 was checked above
        best_epoch, best_val, best_state = best
        model.load_state_dict(best_state)
        return TrainResult(
            history=tuple(history),
            best_epoch=best_epoch,
            best_val=best_val,
            best_state=best_state,
            seconds=time.perf_counter() - start_time,
            interrupted=interrupted,
        )


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block on ``threads`` torch intra-op threads (``None``: as they are), then restore.

    Used by training and by the search on the CPU, where small models run faster on one
    thread than on threads that compete with the rest of the process and the machine.
    """
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
