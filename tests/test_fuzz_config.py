"""Property: no config, however mangled, ends in a traceback (issue 15, item 8).

Hypothesis mutates the repository's example configs (``configs/*.toml``): it deletes,
adds and renames keys, replaces values by values of other types (huge and negative
integers, NaN and infinities, empty and nested lists, tables), wraps and unwraps values,
and moves tables. Every mutated document is written as TOML and run through
:func:`bitscout.config.load_config` and ``bitscout check`` in this process (a subprocess
per example would take minutes). The outcome must be success, or a
:class:`bitscout.errors.BitscoutError` that the CLI prints as one ``error:`` line with exit
status 2; any other exception fails the test with the document that caused it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitscout import cli
from bitscout.config import load_config
from bitscout.errors import BitscoutError

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml"))
DOCUMENTS = {path.name: tomllib.loads(path.read_text()) for path in CONFIGS}

# Keys a user might add or mistype: real keys in the wrong place, MASE's keys, typos.
KEYS = st.sampled_from(
    [
        "name", "by", "seed", "config", "default", "linear", "relu", "conv2d", "fc1", "model",
        "dataset", "n_trials", "n_jobs", "sampler", "storage", "workers", "weight_width",
        "weight_frac_width", "data_in_width", "bias_width", "weight_exponent_width",
        "data_in_block_size", "scale", "direction", "normalize", "sw_runner", "hw_runner",
        "basic_evaluation", "basic_train", "average_bitwidth", "latency", "num_samples",
        "data_loader", "compare_to", "load_name", "load_type", "pkl_ckpt", "log_every_n_steps",
        "weight_widht", "n_trial", "sampler_options", "shuffle", "max_configs", "timeout",
        "eval_mode", "sum_scaled_metrics", "setup", "search_space", "strategy", "metrics",
        "passes", "quantize", "accuracy", "model_options", "dataset_path", "source", "", " ",
        "ünïcode", "a.b",
    ]
)
SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 3, 8, 32, 33, 2**32, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 2.5, -2.5, 1e308, math.nan, math.inf, -math.inf]),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(
        ["NA", "integer", "minifloat", "block_fp", "log", "binary", "ternary", "integre", "tpe",
         "brute_force", "nsgaii", "maximize", "minimize", "type", "name", "mz", "pt", "pl",
         "val_dataloader", "auto", "cpu", "gpu", "mlp", "cnn", "jsc", "digits", "x:y", "/proc/x",
         "graph/quantize/mixed_precision_ptq", "sqlite:///x.db", "postgresql://h/db", "s.journal"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=3)
    ),
    max_leaves=6,
)


def _tables(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every table (dict) in a document, the root included."""
    found = [path] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _tables(value, (*path, key))
    return found


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A config from configs/ with one to four mutations."""
    name = draw(st.sampled_from(sorted(DOCUMENTS)))
    doc = copy.deepcopy(DOCUMENTS[name])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        tables = _tables(doc)
        table = _at(doc, draw(st.sampled_from(tables)))
        keys = sorted(table)
        op = draw(st.sampled_from(["replace", "delete", "add", "rename", "wrap", "unwrap", "move"]))
        if op == "add" or not keys:
            table[draw(KEYS)] = draw(VALUES)
            continue
        key = draw(st.sampled_from(keys))
        if op == "replace":
            table[key] = draw(VALUES)
        elif op == "delete":
            del table[key]
        elif op == "rename":
            table[draw(KEYS)] = table.pop(key)
        elif op == "wrap":
            table[key] = [table[key]]
        elif op == "unwrap":
            value = table[key]
            table[key] = value[0] if isinstance(value, list) and value else {"config": value}
        else:  # move the value to another table
            value = table.pop(key)
            _at(doc, draw(st.sampled_from(_tables(doc))))[key] = value
    return name, doc


# Built once: argparse would otherwise take most of each example's time.
PARSER = cli.build_parser()


def _run_check(path: Path) -> tuple[int, str]:
    """``bitscout check PATH`` through the CLI's own dispatch (what ``main`` runs)."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli.run_command(PARSER.parse_args(["check", str(path)]))
    return code, err.getvalue()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_example_config_is_valid_as_it_is(path: Path) -> None:
    assert _run_check(path)[0] == 0


@settings(
    max_examples=int(os.environ.get("BITSCOUT_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=mutated())
def test_mutated_configs_load_or_fail_with_a_bitscout_error(case, tmp_path_factory) -> None:
    name, doc = case
    path = tmp_path_factory.getbasetemp() / f"fuzz-{name}"
    try:
        path.write_text(tomli_w.dumps(doc))
    except (TypeError, ValueError):  # not expressible as TOML (e.g. a key TOML cannot hold)
        return
    code, err = _run_check(path)
    assert code in (0, 2), err
    if code == 2:
        assert err.splitlines()[-1].startswith(("error: ", "  ")) and "Traceback" not in err
        return
    # A valid config: what check prints is itself a config that loads to the same value.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = load_config(path)
        again = path.with_name(f"resolved-{name}")
        again.write_text(config.to_toml())
        assert load_config(again) == config


OPTION_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20),
    st.sampled_from(["0", "1", "-1", "4294967296", "9223372036854775807", "nan", "inf", "tpe", "mz",
                     "gpu", "tpu", "sqlite:///x.db", "x.db", "runs", "/proc/x", "a" * 300]),
)
OPTIONS = ["--load-type", "--seed", "--accelerator", "--n-trials", "--sampler", "--storage",
           "--study-name", "--workers"]


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(DOCUMENTS)), options=st.dictionaries(st.sampled_from(OPTIONS), OPTION_VALUES, max_size=4))
def test_command_line_overrides_never_end_in_a_traceback(name: str, options: dict[str, str]) -> None:
    argv = ["check", str(CONFIGS[[p.name for p in CONFIGS].index(name)])]
    for option, value in options.items():
        argv.append(f"{option}={value}")  # "=" so that a value starting with "-" stays a value
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = cli.run_command(PARSER.parse_args(argv))
        except SystemExit as exc:  # argparse's own refusal (a value that is not an integer)
            code = exc.code
    assert code in (0, 2), err.getvalue()
