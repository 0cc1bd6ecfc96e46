"""Which graph nodes are quantizable, and the float module a function call becomes.

The two maps here are the defaults of :func:`bitscout.graph.trace`; a caller may pass
its own (for example to add a module type) instead of editing a global.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FloatOp", "QUANTIZABLE_MODULES", "QUANTIZABLE_FUNCTIONS"]

#: Module types (matched exactly, so a subclass with its own ``forward`` is left alone)
#: and the op type each becomes in the layer table.
QUANTIZABLE_MODULES: Mapping[type[nn.Module], str] = {
    nn.Linear: "linear",
    nn.Conv1d: "conv1d",
    nn.Conv2d: "conv2d",
    nn.ReLU: "relu",
}

#: Functions called in ``forward`` and the op type each becomes. A call counts only when
#: its operands are tensors: ``x + 1`` and ``x * 0.5`` stay unquantized.
QUANTIZABLE_FUNCTIONS: Mapping[Callable[..., Any], str] = {
    F.linear: "linear",
    torch.matmul: "matmul",
    operator.matmul: "matmul",
    torch.bmm: "bmm",
    operator.add: "add",
    torch.add: "add",
    operator.mul: "mul",
    torch.mul: "mul",
    F.relu: "relu",
    torch.relu: "relu",
}


class FloatOp(nn.Module):
    """A function call of the traced graph held as a module, so it can be swapped.

    Args:
        op: The op type (``"matmul"``, ``"add"``, ...).
        fn: The function the traced code called (``torch.matmul``, ``operator.add``, ...).
    """

    def __init__(self, op: str, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.op = op
        self.fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"op={self.op!r}, fn={getattr(self.fn, '__name__', self.fn)!r}"
