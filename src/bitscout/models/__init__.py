"""Models: MASE's jet substructure models, an MLP and a CNN builder, user factories,
and checkpoints.

Build one with :func:`build_model` (a registered name from :func:`model_names`, or
``"package.module:factory"``); load weights with :func:`load_checkpoint`.
"""

from __future__ import annotations

from bitscout.models._base import (
    ModelBuilder,
    NoOptions,
    build_model,
    get_model_builder,
    model_names,
    register_model,
)
from bitscout.models._checkpoint import (
    LOAD_TYPES,
    is_bitscout_checkpoint,
    load_checkpoint,
    read_state_dict,
    save_checkpoint,
)
from bitscout.models._jsc import JSCS, JSCTiny, JSCToy
from bitscout.models._vision import CNNOptions, MLPOptions, make_cnn, make_mlp

__all__ = [
    "LOAD_TYPES",
    "CNNOptions",
    "JSCS",
    "JSCTiny",
    "JSCToy",
    "MLPOptions",
    "ModelBuilder",
    "NoOptions",
    "build_model",
    "get_model_builder",
    "load_checkpoint",
    "make_cnn",
    "make_mlp",
    "model_names",
    "read_state_dict",
    "is_bitscout_checkpoint",
    "register_model",
    "save_checkpoint",
]
