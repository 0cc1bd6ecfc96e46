"""Pareto searches on exactly known fronts: ``pareto`` at 200 unique evaluations against
NSGA-II and TPE at 1,000 (issue 17's target), hypervolume ratios per member.

One command::

    .venv/bin/python benchmarks/pareto.py --seeds 5                      # every member
    .venv/bin/python benchmarks/pareto.py --members mlp/pareto,cnn/pareto --seeds 3 --baselines nsgaii

Members:

* the benchmark suite's Pareto members (``benchmarks/suite.py``): ``jsc/pareto``,
  ``mlp/pareto`` (the digits MLP), ``cnn/pareto``, ``deep/pareto`` (64 million
  configurations: a best-known front), each accuracy (max) against ``average_bitwidth``
  (min);
* two more on the suite's digits MLP table: ``mlp/acc_bitops`` (accuracy against
  ``bitops``, weight times input width per multiply-accumulate: a cost that couples each
  layer's two widths) and ``mlp/acc_bits_act`` (three objectives: accuracy,
  ``average_bitwidth``, ``activation_bitwidth``). Their exact fronts are computed here
  from the same table, with the suite's rule for the reference point.

``pareto``'s runs are made fresh (its sampler seconds per proposal are reported); the
baselines' come from ``benchmarks/sample_efficiency.py``'s runner and run cache (the
same loop, 1,000 unique evaluations, at most 1,500 trials). ``--cached-only`` leaves out
baseline seeds not in that cache (TPE's 1,500 multi-objective trials take many minutes
a run); a seed cached only under an older source digest of the baseline is used,
rejudged from its points, and the table's run says how many were. The figure is ``1 - HV ratio``: one minus the hypervolume of the points a run
found over the true (or best known) front's, median over seeds; lower is better.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sample_efficiency as runner  # noqa: E402  (benchmarks/ is not a package)
import suite  # noqa: E402

from bitscout.config.schema import MetricSpec, Setup, StrategyConfig  # noqa: E402
from bitscout.evaluation import CachedEvaluator, TableEvaluator  # noqa: E402
from bitscout.metrics import Objective  # noqa: E402
from bitscout.strategies._pareto import non_dominated  # noqa: E402

SUITE_MEMBERS = ("jsc/pareto", "mlp/pareto", "cnn/pareto", "deep/pareto")
EXTRA_MEMBERS: dict[str, dict[str, str]] = {
    "mlp/acc_bitops": {"accuracy": "maximize", "bitops": "minimize"},
    "mlp/acc_bits_act": {"accuracy": "maximize", "average_bitwidth": "minimize", "activation_bitwidth": "minimize"},
}
MEMBERS = (*SUITE_MEMBERS, *EXTRA_MEMBERS)


def load(name: str) -> suite.Member:
    """A suite member, or one of EXTRA_MEMBERS built on the suite's ``mlp`` table."""
    if name not in EXTRA_MEMBERS:
        return suite.load(name)
    base = suite.load("mlp/pareto")
    objectives = EXTRA_MEMBERS[name]
    objective = Objective.from_config(
        StrategyConfig(
            setup=Setup(sum_scaled_metrics=False),
            metrics={metric: MetricSpec(scale=1.0, direction=d) for metric, d in objectives.items()},
        ),
        base.runners,
    )
    inner = TableEvaluator(suite.table("mlp"), objective)
    inner.runners = base.runners
    member = suite.Member(
        name=name, space_name="mlp", objective_name=name.split("/")[1], space=base.space,
        evaluator=CachedEvaluator(inner, key=base.space.key), objective=objective, constraints=None,
        runners=base.runners, optimum=suite.Optimum(exact=True),
        description=f"digits MLP; {', '.join(f'{k} ({v})' for k, v in objectives.items())}",
        float_accuracy=base.float_accuracy,
    )
    space = member.space
    values = np.array(
        [member.evaluator.evaluate(space.decode(space.distinct_params_at(i))).values for i in range(space.distinct_size)]
    )
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in objectives.values()])
    # bitscout's own non-dominated filter first: suite._front is O(n^2) beyond two objectives.
    front = suite._front(values[non_dominated(values * signs)], signs)
    worst = np.where(signs > 0, values.min(axis=0), values.max(axis=0))
    span = np.ptp(values, axis=0)
    span[span == 0] = 1.0
    reference = worst - signs * 0.01 * span  # the suite's rule (see suite._optimum_from)
    member.optimum = suite.Optimum(
        exact=True, front=front.tolist(), reference_point=reference.tolist(),
        hypervolume=suite.hypervolume_of(front, reference, member.directions),
        evaluated=len(values), feasible=len(values),
    )
    return member


