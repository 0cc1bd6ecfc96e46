"""The runner contract, checked for every registered runner."""

from __future__ import annotations

import math

import pydantic
import pytest
import torch

from bitscout.metrics import Candidate, RunContext, get_runner, runner_names
from tests.metrics.metrics_helpers import int_config

# Options a runner needs to be made at all, or to keep this test fast.
OPTIONS = {
    "basic_train": {"max_steps": 2},
    "basic_evaluation": {"num_samples": 50},
    "latency": {"batch_size": 4, "warmup": 0, "repeats": 1},
}

NONDETERMINISTIC = {"latency"}  # a wall-clock time


def test_every_runner_is_registered() -> None:
    assert runner_names("software") == ["basic_evaluation", "basic_train"]
    assert runner_names("hardware") == [
        "activation_bitwidth",
        "average_bitwidth",
        "bitops",
        "flops",
        "latency",
        "model_size",
    ]


@pytest.mark.parametrize("name", runner_names())
def test_runner_declarations(name: str) -> None:
    cls = get_runner(name)
    assert cls.name == name
    assert cls.kind in ("software", "hardware")
    assert cls.metrics and len(set(cls.metrics)) == len(cls.metrics)
    assert cls.maximize <= set(cls.metrics)
    assert cls.constant_under_quantization <= set(cls.metrics)
    for needed in cls.requires:
        assert get_runner(needed).kind == cls.kind
    if cls.kind == "hardware":
        # Every cost is also reported as a ratio to the float model.
        raw = [m for m in cls.metrics if not m.endswith("_ratio")]
        assert set(cls.metrics) == set(raw) | {f"{m}_ratio" for m in raw}
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        cls.Options.model_validate({**OPTIONS.get(name, {}), "no_such_option": 1})


@pytest.mark.parametrize("name", runner_names())
def test_runner_runs_fresh_and_leaves_the_float_model_alone(name: str, jsc_context: RunContext) -> None:
    cls = get_runner(name)
    runner = cls(cls.Options.model_validate(OPTIONS.get(name, {})), jsc_context)
    before = {k: v.clone() for k, v in jsc_context.traced.gm.state_dict().items()}
    config = {
        "seq_blocks_1": int_config(data_in=4),
        "seq_blocks_2": int_config(data_in=6, weight=3, bias=8),
    }

    def measure() -> dict[str, float]:
        candidate = Candidate(config, jsc_context)
        prepared = runner.prepare(candidate)
        assert prepared.config == candidate.config
        return runner.run(prepared)

    first = measure()
    assert set(first) == set(runner.produces())
    assert all(isinstance(v, float) and math.isfinite(v) for v in first.values())
    second = measure()
    if name not in NONDETERMINISTIC:
        assert second == first
    after = jsc_context.traced.gm.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
