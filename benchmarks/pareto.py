"""Pareto searches on an exactly known front: hypervolume per strategy and budget.

One command::

    .venv/bin/python benchmarks/pareto.py                              # every member, 20 seeds
    .venv/bin/python benchmarks/pareto.py --members acc_bits --seeds 5 --strategies pareto,nsgaii
    .venv/bin/python benchmarks/pareto.py --suite --seeds 5            # the suite's Pareto members

``--suite`` measures issue 17's Pareto target on the Pareto members of the benchmark
suite (``benchmarks/suite.py``: ``jsc/pareto``, ``mlp/pareto``, ``cnn/pareto``,
``deep/pareto``): ``pareto`` after 200 unique evaluations against NSGA-II and TPE after
1,000 (at most 1,500 trials), the same seeds, medians. The baselines' runs are those of
``benchmarks/sample_efficiency.py`` (the same runner, read from / written to its run
cache); ``pareto``'s are made fresh (its sampler seconds per proposal are reported).

The space and float model are ``benchmarks/sample_efficiency.py``'s digits MLP (46,656
configurations: per-layer weight and input widths of fc1..fc3 in {2, 3, 4, 5, 6, 8}),
trained once and cached. Every configuration's accuracy is enumerated once (the same
prefix-sharing enumeration and cache file as ``benchmarks/constrained.py``); the
hardware metrics come from the search's own runners. The comparison's cache is
pre-filled with exactly what the search's evaluator returns (20 random configurations
are re-evaluated to check), so the true Pareto front and its hypervolume are exact, and
every strategy runs at table-lookup speed.

The members (several objectives each, no weights to choose; ``weight_bytes`` is left
out: on this model it is an affine function of ``average_bitwidth``, so its
hypervolume ratios equal ``acc_bits``' exactly):

* ``acc_bits``: accuracy (max) against ``average_bitwidth`` (min): the weight widths.
* ``acc_bitops``: accuracy against ``bitops`` (min): weight times input width per
  multiply-accumulate, a cost that is not additive over the parameters.
* ``acc_bits_act``: three objectives: accuracy, ``average_bitwidth`` and
  ``activation_bitwidth`` (min).

The table reports, per strategy and trial budget, ``1 - HV ratio``: one minus the
hypervolume of the run's front over the true front's (median over seeds), with
:func:`bitscout.compare.compare_strategies`' reference point (each objective's worst
value over the space, 1% of its range further out).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sample_efficiency as se  # noqa: E402  (the shared spaces and their enumeration)
from constrained import accuracies  # noqa: E402  (the cached accuracy of every configuration)

from bitscout.config.schema import MetricSpec, Setup, StrategyConfig  # noqa: E402
from bitscout.evaluation import CachedEvaluator, RunnerEvaluator  # noqa: E402
from bitscout.metrics import Objective, TrialMetrics, build_runners  # noqa: E402

# member -> (hardware runners, objective metrics in order: name -> direction)
MEMBERS: dict[str, tuple[dict[str, dict], dict[str, str]]] = {
    "acc_bits": ({"average_bitwidth": {}}, {"accuracy": "maximize", "average_bitwidth": "minimize"}),
    "acc_bitops": ({"bitops": {}}, {"accuracy": "maximize", "bitops": "minimize"}),
    "acc_bits_act": (
        {"average_bitwidth": {}, "activation_bitwidth": {}},
        {"accuracy": "maximize", "average_bitwidth": "minimize", "activation_bitwidth": "minimize"},
    ),
}
DEFAULT_STRATEGIES = ("pareto", "nsgaii", "tpe", "random")


def _strategy_config(problem: se.Problem, member: str) -> StrategyConfig:
    hardware, objectives = MEMBERS[member]
    return StrategyConfig(
        sw_runners={"basic_evaluation": {"data_loader": "val_dataloader", "num_samples": problem.num_samples}},
        hw_runners=hardware,
        setup=Setup(sum_scaled_metrics=False),
        metrics={name: MetricSpec(scale=1.0, direction=d) for name, d in objectives.items()},
    )


def prepare(setup: se.Prepared, member: str) -> RunnerEvaluator:
    """The evaluator of ``member``'s objectives on the benchmark's model and space."""
    strategy_cfg = _strategy_config(setup.problem, member)
    setup.runners = build_runners(strategy_cfg, setup.runners.context)
    setup.objective = Objective.from_config(strategy_cfg, setup.runners)
    return RunnerEvaluator(setup.runners, setup.objective)


def fill_cache(setup: se.Prepared, evaluator: RunnerEvaluator, values: np.ndarray) -> CachedEvaluator:
    """Every configuration's evaluation, as the evaluator makes it, in one cache."""
    space = setup.space
    cache = CachedEvaluator(evaluator, key=space.key)
    for index in range(space.size):
        config = space.decode(space.params_at(index))
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
        fresh = evaluator.evaluate(config)
        stored = cache.evaluate(config)
        if fresh.values != stored.values:
            raise SystemExit(f"enumeration and evaluator disagree at {config}: {stored} against {fresh}")
    return n


SUITE_MEMBERS = ("jsc/pareto", "mlp/pareto", "cnn/pareto", "deep/pareto")


