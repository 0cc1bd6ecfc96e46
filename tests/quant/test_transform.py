"""The pure quantize transform: resolving [passes.quantize], purity, sharing, errors, speed."""

from __future__ import annotations

import copy
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bitscout.config import QuantizePass
from bitscout.data import DatasetInfo
from bitscout.errors import QuantConfigError
from bitscout.graph import trace
from bitscout.models import build_model
from bitscout.quant import (
    IntegerFormat,
    LayerQuantConfig,
    QuantizedLayer,
    Quantizer,
    format_quant_table,
    quantize,
    resolve_pass,
)

JSC = DatasetInfo("jsc", (16,), 5, tuple("abcde"), "test")
DIGITS = DatasetInfo("digits", (64,), 10, tuple("0123456789"), "test")

# The jsc-tiny lab config: integer, 8-bit data in, 8-bit weights, 8-bit bias with 4
# fractional bits, by type on `linear`.
LAB = {
    "name": "integer",
    "data_in_width": 8,
    "data_in_frac_width": 4,
    "weight_width": 8,
    "weight_frac_width": 4,
    "bias_width": 8,
    "bias_frac_width": 4,
}
INT8 = LayerQuantConfig("integer", IntegerFormat(8, 4), IntegerFormat(8, 4), IntegerFormat(8, 4))


def _jsc_tiny() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("jsc-tiny", JSC)
    model.train()
    model(torch.randn(64, 16) * 2)  # give BatchNorm non-trivial statistics
    return model.eval(), torch.randn(32, 16) * 2


def test_lab_config_by_type_quantizes_the_linear_only() -> None:
    model, x = _jsc_tiny()
    pass_cfg = QuantizePass(by="type", entries={"linear": LAB})
    table = trace(model, x).table
    resolved = resolve_pass(pass_cfg, table)
    assert resolved == {"seq_blocks_1": None, "seq_blocks_2": INT8, "seq_blocks_3": None}

    quantized = quantize(model, pass_cfg, example_input=x)
    assert isinstance(quantized.seq_blocks_2, QuantizedLayer)
    assert isinstance(quantized.seq_blocks_1, nn.ReLU)
    lin = model.seq_blocks[2]
    q = IntegerFormat(8, 4).quantize
    with torch.no_grad():
        h = F.relu(model.seq_blocks[0](x))
        expected = F.relu(F.linear(q(h), q(lin.weight), q(lin.bias)))
        assert torch.equal(quantized(x), expected)
        assert not torch.equal(quantized(x), model(x))


def test_default_and_precedence() -> None:
    model, x = _jsc_tiny()
    table = trace(model, x).table
    default = {"name": "integer", "data_in_width": 4, "data_in_frac_width": 2}
    resolved = resolve_pass(QuantizePass(by="type", entries={"default": default, "linear": LAB}), table)
    relu4 = LayerQuantConfig("integer", data_in=IntegerFormat(4, 2))
    # The relu has only data_in; the linear takes its own entry, not the default.
    assert resolved == {"seq_blocks_1": relu4, "seq_blocks_2": INT8, "seq_blocks_3": relu4}

    by_name = QuantizePass(by="name", entries={"default": LAB, "seq_blocks_3": {"name": "NA"}})
    assert resolve_pass(by_name, table) == {
        "seq_blocks_1": LayerQuantConfig("integer", data_in=IntegerFormat(8, 4)),
        "seq_blocks_2": INT8,
        "seq_blocks_3": None,
    }


def test_unknown_keys_are_errors_that_list_what_exists() -> None:
    model, x = _jsc_tiny()
    table = trace(model, x).table
    with pytest.raises(QuantConfigError, match=r"passes\.quantize\.conv2d.*op type 'conv2d'.*relu, linear"):
        resolve_pass(QuantizePass(by="type", entries={"conv2d": LAB}), table)
    with pytest.raises(QuantConfigError, match=r"seq_blocks_9.*seq_blocks_1, seq_blocks_2, seq_blocks_3"):
        resolve_pass(QuantizePass(by="name", entries={"seq_blocks_9": LAB}), table)
    bad = dict(LAB, weight_width=0)
    with pytest.raises(QuantConfigError, match=r"passes\.quantize\.linear\.config \(layer seq_blocks_2\).*weight_width"):
        resolve_pass(QuantizePass(by="type", entries={"linear": bad}), table)
    quantizer = Quantizer(trace(model, x))
    with pytest.raises(QuantConfigError, match=r"'fc'.*seq_blocks_1, seq_blocks_2, seq_blocks_3"):
        quantizer.build({"fc": INT8})
    with pytest.raises(QuantConfigError, match=r"'fc'"):
        quantizer.build({"fc": None})
    with pytest.raises(QuantConfigError, match="LayerQuantConfig"):
        quantizer.build({"seq_blocks_2": LAB})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="example_input"):
        quantize(model, {"seq_blocks_2": INT8})


