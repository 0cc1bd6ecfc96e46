"""Hardware metrics against hand computations on jsc-tiny and the digits CNN.

The per-layer numbers are written out from the architectures, not read from the layer
table:

jsc-tiny = BatchNorm1d(16), ReLU, Linear(16, 5), ReLU. Quantizable layers: seq_blocks_1
(relu, 16 inputs), seq_blocks_2 (linear: 16 inputs, 80 weights, 5 biases, 80 MACs),
seq_blocks_3 (relu, 5 inputs). Parameters: BatchNorm 16 + 16, Linear 80 + 5 = 117;
float buffers: running mean and variance 16 + 16 = 32 (num_batches_tracked is an
integer and left out). FLOPs: 2 * 80 = 160.

digits CNN (8x8 input, channels 16 and 32): conv1 Conv2d(1, 16, 3, pad 1): 64 inputs,
144 weights, 16 biases, 16*8*8 outputs * 9 = 9216 MACs; relu1: 1024 inputs; conv2
Conv2d(16, 32, 3, pad 1): 1024 inputs, 4608 weights, 32 biases, 32*8*8 * 16*9 = 294912
MACs; relu2: 2048 inputs; max-pool to 32*4*4; fc Linear(512, 10): 512 inputs, 5120
weights, 10 biases, 5120 MACs. Parameters 9930, no buffers. FLOPs 2 * 309248.
"""

from __future__ import annotations

import pytest

from bitscout.errors import ConfigError
from bitscout.metrics import Candidate, Latency, RunContext, build_runners, tensor_bits
from bitscout.quant import parse_layer_config
from tests.metrics.metrics_helpers import int_config, strategy

HW = ("average_bitwidth", "activation_bitwidth", "model_size", "flops", "bitops")

JSC_FLOAT = {
    "average_bitwidth": 32.0,
    "memory_density": 1.0,
    "activation_bitwidth": 32.0,
    "model_size": 32 * (117 + 32) / 8,
    "flops": 160.0,
    "bitops": 80 * 32 * 32.0,
}

CNN_FLOAT = {
    "average_bitwidth": 32.0,
    "memory_density": 1.0,
    "activation_bitwidth": 32.0,
    "model_size": 32 * 9930 / 8,
    "flops": 2.0 * (9216 + 294912 + 5120),
    "bitops": (9216 + 294912 + 5120) * 32 * 32.0,
}


def hardware(context: RunContext, config, **options) -> dict[str, float]:
    cfg = strategy(hw={name: options.get(name, {}) for name in HW})
    return build_runners(cfg, context).run(config).hardware


def check(got: dict[str, float], expected: dict[str, float], float_values: dict[str, float]) -> None:
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name
        assert got[f"{name}_ratio"] == pytest.approx(value / float_values[name], rel=1e-12), name


def test_jsc_tiny_float_model(jsc_context: RunContext) -> None:
    got = hardware(jsc_context, {})
    check(got, JSC_FLOAT, JSC_FLOAT)
    assert all(got[f"{name}_ratio"] == 1.0 for name in JSC_FLOAT)


def test_jsc_tiny_mixed_config_a(jsc_context: RunContext) -> None:
    config = {
        "seq_blocks_1": int_config(data_in=4),
        "seq_blocks_2": int_config(data_in=8, weight=6, bias=8),
        "seq_blocks_3": None,  # float: its input counts 32 bits
    }
    expected = {
        "average_bitwidth": 6.0,
        "memory_density": 32 / 6,
        "activation_bitwidth": (4 * 16 + 8 * 16 + 32 * 5) / (16 + 16 + 5),
        "model_size": (32 * (117 + 32) - (32 - 6) * 80 - (32 - 8) * 5) / 8,
        "flops": 160.0,
        "bitops": 80 * 6 * 8.0,
    }
    check(hardware(jsc_context, config), expected, JSC_FLOAT)