def suite_table(members: list[str], seeds: int, baselines: list[str], budget: int, cached_only: bool) -> str:
    """Issue 17's Pareto target on the suite: ``pareto`` at ``budget`` unique
    evaluations against ``baselines`` at 1,000; a markdown table of ``1 - HV ratio``.

    With ``cached_only`` the baselines' missing seeds are left out (TPE's 1,500 trials
    take minutes to an hour a run), and the table says how many seeds it had."""
    import statistics

    import sample_efficiency as runner  # noqa: PLC0415  (loads the suite: only when asked)
    import suite  # noqa: PLC0415

    rows = [
        "| member (front) | pareto @" + str(budget) + " median (worst) | ms/proposal | "
        + " | ".join(f"{b} @200 | {b} @1000" for b in baselines) + " | target |",
        "|---|---|---|" + "---|---|" * len(baselines) + "---|",
    ]
    for name in members:
        member = suite.load(name)
        mine = []
        for seed in range(seeds):
            run = runner.run_one(member, "pareto", seed, max_unique=budget, max_trials=budget * 3 // 2)
            mine.append(run)
            print(f"  {name} pareto seed {seed}: {run.unique} unique, 1-HV@{budget} "
                  f"{1 - run.hv['200']:.5f}, {1000 * run.sampler_s / max(run.trials, 1):.0f} ms/proposal", flush=True)
        theirs = {}
        for b in baselines:
            if cached_only:  # only the seeds some earlier run left in the run cache
                paths = [runner._run_path(member, b, seed, 1000, 1500) for seed in range(seeds)]
                theirs[b] = [runner.Run(**json.loads(path.read_text())) for path in paths if path.is_file()]
            else:
                theirs[b] = [
                    runner.cached_run(member, b, seed, max_unique=1000, max_trials=1500, reuse=True)
                    for seed in range(seeds)
                ]
        note = runner.rejudge(member, [*mine, *(r for runs in theirs.values() for r in runs)])
        if note:
            print(f"  note: {note}", flush=True)
        gap = [1 - r.hv["200"] for r in mine]
        ours = statistics.median(gap)
        per = statistics.median(r.sampler_s / max(r.trials, 1) for r in mine)
        cells, met = [], True
        for b in baselines:
            if not theirs[b]:
                cells.append("- | -")
                continue
            at200 = statistics.median(1 - r.hv["200"] for r in theirs[b])
            at1000 = statistics.median(1 - r.hv["1000"] for r in theirs[b])
            met = met and ours <= at1000
            shown = "" if len(theirs[b]) == seeds else f" ({len(theirs[b])} seeds)"
            cells.append(f"{at200:.5f}{shown} | {at1000:.5f}{shown}")
        front = f"{len(member.optimum.front or [])}{'' if member.exact else ', best known'}"
        rows.append(f"| {name} ({front}) | {ours:.5f} ({max(gap):.5f}) | {1000 * per:.0f} | "
                    + " | ".join(cells) + f" | {'met' if met else 'missed'} |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default=",".join(MEMBERS), help=f"comma-separated: {', '.join(MEMBERS)}")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n-trials", type=int, default=1000)
    parser.add_argument("--budgets", default="50,100,200,500,1000")
    parser.add_argument("--check", type=int, default=20, help="configurations checked against the evaluator")
    parser.add_argument("--cache", type=Path, default=Path(".cache/sample_efficiency"))
    parser.add_argument("--out", type=Path, default=Path("runs/pareto"))
    parser.add_argument("--suite", action="store_true", help="the suite's Pareto members (see the docstring)")
    parser.add_argument("--baselines", default="nsgaii,tpe", help="--suite: strategies judged at 1,000")
    parser.add_argument("--budget", type=int, default=200, help="--suite: pareto's unique evaluations")
    parser.add_argument("--cached-only", action="store_true", help="--suite: baselines' cached runs only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    if args.suite:
        members = [m.strip() for m in args.members.split(",") if m.strip()]
        if not set(members) <= set(SUITE_MEMBERS):
            members = list(SUITE_MEMBERS)
        baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
        table = suite_table(members, args.seeds, baselines, args.budget, args.cached_only)
        print(table)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "suite.md").write_text(table + "\n")
        return 0
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    problem = se.SPACES["mlp"]
    for member in [m.strip() for m in args.members.split(",") if m.strip()]:
        if member not in MEMBERS:
            raise SystemExit(f"unknown member {member!r}; members: {', '.join(MEMBERS)}")
        objectives = MEMBERS[member][1]
        print(f"== {member}: {problem.description}; objectives {objectives}", flush=True)
        setup = se.prepare(problem, args.cache)
        values = accuracies(setup, args.cache)
        evaluator = prepare(setup, member)
        cache = fill_cache(setup, evaluator, values)
        checked = check(setup, evaluator, cache, args.check)
        notes = [
            f"Objectives: {', '.join(f'{k} ({v})' for k, v in objectives.items())}. Accuracy of every "
            f"configuration from a prefix-sharing enumeration; {checked} random configurations "
            "re-evaluated by the search's evaluator gave identical values.",
            f"Float model accuracy {setup.float_accuracy:.4f}.",
        ]
        se.compare_and_save(setup, strategies, args, budgets, cache, notes, args.out / member)
    return 0


if __name__ == "__main__":
    sys.exit(main())
