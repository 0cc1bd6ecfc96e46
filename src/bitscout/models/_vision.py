"""General builders: a multilayer perceptron and a small CNN, for any data set.

Both are ``nn.Sequential`` models with named children (``fc1``, ``conv1``, ...), so the
torch.fx node names a search config refers to "by name" are short and stable.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import ClassVar

import pydantic
from torch import nn

from bitscout.data import DatasetInfo
from bitscout.errors import ModelError
from bitscout.models._base import ModelBuilder, register_model

__all__ = ["MLPOptions", "CNNOptions", "make_mlp", "make_cnn"]


class MLPOptions(pydantic.BaseModel):
    """Options of ``mlp``.

    Attributes:
        hidden: Width of each hidden layer; ``[64, 32]`` gives three Linear layers.
        batch_norm: A BatchNorm1d (``bn1``, ...) after each hidden Linear layer.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    hidden: tuple[pydantic.PositiveInt, ...] = (64, 32)
    batch_norm: bool = False


class CNNOptions(pydantic.BaseModel):
    """Options of ``cnn``.

    Attributes:
        channels: Output channels of the two 3x3 convolutions.
        batch_norm: A BatchNorm2d (``bn1``, ``bn2``) after each convolution.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    channels: tuple[pydantic.PositiveInt, pydantic.PositiveInt] = (16, 32)
    batch_norm: bool = False


def make_mlp(info: DatasetInfo, hidden: tuple[int, ...] = (64, 32), batch_norm: bool = False) -> nn.Sequential:
    """Flatten, then Linear layers ``fc1..fcN`` with ReLU (``relu1..``) between them.

    With ``batch_norm``, a BatchNorm1d ``bn<i>`` follows each hidden ``fc<i>``.
    """
    widths = [math.prod(info.input_shape), *hidden, info.num_classes]
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for i in range(1, len(widths)):
        layers[f"fc{i}"] = nn.Linear(widths[i - 1], widths[i])
        if i < len(widths) - 1:
            if batch_norm:
                layers[f"bn{i}"] = nn.BatchNorm1d(widths[i])
            layers[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(layers)


def _image_shape(info: DatasetInfo) -> tuple[int, int, int]:
    shape = info.input_shape
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        return (1, side, side)
    raise ModelError(
        f"model 'cnn' needs square images, given as (channels, height, width) or as a flat "
        f"square number of pixels; dataset {info.name!r} has samples of shape {shape}; "
        "use 'mlp' instead"
    )


def make_cnn(info: DatasetInfo, channels: tuple[int, int] = (16, 32), batch_norm: bool = False) -> nn.Sequential:
    """conv1-relu1-conv2-relu2-pool-flatten-fc for single- or multi-channel square images.

    With ``batch_norm``, a BatchNorm2d (``bn1``, ``bn2``) follows each convolution.

    Flat inputs whose length is a square (digits: 64 = 8x8) are unflattened to
    ``(1, side, side)`` first. The 3x3 convolutions keep the size (padding 1); one 2x2
    max-pool halves it before the classifier.
    """
    c, h, w = _image_shape(info)
    if h < 2 or w < 2:
        raise ModelError(f"model 'cnn' needs images of at least 2x2; got {h}x{w}")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if len(info.input_shape) == 1:
        layers["unflatten"] = nn.Unflatten(1, (c, h, w))
    c1, c2 = channels
    layers["conv1"] = nn.Conv2d(c, c1, kernel_size=3, padding=1)
    if batch_norm:
        layers["bn1"] = nn.BatchNorm2d(c1)
    layers["relu1"] = nn.ReLU()
    layers["conv2"] = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
    if batch_norm:
        layers["bn2"] = nn.BatchNorm2d(c2)
    layers["relu2"] = nn.ReLU()
    layers["pool"] = nn.MaxPool2d(2)
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(c2 * (h // 2) * (w // 2), info.num_classes)
    return nn.Sequential(layers)


class MLPBuilder(ModelBuilder):
    name: ClassVar[str] = "mlp"
    description: ClassVar[str] = "multilayer perceptron (options: hidden = [64, 32], batch_norm = false)"
    options_model: ClassVar[type[pydantic.BaseModel]] = MLPOptions

    def build(self, info: DatasetInfo, options: pydantic.BaseModel) -> nn.Module:
        assert isinstance(options, MLPOptions)  # parse_options made it
        return make_mlp(info, options.hidden, options.batch_norm)


class CNNBuilder(ModelBuilder):
    name: ClassVar[str] = "cnn"
    description: ClassVar[str] = "small CNN for 8x8 / 28x28 images (options: channels = [16, 32], batch_norm = false)"
    options_model: ClassVar[type[pydantic.BaseModel]] = CNNOptions

    def build(self, info: DatasetInfo, options: pydantic.BaseModel) -> nn.Module:
        assert isinstance(options, CNNOptions)  # parse_options made it
        return make_cnn(info, options.channels, options.batch_norm)


register_model(MLPBuilder())
register_model(CNNBuilder())
