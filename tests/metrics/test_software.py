"""Software runners: basic_evaluation against numpy, freshness, and basic_train's isolation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bitscout.config import BitscoutConfigWarning
from bitscout.errors import ConfigError
from bitscout.metrics import BasicEvaluation, BasicTrain, Candidate, RunContext, build_runners
from tests.metrics.metrics_helpers import int_config, strategy


def train_briefly(context: RunContext, steps: int = 150) -> None:
    """Train the traced float model in place a little, so accuracy means something."""
    model = context.traced.gm
    x, y = context.dataset.train.x, context.dataset.train.y
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        index = torch.randint(len(y), (64,), generator=generator)
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def numpy_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, mean recall over the classes present, mean cross-entropy, in numpy."""
    predicted = logits.argmax(axis=1)
    recalls = [np.mean(predicted[labels == c] == c) for c in np.unique(labels)]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(np.mean(recalls)),
        "loss": float(-log_softmax[np.arange(len(labels)), labels].mean()),
    }


@pytest.fixture()
def trained_mlp(mlp_context: RunContext) -> RunContext:
    train_briefly(mlp_context)
    return mlp_context


def test_basic_evaluation_matches_numpy_on_exactly_num_samples(trained_mlp: RunContext) -> None:
    runners = build_runners(
        strategy(sw={"basic_evaluation": {"data_loader": "val_dataloader", "num_samples": 77}}),
        trained_mlp,
    )
    runner = runners.producer("accuracy")
    assert isinstance(runner, BasicEvaluation) and runner.num_samples == 77
    candidate = Candidate({"fc1": int_config(data_in=4, weight=3, bias=8)}, trained_mlp)
    got = runners.run(candidate).software

    x, y = trained_mlp.dataset.val.x[:77], trained_mlp.dataset.val.y[:77]
    with torch.no_grad():
        logits = candidate.model(x).double().numpy()
    expected = numpy_metrics(logits, y.numpy())
    assert got == pytest.approx(expected, rel=1e-6)
    # The sample is class-imbalanced, so the two accuracies are different numbers.
    assert got["balanced_accuracy"] != pytest.approx(got["accuracy"])
    assert 0.3 < got["accuracy"] < 1.0


def test_num_samples_beyond_the_split_uses_all_of_it(trained_mlp: RunContext) -> None:
    runners = build_runners(
        strategy(sw={"basic_evaluation": {"data_loader": "test", "num_samples": 10_000}}), trained_mlp
    )
    runner = runners.producer("loss")
    assert runner.num_samples == len(trained_mlp.dataset.test) == 180
    got = runners.run({}).software
    with torch.no_grad():
        logits = trained_mlp.traced.gm(trained_mlp.dataset.test.x).double().numpy()
    assert got == pytest.approx(numpy_metrics(logits, trained_mlp.dataset.test.y.numpy()), rel=1e-6)


def test_evaluation_in_chunks_equals_all_at_once(trained_mlp: RunContext) -> None:
    config = {"fc2": int_config(data_in=5, weight=4, bias=6)}
    whole = build_runners(strategy(sw={"basic_evaluation": {}}), trained_mlp).run(config)
    runners = build_runners(strategy(sw={"basic_evaluation": {}}), trained_mlp)
    runners.producer("accuracy")._data.step = 7  # force 74 forward passes
    chunked = runners.run(config)
    assert chunked.software == pytest.approx(whole.software, rel=1e-6)


def test_metrics_are_fresh_for_every_trial(trained_mlp: RunContext) -> None:
    a = {"fc1": int_config(data_in=3, weight=2, bias=4)}
    b = {"fc1": int_config(data_in=8, weight=8, bias=8), "fc2": int_config(data_in=8, weight=8, bias=8)}
    runners = build_runners(strategy(sw={"basic_evaluation": {}}), trained_mlp)
    first_a = runners.run(a)
    first_b = runners.run(b)
    second_a = runners.run(a)
    assert first_a.software != first_b.software  # the configs really differ
    assert second_a == first_a  # nothing accumulated across trials
    fresh = build_runners(strategy(sw={"basic_evaluation": {}}), trained_mlp).run(a)
    assert fresh == first_a


def test_basic_train_fine_tunes_a_private_copy(mlp_context: RunContext) -> None:
    gm = mlp_context.traced.gm
    before = {k: v.clone() for k, v in gm.state_dict().items()}
    versions = {k: v._version for k, v in gm.state_dict().items()}
    config = {"fc1": int_config(data_in=6, weight=4, bias=8), "fc2": int_config(data_in=6, weight=4, bias=8)}

    plain = build_runners(strategy(sw={"basic_evaluation": {}}), mlp_context)
    untrained = plain.run(config)
    trained_runners = build_runners(
        strategy(sw={"basic_train": {"max_steps": 40, "learning_rate": 0.01}}), mlp_context
    )
    trained = trained_runners.run(config)

    # Fine-tuning changed the candidate: an untrained MLP sits near chance on 10 classes.
    assert untrained.software["accuracy"] < 0.3
    assert trained.software["accuracy"] > untrained.software["accuracy"] + 0.3
    assert 0 < trained.software["train_loss"] < np.log(10)
    # ...and left the shared float model bit-identical, untouched even in place.
    after = gm.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(after[k]._version == versions[k] for k in before)
    # Candidates built from the shared model afterwards still measure as before.
    assert plain.run(config) == untrained
    # The same seed gives the same fine-tune.
    assert trained_runners.run(config) == trained


