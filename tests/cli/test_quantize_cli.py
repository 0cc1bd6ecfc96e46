"""`bitscout quantize`: the lab's [passes.quantize] applied once, numbers checked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bitscout.cli import main
from bitscout.data import load_dataset
from bitscout.models import build_model, load_checkpoint, save_checkpoint
from bitscout.training import train

CONFIG = """\
model = "jsc-tiny"
dataset = "wine"
task = "cls"
batch_size = 32
seed = 0
accelerator = "cpu"

[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
data_in_width = 8
data_in_frac_width = 4
weight_width = 8
weight_frac_width = 4
bias_width = 8
bias_frac_width = {bias_frac}
"""


def _q(x: torch.Tensor, width: int, frac: int) -> torch.Tensor:
    """Signed fixed point by its definition, in float64."""
    x = x.double()
    return torch.clamp(torch.round(x * 2.0**frac), -(2 ** (width - 1)), 2 ** (width - 1) - 1) / 2.0**frac


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dataset = load_dataset("wine", seed=0)
    torch.manual_seed(0)
    model = build_model("jsc-tiny", dataset.info)
    train(model, dataset, epochs=15, batch_size=16, learning_rate=0.05, seed=0, progress=False)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(model, path, {"model": "jsc-tiny", "dataset": "wine"})
    return path


def _expected(checkpoint: Path, bias_frac: int) -> tuple[list[float], list[float]]:
    dataset = load_dataset("wine", seed=0)
    model = build_model("jsc-tiny", dataset.info)
    load_checkpoint(model, checkpoint)
    model.eval()
    x, y = dataset.val.x, dataset.val.y
    bn, lin = model.seq_blocks[0], model.seq_blocks[2]
    with torch.no_grad():
        h = F.relu(bn(x))
        float_logits = F.relu(F.linear(h, lin.weight, lin.bias))
        q_logits = F.relu(_q(h, 8, 4) @ _q(lin.weight, 8, 4).T + _q(lin.bias, 8, bias_frac))
    rows = []
    for logits in (float_logits, q_logits):
        acc = (logits.argmax(1) == y).double().mean().item()
        loss = F.cross_entropy(logits.double(), y).item()
        rows.append([acc, loss])
    return rows[0], rows[1]


@pytest.mark.slow
@pytest.mark.parametrize("bias_frac", [4, 1])
def test_quantize_prints_before_after_and_table(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str], bias_frac: int
) -> None:
    config = tmp_path / "lab.toml"
    config.write_text(CONFIG.format(bias_frac=bias_frac))
    assert main(["quantize", str(config), "--load", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    (float_acc, float_loss), (q_acc, q_loss) = _expected(checkpoint, bias_frac)
    float_row = next(line.split() for line in lines if line.startswith("float "))
    q_row = next(line.split() for line in lines if line.startswith("quantized "))
    assert float(float_row[1]) == pytest.approx(float_acc, abs=6e-5)
    assert float(float_row[3]) == pytest.approx(float_loss, abs=6e-5)
    assert float(q_row[1]) == pytest.approx(q_acc, abs=6e-5)
    assert float(q_row[3]) == pytest.approx(q_loss, abs=6e-5)
    assert float_acc > 0.6  # the checkpoint is trained: the comparison means something
    assert "1 of 3 quantizable nodes quantized" in out
    table = {line.split()[0]: line for line in lines if line.startswith("seq_blocks_")}
    assert table["seq_blocks_2"].split()[1] == "linear"
    assert table["seq_blocks_2"].endswith(f"integer: data_in 8b (4 frac), weight 8b (4 frac), bias 8b ({bias_frac} frac)")
    assert table["seq_blocks_1"].endswith("float") and table["seq_blocks_3"].endswith("float")


def test_config_without_the_pass_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "plain.toml"
    config.write_text('model = "jsc-tiny"\ndataset = "wine"\naccelerator = "cpu"\n')
    assert main(["quantize", str(config)]) == 2
    assert "has no [passes.quantize] section" in capsys.readouterr().err


def test_unknown_type_key_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "conv.toml"
    config.write_text(CONFIG.format(bias_frac=4).replace("[passes.quantize.linear.config]", "[passes.quantize.conv2d.config]"))
    assert main(["quantize", str(config)]) == 2
    err = capsys.readouterr().err
    assert "passes.quantize.conv2d" in err and "relu, linear" in err
