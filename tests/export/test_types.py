"""The hls4ml types chosen from a config, checked against hand-computed widths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bitscout.errors import ExportError
from bitscout.export import FixedType, plan_types
from bitscout.graph import trace
from bitscout.quant import IntegerFormat, format_names, parse_layer_config

from tests.export._helpers import MLP_CONFIGS, jsc_tiny, lq, mlp


@pytest.mark.parametrize("width,frac", [(2, 3), (4, -1), (3, 5), (8, 4), (1, 0)])
def test_fixed_type_quantize_is_bitscouts_integer_format(width: int, frac: int) -> None:
    # Every code, the halfway points between codes (round half to even) and values far
    # outside the range (saturation).
    codes = np.arange(-(2 ** (width - 1)) - 3, 2 ** (width - 1) + 3)
    x = np.concatenate([codes, codes + 0.5, codes + 0.25]) * 2.0**-frac
    ours = FixedType(width, frac).quantize(x)
    theirs = IntegerFormat(width, frac).quantize(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_fixed_type_strings_allow_integer_bits_above_width_and_below_zero() -> None:
    assert FixedType(4, 6).hls() == "ap_fixed<4,-2,AP_RND_CONV,AP_SAT>"
    assert FixedType(4, -1).hls() == "ap_fixed<4,5,AP_RND_CONV,AP_SAT>"
    assert FixedType(6, 3, "AP_TRN", "AP_WRAP").hls() == "ap_fixed<6,3,AP_TRN,AP_WRAP>"


def _traced(model: nn.Module) -> object:
    return trace(model, torch.randn(8, 16))


def test_mlp_plan_maps_data_in_to_the_producers_result_and_sizes_accumulators() -> None:
    plan = plan_types(_traced(mlp()), MLP_CONFIGS["a"], input_max_abs=4.0)
    # data_in of fc1 int6.3 -> the input layer's result; relu1's int5.2 -> fc1's result.
    assert plan[plan.input_name].result == FixedType(6, 3)
    assert plan["fc1"].result == FixedType(5, 2)
    assert plan["relu1"].result == FixedType(2, 0)  # fc2's data_in
    assert plan["relu2"].result == FixedType(4, 2)  # fc3's data_in (relu2 itself is float)
    # fc1 accumulator by hand: input codes [-32, 31] at 2^-3, weight codes [-8, 7] at 2^-6,
    # bias codes [-8, 7] at 2^1. Sum at 2^-9: 16 products in [-248, 256] plus a bias in
    # [-8 * 1024, 7 * 1024] -> [-12160, 11264], which needs 15 signed bits.
    assert plan["fc1"].precision["accum"] == FixedType(15, 9)
    assert plan["fc1"].precision["weight"] == FixedType(4, 6)
    assert plan["fc1"].precision["bias"] == FixedType(4, -1)
    assert plan["fc1"].exact_sum_bits == 14  # |-12160| < 2^14
    # fc2: input int2.0 (codes [-2, 1]), weight int3.2 (codes [-4, 3]), bias int8.4: 32
    # products in [-6, 8] at 2^-2 -> x4 at 2^-4, plus bias codes [-128, 127] at 2^-4:
    # [-32*24 - 128, 32*32 + 127] = [-896, 1151], which needs 12 signed bits.
    assert plan["fc2"].precision["accum"] == FixedType(12, 4)
    assert plan["fc2"].result == plan["fc2"].precision["accum"]  # relu2 float: lossless
    assert plan.output_name == "fc3"
    assert plan.notes == []


def test_jsc_tiny_plan_says_why_bit_exactness_is_not_by_construction() -> None:
    config = {"seq_blocks_1": lq((8, 4)), "seq_blocks_2": lq((4, 2), (3, 4), (5, 0)),
              "seq_blocks_3": lq((12, 6))}
    plan = plan_types(_traced(jsc_tiny()), config, input_max_abs=5.0)
    assert plan["seq_blocks_0"].result == FixedType(8, 4)  # BatchNorm feeds the quantized ReLU
    notes = " ".join(plan.notes)
    assert "BatchNorm" in notes and "first layer does not quantize its input" in notes
    # Input range: |x| <= 5 -> floor(log2 5) = 2 -> 5 integer bits of 32.
    assert plan[plan.input_name].result == FixedType(32, 27)


def test_a_sum_beyond_float32_is_reported() -> None:
    model = nn.Sequential(nn.Linear(16, 4)).eval()
    wide = lq((16, 8), (16, 8), (16, 8))
    plan = plan_types(trace(model, torch.randn(4, 16)), {"_0": wide}, input_max_abs=1.0)
    # 16 products of codes up to 2^15 * 2^15 = 2^30, plus a bias: 35 bits > 24.
    assert plan["_0"].exact_sum_bits == 35
    assert any("float32 holds 24" in note for note in plan.notes)


def test_other_formats_and_layers_are_refused_with_the_layer_name() -> None:
    assert "minifloat" in format_names()
    mini = parse_layer_config(
        {"name": "minifloat", "data_in_exponent_width": 3, "data_in_width": 8,
         "weight_exponent_width": 3, "weight_width": 8, "bias_exponent_width": 3, "bias_width": 8},
        where="t",
    )
    with pytest.raises(ExportError, match="fc1.*'integer'"):
        plan_types(_traced(mlp()), {"fc1": mini}, input_max_abs=1.0)
    conv = nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 2, 3), nn.Flatten())
    with pytest.raises(ExportError, match="Unflatten|Conv2d"):
        plan_types(trace(conv, torch.randn(2, 16)), {}, input_max_abs=1.0)


def test_unknown_layer_names_are_refused() -> None:
    with pytest.raises(ExportError, match="fc9"):
        plan_types(_traced(mlp()), {"fc9": MLP_CONFIGS["a"]["fc1"]}, input_max_abs=1.0)


def test_the_batchnorm_note_says_which_quantization_hides_it_or_that_none_does() -> None:
    model = jsc_tiny()
    config = {"seq_blocks_1": lq((8, 4)), "seq_blocks_2": lq((4, 2), (3, 4), (5, 0))}
    bn = plan_types(_traced(model), config, input_max_abs=5.0)["seq_blocks_0"]
    scale, shift = bn.precision["scale"].describe(), bn.precision["bias"].describe()
    assert bn.notes == [
        f"BatchNorm is float32 in bitscout but fixed point in hls4ml (scale and shift rounded to "
        f"{scale} / {shift}); the next quantization (data_in of seq_blocks_1, fixed8.4) hides the "
        "difference except where a value lands on, or within float32 rounding of, one of its "
        "rounding ties: the two sides then round to neighbouring steps, one step apart. Rare, and "
        "only found by comparing every sample (what verify does by default)"
    ]
    # Nothing quantized after the BatchNorm: no "rounding boundary" can hide the difference.
    alone = plan_types(_traced(model), {}, input_max_abs=5.0)["seq_blocks_0"]
    assert alone.notes == [
        f"BatchNorm is float32 in bitscout but fixed point in hls4ml (scale and shift rounded to "
        f"{scale} / {shift}), and nothing quantizes its result before the output: the difference "
        "reaches the output, on possibly every sample; compare with --tolerance, or quantize the "
        "layer after it"
    ]


def test_unresolved_auto_input_is_refused_and_resolved_auto_plans_concrete_types() -> None:
    from bitscout.quant import calibrate, resolve_config

    from tests.export._helpers import AUTO8, synthetic

    model = mlp()
    traced = _traced(model)
    config = {name: parse_layer_config(AUTO8, where=name, tensors=traced.table[name].tensors)
              for name in ("fc1", "fc2", "fc3")}
    with pytest.raises(ExportError, match="layer 'fc1', data_in: frac_width = 'auto' is not resolved"):
        plan_types(traced, config, input_max_abs=4.0)
    x = synthetic().train.x
    calibration = calibrate(traced, x)
    resolved = resolve_config(traced, config, calibration)
    plan = plan_types(traced, resolved, input_max_abs=4.0)
    # fc1's input type fits the calibrated input range: frac = 8 - 1 - ceil(log2(max |x|)).
    lo, hi = calibration.range("fc1", "data_in")
    frac = 7 - int(np.ceil(np.log2(max(-lo, hi))))
    assert plan[plan.input_name].result == FixedType(8, frac)
    w = model.fc2.weight.detach().abs().max().item()
    assert plan["fc2"].precision["weight"] == FixedType(8, 7 - int(np.ceil(np.log2(w))))
