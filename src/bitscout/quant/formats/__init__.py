"""Quantization number formats: one module per format, a registry, and per-layer configs.

The contract every format keeps is documented on :class:`TensorFormat`. Formats are
looked up by their MASE name with :func:`get_format`; :func:`parse_layer_config` turns
MASE's flat per-layer dict (``name``, ``weight_width``, ...) into a
:class:`LayerQuantConfig`, and :func:`fake_quantize` applies a format with a
straight-through gradient.

Range-calibrated formats (``integer`` with ``frac_width = "auto"``, the scaled ``int``)
are fitted to a range by :meth:`TensorFormat.calibrated`; :func:`observe` gives the
range an observer (``minmax``, ``percentile``) sees in a tensor.
"""

from bitscout.quant.formats._base import (
    FormatFieldError,
    TensorFormat,
    format_names,
    get_format,
    register_format,
)
from bitscout.quant.formats._binary import BinaryFormat, TernaryFormat
from bitscout.quant.formats._block_fp import BlockFPFormat
from bitscout.quant.formats._config import NA, TENSOR_NAMES, LayerQuantConfig, fields_of_formats, parse_layer_config
from bitscout.quant.formats._fake import fake_quantize
from bitscout.quant.formats._integer import AUTO, IntegerFormat, auto_frac_width
from bitscout.quant.formats._log import LogFormat
from bitscout.quant.formats._minifloat import MinifloatFormat, MinifloatIEEEFormat
from bitscout.quant.formats._range import DEFAULT_PERCENTILE, OBSERVERS, finite_range, observe
from bitscout.quant.formats._scaled_int import IntFormat

__all__ = [
    "AUTO",
    "DEFAULT_PERCENTILE",
    "NA",
    "OBSERVERS",
    "IntFormat",
    "auto_frac_width",
    "finite_range",
    "observe",
    "TENSOR_NAMES",
    "BinaryFormat",
    "BlockFPFormat",
    "FormatFieldError",
    "IntegerFormat",
    "LayerQuantConfig",
    "LogFormat",
    "MinifloatFormat",
    "MinifloatIEEEFormat",
    "TensorFormat",
    "TernaryFormat",
    "fake_quantize",
    "format_names",
    "get_format",
    "parse_layer_config",
    "fields_of_formats",
    "register_format",
]
