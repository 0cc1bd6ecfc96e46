"""bitscout.search: a residual CNN with BatchNorm, trained in seconds in plain PyTorch on
numpy data, searched in a few lines; the records agree with an independent evaluation."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import bitscout
from bitscout.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class ResCNN(nn.Module):
    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.block = Block(c)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(4 * c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.block(self.stem(x))).flatten(1))


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images[:, None] / 16.0).astype(np.float32), digits.target
    torch.manual_seed(0)
    model = ResCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x[:1200]), torch.from_numpy(y[:1200])
    for _ in range(4):
        for i in range(0, 1200, 64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xt[i : i + 64]), yt[i : i + 64]).backward()
            optimizer.step()
    return model, x[1200:], y[1200:]


def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def test_a_residual_cnn_searched_in_a_few_lines(trained, tmp_path) -> None:
    model, x_val, y_val = trained
    model.train()  # the search must leave the user's flags as they were
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # The user's code after training: one call.
    result = bitscout.search(
        model,
        data=(x_val, y_val),
        space={"conv2d": {"weight_width": [4, 8]}, "fc": {"weight_width": [2, 8]}},
        objective={"accuracy": 1.0, "average_bitwidth": -0.02},
        strategy="brute_force", n_trials=8, seed=0, out=tmp_path / "run",
    )
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    # The float model's metrics are measured independently here.
    assert result.baseline["accuracy"] == pytest.approx(_accuracy(model, x_val, y_val))
    assert result.baseline["average_bitwidth"] == 32.0
    records = [t for t in result.trials if t.is_complete]
    assert len(records) == 8  # 2 x 2 x 2 x 2 = 16 configs, 8 trials, all distinct
    configs = {tuple(sorted((k, str(v)) for k, v in t.sampled_config.items())) for t in records}
    assert len(configs) == 8
    # average_bitwidth, by hand: each weight tensor at its width (biases are not counted).
    table = {"stem_0": 72, "block_conv1": 576, "block_conv2": 576, "fc_w": 320}
    for t in records:
        cfg = t.sampled_config
        bits = sum(table[n] * cfg[n]["weight_width"] for n in ("stem_0", "block_conv1", "block_conv2"))
        bits += table["fc_w"] * cfg["fc"]["weight_width"]
        assert t.metrics["average_bitwidth"] == pytest.approx(bits / sum(table.values()))
    frame = result.to_dataframe()
    assert len(frame) == 8
    assert (frame["accuracy_drop"] == result.baseline["accuracy"] - frame["accuracy"]).all()
    best = result.best
    assert best is not None and best.values[0] == max(t.values[0] for t in records)
    assert (tmp_path / "run" / "log.json").is_file()
    fig = result.plot()
    assert fig.axes[0].get_xlabel() == "average_bitwidth"


def test_eval_fn_with_a_glob_and_the_layer_name_winning(trained) -> None:
    model, x_val, y_val = trained
    calls = []

    def top2(qmodel: nn.Module) -> dict[str, float]:
        calls.append(1)
        with torch.no_grad():
            best2 = qmodel(torch.from_numpy(x_val)).topk(2, 1).indices.numpy()
        return {"top2": float((best2 == y_val[:, None]).any(1).mean())}

    result = bitscout.search(
        model, eval_fn=top2, example_input=torch.from_numpy(x_val[:2]),
        space={"block_*": {"weight_width": [4]}, "block_conv2": {"weight_width": [2, 3]}, "default": {"name": ["NA"]}},
        objective={"top2": 1.0}, strategy="brute_force", n_trials=2,
    )
    records = [t for t in result.trials if t.is_complete]
    assert {t.sampled_config["block_conv2"]["weight_width"] for t in records} == {2, 3}
    assert all(t.sampled_config["block_conv1"]["weight_width"] == 4 for t in records)
    assert all(t.sampled_config["fc"] == "float" for t in records)
    assert result.baseline["top2"] >= _accuracy(model.eval(), x_val, y_val)
    assert len(calls) >= 3  # the float model, then each trial


def test_errors_are_bitscout_errors(trained) -> None:
    model, x_val, y_val = trained
    with pytest.raises(ConfigError, match=r"key\(s\) \['conv3d'\] match no layer"):
        bitscout.search(model, data=(x_val, y_val), space={"conv3d": {"weight_width": [4]}},
                        objective={"accuracy": 1.0}, n_trials=1)
    with pytest.raises(ConfigError, match="no runner measures 'speed'"):
        bitscout.search(model, data=(x_val, y_val), space={"fc": {"weight_width": [4]}},
                        objective={"speed": 1.0}, n_trials=1)
    with pytest.raises(ConfigError, match="exactly one of data"):
        bitscout.search(model, space={}, objective={"accuracy": 1.0})


def test_importing_bitscout_does_not_import_torch() -> None:
    code = "import sys, bitscout; assert 'torch' not in sys.modules; print(bitscout.search.__module__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "bitscout.api"


class _WithFeatures(nn.Module):
    """Returns (logits, features), as many training scripts' models do."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc(x), x


