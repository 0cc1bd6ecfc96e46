"""Small search spaces shared by the strategy tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bitscout.graph import LayerTable, trace
from bitscout.space import SearchSpace

INT8 = {"name": "integer", "data_in_width": 8, "weight_width": 8, "bias_width": 8}


@pytest.fixture(scope="session")
def mlp_table() -> LayerTable:
    class Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(6, 4)
            self.act = nn.ReLU()
            self.fc2 = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.act(self.fc1(x)))

    return trace(Mlp(), torch.randn(2, 6)).table


@pytest.fixture(scope="session")
def space36(mlp_table: LayerTable) -> SearchSpace:
    """36 configurations, all distinct: 3 x 2 x 2 x 3."""
    return SearchSpace(
        mlp_table,
        {
            "fc1": {**INT8, "weight_width": (2, 4, 8), "data_in_width": (4, 8)},
            "act": {"name": "integer", "data_in_width": (2, 8)},
            "fc2": {**INT8, "weight_width": (2, 4, 8)},
        },
    )


@pytest.fixture(scope="session")
def space_na(mlp_table: LayerTable) -> SearchSpace:
    """36 parameter vectors, 24 distinct: fc2 may stay float ("NA")."""
    return SearchSpace(
        mlp_table,
        {
            "fc1": {**INT8, "weight_width": (2, 4, 8), "data_in_width": (4, 8)},
            "fc2": {**INT8, "name": ("NA", "integer"), "weight_width": (2, 4, 8)},
        },
    )
