"""The jet substructure models of MASE (``chop/models/physical/jet_substructure``).

The layer structure and attribute names are MASE's, so that torch.fx gives the same node
names (``seq_blocks_2`` is jsc-tiny's Linear) and a MASE search config "by name" works
unchanged. MASE writes ``nn.ReLU(16)``, which passes 16 as ``inplace``; bitscout uses
out-of-place ``nn.ReLU()``: the same numbers, without mutating a tensor a quantizer may
still need.
"""

from __future__ import annotations

from typing import ClassVar

import pydantic
import torch
from torch import nn

from bitscout.data import DatasetInfo
from bitscout.errors import ModelError
from bitscout.models._base import ModelBuilder, register_model

__all__ = ["JSCTiny", "JSCToy", "JSCS"]


def _features_and_classes(info: DatasetInfo, model: str) -> tuple[int, int]:
    if len(info.input_shape) != 1:
        raise ModelError(
            f"model {model!r} takes flat feature vectors, but dataset {info.name!r} has "
            f"samples of shape {info.input_shape}; use 'mlp' or 'cnn' for it"
        )
    return info.input_shape[0], info.num_classes


class JSCTiny(nn.Module):
    """MASE's JSC_Tiny: BatchNorm1d(16), ReLU, Linear(16, 5), ReLU."""

    def __init__(self, num_features: int = 16, num_classes: int = 5) -> None:
        super().__init__()
        self.seq_blocks = nn.Sequential(
            nn.BatchNorm1d(num_features),
            nn.ReLU(),
            nn.Linear(num_features, num_classes),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq_blocks(x)


class JSCToy(nn.Module):
    """MASE's JSC_Toy: three LogicNets-style layers, 16 -> 8 -> 8 -> 5."""

    def __init__(self, num_features: int = 16, num_classes: int = 5) -> None:
        super().__init__()
        self.seq_blocks = nn.Sequential(
            nn.BatchNorm1d(num_features),
            nn.ReLU(),
            nn.Linear(num_features, 8),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Linear(8, 8),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Linear(8, num_classes),
            nn.BatchNorm1d(num_classes),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq_blocks(x)


class JSCS(nn.Module):
    """MASE's JSC_S: 16 -> 64 -> 32 -> 32 -> 32 -> 5 in a ``module_list``.

    Layers, as in MASE: [BatchNorm(in), ReLU, Linear, BatchNorm, ReLU] for the first,
    [Linear, ReLU] for the middle ones, [Linear, BatchNorm, ReLU] for the last.
    """

    hidden_layers: ClassVar[tuple[int, ...]] = (64, 32, 32, 32)

    def __init__(self, num_features: int = 16, num_classes: int = 5) -> None:
        super().__init__()
        widths = [num_features, *self.hidden_layers, num_classes]
        layers: list[nn.Module] = []
        for i in range(1, len(widths)):
            fc = nn.Linear(widths[i - 1], widths[i])
            if i == 1:
                layers += [nn.BatchNorm1d(widths[0]), nn.ReLU(), fc, nn.BatchNorm1d(widths[i]), nn.ReLU()]
            elif i == len(widths) - 1:
                layers += [fc, nn.BatchNorm1d(widths[i]), nn.ReLU()]
            else:
                layers += [fc, nn.ReLU()]
        self.module_list = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.module_list:
            x = layer(x)
        return x


class _JSCBuilder(ModelBuilder):
    model_class: ClassVar[type[nn.Module]]

    def build(self, info: DatasetInfo, options: pydantic.BaseModel) -> nn.Module:
        num_features, num_classes = _features_and_classes(info, self.name)
        return self.model_class(num_features, num_classes)


class JSCTinyBuilder(_JSCBuilder):
    name: ClassVar[str] = "jsc-tiny"
    description: ClassVar[str] = "MASE jsc-tiny: BatchNorm, ReLU, one Linear, ReLU"
    model_class = JSCTiny


class JSCToyBuilder(_JSCBuilder):
    name: ClassVar[str] = "jsc-toy"
    description: ClassVar[str] = "MASE jsc-toy: three Linear layers (16-8-8-5) with BatchNorm"
    model_class = JSCToy


class JSCSBuilder(_JSCBuilder):
    name: ClassVar[str] = "jsc-s"
    description: ClassVar[str] = "MASE jsc-s: five Linear layers (16-64-32-32-32-5)"
    model_class = JSCS


for _builder in (JSCTinyBuilder(), JSCToyBuilder(), JSCSBuilder()):
    register_model(_builder)
