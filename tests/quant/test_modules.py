"""Quantized layers: hand-computed forwards, the cache, straight-through gradients, and a
contract test over every quantized op type and every registered format."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bitscout.graph import trace
from bitscout.quant import (
    IntegerFormat,
    LayerQuantConfig,
    QuantizedLayer,
    Quantizer,
    TensorFormat,
    fake_quantize,
    format_names,
    get_format,
)


def _int_q(x: np.ndarray, width: int, frac: int) -> np.ndarray:
    """Signed fixed point by its integer definition, in float64 (np.round: half to even)."""
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    return np.clip(np.round(x * 2.0**frac), lo, hi) / 2.0**frac


def _int_config(data_in: tuple[int, int], weight: tuple[int, int], bias: tuple[int, int]) -> LayerQuantConfig:
    return LayerQuantConfig(
        "integer",
        data_in=IntegerFormat(*data_in),
        weight=IntegerFormat(*weight),
        bias=IntegerFormat(*bias),
    )


def test_quantized_linear_matches_hand_computation() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 5))
    with torch.no_grad():
        model[0].weight.mul_(20)  # push some weights past int6.3's range (-4 .. 3.875)
    x = torch.randn(32, 16) * 4  # and some inputs past int8.4's (-8 .. 7.9375)
    candidate = Quantizer(trace(model, x)).build({"_0": _int_config((8, 4), (6, 3), (8, 4))})
    with torch.inference_mode():
        got = candidate(x).numpy()
    xq = _int_q(x.double().numpy(), 8, 4)
    wq = _int_q(model[0].weight.detach().double().numpy(), 6, 3)
    bq = _int_q(model[0].bias.detach().double().numpy(), 8, 4)
    assert np.abs(xq).max() == pytest.approx(8.0) and np.abs(wq).max() == pytest.approx(4.0)
    expected = np.zeros((32, 5))
    for n in range(32):
        for o in range(5):
            expected[n, o] = sum(xq[n, i] * wq[o, i] for i in range(16)) + bq[o]
    # Products of these grids and their sums are exact in float32: bit-exact equality.
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_quantized_conv2d_matches_hand_computation() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, kernel_size=3, padding=1, stride=2)
    model = nn.Sequential(conv, nn.ReLU())
    x = torch.randn(2, 3, 6, 5) * 3
    candidate = Quantizer(trace(model, x)).build({"_0": _int_config((6, 3), (5, 4), (8, 5))})
    with torch.inference_mode():
        got = candidate(x).numpy()
    xq = np.pad(_int_q(x.double().numpy(), 6, 3), ((0, 0), (0, 0), (1, 1), (1, 1)))
    wq = _int_q(conv.weight.detach().double().numpy(), 5, 4)
    bq = _int_q(conv.bias.detach().double().numpy(), 8, 5)
    out_h, out_w = (6 + 2 - 3) // 2 + 1, (5 + 2 - 3) // 2 + 1
    expected = np.zeros((2, 4, out_h, out_w))
    for n in range(2):
        for o in range(4):
            for i in range(out_h):
                for j in range(out_w):
                    window = xq[n, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
                    expected[n, o, i, j] = float((window * wq[o]).sum()) + bq[o]
    np.testing.assert_array_equal(got, np.maximum(expected, 0).astype(np.float32))


def test_wrapper_shares_the_float_layers_tensors() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    traced = trace(model, torch.randn(2, 4))
    candidate = Quantizer(traced).build({"_0": _int_config((8, 4), (8, 4), (8, 4))})
    wrapper = candidate.get_submodule("_0")
    assert isinstance(wrapper, QuantizedLayer)
    assert list(candidate.state_dict()) == ["_0.weight", "_0.bias"]
    assert candidate.state_dict()["_0.weight"].data_ptr() == model[0].weight.data_ptr()
    # A parameter replaced on the float layer is seen by the wrapper (shared dicts).
    model[0].weight = nn.Parameter(torch.ones(3, 4))
    assert wrapper.weight is model[0].weight


def test_candidate_can_be_copied_and_pickled() -> None:
    model, x = _mlp()
    candidate = Quantizer(trace(model, x)).build({"_0": _int_config((6, 3), (6, 3), (6, 3))})
    with torch.inference_mode():
        expected = candidate(x)  # fills the cache, whose weak references must not travel
    buffer = io.BytesIO()
    torch.save(candidate, buffer)
    buffer.seek(0)
    for other in (copy.deepcopy(candidate), torch.load(buffer, weights_only=False)):
        with torch.inference_mode():
            assert torch.equal(other(x), expected)
        assert other.state_dict()["_0.weight"].data_ptr() != model[0].weight.data_ptr()


def _mlp() -> tuple[nn.Module, Tensor]:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    return model, torch.randn(10, 8)


def test_cache_reused_across_candidates_and_invalidated_by_updates() -> None:
    model, x = _mlp()
    quantizer = Quantizer(trace(model, x))
    a = _int_config((8, 4), (8, 4), (8, 4))
    b = _int_config((8, 4), (4, 2), (8, 4))
    first = quantizer.build({"_0": a, "_2": a})
    second = quantizer.build({"_0": a, "_2": b})
    cache = quantizer.cache
    with torch.inference_mode():
        first(x)
        assert (cache.misses, cache.hits) == (4, 0)  # 2 weights + 2 biases
        first(x)
        assert (cache.misses, cache.hits) == (4, 4)
        # Layer _0 is shared with the first candidate; _2 has a new weight format but
        # the same bias format: one miss (its weight), three hits.
        second(x)
        assert (cache.misses, cache.hits) == (5, 7)
    assert second.get_submodule("_0") is first.get_submodule("_0")

    with torch.no_grad():
        model[0].weight.mul_(-0.5)  # in place: bumps the parameter's version
    with torch.inference_mode():
        got = second(x)
    assert cache.misses == 6  # only the changed weight is recomputed
    with torch.no_grad():
        h = F.relu(F.linear(a.data_in.quantize(x), a.weight.quantize(model[0].weight), a.bias.quantize(model[0].bias)))
        expected = F.linear(b.data_in.quantize(h), b.weight.quantize(model[2].weight), b.bias.quantize(model[2].bias))
    assert torch.equal(got, expected)
    cache.clear()
    assert len(cache) == 0


def test_straight_through_gradient_in_training() -> None:
    model, x = _mlp()
    single = nn.Sequential(model[0])
    fmt = _int_config((4, 2), (4, 2), (4, 2))
    quantizer = Quantizer(trace(single, x))
    candidate = quantizer.build({"_0": fmt}).train()
    x = x.clone().requires_grad_(True)
    candidate(x).sum().backward()
    assert quantizer.cache.misses == 0  # weights wanted a gradient: not cached
    xq = fmt.data_in.quantize(x.detach())
    wq = fmt.weight.quantize(model[0].weight.detach())
    # d sum(xq @ wq.T + bq) / dW = sum_n xq[n]; / db = N; / dx = sum_o wq[o] (identity through q).
    assert torch.allclose(model[0].weight.grad, xq.sum(0).expand(6, 8))
    assert torch.equal(model[0].bias.grad, torch.full((6,), 10.0))
    assert torch.allclose(x.grad, wq.sum(0).expand(10, 8))

    # One optimizer step changes the weight in place; evaluation then uses the new one.
    before = model[0].weight.detach().clone()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before, model[0].weight)
    with torch.inference_mode():
        got = candidate(x.detach())
        expected = F.linear(xq, fmt.weight.quantize(model[0].weight), fmt.bias.quantize(model[0].bias))
    assert torch.equal(got, expected)


# --- contract: every quantized op type x every registered format -------------------

# Parameters of a valid, deliberately coarse format per registered name. A newly
# registered format must add its example here, or the contract test fails.
_FORMAT_EXAMPLES: dict[str, dict[str, object]] = {
    "integer": {"width": 5, "frac_width": 3},
    "int": {"width": 6, "symmetric": False},
    "minifloat": {"width": 6, "exponent_width": 3},
    "minifloat_ieee": {"width": 6, "exponent_width": 3},
    "block_fp": {"width": 5, "block_size": 4},
    "log": {"width": 4},
    "binary": {},
    "ternary": {},
}


class _Fn(nn.Module):
    def __init__(self, fn: Callable[..., Tensor], param: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.fn = fn
        self.p = None if param is None else nn.Parameter(torch.randn(param))

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self, x)


# op -> (model, input, reference: (model, quantize) -> expected output). `quantize(role, t)`
# quantizes tensor t as data_in/weight/bias (or returns it when that role stays float).
_CASES: dict[str, Callable[[], tuple[nn.Module, Tensor, Callable]]] = {
    "linear": lambda: (
        nn.Sequential(nn.Linear(6, 5)),
        torch.randn(3, 6) * 2,
        lambda m, q, x: F.linear(q("data_in", x), q("weight", m[0].weight), q("bias", m[0].bias)),
    ),
    "linear (F.linear)": lambda: (
        _Fn(lambda s, x: F.linear(x, s.p, None), (4, 6)),
        torch.randn(3, 6),
        lambda m, q, x: F.linear(q("data_in", x), q("weight", m.p)),
    ),
    "conv1d": lambda: (
        nn.Sequential(nn.Conv1d(3, 4, 3, padding=1)),
        torch.randn(2, 3, 8),
        lambda m, q, x: F.conv1d(q("data_in", x), q("weight", m[0].weight), q("bias", m[0].bias), padding=1),
    ),
    "conv2d": lambda: (
        nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1)),
        torch.randn(2, 2, 6, 6),
        lambda m, q, x: F.conv2d(
            q("data_in", x), q("weight", m[0].weight), q("bias", m[0].bias), stride=2, padding=1
        ),
    ),
    "matmul": lambda: (
        _Fn(lambda s, x: torch.matmul(x, s.p), (6, 4)),
        torch.randn(3, 6),
        lambda m, q, x: torch.matmul(q("data_in", x), q("weight", m.p)),
    ),
    "bmm": lambda: (
        _Fn(lambda s, x: torch.bmm(x, x.transpose(1, 2))),
        torch.randn(2, 4, 3),
        lambda m, q, x: torch.bmm(q("data_in", x), q("weight", x.transpose(1, 2))),
    ),
    "add": lambda: (
        _Fn(lambda s, x: x + s.p, (6,)),
        torch.randn(3, 6),
        lambda m, q, x: q("data_in", x) + q("weight", m.p),
    ),
    "mul": lambda: (
        _Fn(lambda s, x: x * x.flip(1)),
        torch.randn(3, 6),
        lambda m, q, x: q("data_in", x) * q("weight", x.flip(1)),
    ),
    "relu": lambda: (
        nn.Sequential(nn.ReLU()),
        torch.randn(3, 6),
        lambda m, q, x: F.relu(q("data_in", x)),
    ),
    "relu (F.relu)": lambda: (
        _Fn(lambda s, x: F.relu(x)),
        torch.randn(3, 6),
        lambda m, q, x: F.relu(q("data_in", x)),
    ),
}


def _example_format(name: str) -> TensorFormat:
    if name not in _FORMAT_EXAMPLES:
        pytest.fail(f"format {name!r} is registered but has no example in _FORMAT_EXAMPLES")
    return get_format(name)(**_FORMAT_EXAMPLES[name])


@pytest.mark.parametrize("format_name", format_names())
@pytest.mark.parametrize("case", sorted(_CASES))
def test_contract_every_op_every_format(case: str, format_name: str) -> None:
    torch.manual_seed(3)
    model, x, reference = _CASES[case]()
    model.eval()
    traced = trace(model, x)
    assert len(traced.table) == 1
    layer = traced.table.layers[0]
    assert case.split()[0] == layer.op
    fmt = _example_format(format_name)
    full = LayerQuantConfig(format_name, **{t: fmt for t in layer.tensors})
    quantizer = Quantizer(traced)
    with torch.no_grad():
        float_out = model(x)
        # Float config (None, or no tensor quantized) gives the float output exactly.
        assert torch.equal(quantizer.build({layer.name: None})(x), float_out)
        assert torch.equal(quantizer.build({layer.name: LayerQuantConfig(format_name)})(x), float_out)
        for _ in range(2):  # second pass: weights from the cache
            got = quantizer.build({layer.name: full})(x)
            assert got.shape == float_out.shape

            def q(role: str, t: Tensor | None) -> Tensor | None:
                return t if t is None or role not in layer.tensors else fmt.quantize(t)

            assert torch.equal(got, reference(model, q, x))
        # The same through fake_quantize (the straight-through path) gives the same.
        y = reference(model, lambda role, t: t if t is None or role not in layer.tensors else fake_quantize(t, fmt), x)
        assert torch.equal(got, y)
    # And each single tensor alone.
    for tensor in layer.tensors:
        one = LayerQuantConfig(format_name, **{tensor: fmt})
        with torch.no_grad():
            got = quantizer.build({layer.name: one})(x)
            expected = reference(model, lambda role, t: fmt.quantize(t) if role == tensor and t is not None else t, x)
        assert torch.equal(got, expected), tensor


def test_compiled_candidate_is_one_graph_with_the_eager_values() -> None:
    """Under torch.compile the weights are quantized in the graph: no graph break per layer.

    (The eager backend: dynamo's tracing, no code generation, so the values are the eager
    candidate's to the bit; gpu_check.sh measures inductor on a device.)
    """
    torch._dynamo.reset()
    model, x = _mlp()
    traced = trace(model, x)
    config = {
        layer.name: _int_config((8, 4), (4, 3), (8, 4)) for layer in traced.table if layer.op == "linear"
    }
    candidate = Quantizer(traced).build(config)
    compiled = torch.compile(candidate, backend="eager", fullgraph=True)
    with torch.inference_mode():
        expected = candidate(x)
        got = compiled(x)
    assert torch.equal(got, expected)
    # The quantized weights really entered: a float model gives other values.
    assert not torch.equal(expected, traced.gm(x))
