"""Candidates, trial records and runner sets."""

from __future__ import annotations

from typing import ClassVar

import pytest

from bitscout.errors import ConfigError, QuantConfigError, SearchError
from bitscout.metrics import (
    Candidate,
    RunContext,
    Runner,
    RunnerSet,
    TrialMetrics,
    build_runners,
    get_runner,
    register_runner,
)
from tests.metrics.metrics_helpers import int_config, strategy


class CountingQuantizer:
    """Wraps a quantizer and counts the models it builds."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.builds = 0

    def build(self, config):
        self.builds += 1
        return self.inner.build(config)


def test_candidate_builds_its_model_once_and_only_when_asked(jsc_context: RunContext) -> None:
    counting = CountingQuantizer(jsc_context.quantizer)
    context = RunContext(
        jsc_context.traced, counting, jsc_context.dataset, jsc_context.device, 64, 0  # type: ignore[arg-type]
    )
    candidate = Candidate({"seq_blocks_2": int_config(data_in=8, weight=8, bias=8)}, context)
    assert not candidate.is_built and counting.builds == 0
    model = candidate.model
    assert candidate.model is model and counting.builds == 1
    runners = build_runners(strategy(sw={"basic_evaluation": {}}, hw={"bitops": {}}), context)
    runners.run(candidate)
    assert counting.builds == 1


def test_candidate_config_is_a_read_only_copy(jsc_context: RunContext) -> None:
    config = {"seq_blocks_2": int_config(weight=4)}
    candidate = Candidate(config, jsc_context)
    config["seq_blocks_1"] = int_config(data_in=2)
    assert list(candidate.config) == ["seq_blocks_2"]
    with pytest.raises(TypeError):
        candidate.config["seq_blocks_3"] = None  # type: ignore[index]
    assert candidate.layer_config("seq_blocks_3") is None


def test_candidate_rejects_unknown_layers(jsc_context: RunContext) -> None:
    with pytest.raises(QuantConfigError, match=r"'fc9', which is not a quantizable layer.*seq_blocks_1, seq_blocks_2, seq_blocks_3"):
        Candidate({"fc9": None}, jsc_context)


def test_with_model_keeps_config_and_adds_notes(jsc_context: RunContext) -> None:
    candidate = Candidate({"seq_blocks_2": int_config(weight=4)}, jsc_context)
    other = candidate.with_model(jsc_context.traced.gm, notes={"train_loss": 0.5})
    assert other.config == candidate.config and other.model is jsc_context.traced.gm
    assert other.notes == {"train_loss": 0.5} and candidate.notes == {}


def test_trial_metrics_record() -> None:
    software = {"accuracy": 0.5}
    record = TrialMetrics(software=software, hardware={"bitops": 10})
    software["accuracy"] = 0.0
    assert record["accuracy"] == 0.5 and record["bitops"] == 10.0
    assert isinstance(record.hardware["bitops"], float)
    assert "bitops" in record and "flops" not in record
    assert record.all() == {"accuracy": 0.5, "bitops": 10.0}
    assert record.to_dict() == {"software": {"accuracy": 0.5}, "hardware": {"bitops": 10.0}}
    with pytest.raises(KeyError, match="no metric 'loss' in this trial; it has: accuracy, bitops"):
        record["loss"]
    with pytest.raises(AttributeError):
        record.software = {}  # type: ignore[misc]


def test_reference_is_the_float_model_measured_once(jsc_context: RunContext) -> None:
    runners = build_runners(strategy(sw={"basic_evaluation": {}}, hw={"model_size": {}}), jsc_context)
    reference = runners.reference()
    assert runners.reference() is reference
    assert reference == runners.run({})
    assert reference.hardware["model_size_ratio"] == 1.0


def test_two_runners_may_not_produce_one_metric(jsc_context: RunContext) -> None:
    class SecondBitops(Runner):
        name: ClassVar[str] = "second_bitops"
        kind = "hardware"
        metrics = ("bitops",)

        def run(self, candidate: Candidate) -> dict[str, float]:
            return {"bitops": 0.0}

    bitops = get_runner("bitops")
    runners = [bitops(bitops.Options(), jsc_context), SecondBitops(SecondBitops.Options(), jsc_context)]
    with pytest.raises(ConfigError, match="runners 'bitops' and 'second_bitops' both produce the metric 'bitops'"):
        RunnerSet(runners, jsc_context)


def test_a_runner_name_is_registered_once() -> None:
    class OtherEvaluation(Runner):
        name: ClassVar[str] = "basic_evaluation"
        kind = "software"
        metrics = ("accuracy",)

        def run(self, candidate: Candidate) -> dict[str, float]:
            return {"accuracy": 1.0}

    with pytest.raises(ValueError, match="a runner named 'basic_evaluation' is already registered"):
        register_runner(OtherEvaluation)


def test_a_runner_must_return_what_it_declares(jsc_context: RunContext) -> None:
    class Forgetful(Runner):
        name: ClassVar[str] = "forgetful"
        kind = "hardware"
        metrics = ("a", "b")

        def run(self, candidate: Candidate) -> dict[str, float]:
            return {"a": 1.0}

    runners = RunnerSet([Forgetful(Forgetful.Options(), jsc_context)], jsc_context)
    with pytest.raises(SearchError, match=r"runner 'forgetful' returned the metrics \['a'\] but declares \['a', 'b'\]"):
        runners.run({})