def test_basic_train_keeps_shared_batchnorm_statistics(jsc_context: RunContext) -> None:
    gm = jsc_context.traced.gm
    before = {k: v.clone() for k, v in gm.state_dict().items()}
    runners = build_runners(strategy(sw={"basic_train": {"max_epochs": 2, "batch_size": 50}}), jsc_context)
    train = runners.producer("train_loss")
    assert isinstance(train, BasicTrain) and train.steps_per_epoch == 8  # 400 samples / 50
    metrics = runners.run({"seq_blocks_2": int_config(data_in=8, weight=4, bias=8)})
    assert set(metrics.software) == {"train_loss", "accuracy", "balanced_accuracy", "loss"}
    after = gm.state_dict()
    assert "seq_blocks.0.running_mean" in after
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_basic_train_alone_brings_default_evaluation(mlp_context: RunContext) -> None:
    runners = build_runners(strategy(sw={"basic_train": {"max_steps": 1}}), mlp_context)
    evaluation = runners.producer("accuracy")
    assert isinstance(evaluation, BasicEvaluation)
    assert evaluation.options == BasicEvaluation.Options()
    assert evaluation.num_samples == 512


def test_software_options_are_validated(mlp_context: RunContext) -> None:
    with pytest.raises(ConfigError) as info:
        build_runners(
            strategy(sw={"basic_evaluation": {"data_loader": "validation", "num_samples": 0}}),
            mlp_context,
        )
    assert str(info.value).splitlines() == [
        "search.strategy.sw_runner.basic_evaluation.data_loader: must be one of 'train', "
        "'val', 'test', 'train_dataloader', 'val_dataloader' or 'test_dataloader'; "
        "got 'validation'",
        "search.strategy.sw_runner.basic_evaluation.num_samples: must be > 0; got 0",
    ]

    with pytest.raises(ConfigError, match=r"dataloader: unknown option.*did you mean 'data_loader'"):
        build_runners(strategy(sw={"basic_evaluation": {"dataloader": "val"}}), mlp_context)
    for budget in ({}, {"max_steps": 5, "max_epochs": 1}):
        with pytest.raises(ConfigError, match=r"sw_runner\.basic_train: exactly one of max_steps and max_epochs"):
            build_runners(strategy(sw={"basic_train": budget}), mlp_context)
    with pytest.raises(ConfigError, match=r"basic_train\.optimizer: .*'adam'.*got 'rmsprop'"):
        build_runners(strategy(sw={"basic_train": {"max_steps": 1, "optimizer": "rmsprop"}}), mlp_context)


def test_unknown_or_misplaced_runner(mlp_context: RunContext) -> None:
    raw = SimpleNamespace(sw_runners={"basic_eval": {}}, hw_runners={"basic_evaluation": {}})
    with pytest.raises(ConfigError) as info:
        build_runners(raw, mlp_context)
    message = str(info.value)
    assert "search.strategy.sw_runner.basic_eval: unknown software runner 'basic_eval'" in message
    assert "available: basic_evaluation, basic_train" in message
    assert "search.strategy.hw_runner.basic_evaluation: 'basic_evaluation' is a software runner" in message


def test_mase_basic_train_table_runs_unchanged(jsc_context: RunContext) -> None:
    mase_table = {  # as MASE's examples write it
        "name": "accuracy",
        "data_loader": "train_dataloader",
        "num_samples": 1000000,
        "max_epochs": 1,
        "lr_scheduler": "linear",
        "optimizer": "adam",
        "learning_rate": 1e-4,
        "num_warmup_steps": 0,
    }
    with pytest.warns(BitscoutConfigWarning, match=r"basic_train\.name = 'accuracy' is ignored"):
        runners = build_runners(strategy(sw={"basic_train": mase_table}), jsc_context)
    train = runners.producer("train_loss")
    assert train.total_steps == train.steps_per_epoch == 7  # 400 samples in batches of 64
    metrics = runners.run({"seq_blocks_2": int_config(data_in=8, weight=8, bias=8)})
    assert np.isfinite(metrics.software["train_loss"])


def test_num_samples_caps_the_epochs_as_in_mase(jsc_context: RunContext) -> None:
    runners = build_runners(
        strategy(sw={"basic_train": {"max_epochs": 3, "num_samples": 101, "batch_size": 50}}), jsc_context
    )
    assert runners.producer("train_loss").total_steps == 3  # ceil(101 / 50), not 3 * 8
    with pytest.raises(ConfigError, match="num_samples caps max_epochs and cannot go with max_steps"):
        build_runners(strategy(sw={"basic_train": {"max_steps": 3, "num_samples": 10}}), jsc_context)


def test_learning_rate_schedules(jsc_context: RunContext) -> None:
    def factors(**options) -> list[float]:
        runners = build_runners(strategy(sw={"basic_train": {"max_steps": 6, **options}}), jsc_context)
        train = runners.producer("train_loss")
        return [train.learning_rate_factor(step) for step in range(7)]

    assert factors() == [1.0] * 7
    assert factors(num_warmup_steps=2) == [0.0, 0.5] + [1.0] * 5
    assert factors(lr_scheduler="linear") == pytest.approx([1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0])
    assert factors(lr_scheduler="linear", num_warmup_steps=2) == pytest.approx(
        [0, 0.5, 1, 3 / 4, 2 / 4, 1 / 4, 0]
    )
