"""A hardware budget no configuration meets is refused before the first trial.

The space is the digits MLP of configs/digits.toml (8,000 configurations; untrained
weights: the budget check needs no data pass). The reference values are computed here
from the layer sizes, not by the code under test.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch

from bitscout.cli import main
from bitscout.config import load_config
from bitscout.data import load_dataset
from bitscout.errors import BitscoutWarning, SearchError
from bitscout.graph import trace
from bitscout.models import build_model
from bitscout.space import SearchSpace
from bitscout.study._budget import check_budget_reachable, closest_to_budget

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DIGITS = Path(__file__).resolve().parents[2] / "configs" / "digits.toml"
#: Weights per layer of the digits MLP (64-64-32-10); the space searches weight and input widths.
WEIGHTS = {"fc1": 64 * 64, "fc2": 64 * 32, "fc3": 32 * 10}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    config = load_config(DIGITS)
    digits = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    traced = trace(build_model("mlp", digits.info).eval(), digits.val.x[:2])
    return SearchSpace.from_config(config.search.search_space, traced.table)


def _weight_bits(params: dict) -> int:
    return sum(WEIGHTS[layer] * params[f"{layer}/weight_width"] for layer in WEIGHTS)


def test_a_descent_finds_the_one_configuration_inside_a_tight_budget(space: SearchSpace) -> None:
    # Weight bits of the all-3-bit weights: feasible are the configurations at or below it
    # (every input width, weights summing to no more bits), found without enumerating.
    bound = 3 * sum(WEIGHTS.values())
    reach = closest_to_budget(space, lambda p: max(0.0, _weight_bits(p) - bound) / bound, enumerate_limit=0)
    assert reach.feasible and _weight_bits(reach.params) <= bound
    assert reach.checked < space.distinct_size / 10


def test_an_unreachable_budget_is_proven_by_checking_every_configuration(space: SearchSpace) -> None:
    widths = sorted({w for p in space.params if p.field == "weight_width" for w in p.choices})
    least = sum(WEIGHTS.values()) * widths[0]  # every weight at the smallest width
    bound = least - 1
    reach = closest_to_budget(space, lambda p: max(0.0, _weight_bits(p) - bound) / bound)
    assert not reach.feasible and reach.proven and reach.checked == space.distinct_size
    assert _weight_bits(reach.params) == least
    assert reach.violation == pytest.approx(1 / bound)
    # Too large to check them all: the descent's closest, not a proof.
    unproven = closest_to_budget(space, lambda p: max(0.0, _weight_bits(p) - bound) / bound, enumerate_limit=100)
    assert not unproven.feasible and not unproven.proven and _weight_bits(unproven.params) == least


def _toml(tmp_path: Path, bound: str) -> Path:
    text = DIGITS.read_text().replace('load_name = "runs/digits-mlp/train/best.pt"\n', "")
    text += textwrap.dedent(
        f"""
        [search.strategy.constraints]
        average_bitwidth.max = {bound}
        """
    )
    path = tmp_path / "budget.toml"
    path.write_text(text)
    return path


def test_search_refuses_a_budget_no_configuration_meets_and_names_the_closest(tmp_path: Path, capsys) -> None:
    # digits.toml's smallest weight width is 2 bits; its average_bitwidth also counts the
    # biases (at their fixed width): an average of 1 bit is out of reach.
    config = _toml(tmp_path, "1.0")
    out = tmp_path / "run"
    code = main(["search", str(config), "--out", str(out), "--n-trials", "5"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    message = lines[0]
    assert "every one of its 8,000 distinct configurations was checked" in message
    assert "search.strategy.constraints.average_bitwidth.max: average_bitwidth <= 1" in message
    for layer in WEIGHTS:
        assert f"{layer}/weight_width = 2" in message
    closest = float(re.search(r"the closest configuration has ([0-9.]+)", message).group(1))
    # The same bound set just at that value is met: the search runs.
    config = _toml(tmp_path, repr(closest))
    assert main(["search", str(config), "--out", str(tmp_path / "ok"), "--n-trials", "3"]) == 0
    assert not (out / "study.journal").exists()


def test_a_budget_not_found_in_a_space_too_large_to_check_is_a_warning(space: SearchSpace) -> None:
    class Budget:
        """Constraints-like: weight bits at most a bound (below every configuration)."""

        bound = 2 * sum(WEIGHTS.values()) - 1

        @property
        def hardware_only(self):
            return self

        def __bool__(self) -> bool:
            return True

        def __iter__(self):
            return iter([])

        def config_violation(self, config) -> float:
            bits = sum(WEIGHTS[name] * config[name].weight.width for name in WEIGHTS)
            return max(0.0, bits - self.bound) / self.bound

        def config_metrics(self, config) -> dict:
            return {}

    with pytest.warns(BitscoutWarning, match="no configuration meeting the hardware budget was found"):
        reach = check_budget_reachable(space, Budget(), enumerate_limit=10)
    assert reach is not None and not reach.proven
    with pytest.raises(SearchError, match="every one of its 8,000 distinct configurations"):
        check_budget_reachable(space, Budget())


def test_every_configuration_is_checked_only_once(space: SearchSpace) -> None:
    seen: list[tuple] = []

    def violation(params) -> float:
        seen.append(tuple(sorted(params.items())))
        return 1.0

    reach = closest_to_budget(space, violation)
    assert reach.proven and len(seen) == len(set(seen)) == space.distinct_size
    assert set(seen) == {tuple(sorted(p.items())) for p in (space.distinct_params_at(i) for i in range(space.distinct_size))}