def test_jsc_tiny_mixed_config_b_unquantized_tensor_counts_32(jsc_context: RunContext) -> None:
    config = {
        # The linear layer quantizes weight and bias but not its input (32 bits).
        "seq_blocks_2": int_config(weight=3, bias=5),
        "seq_blocks_3": int_config(data_in=16),
    }  # seq_blocks_1 is not named: it stays float
    expected = {
        "average_bitwidth": 3.0,
        "memory_density": 32 / 3,
        "activation_bitwidth": (32 * 16 + 32 * 16 + 16 * 5) / 37,
        "model_size": (32 * 149 - 29 * 80 - 27 * 5) / 8,
        "flops": 160.0,
        "bitops": 80 * 3 * 32.0,
    }
    check(hardware(jsc_context, config), expected, JSC_FLOAT)


def test_memory_density_uses_compare_to(jsc_context: RunContext) -> None:
    config = {"seq_blocks_2": int_config(data_in=8, weight=4, bias=8)}
    got = hardware(jsc_context, config, average_bitwidth={"compare_to": 8})
    assert got["memory_density"] == pytest.approx(8 / 4)
    # The ratio compares with the float model's density at the same compare_to (8 / 32).
    assert got["memory_density_ratio"] == pytest.approx((8 / 4) / (8 / 32))


def test_cnn_float_model(cnn_context: RunContext) -> None:
    check(hardware(cnn_context, {}), CNN_FLOAT, CNN_FLOAT)


def test_cnn_mixed_config_c(cnn_context: RunContext) -> None:
    config = {
        "conv1": int_config(data_in=6, weight=8, bias=8),
        "conv2": int_config(data_in=8, weight=4, bias=4),
        "fc": None,
    }
    expected = {
        "average_bitwidth": (8 * 144 + 4 * 4608 + 32 * 5120) / (144 + 4608 + 5120),
        "memory_density": 32 / ((8 * 144 + 4 * 4608 + 32 * 5120) / 9872),
        "activation_bitwidth": (6 * 64 + 32 * 1024 + 8 * 1024 + 32 * 2048 + 32 * 512)
        / (64 + 1024 + 1024 + 2048 + 512),
        "model_size": (32 * 9930 - 24 * 144 - 24 * 16 - 28 * 4608 - 28 * 32) / 8,
        "flops": 2.0 * 309248,
        "bitops": 9216 * 8 * 6 + 294912 * 4 * 8 + 5120 * 32 * 32.0,
    }
    check(hardware(cnn_context, config), expected, CNN_FLOAT)


def test_cnn_mixed_config_d_with_fractional_block_fp_width(cnn_context: RunContext) -> None:
    # block_fp with 4-bit elements and an 8-bit exponent shared by 16: 4 + 8/16 = 4.5 bits.
    bfp = parse_layer_config(
        {
            "name": "block_fp",
            "data_in_width": 6,
            "data_in_exponent_width": 8,
            "data_in_block_size": 16,
            "weight_width": 4,
            "weight_exponent_width": 8,
            "weight_block_size": 16,
            "bias_width": 8,
            "bias_exponent_width": 8,
            "bias_block_size": 16,
        },
        where="test",
    )
    config = {
        "relu1": int_config(data_in=4),
        "conv2": bfp,
        "relu2": int_config(data_in=2),
        "fc": int_config(data_in=3, weight=2, bias=8),
    }  # conv1 stays float
    expected = {
        "average_bitwidth": (32 * 144 + 4.5 * 4608 + 2 * 5120) / 9872,
        "memory_density": 32 / ((32 * 144 + 4.5 * 4608 + 2 * 5120) / 9872),
        "activation_bitwidth": (32 * 64 + 4 * 1024 + 6.5 * 1024 + 2 * 2048 + 3 * 512) / 4672,
        "model_size": (32 * 9930 - 27.5 * 4608 - 23.5 * 32 - 30 * 5120 - 24 * 10) / 8,
        "flops": 2.0 * 309248,
        "bitops": 9216 * 32 * 32 + 294912 * 4.5 * 6.5 + 5120 * 2 * 3.0,
    }
    check(hardware(cnn_context, config), expected, CNN_FLOAT)


