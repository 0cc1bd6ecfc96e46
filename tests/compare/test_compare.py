"""``compare_strategies``: exact optimum, trials to it, regret, the shared cache, the files."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial
from torch import nn

from bitscout.graph import trace
from bitscout.compare import Comparison, compare_strategies
from bitscout.errors import SearchError
from bitscout.evaluation import CachedEvaluator, Evaluation, RunnerEvaluator
from bitscout.space import SearchSpace
from bitscout.strategies import Strategy, StrategyOptions

optuna.logging.set_verbosity(optuna.logging.WARNING)

WIDTHS = {"fc1": (2, 4, 8), "fc2": (2, 4, 8)}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    """fc1 weight {2,4,8} x data_in {4,8}; fc2 weight {2,4,8}: 18 configurations."""

    class Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(4, 3)
            self.fc2 = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.fc1(x)))

    table = trace(Mlp(), torch.randn(2, 4)).table
    base = {"name": "integer", "bias_width": 8}
    return SearchSpace(
        table,
        {
            "fc1": {**base, "weight_width": (2, 4, 8), "data_in_width": (4, 8)},
            "fc2": {**base, "weight_width": (2, 4, 8), "data_in_width": 8},
        },
    )


def score(w1: int, a1: int, w2: int) -> float:
    """A hand-made objective: best at w1 = 4, a1 = 8, w2 = 8 (value 10)."""
    return 10.0 - abs(w1 - 4) - (8 - a1) / 2 - (8 - w2) / 3


@dataclass
class Metrics:
    software: dict[str, float]
    hardware: dict[str, float] = field(default_factory=dict)


class CountingRunners:
    """Computes ``score`` from a decoded config and counts calls per configuration."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[int, int, int]] = Counter()

    def run(self, config: dict[str, Any]) -> Metrics:
        w1, a1, w2 = config["fc1"].weight.width, config["fc1"].data_in.width, config["fc2"].weight.width
        self.calls[(w1, a1, w2)] += 1
        return Metrics({"score": score(w1, a1, w2)})


@dataclass
class Result:
    values: tuple[float, ...]
    scaled: dict[str, float]


class SumObjective:
    directions = ["maximize"]
    metric_names = ["score"]
    sum_scaled = True

    def evaluate(self, metrics: Metrics) -> Result:
        return Result((metrics.software["score"],), {"score": metrics.software["score"]})


class TwoObjectives:
    """(score, total weight bits): a small Pareto problem."""

    directions = ["maximize", "minimize"]
    metric_names = ["score", "bits"]
    sum_scaled = False

    def evaluate(self, metrics: Metrics) -> Result:
        return Result((metrics.software["score"], metrics.hardware["bits"]), {})


class BitsRunners(CountingRunners):
    def run(self, config: dict[str, Any]) -> Metrics:
        m = super().run(config)
        m.hardware["bits"] = float(config["fc1"].weight.width + config["fc2"].weight.width)
        return m


SCRIPT = [
    {"fc1/weight_width": 2, "fc1/data_in_width": 4, "fc2/weight_width": 2},  # 10-2-2-2 = 4
    {"fc1/weight_width": 8, "fc1/data_in_width": 8, "fc2/weight_width": 8},  # 6
    {"fc1/weight_width": 2, "fc1/data_in_width": 4, "fc2/weight_width": 2},  # duplicate of 0
    {"fc1/weight_width": 4, "fc1/data_in_width": 4, "fc2/weight_width": 8},  # 8
    {"fc1/weight_width": 4, "fc1/data_in_width": 8, "fc2/weight_width": 8},  # 10: the optimum
    {"fc1/weight_width": 4, "fc1/data_in_width": 8, "fc2/weight_width": 2},  # 8
]


class ScriptedSampler(optuna.samplers.BaseSampler):
    """Proposes SCRIPT in order (then repeats its last entry)."""

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict) -> dict:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, name: str, dist: BaseDistribution) -> Any:
        return SCRIPT[min(trial.number, len(SCRIPT) - 1)][name]


class Scripted(Strategy):
    name = "scripted"
    Options = StrategyOptions

    def build_sampler(self, space: Any, options: Any, **kwargs: Any) -> optuna.samplers.BaseSampler:
        return ScriptedSampler()


def all_scores() -> list[float]:
    return [score(w1, a1, w2) for w1, a1, w2 in itertools.product((2, 4, 8), (4, 8), (2, 4, 8))]