def test_transform_is_pure_and_shares_parameters() -> None:
    model, x = _jsc_tiny()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ptrs = {k: v.data_ptr() for k, v in model.state_dict().items()}
    with torch.no_grad():
        float_out = model(x)
    pass_cfg = QuantizePass(by="type", entries={"default": dict(LAB), "linear": dict(LAB)})
    pass_before = copy.deepcopy(pass_cfg)
    mapping = {"seq_blocks_2": INT8}
    mapping_before = dict(mapping)

    for config in (pass_cfg, mapping):
        quantized = quantize(model, config, example_input=x)
        with torch.no_grad():
            quantized(x)
        # The original: same modules, same tensors, same values, same outputs.
        assert isinstance(model.seq_blocks[2], nn.Linear) and isinstance(model.seq_blocks[1], nn.ReLU)
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
        assert {k: v.data_ptr() for k, v in model.state_dict().items()} == ptrs
        with torch.no_grad():
            assert torch.equal(model(x), float_out)
        # The quantized model's float parameters are the original's tensors, not copies.
        qstate = quantized.state_dict()
        assert qstate["seq_blocks_2.weight"].data_ptr() == ptrs["seq_blocks.2.weight"]
        assert qstate["seq_blocks_2.bias"].data_ptr() == ptrs["seq_blocks.2.bias"]
        assert qstate["seq_blocks.0.running_mean"].data_ptr() == ptrs["seq_blocks.0.running_mean"]
    assert pass_cfg == pass_before
    assert mapping == mapping_before


def test_candidates_do_not_touch_the_traced_model_or_each_other() -> None:
    model, x = _jsc_tiny()
    traced = trace(model, x)
    quantizer = Quantizer(traced)
    modules_before = dict(traced.gm._modules)
    a = quantizer.build({"seq_blocks_2": INT8})
    b = quantizer.build({"seq_blocks_1": LayerQuantConfig("integer", data_in=IntegerFormat(2, 0))})
    assert dict(traced.gm._modules) == modules_before
    assert isinstance(a.seq_blocks_2, QuantizedLayer) and isinstance(a.seq_blocks_1, nn.ReLU)
    assert isinstance(b.seq_blocks_1, QuantizedLayer) and isinstance(b.seq_blocks_2, nn.Linear)
    with torch.no_grad():
        assert torch.equal(traced.gm(x), model(x))
        assert not torch.equal(a(x), b(x))
        # quantize() on a TracedModel is the same build.
        assert torch.equal(quantize(traced, {"seq_blocks_2": INT8})(x), a(x))


def test_quant_table_text() -> None:
    model, x = _jsc_tiny()
    table = trace(model, x).table
    text = format_quant_table(table, {"seq_blocks_2": INT8})
    lines = text.splitlines()
    assert lines[0].split() == ["node", "op", "input", "weight", "bias", "output", "quantization"]
    assert lines[2].split() == [
        "seq_blocks_2", "linear", "(16)", "(5,", "16)", "(5)", "(5)",
        "integer:", "data_in=int8.4,", "weight=int8.4,", "bias=int8.4",
    ]
    assert lines[1].endswith("float") and lines[3].endswith("float")


def _median_us(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e6


def test_build_is_cheap_for_a_digits_mlp() -> None:
    model = build_model("mlp", DIGITS).eval()
    quantizer = Quantizer(trace(model, torch.randn(8, 64)))
    configs = [
        {name: LayerQuantConfig("integer", IntegerFormat(w, w // 2), IntegerFormat(w, w // 2), IntegerFormat(w, w // 2))
         for name in ("fc1", "fc2", "fc3")}
        for w in (4, 6, 8)
    ]
    for config in configs:
        quantizer.build(config)  # wrappers made once per (layer, config)
    cost = _median_us(lambda: [quantizer.build(c) for c in configs], 200) / len(configs)
    # Target well under 100 us; the bound is loose because the test machine is shared.
    assert cost < 300, f"one build took {cost:.1f} us"
