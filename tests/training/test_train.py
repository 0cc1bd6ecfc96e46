"""The training loop: it learns, keeps the best epoch, and is reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bitscout.config import load_config
from bitscout.data import load_dataset
from bitscout.errors import BitscoutError
from bitscout.experiment import build_fresh_model
from bitscout.models import build_model
from bitscout.training import evaluate, train


def _run(seed: int, epochs: int = 3, init_seed: int = 0):
    ds = load_dataset("synthetic")
    torch.manual_seed(init_seed)
    model = build_model("jsc-toy", ds.info)
    result = train(model, ds, epochs=epochs, batch_size=32, learning_rate=1e-2, seed=seed, progress=False)
    return model, result, ds


def test_same_seed_same_weights_other_seed_differs() -> None:
    a, ra, _ = _run(seed=5)
    b, rb, _ = _run(seed=5)
    c, _, _ = _run(seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    def without_time(result):
        return [{**h.__dict__, "seconds": None} for h in result.history]

    assert without_time(ra) == without_time(rb)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if k.endswith("weight"))


def test_history_and_best_state() -> None:
    model, result, ds = _run(seed=0, epochs=4)
    assert [h.epoch for h in result.history] == [1, 2, 3, 4]
    accs = [h.val_accuracy for h in result.history]
    assert result.best_epoch == accs.index(max(accs)) + 1
    assert result.best_val.accuracy == max(accs)
    # The model holds the best epoch's weights, which give back the best validation metrics.
    again = evaluate(model, ds.val.x, ds.val.y)
    assert again == result.best_val
    assert all(torch.equal(v, result.best_state[k]) for k, v in model.state_dict().items())
    # The synthetic clusters are easy: training must beat chance (25%) by far.
    assert max(accs) > 0.8
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_default_digits_config_reaches_95_percent() -> None:
    # configs/digits.toml is what `make demo` trains: its settings must reach 95%.
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "digits.toml")
    assert (config.model, config.dataset, config.project) == ("mlp", "digits", "digits-mlp")
    assert config.load_name == Path("runs/digits-mlp/train/best.pt")
    ds = load_dataset(config.dataset, seed=config.seed)
    model = build_fresh_model(config, ds.info)
    result = train(model, ds, epochs=config.max_epochs, batch_size=config.batch_size,
                   learning_rate=config.learning_rate, seed=config.seed, progress=False)
    assert result.best_val.accuracy >= 0.95
    assert evaluate(model, ds.test.x, ds.test.y).accuracy >= 0.9


@pytest.mark.parametrize(("key", "value", "message"), [
    ("epochs", 0, "epochs must be >= 1; got 0"),
    ("batch_size", 0, "batch_size must be >= 1; got 0"),
    ("learning_rate", 0.0, "learning_rate must be > 0; got 0.0"),
])
def test_bad_settings(key, value, message) -> None:
    ds = load_dataset("synthetic")
    kwargs = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "seed": 0, "progress": False, key: value}
    with pytest.raises(BitscoutError, match=message):
        train(build_model("mlp", ds.info), ds, **kwargs)


def test_training_threads_are_restored_even_when_training_fails() -> None:
    # train() runs on one intra-op thread; torch's setting is global, so leaving it
    # changed would slow every later computation of the process (or speed it up unasked).
    ds = load_dataset("synthetic")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[int] = []

        def stop(metrics) -> None:
            seen.append(torch.get_num_threads())
            raise RuntimeError("a failure in the middle")  # (Ctrl-C now returns the best epoch)

        with pytest.raises(RuntimeError):
            train(build_model("mlp", ds.info), ds, epochs=2, batch_size=32, learning_rate=1e-2,
                  seed=0, progress=False, on_epoch=stop)
        assert seen == [1] and torch.get_num_threads() == 2
        train(build_model("mlp", ds.info), ds, epochs=1, batch_size=32, learning_rate=1e-2,
              seed=0, progress=False, cpu_threads=None, on_epoch=seen.append)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)



def test_ctrl_c_keeps_the_best_finished_epoch() -> None:
    ds = load_dataset("synthetic")

    def stop_at_epoch_3(metrics):
        if metrics.epoch == 3:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    model = build_model("jsc-toy", ds.info)
    result = train(model, ds, epochs=50, batch_size=32, learning_rate=1e-2, seed=0, progress=False, on_epoch=stop_at_epoch_3)
    assert result.interrupted and [h.epoch for h in result.history] == [1, 2, 3]
    accs = [h.val_accuracy for h in result.history]
    assert result.best_epoch == accs.index(max(accs)) + 1
    assert all(torch.equal(v, result.best_state[k]) for k, v in model.state_dict().items())
    # The same three epochs as an uninterrupted 3-epoch run.
    _, full, _ = _run(seed=0, epochs=3)
    assert not full.interrupted and result.best_val == full.best_val


def test_ctrl_c_before_the_first_epoch_finishes_is_raised() -> None:
    ds = load_dataset("synthetic")
    torch.manual_seed(0)
    model = build_model("jsc-toy", ds.info)
    calls = 0

    def second_batch(module, args, output):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt

    model.register_forward_hook(second_batch)
    with pytest.raises(KeyboardInterrupt):  # nothing finished: nothing to keep
        train(model, ds, epochs=5, batch_size=32, learning_rate=1e-2, seed=0, progress=False)