def test_scripted_strategy_exact_optimum_trials_and_regret(space: SearchSpace) -> None:
    runners = CountingRunners()
    comp = compare_strategies(
        space, runners, SumObjective(), [Scripted()], seeds=2, n_trials=6, budgets=[2, 4]
    )
    values = all_scores()
    assert comp.exact and comp.distinct_size == 18
    assert comp.optimum == pytest.approx(10.0) == max(values)
    assert comp.optimum_configs == 1
    assert comp.mean_value == pytest.approx(sum(values) / len(values))
    s = comp.summary("scripted")
    # The optimum is the 5th trial; trial 3 was a duplicate, so it is the 4th evaluation.
    assert s.trials_to_optimum == [5, 5]
    assert s.unique_to_optimum == [4, 4]
    assert s.duplicate_fraction == pytest.approx(1 / 6)
    gap = 10.0 - sum(values) / len(values)
    # Best so far after 2 trials: 6; after 4 trials: 8; after 6: the optimum.
    assert s.regret[2] == pytest.approx((10.0 - 6.0) / gap)
    assert s.regret[4] == pytest.approx((10.0 - 8.0) / gap)
    assert s.regret[6] == 0.0
    run = comp.runs[0]
    assert [v[0] for v in run.values] == pytest.approx([4, 6, 4, 8, 10, 8])
    assert run.duplicate == [False, False, True, False, False, False]


def test_cache_never_evaluates_a_configuration_twice(space: SearchSpace) -> None:
    runners = CountingRunners()
    comp = compare_strategies(
        space, runners, SumObjective(), ["random", "tpe", "brute_force"], seeds=3, n_trials=30
    )
    assert max(runners.calls.values()) == 1
    assert sum(runners.calls.values()) == comp.evaluations == 18  # the enumeration
    # Random search with 30 trials over 18 configurations must repeat itself.
    assert comp.summary("random").duplicate_fraction > 0
    # Brute force (shuffled) visits each of the 18 once, then stops.
    bf = comp.summary("brute_force")
    assert all(r.n_trials == 18 and not any(r.duplicate) for r in comp.runs if r.strategy == "brute_force")
    assert all(t is not None for t in bf.trials_to_optimum)


def test_without_enumeration_the_optimum_is_labelled_best_found(space: SearchSpace, tmp_path: Path) -> None:
    runners = CountingRunners()
    comp = compare_strategies(
        space, runners, SumObjective(), [Scripted()], seeds=1, n_trials=4, exact_limit=10, mean_samples=5
    )
    assert not comp.exact
    assert comp.optimum == pytest.approx(8.0)  # best of the first 4 scripted trials
    assert comp.summary("scripted").trials_to_optimum == [4]
    assert max(runners.calls.values()) == 1
    assert comp.evaluations == len(runners.calls)
    text = Path(comp.save(tmp_path)["md"]).read_text()
    assert "NOT the exact optimum" in text
    assert "not the exact one" in text


def test_prefilled_cache_costs_no_evaluation(space: SearchSpace) -> None:
    runners = CountingRunners()
    cache = CachedEvaluator(RunnerEvaluator(runners, SumObjective()), key=space.key)
    for i in range(space.size):
        params = space.params_at(i)
        value = score(params["fc1/weight_width"], params["fc1/data_in_width"], params["fc2/weight_width"])
        cache.add(space.decode(params), Evaluation(values=(value,)))
    comp = compare_strategies(space, runners, SumObjective(), ["random"], seeds=2, n_trials=10, cache=cache)
    assert comp.evaluations == 0 and not runners.calls
    assert comp.cached_before == 18


def test_save_and_load_round_trip(space: SearchSpace, tmp_path: Path) -> None:
    comp = compare_strategies(space, CountingRunners(), SumObjective(), ["random", Scripted()], seeds=2, n_trials=8)
    paths = comp.save(tmp_path)
    assert {p.name for p in paths.values()} == {"comparison.json", "comparison.md", "best_so_far.png", "report.html"}
    assert paths["plot"].stat().st_size > 1000
    back = Comparison.load(tmp_path)
    assert back.to_dict() == json.loads(paths["json"].read_text())
    assert back.summary("scripted").trials_to_optimum == [5, 5]
    md = paths["md"].read_text()
    assert "| scripted | 2/2 | 5 / 5 | 4 / 4 |" in md
    assert "scripted** reached the optimum in a median of 4 unique evaluations" in md


