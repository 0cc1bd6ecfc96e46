"""fx tracing and the layer table.

``trace(model, example_input)`` traces a model once with torch.fx, rewrites it so that
each quantizable node is a top-level submodule named after the node, and builds the
:class:`LayerTable` (shapes, parameter counts and MACs per sample) that the search
space, the transform and the hardware metrics read. It warns
(:class:`TraceCoverageWarning`) when parameters live outside quantizable layers, and
``trace_into`` replaces torch's transformer modules by traceable twins so that their
layers are quantized too. ``fold_batchnorm(model)`` folds BatchNorm into the Conv/Linear
layer before it, for post-training quantization.
"""

from bitscout.graph._attention import (
    TRACE_INTO_NAMES,
    TraceableEncoder,
    TraceableEncoderLayer,
    TraceableMultiheadAttention,
    traceable_view,
)
from bitscout.graph._fold import FoldedModel, fold_batchnorm
from bitscout.graph._ops import QUANTIZABLE_FUNCTIONS, QUANTIZABLE_MODULES, FloatOp
from bitscout.graph._table import LayerInfo, LayerTable
from bitscout.graph._trace import FloatModule, TraceCoverageWarning, TracedModel, trace

__all__ = [
    "fold_batchnorm",
    "FoldedModel",
    "trace",
    "TracedModel",
    "FloatModule",
    "TraceCoverageWarning",
    "TRACE_INTO_NAMES",
    "TraceableEncoder",
    "TraceableEncoderLayer",
    "TraceableMultiheadAttention",
    "traceable_view",
    "LayerInfo",
    "LayerTable",
    "FloatOp",
    "QUANTIZABLE_MODULES",
    "QUANTIZABLE_FUNCTIONS",
]
