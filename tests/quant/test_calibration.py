"""Calibration, calibrated quantizers and the accuracy they keep.

Ranges are checked against the activations recorded by hand (forward hooks on the plain
float model, outside bitscout's calibration code); accuracies against the float model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bitscout.data import load_dataset
from bitscout.graph import trace
from bitscout.models import build_model
from bitscout.quant import (
    Calibration,
    IntegerFormat,
    IntFormat,
    LayerQuantConfig,
    Quantizer,
    calibrate,
    format_quant_table,
    parse_layer_config,
    prepare_ptq,
    resolve_config,
)
from bitscout.training import evaluate, train


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def _inputs_by_hand(model: nn.Module, x: torch.Tensor) -> dict[int, torch.Tensor]:
    seen: dict[int, torch.Tensor] = {}

    def keeper(i: int):
        def keep(module, args, output) -> None:  # returns None: the output is left alone
            seen[i] = args[0].detach().clone()
        return keep

    handles = [m.register_forward_hook(keeper(i)) for i, m in enumerate(model)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return seen


def test_minmax_ranges_are_those_of_each_layers_input() -> None:
    model = _mlp()
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(1)) * 3
    calibration = calibrate(trace(model, x[:2]), x, batch_size=64)  # batches must not matter
    by_hand = _inputs_by_hand(model, x)
    assert calibration.samples == 300 and calibration.observer == "minmax"
    for name, index in (("_0", 0), ("_1", 1), ("_2", 2)):
        seen = by_hand[index]
        assert calibration.range(name, "data_in") == (float(seen.min()), float(seen.max()))
    assert calibration.range("_0", "weight") is None  # parameters are not calibrated


def test_percentile_ranges_by_nearest_rank_over_all_samples() -> None:
    model = _mlp()
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(2))
    calibration = calibrate(trace(model, x[:2]), x, observer="percentile", percentile=99.0, batch_size=77)
    values = np.sort(_inputs_by_hand(model, x)[2].numpy().ravel())
    n = values.size  # 4000 inputs of the last linear layer
    assert calibration.range("_2", "data_in") == (float(values[math.ceil(0.01 * n) - 1]), float(values[math.ceil(0.99 * n) - 1]))


def test_function_operands_are_calibrated_too() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) + x

    model = Residual().eval()
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(3))
    calibration = calibrate(trace(model, x[:2]), x)
    with torch.no_grad():
        y = model.fc(x)
    assert calibration.ranges["add"] == {"data_in": (float(y.min()), float(y.max())), "weight": (float(x.min()), float(x.max()))}


def test_calibration_json_round_trip_is_exact(tmp_path: Path) -> None:
    model = _mlp()
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(4))
    calibration = calibrate(trace(model, x[:2]), x, source="train[:40]")
    calibration.save(tmp_path / "calibration.json")
    assert Calibration.load(tmp_path / "calibration.json") == calibration
    assert json.loads((tmp_path / "calibration.json").read_text())["source"] == "train[:40]"


def test_calibrated_quantizer_fixes_the_input_format_for_every_batch() -> None:
    model = _mlp()
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(5)) * 2
    traced = trace(model, x[:2])
    calibration = calibrate(traced, x)
    lo, hi = calibration.range("_0", "data_in")
    auto = parse_layer_config({"name": "integer", "data_in_width": 8, "data_in_frac_width": "auto",
                               "weight_width": 8, "weight_frac_width": "auto"}, where="t", tensors=("data_in", "weight"))
    candidate = Quantizer(traced, calibration=calibration).build({"_0": auto})
    fixed = IntegerFormat(8, 7 - math.ceil(math.log2(max(-lo, hi))))
    assert candidate._0.config.data_in == fixed  # resolved once, from the calibration
    assert candidate._0.config.weight == auto.weight  # weights fit the parameter each time
    # One sample alone is quantized exactly as within the batch: no per-batch range.
    with torch.inference_mode():
        whole = candidate(x)
        alone = torch.cat([candidate(x[i : i + 1]) for i in range(5)])
    assert torch.equal(whole[:5], alone)
    w = fixed.quantize(x) @ IntegerFormat(8, "auto").quantize(model[0].weight).T + model[0].bias
    with torch.inference_mode():
        assert torch.equal(candidate._0(x), w.detach())


def test_resolve_config_and_the_layer_table_show_concrete_formats() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)).eval()
    with torch.no_grad():
        model[1].running_var.fill_(4.0)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    prepared = prepare_ptq(model, x[:2], x)
    assert prepared.folded == {"_0": "1"}
    cfg = parse_layer_config({"name": "int", "data_in_width": 8, "weight_width": 8, "weight_granularity": "channel",
                              "bias_width": 8}, where="t", op="conv2d")
    resolved = resolve_config(prepared.traced, {"_0": cfg}, prepared.calibration)["_0"]
    assert resolved is not None
    assert resolved.data_in == IntFormat(8).calibrated(*prepared.calibration.range("_0", "data_in"))
    assert resolved.weight == cfg.weight  # per channel: fitted per channel, nothing to fix
    folded_bias = prepared.traced.gm._0.bias.detach()  # the folded conv, named after its node
    assert resolved.bias == IntFormat(8).calibrated(float(folded_bias.min()), float(folded_bias.max()))
    text = format_quant_table(prepared.traced.table, {"_0": resolved}, folded=prepared.folded)
    assert "conv2d+bn" in text and resolved.data_in.describe() in text and "int8/ch" in text


# ------------------------------------------------------- the accuracy it keeps (done-when)


@pytest.fixture(scope="module")
def bn_cnn() -> tuple[nn.Module, object]:
    """The digits CNN with BatchNorm after each convolution, trained for 10 epochs."""
    dataset = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("cnn", dataset.info, {"batch_norm": True})
    train(model, dataset, epochs=10, batch_size=64, learning_rate=3e-3, seed=0, progress=False)
    return model.eval(), dataset


def _accuracy(model, dataset, layer_config: dict) -> tuple[float, float]:
    prepared = prepare_ptq(model, dataset.val.x[:2], dataset.train.x[:256])
    assert set(prepared.folded) == {"conv1", "conv2"}
    config = {
        layer.name: parse_layer_config(layer_config, where="t", tensors=layer.tensors, op=layer.op)
        for layer in prepared.traced.table
    }
    candidate = Quantizer(prepared.traced, calibration=prepared.calibration).build(config)
    val = dataset.val
    return (evaluate(model, val.x, val.y).accuracy, evaluate(candidate, val.x, val.y).accuracy)


def test_bn_cnn_int8_per_channel_within_half_a_point_of_float(bn_cnn) -> None:
    float_acc, acc = _accuracy(*bn_cnn, {
        "name": "int", "data_in_width": 8, "data_in_symmetric": False,
        "weight_width": 8, "weight_granularity": "channel", "bias_width": 8,
    })
    assert float_acc > 0.95
    assert acc >= float_acc - 0.005, (float_acc, acc)


def test_bn_cnn_auto_fixed_point_8_bits_within_one_point_of_float(bn_cnn) -> None:
    float_acc, acc = _accuracy(*bn_cnn, {
        "name": "integer", "data_in_width": 8, "data_in_frac_width": "auto", "weight_width": 8,
        "weight_frac_width": "auto", "bias_width": 8, "bias_frac_width": "auto",
    })
    assert acc >= float_acc - 0.01, (float_acc, acc)


def test_layer_quant_config_of_mase_na_is_unchanged() -> None:
    cfg = parse_layer_config({"name": "integer", "data_in_width": 8, "data_in_frac_width": "NA"}, where="t",
                             tensors=("data_in",))
    assert cfg == LayerQuantConfig("integer", data_in=IntegerFormat(8, 4))
