"""The analytic hardware runners over a grid of configs equal their per-config runs, bit for bit.

``measure_grid`` / ``run_grid`` repeat ``measure`` / ``run`` with array arithmetic (the
exhaustive engine's fast path); these tests compare them with ``run`` on every config
of grids that mix float layers, fixed point, ``int`` formats with scales and zero
points stored beside the tensor (per tensor and per channel), minifloat and
``block_fp`` (fractional bits per element).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bitscout.metrics import Candidate, RunContext, build_runners
from bitscout.quant import parse_layer_config
from tests.metrics.metrics_helpers import strategy

HW = ("average_bitwidth", "activation_bitwidth", "model_size", "flops", "bitops")

RAW = [
    {"name": "NA"},
    {"name": "integer", "data_in_width": 8, "data_in_frac_width": 4, "weight_width": 3, "weight_frac_width": 2,
     "bias_width": 8, "bias_frac_width": 4},
    {"name": "int", "data_in_width": 6, "weight_width": 5, "weight_granularity": "channel", "bias_width": 8},
    {"name": "int", "data_in_width": 7, "data_in_symmetric": False, "weight_width": 4,
     "weight_symmetric": False, "bias_width": 16},
    {"name": "minifloat", "data_in_width": 8, "data_in_exponent_width": 4, "weight_width": 6,
     "weight_exponent_width": 3, "bias_width": 8, "bias_exponent_width": 4},
    {"name": "block_fp", "data_in_width": 5, "data_in_exponent_width": 8, "data_in_block_size": 16,
     "weight_width": 4, "weight_exponent_width": 8, "weight_block_size": 16, "bias_width": 6,
     "bias_exponent_width": 8, "bias_block_size": 5},
]


def _layer_configs(context: RunContext, name: str) -> list:
    layer = context.traced.table[name]
    return [parse_layer_config(raw, where=name, tensors=layer.tensors, op=layer.op) for raw in RAW]


@pytest.mark.parametrize("which", ["mlp_context", "cnn_context", "jsc_context"])
def test_grid_equals_run_for_every_config(which: str, request: pytest.FixtureRequest) -> None:
    context: RunContext = request.getfixturevalue(which)
    runners = build_runners(strategy(hw={name: {} for name in HW}), context).hardware
    table = context.traced.table
    # Every quantizable layer but the last joins the grid; the last stays float throughout,
    # as a layer outside the space does.
    names = [layer.name for layer in table][:-1]
    grid = [(name, _layer_configs(context, name)) for name in names]
    assert all(len(configs) == len(RAW) for _, configs in grid)
    combos = list(itertools.product(*(configs for _, configs in grid)))
    for runner in runners:
        got = runner.run_grid(grid)
        assert set(got) == set(runner.produces())
        for i, combo in enumerate(combos):
            expected = runner.run(Candidate(dict(zip(names, combo)), context))
            for metric, value in expected.items():
                assert got[metric][i] == value, (runner.name, metric, i, got[metric][i], value)
        assert all(len(values) == len(combos) and values.dtype == np.float64 for values in got.values())


def test_default_grid_of_a_runner_without_its_own(mlp_context: RunContext) -> None:
    """A runner that only implements measure() gets a grid from a per-config loop."""
    from bitscout.metrics import AverageBitwidth

    class Plain(AverageBitwidth):
        measure_grid = AverageBitwidth.__mro__[1].measure_grid  # the _AnalyticRunner default

    runner = Plain(AverageBitwidth.Options(), mlp_context)
    reference = AverageBitwidth(AverageBitwidth.Options(), mlp_context)
    grid = [(name, _layer_configs(mlp_context, name)) for name in ("fc1", "fc2")]
    got, expected = runner.run_grid(grid), reference.run_grid(grid)
    assert got.keys() == expected.keys()
    for metric in got:
        assert np.array_equal(got[metric], expected[metric]), metric
