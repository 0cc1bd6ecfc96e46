"""parse_layer_config and LayerQuantConfig: MASE's flat form, defaults and error messages."""

from __future__ import annotations

import re

import pytest

from bitscout.errors import QuantConfigError
from bitscout.quant.formats import (
    BinaryFormat,
    BlockFPFormat,
    IntegerFormat,
    LayerQuantConfig,
    MinifloatFormat,
    format_names,
    get_format,
    parse_layer_config,
)

MASE_INTEGER = {
    "name": "integer",
    "data_in_width": 8,
    "data_in_frac_width": "NA",
    "weight_width": 8,
    "weight_frac_width": "NA",
    "bias_width": 8,
    "bias_frac_width": 4,
}


def test_mase_integer_config() -> None:
    raw = dict(MASE_INTEGER)
    cfg = parse_layer_config(raw, where="seq_blocks_2")
    assert raw == MASE_INTEGER  # not modified
    assert cfg == LayerQuantConfig("integer", IntegerFormat(8, 4), IntegerFormat(8, 4), IntegerFormat(8, 4))
    assert cfg is not None
    assert cfg.to_dict() == {
        "name": "integer",
        "data_in_width": 8,
        "data_in_frac_width": 4,
        "weight_width": 8,
        "weight_frac_width": 4,
        "bias_width": 8,
        "bias_frac_width": 4,
    }
    assert cfg.describe() == "integer(data_in=int8.4, weight=int8.4, bias=int8.4)"
    assert cfg.tensor("weight") == IntegerFormat(8, 4)


def test_na_name_means_floating_point() -> None:
    assert parse_layer_config({"name": "NA", "weight_width": 8}, where="x") is None


def test_frac_width_may_be_negative_or_above_width() -> None:
    cfg = parse_layer_config(
        {"name": "integer", "data_in_width": 4, "data_in_frac_width": 7, "weight_width": 2,
         "weight_frac_width": -3, "bias_width": 1, "bias_frac_width": 0},
        where="fc",
    )
    assert cfg is not None
    assert cfg.data_in == IntegerFormat(4, 7) and cfg.weight == IntegerFormat(2, -3)
    assert cfg.bias == IntegerFormat(1, 0)


def test_fields_of_absent_tensors_are_ignored() -> None:
    raw = {"name": "integer", "data_in_width": 6, "weight_width": "anything", "bias_bogus": 1}
    cfg = parse_layer_config(raw, where="relu", tensors=("data_in",))
    assert cfg == LayerQuantConfig("integer", data_in=IntegerFormat(6, 3))
    assert cfg is not None and cfg.weight is None and cfg.bias is None
    assert cfg.to_dict() == {"name": "integer", "data_in_width": 6, "data_in_frac_width": 3}


def test_other_formats_parse_with_defaults() -> None:
    cfg = parse_layer_config(
        {"name": "minifloat", "weight_width": 8, "weight_exponent_width": 4, "weight_exponent_bias": "NA"},
        where="fc", tensors=("weight",),
    )
    assert cfg == LayerQuantConfig("minifloat", weight=MinifloatFormat(8, 4, 7))
    cfg = parse_layer_config({"name": "block_fp", "weight_width": 6, "weight_block_size": 32}, where="fc", tensors=("weight",))
    assert cfg is not None and cfg.weight == BlockFPFormat(6, 8, 127, 32, -1)
    cfg = parse_layer_config({"name": "binary", "weight_width": 1, "weight_scale": "NA"}, where="fc", tensors=("weight",))
    assert cfg is not None and cfg.weight == BinaryFormat()
    assert cfg.to_dict() == {"name": "binary", "weight_width": 1, "weight_scale": "NA"}


def test_config_is_hashable_and_frozen() -> None:
    a = parse_layer_config(MASE_INTEGER, where="a")
    b = parse_layer_config(dict(MASE_INTEGER, bias_frac_width="NA"), where="b")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.format = "log"  # type: ignore[misc,union-attr]