def test_pareto_hypervolume_reaches_one_when_everything_is_seen(space: SearchSpace) -> None:
    comp = compare_strategies(
        space, BitsRunners(), TwoObjectives(), ["brute_force", "sensitivity"], seeds=1, n_trials=18
    )
    # True front by hand: for each bits total, the best score.
    points = {}
    for w1, a1, w2 in itertools.product((2, 4, 8), (4, 8), (2, 4, 8)):
        points[(w1, a1, w2)] = (score(w1, a1, w2), w1 + w2)
    front = {p for p in points.values() if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points.values())}
    assert {tuple(p) for p in comp.optimum} == front
    bf = comp.summary("brute_force")
    assert bf.hypervolume[18] == pytest.approx(1.0)
    assert bf.trials_to_optimum[0] is not None
    # The single-objective strategy says why it cannot run.
    assert "at most 1 objective" in (comp.summary("sensitivity").skipped or "")


def test_strategies_none_of_which_can_run_are_refused_before_any_evaluation(space: SearchSpace) -> None:
    # user8: `compare --strategies cmaes` enumerated the space, wrote a report of no run
    # and exited 0.
    runners = BitsRunners()
    cache = CachedEvaluator(RunnerEvaluator(runners, TwoObjectives()), key=space.key)
    with pytest.raises(SearchError) as info:
        compare_strategies(space, runners, TwoObjectives(), ["cmaes", "sensitivity"], seeds=1, n_trials=3, cache=cache)
    lines = str(info.value).splitlines()
    assert lines[0] == "no strategy given can run this search; give one that can (tpe, random, ...):"
    assert lines[1].startswith("  cmaes: sampler 'cmaes' cannot run this search: CMA-ES cannot model categorical")
    assert lines[2].startswith("  sensitivity: ") and "at most 1 objective" in lines[2]
    assert cache.evaluations == 0


CLI_CONFIG = """
model = "mlp"
dataset = "digits"
model_options = { hidden = [8] }
seed = 0
project = "tiny"

[search.search_space]
name = "graph/quantize/mixed_precision_ptq"
[search.search_space.setup]
by = "name"
[search.search_space.seed.default.config]
name = ["NA"]
[search.search_space.seed.fc1.config]
name = ["integer"]
weight_width = [2, 8]
data_in_width = [8]
bias_width = [8]
[search.search_space.seed.fc2.config]
name = ["integer"]
weight_width = [2, 4, 8]
data_in_width = [8]
bias_width = [8]

[search.strategy.sw_runner.basic_evaluation]
num_samples = 64
[search.strategy.hw_runner.average_bitwidth]
compare_to = 32
[search.strategy.setup]
direction = "maximize"
[search.strategy.metrics]
accuracy.scale = 1.0
average_bitwidth.scale = 0.2
average_bitwidth.normalize = true
"""


@pytest.mark.filterwarnings("ignore::bitscout.metrics.MetricWarning")
def test_cli_writes_the_three_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bitscout.cli import main

    config = tmp_path / "tiny.toml"
    config.write_text(CLI_CONFIG)
    out = tmp_path / "cmp"
    code = main([
        "compare", str(config), "--strategies", "random,sensitivity", "--seeds", "2",
        "--n-trials", "6", "--budgets", "3", "--out", str(out), "--accelerator", "cpu",
    ])
    assert code == 0
    comp = Comparison.load(out)
    assert comp.exact and comp.distinct_size == 6 and comp.evaluations == 6
    assert {s.strategy for s in comp.strategies} == {"random", "sensitivity"}
    # sensitivity's profile (1 + 1 + 2 = 4 trials) fixes an additive model of the 2 x 3
    # space; its 6 trials cover the best of the remaining two as well.
    assert all(t is not None for t in comp.summary("sensitivity").trials_to_optimum)
    assert (out / "comparison.md").read_text().startswith("# Strategy comparison")
    assert (out / "best_so_far.png").is_file()
    assert "unique evals to opt." in capsys.readouterr().out


def test_brute_force_options_keep_the_shuffle_unless_it_is_turned_off(space: SearchSpace) -> None:
    def orders(options):
        comp = compare_strategies(space, CountingRunners(), SumObjective(), ["brute_force"], seeds=2, n_trials=18, options=options)
        return [tuple(v[0] for v in run.values) for run in comp.runs]

    first, second = orders({"brute_force": {"max_configs": 1000}})
    assert sorted(first) == sorted(second) and first != second  # every config once, seeded orders
    first, second = orders({"brute_force": {"shuffle": False}})
    assert first == second