def test_a_model_returning_a_tuple_is_one_model_error_before_the_search() -> None:
    from bitscout.errors import ModelError

    x, y = torch.randn(30, 4), torch.arange(30) % 3
    # It used to fail in the float model's evaluation: 'tuple' object has no attribute 'shape'.
    with pytest.raises(ModelError, match=r"^model _WithFeatures: forward returns a tuple, but bitscout needs one tensor"):
        bitscout.search(_WithFeatures(), data=(x, y), space={"linear": {"weight_width": [4, 8]}},
                        objective={"accuracy": 1.0}, strategy="random", n_trials=2, seed=0)


def test_out_holding_a_log_json_no_search_wrote_is_refused(tmp_path) -> None:
    x, y = torch.randn(30, 4), torch.arange(30) % 3
    (tmp_path / "log.json").write_text('{"my": "notes"}')
    with pytest.raises(ConfigError, match=r"^out='.*': .*log.json was not written by a bitscout search"):
        bitscout.search(nn.Linear(4, 3), data=(x, y), space={"linear": {"weight_width": [4, 8]}},
                        objective={"accuracy": 1.0}, strategy="random", n_trials=2, seed=0, out=tmp_path)
    assert (tmp_path / "log.json").read_text() == '{"my": "notes"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.json"]


def test_a_model_whose_classes_the_text_labels_number_otherwise_is_warned_about() -> None:
    from bitscout.errors import BitscoutWarning

    # The model predicts class 0 for x < 0 and class 1 for x > 0; the labels name them
    # "pos"/"neg", which sorted order numbers neg=0, pos=1: the opposite.
    model = nn.Linear(1, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0], [1.0]]) * 10)
        model.bias.zero_()
    x = torch.linspace(-1, 1, 40).reshape(-1, 1)
    names = np.where(x[:, 0].numpy() < 0, "pos", "neg")
    with pytest.warns(BitscoutWarning, match=r"balanced accuracy is 0\.000, far below chance for 2 classes .* \(this data's: neg=0, pos=1\)"):
        result = bitscout.search(model, data=(x, names), space={"linear": {"weight_width": [8]}},
                                 objective={"accuracy": 1.0}, strategy="random", n_trials=1, seed=0)
    assert result.baseline["accuracy"] == 0.0
    # With the model's own order there is nothing to say.
    with warnings.catch_warnings():
        warnings.simplefilter("error", BitscoutWarning)
        right = bitscout.search(model, data=(x, np.where(names == "pos", 0, 1)), space={"linear": {"weight_width": [8]}},
                                objective={"accuracy": 1.0}, strategy="random", n_trials=1, seed=0)
    assert right.baseline["accuracy"] == 1.0
