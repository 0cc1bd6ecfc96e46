"""BatchNorm folding: a Conv/Linear followed by BatchNorm becomes one layer.

In evaluation mode BatchNorm is the affine map ``y = (x - mean) * gamma / sqrt(var +
eps) + beta`` per channel; after a Conv or Linear layer it folds into that layer's
weight and bias, so that quantization sees (and quantizes) the weights the hardware
will store, and hls4ml needs no BatchNorm layer. Post-training quantization folds
before anything else; ``fold_bn = false`` in a config turns it off.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch import nn

__all__ = ["FoldedModel", "fold_batchnorm", "FOLDABLE"]

#: Layer type -> the BatchNorm types that may follow it and fold into it.
FOLDABLE: dict[type[nn.Module], tuple[type[nn.Module], ...]] = {
    nn.Linear: (nn.BatchNorm1d,),
    nn.Conv1d: (nn.BatchNorm1d,),
    nn.Conv2d: (nn.BatchNorm2d,),
}


@dataclass
class FoldedModel:
    """A model with its BatchNorm layers folded away.

    Attributes:
        model: The folded model (the input model itself when nothing folded).
        folded: Node name of each layer that absorbed a BatchNorm -> the BatchNorm's
            module path (``{"features_0": "features.1"}``).
    """

    model: nn.Module
    folded: dict[str, str] = field(default_factory=dict)


def _fold_parameters(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """A copy of ``layer`` with ``bn`` folded into its weight and bias (float64 math)."""
    assert bn.running_mean is not None and bn.running_var is not None  # checked by the caller
    weight = layer.weight.detach().double()
    mean = bn.running_mean.detach().double()
    var = bn.running_var.detach().double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
    bias = layer.bias.detach().double() if layer.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    fused = copy.copy(layer)
    # copy.copy shares the parameter dict: give the copy its own before replacing entries,
    # so the user's layer keeps its weights.
    fused._parameters = dict(layer._parameters)
    dtype = layer.weight.dtype
    shape = (-1,) + (1,) * (weight.dim() - 1)
    fused.weight = nn.Parameter((weight * scale.reshape(shape)).to(dtype), requires_grad=layer.weight.requires_grad)
    fused.bias = nn.Parameter(((bias - mean) * scale + beta).to(dtype), requires_grad=layer.weight.requires_grad)
    return fused


def fold_batchnorm(model: nn.Module) -> FoldedModel:
    """Fold every BatchNorm that directly follows a Conv/Linear layer into that layer.

    A BatchNorm folds when its input is the output of a ``Linear``/``Conv1d``
    (``BatchNorm1d``) or ``Conv2d`` (``BatchNorm2d``) module used nowhere else, its
    channel count is the layer's output channels and it has running statistics. The
    folded layer keeps its module path (so its node name, and every config keyed by it,
    stay the same) and gets a bias; the BatchNorm node is removed. The result is what
    the model computes in eval mode, up to float rounding (the fold runs in float64 and
    is rounded once to the weights' dtype).

    The input model is not modified: the folded layers are new modules with new
    parameters; every other module is shared.

    Args:
        model: The float model.

    Returns:
        The folded model (an ``fx.GraphModule``) and what folded; the model itself,
        unchanged, when torch.fx cannot trace it (tracing it later says why) or
        nothing folds.
    """
    try:
        graph = fx.Tracer().trace(model)
    except Exception:  # trace() reports why a model cannot be traced, with context
        return FoldedModel(model)
    gm = fx.GraphModule(model, graph, type(model).__name__)
    folded: dict[str, str] = {}
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        bn = gm.get_submodule(str(node.target))
        source = node.args[0] if node.args else None
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or not isinstance(source, fx.Node):
            continue
        if source.op != "call_module" or len(source.users) != 1:
            continue
        layer = gm.get_submodule(str(source.target))
        if type(bn) not in FOLDABLE.get(type(layer), ()):
            continue
        channels = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        if bn.num_features != channels or bn.running_mean is None or bn.running_var is None:
            continue
        # GraphModule built its own container modules, so this replaces the layer in the
        # folded model only.
        gm.add_submodule(str(source.target), _fold_parameters(layer, bn))
        node.replace_all_uses_with(source)
        gm.graph.erase_node(node)
        folded[source.name] = str(node.target)
    if not folded:
        return FoldedModel(model)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.train(model.training)
    return FoldedModel(gm, folded)
