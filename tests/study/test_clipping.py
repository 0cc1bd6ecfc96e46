"""Tensors that every candidate clips are named before the search (study/_clipping.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from bitscout.graph import trace
from bitscout.quant import calibrate
from bitscout.space import SearchSpace
from bitscout.study._clipping import CLIP_FACTOR, clipped_tensors


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def _setup(scale: float, **fc1: Any) -> tuple[Any, Any, SearchSpace]:
    torch.manual_seed(0)
    model = _Net().eval()
    # Unscaled features (as a CSV of raw measurements): the largest is about 3 x scale.
    x = torch.randn(64, 4) * scale
    traced = trace(model, x[:2])
    calibration = calibrate(traced, x, source="train[:64]")
    fields = {"name": "integer", "data_in_width": [4, 8], "weight_width": [4, 8], "bias_width": 8, **fc1}
    space = SearchSpace(traced.table, {"fc1": fields})
    return traced, calibration, space


def test_an_unscaled_input_that_every_format_saturates_is_named() -> None:
    traced, calibration, space = _setup(300.0)
    lines = clipped_tensors(space, traced, calibration)
    reach = max(abs(v) for v in calibration.range("fc1", "data_in"))
    # 8 bits with "NA" = width // 2 = 4 fractional bits hold magnitudes up to 2**3 = 8.
    assert reach >= CLIP_FACTOR * 8
    assert lines == [
        f"fc1's input reaches {reach:.4g} on train[:64], but its widest format in the space, 8 bits "
        "with 4 fractional, holds only 8 (set data_in_frac_width = \"auto\" to fit each tensor's range, "
        "or use fewer fractional bits)"
    ]


@pytest.mark.parametrize(
    "fc1",
    [
        {"data_in_frac_width": "auto"},  # fitted to the range: never clips
        {"name": ["NA", "integer"]},  # a float choice keeps one candidate whole
        {"data_in_frac_width": [4, -6]},  # 8 bits with -6 fractional hold 8,192
    ],
)
def test_a_space_with_a_format_that_holds_the_tensor_is_not_reported(fc1: dict[str, Any]) -> None:
    traced, calibration, space = _setup(300.0, **fc1)
    assert clipped_tensors(space, traced, calibration) == []


def test_data_in_range_and_a_clipped_weight() -> None:
    traced, calibration, space = _setup(1.0)
    assert clipped_tensors(space, traced, calibration) == []
    with torch.no_grad():
        traced.gm.get_submodule("fc1").weight.mul_(100.0)
    lines = clipped_tensors(space, traced, calibration)
    assert len(lines) == 1 and lines[0].startswith("fc1's weight reaches ")
    assert "set weight_frac_width = \"auto\"" in lines[0]
