"""Search spaces: MASE seeds, counting, decoding, keys, "NA" collapsing, enumeration."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
from torch import nn

from bitscout.config import BitscoutConfigWarning, QuantizePass, SearchSpaceConfig
from bitscout.data import DatasetInfo
from bitscout.errors import ConfigError, QuantConfigError, SearchError
from bitscout.graph import LayerTable, trace
from bitscout.models import build_model
from bitscout.quant import parse_layer_config, resolve_pass
from bitscout.space import SearchSpace

JSC = DatasetInfo("jsc", (16,), 5, tuple("gqwzt"), "test")

# MASE's lab config (configs/examples/jsc_toy_by_type.toml): a type seed and a name seed.
LAB_INTEGER = {
    "name": ("integer",),
    "data_in_width": (4, 8),
    "data_in_frac_width": ("NA",),
    "weight_width": (2, 4, 8),
    "weight_frac_width": ("NA",),
    "bias_width": (2, 4, 8),
    "bias_frac_width": ("NA",),
}
LAB_SEED = {"default": {"name": ("NA",)}, "linear": LAB_INTEGER, "seq_blocks_2": LAB_INTEGER}

# MASE's toy search space: every layer by name from the default, seven frac widths.
FRACS = (3, 4, 5, 6, 7, 8, 9)
TOY_SEED = {
    "default": {
        "name": ("integer",),
        "data_in_width": (4, 8),
        "data_in_frac_width": FRACS,
        "weight_width": (2, 4, 8),
        "weight_frac_width": FRACS,
        "bias_width": (2, 4, 8),
        "bias_frac_width": FRACS,
    }
}

INT8 = {"name": "integer", "data_in_width": 8, "weight_width": 8, "bias_width": 8}


@pytest.fixture(scope="module")
def jsc_tiny() -> LayerTable:
    torch.manual_seed(0)
    return trace(build_model("jsc-tiny", JSC), torch.randn(4, 16)).table


@pytest.fixture(scope="module")
def mlp() -> LayerTable:
    """Two linears around a relu: fc1 (no bias), act, fc2."""

    class Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(6, 4, bias=False)
            self.act = nn.ReLU()
            self.fc2 = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.act(self.fc1(x)))

    return trace(Mlp(), torch.randn(2, 6)).table


def _space(by: str, seed: dict, table: LayerTable) -> SearchSpace:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BitscoutConfigWarning)
        return SearchSpace.from_config(SearchSpaceConfig(by=by, seed=seed), table)


# -- MASE seeds ------------------------------------------------------------------------


@pytest.mark.parametrize("by, ignored", [("type", "seq_blocks_2"), ("name", "linear")])
def test_mase_lab_space_on_jsc_tiny(jsc_tiny: LayerTable, by: str, ignored: str) -> None:
    with pytest.warns(BitscoutConfigWarning, match=f"seed.{ignored}: .*ignored"):
        space = SearchSpace.from_config(SearchSpaceConfig(by=by, seed=LAB_SEED), jsc_tiny)
    assert [p.name for p in space.params] == [
        "seq_blocks_2/data_in_width",
        "seq_blocks_2/weight_width",
        "seq_blocks_2/bias_width",
    ]
    assert space.size == 2 * 3 * 3 == space.distinct_size
    assert space.fixed["seq_blocks_2/weight_frac_width"] == "NA"
    assert space.layer("seq_blocks_1").seed == "default"
    assert space.layer("seq_blocks_2").seed == ("linear" if by == "type" else "seq_blocks_2")

    # Independent reference: the one-shot transform's resolver on the same flat config.
    for values in itertools.product((4, 8), (2, 4, 8), (2, 4, 8)):
        params = dict(zip((p.name for p in space.params), values))
        flat = {f: c[0] for f, c in LAB_INTEGER.items()}
        flat.update(data_in_width=values[0], weight_width=values[1], bias_width=values[2])
        expected = resolve_pass(
            QuantizePass(by="type", entries={"default": {"name": "NA"}, "linear": flat}),
            jsc_tiny,
        )
        decoded = space.decode(params)
        assert decoded == expected
        assert space.key(expected) == space.key(decoded)  # objects decode did not make
        fc = decoded["seq_blocks_2"]
        assert (fc.weight.width, fc.weight.frac_width) == (values[1], values[1] // 2)
        assert decoded["seq_blocks_1"] is None and decoded["seq_blocks_3"] is None
    assert space.describe().splitlines()[-1] == "total: 18 configurations (3 searched parameters)"


def test_mase_toy_space_with_seven_frac_widths(jsc_tiny: LayerTable) -> None:
    space = _space("name", TOY_SEED, jsc_tiny)
    relu = 2 * 7  # a relu has only data_in: width x frac width
    linear = 2 * 7 * 3 * 7 * 3 * 7
    assert space.size == relu * linear * relu == 1_210_104
    # frac widths above the width are valid and distinct formats: nothing collapses
    assert space.distinct_size == space.size
    assert [p.name for p in space.params[:2]] == [
        "seq_blocks_1/data_in_width",
        "seq_blocks_1/data_in_frac_width",
    ]
    assert len(space.params) == 2 + 6 + 2
    last = space.params_at(space.size - 1)
    assert last == {p.name: p.choices[-1] for p in space.params}
    cfg = space.decode(last)["seq_blocks_2"]
    assert (cfg.bias.width, cfg.bias.frac_width) == (8, 9)
    assert space.index_of(last) == space.size - 1
    assert "1,210,104 configurations (10 searched parameters)" in space.describe()


def test_type_seed_applies_to_every_layer_of_that_type(mlp: LayerTable) -> None:
    seed = {
        "default": {"name": "NA"},
        "linear": {**INT8, "weight_width": (2, 4)},
        "relu": {"name": "integer", "data_in_width": (4, 8)},
    }
    space = _space("type", seed, mlp)
    # fc1 has no bias: bias_width is dropped, not searched or checked for it
    assert [p.name for p in space.params] == [
        "fc1/weight_width",
        "act/data_in_width",
        "fc2/weight_width",
    ]
    assert "bias_width" not in space.layer("fc1").choices
    assert space.size == 8
    decoded = space.decode({"fc1/weight_width": 2, "act/data_in_width": 8, "fc2/weight_width": 4})
    assert decoded["fc1"].bias is None and decoded["fc1"].weight.width == 2
    assert decoded["act"].weight is None and decoded["act"].data_in.width == 8


def test_seed_key_matching_nothing_is_an_error_with_suggestion(jsc_tiny: LayerTable) -> None:
    with pytest.raises(ConfigError) as err:
        _space("type", {"default": {"name": "NA"}, "lineer": INT8}, jsc_tiny)
    msg = str(err.value)
    assert "search.search_space.seed.lineer" in msg and "Did you mean 'linear'?" in msg
    assert "relu, linear, default" in msg

    with pytest.raises(ConfigError) as err:
        _space("name", {"seq_block_2": INT8}, jsc_tiny)
    msg = str(err.value)
    assert "Did you mean 'seq_blocks_2'?" in msg
    assert "seq_blocks_1, seq_blocks_2, seq_blocks_3, default" in msg


def test_known_op_type_the_model_lacks_is_only_a_warning(jsc_tiny: LayerTable) -> None:
    with pytest.warns(BitscoutConfigWarning, match="no 'conv2d' layer"):
        space = SearchSpace.from_config(
            SearchSpaceConfig(by="type", seed={"conv2d": INT8}), jsc_tiny
        )
    # no default: every layer stays float, and there is exactly one configuration
    assert space.size == 1 and space.params == ()
    assert space.decode({}) == {"seq_blocks_1": None, "seq_blocks_2": None, "seq_blocks_3": None}


# -- validation at build time ----------------------------------------------------------


@pytest.mark.parametrize(
    "choices, field, value",
    [
        ({**INT8, "weight_width": (4, 0)}, "weight_width", "0"),
        ({**INT8, "name": ("integer", "integr")}, "name", "'integr'"),
        ({**INT8, "data_in_width": ("NA", 8)}, "data_in_width", "'NA'"),
        ({**INT8, "weight_widht": (4, 8)}, "weight_widht", "4"),
    ],
)
def test_unbuildable_combination_is_rejected_when_built(
    mlp: LayerTable, choices: dict, field: str, value: str
) -> None:
    with pytest.raises(QuantConfigError) as err:
        SearchSpace(mlp, {"fc2": choices})
    msg = str(err.value)
    assert "fc2" in msg and f"'{field}'" in msg and f"got {value}" in msg


def test_direct_construction_errors(mlp: LayerTable) -> None:
    with pytest.raises(ConfigError, match="no quantizable layer named 'fc3'"):
        SearchSpace(mlp, {"fc3": INT8})
    with pytest.raises(ConfigError, match="at least one choice"):
        SearchSpace(mlp, {"fc2": {**INT8, "weight_width": []}})
    with pytest.raises(ConfigError, match="equal but of different types"):
        SearchSpace(mlp, {"fc2": {**INT8, "weight_width": [4, 4.0]}})


# -- decoding, keys, "NA" --------------------------------------------------------------


def test_na_name_collapses_and_decode_is_cached(mlp: LayerTable) -> None:
    space = SearchSpace(
        mlp,
        {
            "fc1": {**INT8, "weight_width": (2, 4, 8), "weight_frac_width": ("NA", 1)},
            "fc2": {**INT8, "name": ("NA", "integer"), "weight_width": (2, 4, 8)},
        },
    )
    assert space.size == 6 * 6
    # fc1: 6 distinct (frac NA = width // 2 differs from 1 except at width 2: NA -> 1)
    assert space.layer("fc1").distinct_size == 5
    # fc2: float once, plus three integer widths
    assert space.layer("fc2").distinct_size == 4
    assert space.distinct_size == 5 * 4

    na2 = {
        "fc1/weight_width": 4,
        "fc1/weight_frac_width": "NA",
        "fc2/name": "NA",
        "fc2/weight_width": 2,
    }
    na8 = {**na2, "fc2/weight_width": 8}
    int8 = {**na2, "fc2/name": "integer", "fc2/weight_width": 8}
    assert space.decode(na2)["fc2"] is None and space.decode(na8)["fc2"] is None
    assert space.key(space.decode(na2)) == space.key(space.decode(na8))
    assert space.key(space.decode(int8)) != space.key(space.decode(na8))
    assert space.distinct_index_of(na2) == space.distinct_index_of(na8)
    assert space.canonical(na8) == na2

    # "NA" frac at width 2 is frac 1: same config, the same object, one key
    a = space.decode({**na2, "fc1/weight_width": 2, "fc1/weight_frac_width": "NA"})["fc1"]
    b = space.decode({**na2, "fc1/weight_width": 2, "fc1/weight_frac_width": 1})["fc1"]
    assert a is b and a.weight.frac_width == 1
    # decoding twice hands out the same object, equal to a fresh parse
    again = space.decode(int8)["fc2"]
    assert again is space.decode(int8)["fc2"]
    assert again == parse_layer_config(
        {**INT8, "weight_width": 8}, where="t", tensors=("data_in", "weight", "bias")
    )
    key = space.key(space.decode(int8))
    assert key[1] is None  # the relu stays float
    assert dict(key[2])["weight_width"] == 8 and dict(key[2])["weight_frac_width"] == 4
    assert hash(key) == hash(space.key(dict(space.decode(int8))))


def test_decode_errors_name_the_parameter(mlp: LayerTable) -> None:
    space = SearchSpace(mlp, {"fc2": {**INT8, "weight_width": (4, 8)}})
    with pytest.raises(SearchError, match="'fc2/weight_width' is missing"):
        space.decode({})
    with pytest.raises(SearchError, match=r"'fc2/weight_width' must be one of \[4, 8\]; got 5"):
        space.decode({"fc2/weight_width": 5})
    with pytest.raises(SearchError, match="must be one of"):
        space.index_of({"fc2/weight_width": 5})
    with pytest.raises(SearchError, match="layer 'fc9'"):
        space.key({"fc9": None})


# -- enumeration -----------------------------------------------------------------------


def test_index_bijection_over_a_whole_space(mlp: LayerTable) -> None:
    space = SearchSpace(
        mlp,
        {
            "fc1": {**INT8, "weight_width": (2, 4, 8), "data_in_width": (4, 8)},
            "act": {"name": "integer", "data_in_width": (2, 8)},
            "fc2": {**INT8, "name": ("NA", "integer"), "weight_width": (2, 4, 8)},
        },
    )
    names = [p.name for p in space.params]
    assert names == [
        "fc1/data_in_width",
        "fc1/weight_width",
        "act/data_in_width",
        "fc2/name",
        "fc2/weight_width",
    ]
    # independent enumeration: itertools.product is "first parameter slowest"
    expected = [dict(zip(names, v)) for v in itertools.product(*(p.choices for p in space.params))]
    assert space.size == len(expected) == 2 * 3 * 2 * 2 * 3
    assert [space.params_at(i) for i in range(space.size)] == expected
    assert [space.index_of(p) for p in expected] == list(range(space.size))
    with pytest.raises(IndexError):
        space.params_at(space.size)

    # distinct enumeration: the first vector of every distinct model, in the same order
    keys = {}
    for params in expected:
        keys.setdefault(space.key(space.decode(params)), params)
    assert space.distinct_size == len(keys) == 2 * 3 * 2 * (1 + 3)
    assert [space.distinct_params_at(i) for i in range(space.distinct_size)] == list(keys.values())
    indices = {space.distinct_index_of(p) for p in expected}
    assert sorted(indices) == list(range(space.distinct_size))

    dists = space.distributions()
    assert list(dists) == names
    assert dists["fc2/name"].choices == ("NA", "integer")


def test_sizes_multiply_over_layers(mlp: LayerTable) -> None:
    widths = (2, 3, 4, 5, 6, 8)
    space = SearchSpace(
        mlp,
        {
            "fc1": {**INT8, "weight_width": widths, "data_in_width": widths},
            "act": {"name": "integer", "data_in_width": widths},
            "fc2": {**INT8, "weight_width": widths, "data_in_width": widths},
        },
    )
    assert space.size == space.distinct_size == math.prod([6] * 5) == 7776
    p = space.params_at(4321)
    assert space.index_of(p) == 4321 == space.distinct_index_of(p)


def test_a_seed_listing_several_formats_gives_each_only_its_own_fields(mlp: LayerTable) -> None:
    # integer takes widths (and frac widths); minifloat needs exponent widths, which
    # integer does not take: each format ignores the fields that are only the other's.
    seed = {
        "name": ("integer", "minifloat"),
        "data_in_width": (8,),
        "weight_width": (4, 8),
        "bias_width": (8,),
        "data_in_exponent_width": (3,),
        "weight_exponent_width": (1, 2),
        "bias_exponent_width": (4,),
    }
    space = SearchSpace(mlp, {"fc2": seed})
    # 2 names x 2 widths x 2 exponent widths = 8 parameter vectors; integer ignores the
    # exponent width, so its 4 vectors are 2 configurations: 2 + 4 distinct.
    assert space.size == 8 and space.distinct_size == 6
    fc2 = lambda name, width, exponent: space.decode(  # noqa: E731
        {"fc2/name": name, "fc2/weight_width": width, "fc2/weight_exponent_width": exponent}
    )["fc2"]
    integer = fc2("integer", 4, 1)
    assert integer == parse_layer_config(
        {"name": "integer", "data_in_width": 8, "weight_width": 4, "bias_width": 8}, where="t"
    )
    assert fc2("integer", 4, 2) is integer
    small = fc2("minifloat", 4, 2)
    assert small.format == "minifloat" and small.weight.width == 4 and small.weight.exponent_width == 2
    # A field no listed format takes is still an error, naming it.
    with pytest.raises(QuantConfigError, match="'weight_exponent_widht'"):
        SearchSpace(mlp, {"fc2": {**seed, "weight_exponent_widht": (2,)}})
    # One format alone still refuses another format's field.
    with pytest.raises(QuantConfigError, match="not a field of format 'integer'"):
        SearchSpace(mlp, {"fc2": {**seed, "name": ("integer",)}})