def cached_baseline(member: suite.Member, strategy: str, seed: int) -> tuple[runner.Run | None, bool]:
    """A baseline's cached 1,000-evaluation run for ``seed``, and whether its cache key is current.

    The run cache's key holds a digest of the strategy's source files (and of the bitscout
    modules its sampler comes from); an edit there that leaves the strategy's proposals
    alone (NSGA-II's trajectory hashes are equal under every digest in the suite cache)
    still hides the runs made before it. Then the newest run of that strategy and seed is
    used, its hypervolumes recomputed from its points against the current front.
    """
    path = runner._run_path(member, strategy, seed, 1000, 1500)
    if path.is_file():
        return runner.Run(**json.loads(path.read_text())), True
    older = sorted(path.parent.glob(f"{strategy}-s{seed}-*.json"), key=lambda p: p.stat().st_mtime)
    for candidate in reversed(older):
        run = runner.Run(**json.loads(candidate.read_text()))
        if run.member == member.name and run.error is None and run.points and run.max_unique in (0, 1000):
            run.hv = runner.hypervolumes(member, run.points, 1000)
            return run, False
    return None, False


def table(members: list[str], seeds: int, baselines: list[str], budget: int, cached_only: bool) -> str:
    """``pareto`` at ``budget`` unique evaluations against ``baselines`` at 1,000: a
    markdown table of median ``1 - HV ratio`` (``met``: at most every baseline's)."""
    rows = [
        f"| member (front) | pareto @{budget} median (worst) | ms/proposal | "
        + " | ".join(f"{b} @200 | {b} @1000" for b in baselines) + " | target |",
        "|---|---|---|" + "---|---|" * len(baselines) + "---|",
    ]
    for name in members:
        member = load(name)
        mine = []
        for seed in range(seeds):
            run = runner.run_one(member, "pareto", seed, max_unique=budget, max_trials=budget * 3 // 2)
            mine.append(run)
            print(f"  {name} pareto seed {seed}: {run.unique} unique, 1-HV@{budget} {1 - run.hv['200']:.5f}, "
                  f"{1000 * run.sampler_s / max(run.trials, 1):.0f} ms/proposal", flush=True)
        theirs = {}
        for b in baselines:
            if cached_only and name in SUITE_MEMBERS:  # the seeds some earlier run left in the cache
                found = [cached_baseline(member, b, seed) for seed in range(seeds)]
                theirs[b] = [run for run, _ in found if run is not None]
                stale = sum(1 for run, exact in found if run is not None and not exact)
                if stale:
                    print(f"  note: {stale} of {b}'s runs on {name} were cached under an older source digest "
                          "(rejudged against the current front from their points)", flush=True)
            else:
                theirs[b] = [
                    runner.cached_run(member, b, seed, max_unique=1000, max_trials=1500, reuse=name in SUITE_MEMBERS)
                    if name in SUITE_MEMBERS
                    else runner.run_one(member, b, seed, max_unique=1000, max_trials=1500)
                    for seed in range(seeds)
                ]
        note = runner.rejudge(member, [*mine, *(r for runs in theirs.values() for r in runs)])
        if note:
            print(f"  note: {note}", flush=True)
        gap = [1 - r.hv["200"] for r in mine]
        ours = statistics.median(gap)
        per = statistics.median(r.sampler_s / max(r.trials, 1) for r in mine)
        cells, met = [], all(theirs[b] for b in baselines)
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
                    + " | ".join(cells) + f" | {'met' if met else 'missed' if all(theirs.values()) else 'no baseline'} |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default=",".join(MEMBERS), help=f"comma-separated: {', '.join(MEMBERS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--baselines", default="nsgaii,tpe", help="strategies judged at 1,000 unique evaluations")
    parser.add_argument("--budget", type=int, default=200, help="pareto's unique evaluations")
    parser.add_argument("--cached-only", action="store_true", help="suite members: baselines' cached runs only")
    parser.add_argument("--out", type=Path, default=Path("runs/pareto"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    members = [m.strip() for m in args.members.split(",") if m.strip()]
    for name in members:
        if name not in MEMBERS:
            raise SystemExit(f"unknown member {name!r}; members: {', '.join(MEMBERS)}")
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    text = table(members, args.seeds, baselines, args.budget, args.cached_only)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
