"""Quantization: number formats, quantized layers and the pure quantize transform.

Formats (:class:`TensorFormat` and its registry, :class:`LayerQuantConfig`,
:func:`parse_layer_config`, :func:`fake_quantize`) come from
:mod:`bitscout.quant.formats` and are re-exported here. On top of them:

* :class:`QuantizedLayer`: one generic wrapper that fake-quantizes the operands of any
  float layer named in a layer map (:data:`DEFAULT_LAYER_MAP`);
* :class:`Quantizer`: builds candidates of a traced model cheaply, sharing float
  parameters and caching quantized weights (:class:`QuantizedTensorCache`);
* :func:`quantize`: the one-shot transform (a ``[passes.quantize]`` section or a
  per-node mapping); :func:`resolve_pass`: that section as one config per layer;
* :func:`calibrate`: activation ranges measured once (:class:`Calibration`), which
  range-calibrated formats are fitted to (:func:`resolve_config`);
* :class:`ScratchBuffers`: memory that quantized layers reuse for their inputs while an
  evaluation activates it.
"""

from bitscout.quant import formats as _formats
from bitscout.quant.formats import *  # noqa: F403 (re-exported; the list is formats.__all__)
from bitscout.quant._calibration import (
    CALIBRATION_FILE,
    DEFAULT_CALIBRATION_SAMPLES,
    Calibration,
    PreparedModel,
    calibrate,
    prepare_ptq,
    resolve_layer_config,
)
from bitscout.quant._modules import (
    DEFAULT_LAYER_MAP,
    Operands,
    OpSpec,
    QuantizedLayer,
    QuantizedTensorCache,
    layer_map_key,
)
from bitscout.quant._modules import _exact_terms as exact_sum_terms
from bitscout.quant._scratch import ScratchBuffers, active_scratch
from bitscout.quant.transform import (
    QuantizePassLike,
    Quantizer,
    format_quant_table,
    quantize,
    resolve_config,
    resolve_pass,
)

__all__ = [
    *_formats.__all__,
    "exact_sum_terms",
    "CALIBRATION_FILE",
    "DEFAULT_CALIBRATION_SAMPLES",
    "Calibration",
    "PreparedModel",
    "calibrate",
    "prepare_ptq",
    "resolve_config",
    "resolve_layer_config",
    "DEFAULT_LAYER_MAP",
    "Operands",
    "OpSpec",
    "QuantizedLayer",
    "QuantizedTensorCache",
    "layer_map_key",
    "ScratchBuffers",
    "active_scratch",
    "QuantizePassLike",
    "Quantizer",
    "format_quant_table",
    "quantize",
    "resolve_pass",
]
