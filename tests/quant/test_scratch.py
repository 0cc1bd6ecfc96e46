"""Scratch buffers for quantized inputs, and the input scale folded into the weights:
the same bits as the plain quantized forward, on random and edge data."""

from __future__ import annotations

import itertools
import random
import threading

import pytest
import torch
from torch import Tensor, nn

from bitscout.graph import trace
from bitscout.quant import IntegerFormat, LayerQuantConfig, Quantizer, ScratchBuffers, active_scratch
from bitscout.quant import _modules
from bitscout.quant._modules import _exact_terms
from bitscout.quant._scratch import SCRATCH_MIN_ELEMENTS
from bitscout.training import (
    EvalSet,
    class_major,
    cross_entropy_sums,
    evaluate,
    evaluate_set,
)


def _bits_equal(a: Tensor, b: Tensor) -> bool:
    """Equal to the bit (the sign of zero included), NaN matching NaN."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    if not torch.equal(nan_a, nan_b):
        return False
    return torch.equal(a.masked_fill(nan_a, 0).view(torch.int32), b.masked_fill(nan_b, 0).view(torch.int32))


def _edge_inputs(n: int, features: int, frac: int, seed: int) -> Tensor:
    """Random inputs with NaN, infinities, signed zeros, rounding ties and saturating values."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g) * 3
    step = 2.0**-frac
    specials = torch.tensor(
        [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 0.5 * step, -0.5 * step, 1.5 * step,
         -2.5 * step, 1e30, -1e30, 1e-30, -1e-30, 3.4e38]
    )
    index = torch.randint(0, n * features, (n * features // 8,), generator=g)
    x.view(-1)[index] = specials[torch.randint(0, len(specials), (len(index),), generator=g)]
    return x


def _forward(candidate: nn.Module, x: Tensor, scratch: ScratchBuffers | None) -> Tensor:
    """The forward of an evaluation: with the fold, and with the buffers when given."""
    with torch.inference_mode():
        if scratch is None:
            return candidate(x)
        with scratch.active():
            return candidate(x)


def _plain(candidate: nn.Module, x: Tensor) -> Tensor:
    """The forward with autograd on: every operand through fake_quantize, as before the
    fold and the buffers (the parameters require grad)."""
    with torch.enable_grad():
        return candidate(x).detach()


def _mlp(bias: bool) -> nn.Module:
    model = nn.Sequential(nn.Linear(16, 64, bias=bias), nn.ReLU(), nn.Linear(64, 32, bias=bias), nn.Linear(32, 5, bias=bias))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4)  # past the small formats' ranges: saturating weights too
    return model.eval()


@pytest.fixture
def every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buffers for inputs of any size (small test inputs stay fast)."""
    monkeypatch.setattr(_modules, "SCRATCH_MIN_ELEMENTS", 0)


@pytest.mark.parametrize("bias", [True, False])
def test_scratch_and_fold_give_the_plain_forward_to_the_bit(bias: bool, every_size: None) -> None:
    torch.manual_seed(0)
    model = _mlp(bias)
    traced = trace(model, torch.randn(2, 16))
    quantizer = Quantizer(traced)
    names = [layer.name for layer in traced.table if layer.op == "linear"]
    assert len(names) == 3
    rng = random.Random(0)
    widths = (1, 2, 3, 4, 6, 8, 12, 16, 24)
    folded = 0
    scratch = ScratchBuffers()
    for trial in range(60):
        config = {}
        for name in names:
            fmts = [IntegerFormat(w, rng.randint(-3, w + 3)) for w in (rng.choice(widths) for _ in range(3))]
            config[name] = LayerQuantConfig("integer", data_in=fmts[0], weight=fmts[1], bias=fmts[2])
        for name, layer_config in config.items():
            terms = _exact_terms(layer_config.data_in, layer_config.weight, layer_config.bias)
            if terms is not None and traced.gm.get_submodule(name).in_features <= terms[not bias]:
                folded += 1
        candidate = quantizer.build(config)
        x = _edge_inputs(257, 16, config[names[0]].data_in.frac_width, seed=trial)
        plain = _plain(candidate, x)
        assert _bits_equal(plain, _forward(candidate, x, scratch)), f"trial {trial}: {config}"
        assert _bits_equal(plain, _forward(candidate, x, None)), f"trial {trial}: {config}"
    assert folded > 20  # the fold itself was exercised, not only the buffers
    assert scratch.held_bytes() == 257 * 64 * 4  # the largest quantized input, once


def test_fold_caches_the_scaled_weights_once(every_size: None) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(16, 5)).eval()
    traced = trace(model, torch.randn(2, 16))
    quantizer = Quantizer(traced)
    fmt_in, fmt_w, fmt_b = IntegerFormat(8, 4), IntegerFormat(4, 2), IntegerFormat(8, 4)
    candidate = quantizer.build({"_0": LayerQuantConfig("integer", data_in=fmt_in, weight=fmt_w, bias=fmt_b)})
    x = torch.randn(64, 16)
    scratch = ScratchBuffers()
    for _ in range(3):
        _forward(candidate, x, scratch)
    # Built once (one miss for the scaled weight, one for the bias), then read from the cache.
    assert quantizer.cache.misses == 2 and quantizer.cache.hits == 4
    scaled = quantizer.cache.quantize("_0", "weight", model[0].weight, fmt_w, shift=4)
    assert quantizer.cache.misses == 2
    assert torch.equal(scaled, fmt_w.quantize(model[0].weight.detach()) / 16)


def test_exact_terms_by_hand() -> None:
    q = IntegerFormat
    # int8.4 x int8.4: products are multiples of 2**-8 below 2**14 units each; the int8.4
    # bias adds up to 2**11 units: (2**24 - 2**11) >> 14 = 1023 terms, 1024 without bias.
    assert _exact_terms(q(8, 4), q(8, 4), q(8, 4)) == (1023, 1024)
    # A finer bias (frac 12): units of 2**-12, products up to 2**(7 + 7 + 4), bias 2**(7 + 0).
    assert _exact_terms(q(8, 4), q(8, 4), q(8, 12)) == ((2**24 - 2**7) >> 18, 1024)
    assert _exact_terms(q(16, 8), q(16, 8), None) == (0, 2**24 >> 30)
    assert _exact_terms(None, q(8, 4), q(8, 4)) is None
    assert _exact_terms(q(8, "auto"), q(8, 4), q(8, 4)) is None
    assert _exact_terms(q(8, 60), q(8, 60), q(8, 4)) is None  # 2**-120 steps: off the normal range


def test_exact_terms_agrees_with_the_exhaustive_engine() -> None:
    from bitscout.evaluation._exhaustive import _exact_sums

    formats = [IntegerFormat(w, f) for w, f in itertools.product((1, 2, 4, 8, 12, 16), (-2, 0, 3, 8, 14))]
    rng = random.Random(1)
    for _ in range(300):
        fi, fw, fb = rng.choice(formats), rng.choice(formats), rng.choice(formats)
        terms = _exact_terms(fi, fw, fb)
        for n in (1, 16, 64, 1000, 5000):
            for has_bias in (True, False):
                ours = terms is not None and n <= terms[not has_bias]
                assert ours == _exact_sums(n, fi, fw, fb if has_bias else None, has_bias), (fi, fw, fb, n)


def test_conv_inputs_use_the_buffer_and_keep_their_bits(every_size: None) -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()
    traced = trace(model, torch.randn(2, 3, 10, 10))
    config = {
        layer.name: LayerQuantConfig("integer", data_in=IntegerFormat(6, 3), weight=IntegerFormat(4, 2), bias=IntegerFormat(8, 4))
        for layer in traced.table
        if layer.op == "conv2d"
    }
    candidate = Quantizer(traced).build(config)
    x = _edge_inputs(7 * 3 * 10, 10, 3, seed=5).view(7, 3, 10, 10)
    scratch = ScratchBuffers()
    assert _bits_equal(_plain(candidate, x), _forward(candidate, x, scratch))
    assert scratch.held_bytes() == 7 * 8 * 10 * 10 * 4


def test_no_buffer_under_autograd(every_size: None) -> None:
    """A training forward keeps its inputs for backward: it must not get the buffer."""
    torch.manual_seed(3)
    model = _mlp(True)
    traced = trace(model, torch.randn(2, 16))
    fmt = IntegerFormat(8, 4)
    config = {
        layer.name: LayerQuantConfig("integer", data_in=fmt, weight=fmt, bias=fmt) for layer in traced.table if layer.op == "linear"
    }
    candidate = Quantizer(traced).build(config)
    x = torch.randn(32, 16)
    grads = []
    for scratch in (None, ScratchBuffers()):
        model.zero_grad()
        if scratch is None:
            candidate(x).square().sum().backward()
        else:
            with scratch.active():
                candidate(x).square().sum().backward()
            assert scratch.held_bytes() == 0
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_buffers_are_reused_grown_and_per_thread() -> None:
    scratch = ScratchBuffers()
    a = scratch.like(torch.empty(10, 4))
    b = scratch.like(torch.empty(5, 3))
    assert a.shape == (10, 4) and b.shape == (5, 3) and b.is_contiguous()
    assert a.data_ptr() == b.data_ptr()  # the same memory, reused
    c = scratch.like(torch.empty(100))
    assert c.shape == (100,) and scratch.held_bytes() == 400
    assert scratch.like(torch.empty(3, dtype=torch.float64)).dtype == torch.float64
    assert scratch.held_bytes() == 400 + 24
    other: list[int] = []
    thread = threading.Thread(target=lambda: other.append(scratch.like(torch.empty(100)).data_ptr()))
    thread.start()
    thread.join()
    assert other[0] != c.data_ptr()  # another thread never shares this thread's buffer
    assert active_scratch() is None
    with scratch.active():
        assert active_scratch() is scratch
        inner = ScratchBuffers()
        with inner.active():
            assert active_scratch() is inner
        assert active_scratch() is scratch
    assert active_scratch() is None


def test_small_inputs_are_allocated_large_ones_reuse_the_buffer() -> None:
    model = nn.Sequential(nn.Linear(16, 4)).eval()
    traced = trace(model, torch.randn(2, 16))
    fmt = IntegerFormat(8, 4)
    candidate = Quantizer(traced).build({"_0": LayerQuantConfig("integer", data_in=fmt, weight=fmt, bias=fmt)})
    rows = SCRATCH_MIN_ELEMENTS // 16
    scratch = ScratchBuffers()
    small = torch.randn(rows - 1, 16)
    assert _bits_equal(_forward(candidate, small, scratch), _plain(candidate, small))
    assert scratch.held_bytes() == 0
    large = _edge_inputs(rows, 16, 4, seed=6)
    assert _bits_equal(_forward(candidate, large, scratch), _plain(candidate, large))
    assert scratch.held_bytes() == rows * 16 * 4


def test_evaluate_set_keeps_the_metrics_of_a_plain_evaluation() -> None:
    torch.manual_seed(4)
    model = _mlp(True)
    traced = trace(model, torch.randn(2, 16))
    fmt = IntegerFormat(6, 3)
    candidate = Quantizer(traced).build(
        {
            layer.name: LayerQuantConfig("integer", data_in=fmt, weight=IntegerFormat(3, 1), bias=fmt)
            for layer in traced.table
            if layer.op == "linear"
        }
    )
    n = 2 * SCRATCH_MIN_ELEMENTS // 16
    x, y = torch.randn(n, 16), torch.randint(0, 5, (n,))
    data = EvalSet(x, y, device=torch.device("cpu"))
    with_scratch = evaluate_set(candidate, data)
    assert data.scratch.held_bytes() > 0
    # The metrics from the plain forward's logits, computed here independently.
    logits = _plain(candidate, x)
    by_class = class_major(logits)
    own = by_class.gather(0, y.view(1, -1))[0]
    expected_loss = float(cross_entropy_sums(by_class, by_class.amax(dim=0), own)) / n
    assert with_scratch.loss == expected_loss
    assert with_scratch.accuracy == (logits.argmax(-1) == y).sum().item() / n
    assert evaluate(candidate, x, y) == with_scratch


@pytest.mark.parametrize("extra", [0, 1, 12345])
def test_blocked_codes_of_large_tensors_match_the_definition(extra: int) -> None:
    from bitscout.quant.formats._integer import CODES_BLOCK

    fmt = IntegerFormat(6, 2)
    x = _edge_inputs(CODES_BLOCK + extra, 2, 2, seed=extra)  # spans two or three blocks
    expected = torch.clamp(torch.round(x * 4.0), -32, 31)  # the definition, in one go
    assert _bits_equal(fmt.codes(x), expected)
    buffer = ScratchBuffers().like(x)
    assert fmt.codes(x, out=buffer).data_ptr() == buffer.data_ptr()
    assert _bits_equal(buffer, expected)
    assert _bits_equal(fmt.quantize(x), expected * 0.25)
    assert _bits_equal(fmt.quantize_into(x, ScratchBuffers().like(x)), expected * 0.25)
    with pytest.raises(ValueError, match=r"int6.2.codes\(\) needs a float32 tensor .* got a torch.float64 tensor"):
        fmt.codes(x.double())
    with pytest.raises(ValueError, match=r"int8.auto.quantize_into\(\) needs a float32 tensor"):
        IntegerFormat(8, "auto").quantize_into(x, x)
    assert _bits_equal(fmt.codes(x.t()), expected.t())  # non-contiguous: in one go
