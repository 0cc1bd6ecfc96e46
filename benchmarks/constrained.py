"""Sample efficiency under a budget: the most accurate configuration within ``average_bitwidth <= 4``.

One command::

    .venv/bin/python benchmarks/constrained.py                        # mlp and cnn, 20 seeds, 500 trials
    .venv/bin/python benchmarks/constrained.py --spaces mlp --seeds 5

The spaces and float models are those of ``benchmarks/sample_efficiency.py`` (the digits
MLP, 46,656 configurations; the mnist5k CNN, 25,920), trained once and cached. The
objective is accuracy alone and the budget is a constraint, ``average_bitwidth <= 4``
(the weights average at most 4 bits): the question a hardware engineer asks. Every
configuration is evaluated first (a prefix-sharing enumeration, cached), so the exact
feasible optimum is known; the evaluations pre-fill the comparison's cache exactly as
the search's evaluator would make them (a configuration over the budget is *skipped*:
its width is known from the configuration, so it costs no data pass), and 20 random
configurations are re-evaluated by the search's own evaluator and must agree.
:func:`bitscout.compare.compare_strategies` then runs every strategy and seed, and
reports how many seeds reach the feasible optimum and after how many unique evaluations.
"""

from __future__ import annotations

import argparse
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sample_efficiency as se  # noqa: E402  (the shared spaces and their enumeration)

from bitscout.config.schema import MetricSpec, Setup, StrategyConfig  # noqa: E402
from bitscout.evaluation import CachedEvaluator, Evaluation, RunnerEvaluator  # noqa: E402
from bitscout.metrics import Constraints, Objective, TrialMetrics, build_runners  # noqa: E402

BUDGET = {"average_bitwidth": {"max": 4}}
DEFAULT_STRATEGIES = ("sensitivity", "tpe", "random", "nsgaii", "brute_force")


def _strategy_config(problem: se.Problem) -> StrategyConfig:
    return StrategyConfig(
        sw_runners={"basic_evaluation": {"data_loader": "val_dataloader", "num_samples": problem.num_samples}},
        hw_runners={"average_bitwidth": {"compare_to": 32}},
        setup=Setup(sum_scaled_metrics=True, direction="maximize"),
        metrics={"accuracy": MetricSpec(scale=1.0, direction="maximize")},
        constraints=BUDGET,
    )


def prepare(problem: se.Problem, cache_dir: Path) -> tuple[se.Prepared, Constraints, RunnerEvaluator]:
    """The benchmark's model and space with the accuracy objective and the budget."""
    setup = se.prepare(problem, cache_dir)
    strategy_cfg = _strategy_config(problem)
    setup.runners = build_runners(strategy_cfg, setup.runners.context)
    setup.objective = Objective.from_config(strategy_cfg, setup.runners)
    constraints = Constraints.from_config(strategy_cfg, setup.runners)
    return setup, constraints, RunnerEvaluator(setup.runners, setup.objective, constraints=constraints)


def accuracies(setup: se.Prepared, cache_dir: Path) -> np.ndarray:
    """Accuracy of every configuration (indexed by ``space.index_of``), cached."""
    path = cache_dir / f"{setup.problem.name}_seed0_e{setup.problem.epochs}_n{setup.problem.num_samples}_accuracy.npy"
    if path.is_file():
        return np.load(path)
    values = se.enumerate_values(setup)  # the objective is accuracy alone
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, values)
    return values


def fill_cache(
    setup: se.Prepared, evaluator: RunnerEvaluator, constraints: Constraints, values: np.ndarray
) -> CachedEvaluator:
    """Every configuration's evaluation, as the evaluator makes it, in one cache."""
    space = setup.space
    cache = CachedEvaluator(evaluator, key=space.key)
    hardware = constraints.hardware_only
    for index in range(space.size):
        config = space.decode(space.params_at(index))
        if hardware.config_violation(config) > 0:
            cache.add(config, evaluator.evaluate(config))  # skipped: nothing is measured
            continue
        metrics = TrialMetrics(
            software={"accuracy": float(values[index])}, hardware=setup.runners.config_metrics(config)
        )
        cache.add(config, evaluator.score(metrics))
    return cache


def check(setup: se.Prepared, evaluator: RunnerEvaluator, cache: CachedEvaluator, n: int) -> int:
    """Re-evaluate ``n`` random configurations the search's way; they must agree exactly."""
    rng = random.Random(0)
    space = setup.space
    for _ in range(n):
        config = space.decode(space.params_at(rng.randrange(space.size)))
        fresh: Evaluation = evaluator.evaluate(config)
        stored = cache.evaluate(config)
        if (fresh.values, fresh.constraints, fresh.skipped) != (stored.values, stored.constraints, stored.skipped):
            raise SystemExit(f"enumeration and evaluator disagree at {config}: {stored} against {fresh}")
    return n


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", default="mlp,cnn", help="comma-separated: mlp, cnn")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n-trials", type=int, default=500)
    parser.add_argument("--budgets", default="25,50,100,200,500")
    parser.add_argument("--check", type=int, default=20, help="configurations checked against the evaluator")
    parser.add_argument("--cache", type=Path, default=Path(".cache/sample_efficiency"))
    parser.add_argument("--out", type=Path, default=Path("runs/constrained"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    for name in [s.strip() for s in args.spaces.split(",") if s.strip()]:
        problem = se.SPACES[name]
        print(f"== {name}: {problem.description}; objective accuracy, budget average_bitwidth <= 4", flush=True)
        setup, constraints, evaluator = prepare(problem, args.cache)
        values = accuracies(setup, args.cache)
        cache = fill_cache(setup, evaluator, constraints, values)
        checked = check(setup, evaluator, cache, args.check)
        notes = [
            f"Objective: accuracy; constraint: {constraints.describe()}. Exhaustive values from a "
            f"prefix-sharing enumeration; {checked} random configurations re-evaluated by the "
            "search's evaluator gave identical values, constraint values and skips.",
            f"Float model accuracy {setup.float_accuracy:.4f}.",
        ]
        se.compare_and_save(setup, strategies, args, budgets, cache, notes, args.out / name, constraints=constraints)
    return 0


if __name__ == "__main__":
    sys.exit(main())