def test_mixed_formats_in_one_layer_config_are_rejected() -> None:
    with pytest.raises(QuantConfigError, match="one format name covers all tensors"):
        LayerQuantConfig("integer", weight=MinifloatFormat(8, 4))


def _err(raw: dict, **kw) -> str:
    with pytest.raises(QuantConfigError) as info:
        parse_layer_config(raw, where=kw.pop("where", "passes.quantize.linear.config"), **kw)
    return str(info.value)


def _int(**over) -> dict:
    return {**MASE_INTEGER, **over}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_int(weight_width=0), "passes.quantize.linear.config: field 'weight_width' must be an integer in 1..32; got 0"),
        (_int(data_in_width=33), "passes.quantize.linear.config: field 'data_in_width' must be an integer in 1..32; got 33"),
        (_int(bias_width=8.5), "passes.quantize.linear.config: field 'bias_width' must be an integer in 1..32; got 8.5"),
        (_int(weight_width="8"), "passes.quantize.linear.config: field 'weight_width' must be an integer in 1..32; got '8'"),
        (_int(weight_frac_width=1.5), "passes.quantize.linear.config: field 'weight_frac_width' must be an integer; got 1.5"),
        (_int(weight_width="NA"), "passes.quantize.linear.config: field 'weight_width' has no default for format 'integer', so 'NA' is not allowed; got 'NA'"),
        ({k: v for k, v in MASE_INTEGER.items() if k != "bias_width"}, "passes.quantize.linear.config: field 'bias_width' is required by format 'integer' (it has no default); got nothing"),
        (_int(weight_exponent_width=4), "passes.quantize.linear.config: field 'weight_exponent_width' is not a field of format 'integer' (did you mean 'weight_width'?); got 4"),
        (_int(wieght_width=4), "passes.quantize.linear.config: field 'wieght_width' is not a field of format 'integer' (did you mean 'weight_width'?); got 4"),
        (
            {"name": "minifloat", "weight_width": 8, "weight_exponent_width": 7},
            "passes.quantize.linear.config: field 'weight_exponent_width' must leave at least one mantissa bit (1 <= exponent_width <= width - 2 = 6); got 7",
        ),
        (
            {"name": "block_fp", "weight_width": 8, "weight_block_size": 0},
            "passes.quantize.linear.config: field 'weight_block_size' must be an integer >= 1; got 0",
        ),
        (
            {"name": "binary", "weight_width": 2},
            "passes.quantize.linear.config: field 'weight_width' must be 1 for format 'binary'; got 2",
        ),
    ],
)
def test_errors_name_where_field_rule_and_value(raw: dict, message: str) -> None:
    tensors = ("weight",) if raw["name"] != "integer" else ("data_in", "weight", "bias")
    assert _err(raw, tensors=tensors) == message


def test_unknown_format_lists_the_available_ones() -> None:
    msg = _err({"name": "intger"}, where="seq_blocks_2")
    assert msg == (
        f"seq_blocks_2: field 'name' must be a known format ({', '.join(format_names())}) "
        f"or 'NA'; got 'intger' (did you mean 'integer'?)"
    )
    assert "block_fp" in msg and "minifloat_ieee" in msg
    # Nothing close: the list alone.
    assert _err({"name": "zzz"}, where="seq_blocks_2").endswith("or 'NA'; got 'zzz'")


def test_missing_name_is_an_error() -> None:
    assert re.match(r"fc: field 'name' is required .*; got nothing$", _err({"weight_width": 8}, where="fc"))


def test_get_format_lists_available_names() -> None:
    with pytest.raises(QuantConfigError, match=r"unknown quantization format 'posit'; available: binary, block_fp, int, integer"):
        get_format("posit")


def test_unknown_tensor_name_is_an_error() -> None:
    assert _err(MASE_INTEGER, where="fc", tensors=("weights",)) == (
        "fc: unknown tensor 'weights'; tensors: data_in, weight, bias"
    )
