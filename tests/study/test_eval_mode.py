"""eval_mode: accepted, a warning when false, and not part of a study's fingerprint."""

from __future__ import annotations

import textwrap
import warnings

import pytest

from bitscout.config import BitscoutConfigWarning, load_config
from bitscout.study import prepare_search
from bitscout.study._store import Fingerprint

TOML = textwrap.dedent(
    """
    model = "mlp"
    dataset = "digits"
    model_options = { hidden = [8] }
    [search.search_space.setup]
    by = "type"
    [search.search_space.seed.default.config]
    name = ["NA"]
    [search.search_space.seed.linear.config]
    name = ["integer"]
    weight_width = [2, 8]
    data_in_width = [8]
    bias_width = [8]
    [search.strategy]
    eval_mode = EVAL
    [search.strategy.sw_runner.basic_evaluation]
    num_samples = 16
    [search.strategy.metrics]
    accuracy.scale = 1.0
    """
)


@pytest.mark.parametrize("value", ["true", "false"])
def test_eval_mode_false_warns_and_true_does_not(tmp_path, value) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TOML.replace("EVAL", value))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare_search(load_config(path), out=tmp_path / "run")
    mine = [w for w in caught if issubclass(w.category, BitscoutConfigWarning) and "eval_mode" in str(w.message)]
    assert len(mine) == (1 if value == "false" else 0)


def test_a_study_fingerprinted_with_eval_mode_still_resumes_and_other_changes_do_not() -> None:
    old = Fingerprint({"evaluation": {"model": "mlp", "eval_mode": True}, "space": {"a": 1}}).to_attr()
    assert Fingerprint({"evaluation": {"model": "mlp"}, "space": {"a": 1}}).differences(old) == []
    problems = Fingerprint({"evaluation": {"model": "cnn"}, "space": {"a": 1}}).differences(old)
    assert len(problems) == 1 and problems[0].startswith("the evaluation differs")