@pytest.mark.filterwarnings("ignore::bitscout.metrics.MetricWarning")
def test_cli_runs_the_configs_strategy_with_its_sampler_options(tmp_path: Path, monkeypatch, capsys) -> None:
    # user8: compare ignored [search.strategy.setup] sampler_options without a word.
    import bitscout.compare
    from bitscout.cli import main

    seen: dict = {}
    real = bitscout.compare.compare_strategies

    def spy(*args, **kwargs):
        seen.update(kwargs.get("options") or {})
        return real(*args, **kwargs)

    monkeypatch.setattr(bitscout.compare, "compare_strategies", spy)
    config = tmp_path / "tiny.toml"
    config.write_text(CLI_CONFIG.replace('direction = "maximize"', 'direction = "maximize"\nsampler = "tpe"\nsampler_options = { n_startup_trials = 4 }'))
    argv = ["compare", str(config), "--seeds", "1", "--n-trials", "3", "--budgets", "3", "--accelerator", "cpu"]
    assert main([*argv, "--strategies", "tpe,random", "--out", str(tmp_path / "a")]) == 0
    assert seen == {"tpe": {"n_startup_trials": 4}}
    seen.clear()
    capsys.readouterr()
    assert main([*argv, "--strategies", "random", "--out", str(tmp_path / "b")]) == 0
    assert seen == {}
    assert ("warning: search.strategy.setup.sampler_options are options of 'tpe', which is not among "
            "--strategies random: not used") in capsys.readouterr().err


def test_cli_refuses_bad_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bitscout.cli import main

    config = tmp_path / "tiny.toml"
    config.write_text(CLI_CONFIG)
    assert main(["compare", str(config), "--seeds", "0"]) == 2
    assert "--seeds must be at least 1; got 0" in capsys.readouterr().err


def test_compare_runs_on_one_cpu_thread_and_restores_torch_setting(tmp_path: Path, monkeypatch) -> None:
    # As `search` does: on a busy 2-core machine torch's second thread made a small model's
    # trial ~40x slower (129 ms against 3 ms measured); the user's own setting is restored.
    import torch

    import bitscout.compare as compare_pkg
    from bitscout.cli import main

    seen: list[int] = []
    real = compare_pkg.compare_strategies

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(compare_pkg, "compare_strategies", spy)
    config = tmp_path / "tiny.toml"
    config.write_text(CLI_CONFIG)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["compare", str(config), "--strategies", "random", "--seeds", "1", "--n-trials", "2",
                     "--out", str(tmp_path / "cmp"), "--accelerator", "cpu"]) == 0
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_quantiles_count_misses_as_infinitely_late() -> None:
    from bitscout.compare import seed_quantile as _quantile

    assert _quantile([1, 2, 3, None], 0.5) == 2.5
    assert _quantile([1, None, None], 0.5) is None
    assert _quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == pytest.approx(9.1)  # numpy's linear rule


@pytest.mark.filterwarnings("ignore::bitscout.metrics.MetricWarning")
def test_enumeration_with_real_runners_is_batched_and_equals_one_by_one(tmp_path: Path) -> None:
    # With post-training runners the exact optimum comes from one batched, prefix-sharing
    # evaluation of the whole space; it must equal evaluating every configuration alone.
    from bitscout.config import load_config
    from bitscout.study import prepare_search

    config = tmp_path / "tiny.toml"
    config.write_text(CLI_CONFIG)
    prepared = prepare_search(load_config(config))
    space, runners, objective = prepared.space, prepared.runners, prepared.objective
    one_by_one = [
        objective.evaluate(runners.run(space.decode(space.distinct_params_at(i)))).values[0]
        for i in range(space.distinct_size)
    ]
    comp = compare_strategies(space, runners, objective, ["random"], seeds=1, n_trials=3, progress=False)
    assert comp.exact and comp.evaluations == space.distinct_size == 6
    assert comp.optimum == max(one_by_one)
    assert comp.mean_value == pytest.approx(sum(one_by_one) / len(one_by_one), abs=1e-12)
    assert any("evaluated at once" in note for note in comp.notes)
