"""fake_quantize: straight-through gradients, and no extra work when no gradient is wanted."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor

from bitscout.quant.formats import IntegerFormat, MinifloatIEEEFormat, TensorFormat, fake_quantize


@dataclasses.dataclass(frozen=True)
class _Counting(TensorFormat):
    """Not registered: wraps a format and records the tensors returned by quantize."""

    inner: TensorFormat
    outputs: list = dataclasses.field(default_factory=list, compare=False, hash=False)

    name = "counting"

    def quantize(self, x: Tensor) -> Tensor:
        out = self.inner.quantize(x)
        self.outputs.append(out)
        return out

    @property
    def bits(self) -> float:
        return self.inner.bits

    def describe(self) -> str:
        return "counting"


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_without_grad_it_is_exactly_one_quantize_call(context) -> None:
    fmt = _Counting(IntegerFormat(8, 4))
    x = torch.randn(5, 7, requires_grad=True)
    with context():
        y = fake_quantize(x, fmt)
    assert len(fmt.outputs) == 1 and y is fmt.outputs[0]


def test_input_without_grad_is_exactly_one_quantize_call() -> None:
    fmt = _Counting(IntegerFormat(8, 4))
    y = fake_quantize(torch.randn(3), fmt)
    assert len(fmt.outputs) == 1 and y is fmt.outputs[0]


def test_straight_through_is_bit_exact_where_x_plus_detach_is_not() -> None:
    # x + (q - x).detach() gives 0 for 1e30 and NaN for inf; the STE must not.
    fmt = IntegerFormat(4, 1)
    x = torch.tensor([1e30, float("inf"), -float("inf"), 0.3], requires_grad=True)
    y = fake_quantize(x, fmt)
    assert y.tolist() == [3.5, 3.5, -4.0, 0.5]
    y.sum().backward()
    assert x.grad is not None and x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_gradient_flows_through_a_layer() -> None:
    fmt = MinifloatIEEEFormat(8, 4)
    w = torch.randn(4, 3, requires_grad=True)
    x = torch.randn(2, 3)
    out = x @ fake_quantize(w, fmt).t()
    out.sum().backward()
    # d(sum(x @ q(w).T))/dw = column sums of x broadcast over rows (identity through q).
    assert w.grad is not None and torch.equal(w.grad, x.sum(0).expand(4, 3))
