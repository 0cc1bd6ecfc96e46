"""fx tracing and the layer table.

``trace(model, example_input)`` traces a model once with torch.fx, rewrites it so that
each quantizable node is a top-level submodule named after the node, and builds the
:class:`LayerTable` (shapes, parameter counts and MACs per sample) that the search
space, the transform and the hardware metrics read. ``fold_batchnorm(model)`` folds
BatchNorm into the Conv/Linear layer before it, for post-training quantization.
"""

from bitscout.graph._fold import FoldedModel, fold_batchnorm
from bitscout.graph._ops import QUANTIZABLE_FUNCTIONS, QUANTIZABLE_MODULES, FloatOp
from bitscout.graph._table import LayerInfo, LayerTable
from bitscout.graph._trace import TracedModel, trace

__all__ = [
    "fold_batchnorm",
    "FoldedModel",
    "trace",
    "TracedModel",
    "LayerInfo",
    "LayerTable",
    "FloatOp",
    "QUANTIZABLE_MODULES",
    "QUANTIZABLE_FUNCTIONS",
]