def test_cnn_scaled_int_counts_scales_and_zero_points(cnn_context: RunContext) -> None:
    # conv1: int8 input per tensor (1 scale), int8 weights per channel (16 scales), int8
    # bias per tensor (1 scale). conv2: asymmetric int4 weights per channel (32 scales and
    # 32 4-bit zero points), symmetric int4 input and bias (1 scale each). fc: float.
    def scaled(width: int, weight: dict) -> object:
        return parse_layer_config(
            {"name": "int", "data_in_width": width, "weight_width": width, "bias_width": width, **weight},
            where="test", op="conv2d",
        )

    config = {
        "conv1": scaled(8, {"weight_granularity": "channel"}),
        "conv2": scaled(4, {"weight_granularity": "channel", "weight_symmetric": False}),
        "fc": None,
    }
    weight_extra = 16 * 32 + 32 * (32 + 4)
    expected = {
        "average_bitwidth": (8 * 144 + 4 * 4608 + 32 * 5120 + weight_extra) / 9872,
        "memory_density": 32 / ((8 * 144 + 4 * 4608 + 32 * 5120 + weight_extra) / 9872),
        "model_size": (
            32 * 9930 - 24 * 144 - 24 * 16 - 28 * 4608 - 28 * 32
            + weight_extra + 2 * 32  # bias scales of conv1 and conv2
            + 2 * 32  # input scales of conv1 and conv2
        ) / 8,
        "bitops": 9216 * 8 * 8 + 294912 * 4 * 4 + 5120 * 32 * 32.0,
    }
    check(hardware(cnn_context, config), expected, CNN_FLOAT)


def test_fixed_point_auto_stores_nothing_extra(cnn_context: RunContext) -> None:
    auto = parse_layer_config(
        {"name": "integer", "data_in_width": 8, "data_in_frac_width": "auto", "weight_width": 8,
         "weight_frac_width": "auto", "bias_width": 8, "bias_frac_width": "auto"},
        where="test",
    )
    got = hardware(cnn_context, {"conv1": auto, "conv2": auto, "fc": auto})
    assert got["average_bitwidth"] == 8.0
    assert got["model_size"] == 8 * 9930 / 8


def test_tensor_bits() -> None:
    config = int_config(weight=5)
    assert tensor_bits(config, "weight") == 5
    assert tensor_bits(config, "data_in") == 32
    assert tensor_bits(None, "bias") == 32


def test_hardware_metrics_do_not_build_the_model(jsc_context: RunContext) -> None:
    runners = build_runners(strategy(hw={name: {} for name in HW}), jsc_context)
    candidate = Candidate({"seq_blocks_2": int_config(data_in=8, weight=8, bias=8)}, jsc_context)
    runners.run(candidate)
    assert not candidate.is_built


def test_latency_is_a_positive_median_with_a_ratio(cnn_context: RunContext) -> None:
    runners = build_runners(
        strategy(hw={"latency": {"batch_size": 8, "warmup": 1, "repeats": 3}}), cnn_context
    )
    got = runners.run({"conv2": int_config(data_in=8, weight=4, bias=8)}).hardware
    assert set(got) == {"latency", "latency_ratio"}
    latency_runner = runners.producer("latency")
    assert isinstance(latency_runner, Latency)
    assert got["latency"] > 0
    assert got["latency_ratio"] == pytest.approx(got["latency"] / latency_runner.float_latency())


def test_latency_batch_repeats_a_small_split(jsc_context: RunContext) -> None:
    # The validation split has 200 samples; a batch of 500 repeats it.
    runners = build_runners(strategy(hw={"latency": {"batch_size": 500, "repeats": 1}}), jsc_context)
    runner = runners.producer("latency")
    assert runner._batch.shape == (500, 16)
    assert runner._batch[200:400].equal(jsc_context.dataset.val.x)


def test_hardware_options_are_validated(jsc_context: RunContext) -> None:
    with pytest.raises(ConfigError) as info:
        build_runners(strategy(hw={"average_bitwidth": {"compare_to": 0}}), jsc_context)
    message = str(info.value)
    assert "search.strategy.hw_runner.average_bitwidth.compare_to" in message
    assert message == "search.strategy.hw_runner.average_bitwidth.compare_to: must be > 0; got 0"
    with pytest.raises(ConfigError, match=r"hw_runner\.latency\.repeat: unknown option.*got 3.*did you mean 'repeats'"):
        build_runners(strategy(hw={"latency": {"repeat": 3}}), jsc_context)
