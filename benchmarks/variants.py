"""Quick robustness variants of the benchmark spaces for the default strategy (issue 17 item 2).

One command::

    .venv/bin/python benchmarks/variants.py --spaces mlp,cnn --variants base,w2,w4,shuffled,budget --seeds 8

Until the suite (issue 17 item 1) is in the repo, these variants of the two spaces of
``benchmarks/sample_efficiency.py`` (same trained models, same cached accuracy tables)
check that ``sensitivity`` does not depend on one weighting or on the order of the
choices:

* ``base``: accuracy - 0.2 x average_bitwidth / 32 - 0.2 x activation_bitwidth / 32 (the
  benchmark's objective); ``w1`` .. ``w4``: the same table with the weights (0.05, 0.05),
  (0.5, 0.1), (0.1, 0.5), (1, 1);
* ``shuffled``: ``base`` with each parameter's choices permuted (a fixed permutation per
  parameter): the widths no longer mean what their order says, as for unordered choices;
* ``budget``: accuracy with ``average_bitwidth <= 4`` as a constraint (given to the
  sampler as the hardware-only constraint, as the search does);
* ``penalty``: accuracy - 1 when the average width exceeds 4 (a threshold inside the
  objective, which the sampler does not know).

Each run drives the sampler directly (``study.ask`` / ``study.tell`` on the cached table,
no evaluator) and stops at the first trial that reaches the exact (feasible) optimum;
the table per variant gives how many seeds reached it within ``--n-trials`` and the
median and maximum unique evaluations they needed.

``--cost`` measures instead what one proposal costs the sampler (issue 16 item 1) on the
cnn space (25,920 configurations) with 1,000 and 10,000 trials in the study (random
distinct configurations with their table values): the median over 200 proposals of
reading the study and proposing, without Optuna's own ``ask``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import constrained  # noqa: E402
import sample_efficiency as se  # noqa: E402

from bitscout.strategies import get_strategy  # noqa: E402

WEIGHTS = {"base": (0.2, 0.2), "w1": (0.05, 0.05), "w2": (0.5, 0.1), "w3": (0.1, 0.5), "w4": (1.0, 1.0)}


def tables(setup: se.Prepared, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy, average weight width and activation width of every configuration."""
    acc = constrained.accuracies(setup, cache)
    space = setup.space
    widths = np.empty(space.size)
    activations = np.empty(space.size)
    for i in range(space.size):
        metrics = setup.runners.config_metrics(space.decode(space.params_at(i)))
        widths[i], activations[i] = metrics["average_bitwidth"], metrics["activation_bitwidth"]
    return acc, widths, activations


def variant(name: str, setup: se.Prepared, cache: Path):
    """(values, feasible mask, constraints for the sampler or None) of one variant."""
    acc, widths, activations = tables(setup, cache)
    feasible = np.ones(len(acc), dtype=bool)
    constraints = None
    if name in WEIGHTS or name == "shuffled":
        cw, ca = WEIGHTS.get(name, WEIGHTS["base"])
        values = acc - cw * widths / 32 - ca * activations / 32
    elif name == "budget":
        values, feasible = acc.copy(), widths <= 4
        _, full, _ = constrained.prepare(setup.problem, cache)
        constraints = full.hardware_only
    elif name == "penalty":
        values = acc - 1.0 * (widths > 4)
    else:
        raise SystemExit(f"unknown variant {name!r}")
    if name == "shuffled":
        rng = np.random.default_rng(123)
        radices = [len(p.choices) for p in setup.space.params]
        index = np.arange(len(values)).reshape(radices)
        for axis, radix in enumerate(radices):
            index = np.take(index, rng.permutation(radix), axis=axis)
        values = values[index.ravel()]
    return values, feasible, constraints


def run(space, values, feasible, constraints, seed: int, n_trials: int) -> int | None:
    """Unique evaluations until the first trial at the (feasible) optimum, or None."""
    optimum = values[feasible].max()
    sampler = get_strategy("sensitivity").make_sampler(
        space, seed=seed, directions=["maximize"], options={}, constraints=constraints
    )
    study = optuna.create_study(sampler=sampler, direction="maximize")
    distributions = space.distributions()
    seen: set[int] = set()
    for _ in range(n_trials):
        trial = study.ask(distributions)
        index = space.index_of(trial.params)
        if not feasible[index]:
            raise SystemExit(f"seed {seed}: an infeasible configuration was proposed: {trial.params}")
        seen.add(index)
        study.tell(trial, float(values[index]))
        if values[index] == optimum:
            return len(seen)
    return None


def cost(cache: Path) -> None:
    """Median sampler time per proposal with 1,000 and 10,000 trials in the study."""
    setup = se.prepare(se.SPACES["cnn"], cache)
    space = setup.space
    values, _, _ = variant("base", setup, cache)
    distributions = space.distributions()
    rng = np.random.default_rng(0)
    for n in (1000, 10000):
        study = optuna.create_study(direction="maximize")
        chosen = rng.choice(space.size, n, replace=False)
        study.add_trials(
            [
                optuna.trial.create_trial(params=space.params_at(int(i)), distributions=distributions, value=float(values[i]))
                for i in chosen
            ]
        )
        sampler = get_strategy("sensitivity").make_sampler(space, seed=0, directions=["maximize"], options={})
        times = []
        for _ in range(201):
            trial = study.ask()  # a running trial the sampler must not count as observed
            frozen = study.get_trials(deepcopy=False)[-1]
            started = time.perf_counter()
            sampler.sample_relative(study, frozen, distributions)
            times.append(time.perf_counter() - started)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        # The first proposal reads the whole history and fits the model: reported apart.
        print(
            f"{n:,} trials: first proposal {times[0] * 1000:.1f} ms; then median "
            f"{statistics.median(times[1:]) * 1000:.2f} ms, 90th percentile "
            f"{np.percentile(times[1:], 90) * 1000:.2f} ms per proposal",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", default="mlp,cnn")
    parser.add_argument("--variants", default="base,w1,w2,w3,w4,shuffled,budget")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--n-trials", type=int, default=500)
    parser.add_argument("--cache", type=Path, default=Path(".cache/sample_efficiency"))
    parser.add_argument("--cost", action="store_true", help="measure the cost per proposal instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    if args.cost:
        cost(args.cache)
        return 0
    print("| space | variant | reached | median unique evals | max | per seed | s |")
    print("|---|---|---|---|---|---|---|")
    for space_name in args.spaces.split(","):
        setup = se.prepare(se.SPACES[space_name], args.cache)
        for name in args.variants.split(","):
            values, feasible, constraints = variant(name, setup, args.cache)
            started = time.perf_counter()
            found = [run(setup.space, values, feasible, constraints, s, args.n_trials) for s in range(args.seeds)]
            reached = [f for f in found if f is not None]
            median = statistics.median([f if f is not None else float("inf") for f in found])
            shown = "never" if median == float("inf") else f"{median:g}"
            print(
                f"| {space_name} | {name} | {len(reached)}/{args.seeds} | {shown} | "
                f"{max(reached) if reached else '-'} | {' '.join(str(f) if f else '-' for f in found)} | "
                f"{time.perf_counter() - started:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
