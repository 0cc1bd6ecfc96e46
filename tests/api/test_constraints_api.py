"""bitscout.search(..., constraints=...): budgets from Python, checked like the TOML's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import bitscout
from bitscout.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def mlp() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    xt, yt = torch.from_numpy(x[:1200]), torch.from_numpy(y[:1200])
    model.train()
    for _ in range(60):
        model.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
    return model.eval(), x[1200:], y[1200:]


SPACE = {"linear": {"name": "integer", "weight_width": [2, 3, 4, 6, 8], "data_in_width": [4, 8]}}


def test_best_is_feasible_and_over_budget_configurations_are_skipped(mlp) -> None:
    model, x, y = mlp
    result = bitscout.search(
        model, data=(x, y), space=SPACE, objective={"accuracy": 1.0},
        constraints={"average_bitwidth": {"max": 4}, "weight_bytes": {"max": "2 KiB"}},
        strategy="tpe", n_trials=40, seed=0,
    )
    best = result.best
    assert best is not None and best.feasible
    weights = 64 * 32 + 32 * 10
    assert best.hardware_metrics["average_bitwidth"] <= 4
    assert best.hardware_metrics["weight_bytes"] == pytest.approx(best.hardware_metrics["average_bitwidth"] * weights / 8)
    assert best.hardware_metrics["weight_bytes"] <= 2048
    skipped = [t for t in result.trials if t.skipped]
    assert skipped and all(not t.feasible and not t.software_metrics for t in skipped)


def test_a_bad_unit_is_one_error_with_its_path(mlp) -> None:
    model, x, y = mlp
    with pytest.raises(ConfigError) as info:
        bitscout.search(model, data=(x, y), space=SPACE, objective={"accuracy": 1.0},
                        constraints={"weight_bytes": {"max": "2 KB"}}, n_trials=1)
    assert str(info.value).startswith("constraints.weight_bytes.max: must be a number, or a size with a unit")


def test_a_percentage_as_accuracy_bound_names_the_bound_itself(mlp) -> None:
    # user9: the message named `constraints`, not the key holding the percentage.
    model, x, y = mlp
    with pytest.raises(ConfigError) as info:
        bitscout.search(model, data=(x, y), space=SPACE, objective={"accuracy": 1.0},
                        constraints={"accuracy": {"min": 95}}, n_trials=1)
    assert str(info.value) == (
        "constraints.accuracy.min: is outside 0..1, the values accuracy can take (a share of the "
        "samples, not a percentage); for 95 % write min = 0.95; got 95.0"
    )


def test_a_cost_with_a_negative_weight_gets_no_mase_advice_and_optuna_stays_quiet(mlp, caplog) -> None:
    # user9: objective={"average_bitwidth": -0.01} (the sign is the direction, as the docs
    # say) warned that MASE would add the cost, and Optuna logged "A new study created".
    import logging
    import warnings

    import optuna

    model, x, y = mlp
    before = optuna.logging.get_verbosity()
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        result = bitscout.search(model, data=(x, y), space=SPACE, objective={"accuracy": 1.0, "average_bitwidth": -0.01},
                                 n_trials=2, progress=False)
    assert result.best is not None
    assert not [w for w in caught if "subtracts" in str(w.message)]
    assert "A new study created" not in caplog.text
    assert optuna.logging.get_verbosity() == before


def test_out_refuses_a_plot_of_the_users_but_leaves_other_files_alone(mlp, tmp_path) -> None:
    # user9: bitscout.search(out=...) writes the plots, log.json, best.json, trials.csv and
    # the journal: a plot of the user's is refused, a config.toml (never written) is not.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, x, y = mlp
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.toml").write_text("# my notes\n")
    fig = plt.figure(figsize=(1, 1))
    fig.savefig(out / "objective.png")
    plt.close(fig)
    with pytest.raises(ConfigError, match=r"objective.png was not written by a bitscout search \(it is not a plot"):
        bitscout.search(model, data=(x, y), space=SPACE, objective={"accuracy": 1.0}, n_trials=1, out=out, progress=False)
    (out / "objective.png").unlink()
    bitscout.search(model, data=(x, y), space=SPACE, objective={"accuracy": 1.0}, n_trials=1, out=out, progress=False)
    assert (out / "config.toml").read_text() == "# my notes\n" and (out / "objective.png").is_file()
