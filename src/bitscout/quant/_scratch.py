"""Reused memory for quantized layer inputs during an evaluation (a search's trials).

A quantized layer's input is a fresh tensor the size of the activation, used by one
``F.linear`` or convolution and dropped right after. On the CPU every such tensor is a
new allocation, and a large one (megabytes) is new pages from the system each time:
measured on jsc-s over 160,000 rows, allocating the quantized input cost about as much
as three passes over it. While a :class:`ScratchBuffers` is active, a quantized layer
whose computation keeps no reference to its input (``OpSpec.scratch_input``) writes
that input into a buffer reused from layer to layer and call to call instead.

Only evaluation opts in (``training.EvalSet`` holds one per search and activates it
around its forward passes): a buffer lives as long as its owner and is as large as the
largest input it served, which a one-off model must not keep behind the user's back.
"""

from __future__ import annotations

import threading
from types import TracebackType

import torch
from torch import Tensor

__all__ = ["ScratchBuffers", "active_scratch", "SCRATCH_MIN_ELEMENTS"]

_ACTIVE = threading.local()

#: Inputs smaller than this (128 KiB of float32) are allocated as before: the allocator
#: serves them from its free lists cheaply, and the buffer's bookkeeping would cost more
#: than it saves (jsc-tiny's 512 x 16 inputs).
SCRATCH_MIN_ELEMENTS = 1 << 15


class ScratchBuffers:
    """Buffers for quantized layer inputs, one per thread, dtype and device.

    Each thread (Optuna's ``n_jobs`` runs trials in threads) has its own buffers, so
    concurrent evaluations never share one. Within a thread, layers run one after the
    other and each is done with its input before the next layer asks for the buffer.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def like(self, x: Tensor) -> Tensor:
        """An uninitialised contiguous tensor of ``x``'s shape, dtype and device.

        It is a view of this thread's buffer, whose contents the next call overwrites:
        use it only for a value that is dead before the next call.
        """
        buffers: dict[tuple[torch.dtype, torch.device], Tensor] | None = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        key = (x.dtype, x.device)
        numel = x.numel()
        buffer = buffers.get(key)
        if buffer is None or buffer.numel() < numel:
            # Grown to the largest input seen; the prefix view starts at the buffer's
            # (aligned) start, as a fresh tensor would.
            buffer = buffers[key] = torch.empty(numel, dtype=x.dtype, device=x.device)
        return buffer[:numel].view(x.shape)

    def held_bytes(self) -> int:
        """Bytes this thread's buffers hold."""
        buffers = getattr(self._local, "buffers", None) or {}
        return sum(b.numel() * b.element_size() for b in buffers.values())

    def active(self) -> _Activation:
        """Make these the buffers quantized layers of this thread use, for a ``with`` block."""
        return _Activation(self)


class _Activation:
    """The ``with`` block of :meth:`ScratchBuffers.active` (a plain class: entered per trial,
    it costs less than a generator-based context manager)."""

    __slots__ = ("_scratch", "_previous")

    def __init__(self, scratch: ScratchBuffers) -> None:
        self._scratch = scratch
        self._previous: ScratchBuffers | None = None

    def __enter__(self) -> ScratchBuffers:
        self._previous = getattr(_ACTIVE, "scratch", None)
        _ACTIVE.scratch = self._scratch
        return self._scratch

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        _ACTIVE.scratch = self._previous


def active_scratch() -> ScratchBuffers | None:
    """The buffers active in this thread (:meth:`ScratchBuffers.active`), or None."""
    return getattr(_ACTIVE, "scratch", None)
