"""Models, configs and run folders shared by the export tests (no C++ compiled here)."""

from __future__ import annotations

from pathlib import Path

import torch

from bitscout.data import load_dataset
from bitscout.models import build_model
from bitscout.quant import IntegerFormat, LayerQuantConfig
from bitscout.study import SearchResult, TrialRecord


def lq(data_in: tuple[int, int] | None, weight: tuple[int, int] | None = None,
       bias: tuple[int, int] | None = None) -> LayerQuantConfig:
    """An integer LayerQuantConfig from (width, frac) pairs."""
    def fmt(pair: tuple[int, int] | None) -> IntegerFormat | None:
        return None if pair is None else IntegerFormat(*pair)
    return LayerQuantConfig("integer", fmt(data_in), fmt(weight), fmt(bias))


# Three mixed-precision configs of the 3-layer MLP (fc1, relu1, fc2, relu2, fc3), together
# covering 2-bit widths, negative frac widths (weights, biases and activations) and frac
# widths above the width, with every worst-case exact sum under float32's 24 bits.
MLP_CONFIGS: dict[str, dict[str, LayerQuantConfig | None]] = {
    "a": {
        "fc1": lq((6, 3), (4, 6), (4, -1)),
        "relu1": lq((5, 2)),
        "fc2": lq((2, 0), (3, 2), (8, 4)),
        "relu2": None,
        "fc3": lq((4, 2), (2, 1), (6, 3)),
    },
    "b": {
        "fc1": lq((8, 4), (8, 7), (8, 4)),
        "relu1": None,
        "fc2": lq((6, 2), (4, 3), (5, -2)),
        "relu2": lq((6, 1)),
        "fc3": lq((10, 6), (8, 6), (12, 8)),
    },
    "c": {
        "fc1": lq((3, 1), (2, 2), (2, 1)),
        "relu1": lq((3, 1)),
        "fc2": lq((2, 0), (5, 3), (3, 5)),
        "relu2": lq((4, 3)),
        "fc3": lq((6, 4), (7, 9), (2, -2)),
    },
}


def synthetic():
    """The synthetic JSC-shaped data set (SYNTHETIC Gaussian clusters, 16 features)."""
    return load_dataset("synthetic", seed=0)


def mlp(seed: int = 0, train: bool = True) -> torch.nn.Module:
    """The 3-layer MLP 16-32-16-4, trained briefly on the synthetic data (so that its
    accuracy means something and its activations spread over the formats' ranges)."""
    torch.manual_seed(seed)
    model = build_model("mlp", synthetic().info, {"hidden": (32, 16)})
    if train:
        data = synthetic()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(60):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(data.train.x), data.train.y).backward()
            opt.step()
    return model.eval()


def jsc_tiny(seed: int = 0) -> torch.nn.Module:
    """jsc-tiny with BatchNorm statistics that are not the identity."""
    torch.manual_seed(seed)
    model = build_model("jsc-tiny", synthetic().info).eval()
    bn = model.seq_blocks[0]
    with torch.no_grad():
        bn.running_mean.uniform_(-1.0, 1.0)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return model


def write_run(run_dir: Path, model_name: str, model: torch.nn.Module,
              trials: list[TrialRecord], directions: list[str],
              options: str = "") -> Path:
    """A search run folder as `bitscout search` leaves it: config.toml, log.json, best.json,
    with the float model's checkpoint."""
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "float.pt"
    torch.save(model.state_dict(), ckpt)
    (run_dir / "config.toml").write_text(
        f'model = "{model_name}"\ndataset = "synthetic"\nseed = 0\nbatch_size = 64\n'
        f'accelerator = "cpu"\nload_name = "{ckpt}"\nload_type = "pt"\n{options}'
    )
    SearchResult(trials=trials, directions=directions).save(run_dir)
    return run_dir


def sampled(config: dict[str, LayerQuantConfig | None]) -> dict[str, object]:
    return {name: ("float" if c is None else c.to_dict()) for name, c in config.items()}


def bn_mlp(seed: int = 0) -> torch.nn.Module:
    """The MLP 16-32-16-4 with BatchNorm after each hidden layer, trained briefly in train
    mode (so the running statistics are real ones) on the synthetic data."""
    torch.manual_seed(seed)
    data = synthetic()
    model = build_model("mlp", data.info, {"hidden": (32, 16), "batch_norm": True})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data.train.x), data.train.y).backward()
        opt.step()
    return model.eval()


#: Fixed point with every frac width fitted to the range ("auto"), 8 bits everywhere.
AUTO8 = {"name": "integer", "data_in_width": 8, "data_in_frac_width": "auto", "weight_width": 8,
         "weight_frac_width": "auto", "bias_width": 8, "bias_frac_width": "auto"}
