"""Sample efficiency of bitscout's strategies on spaces whose exact optimum is known.

One command::

    .venv/bin/python benchmarks/sample_efficiency.py            # both spaces, 20 seeds
    .venv/bin/python benchmarks/sample_efficiency.py --seeds 5 --spaces mlp

For each space it trains the float model once (seeded; cached under
``--cache``, default ``.cache/sample_efficiency``), evaluates EVERY configuration of the
space (so the exact optimum is known), then runs :func:`bitscout.report.compare_strategies`
with every strategy and seed. The table and the comparison files go to ``--out``
(default ``runs/sample_efficiency/<space>``); the table is printed.

The spaces (each over 20,000 configurations):

* ``mlp``: the digits MLP (``fc1``, ``fc2``, ``fc3``), per-layer ``weight_width`` and
  ``data_in_width`` in {2, 3, 4, 5, 6, 8}: 6^6 = 46,656 configurations.
* ``cnn``: a CNN on mnist5k (``conv1``, ``conv2``, ``fc``: 8 and 16 channels),
  ``weight_width`` in {2, 3, 4, 5, 6, 8} for all three, ``data_in_width`` in
  {2, 3, 4, 8} (conv1), {2, 3, 4, 5, 6, 8} (conv2) and {2, 3, 4, 6, 8} (fc):
  25,920 configurations.

The objective is the DESIGN's normalized sum: ``accuracy - 0.2 * average_bitwidth_ratio
- 0.2 * activation_bitwidth_ratio`` (the ratios are to 32-bit floats), so that every
weight and activation bit has a price and the optimum is neither the all-min nor the
all-max configuration (the benchmark prints where it lies).

Enumerating tens of thousands of configurations must be fast: the models here are
chains of layers, so the enumeration shares prefixes (the activations after the first
``k`` layers are computed once per setting of those layers) and evaluates the whole
validation subset as one tensor under ``torch.inference_mode`` with the Quantizer's
cached weights. The values it produces are checked, on a sample of configurations,
to be exactly those of the search's own runners (:class:`bitscout.metrics.RunnerSet`
and :class:`bitscout.metrics.Objective`), which the comparison then uses through its
shared evaluation cache.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from bitscout.config.schema import MetricSpec, Setup, StrategyConfig
from bitscout.data import Dataset, load_dataset
from bitscout.graph import TracedModel, trace
from bitscout.metrics import MetricWarning, Objective, RunContext, RunnerSet, build_runners
from bitscout.models import build_model, load_checkpoint, save_checkpoint
from bitscout.quant import Quantizer
from bitscout.space import SearchSpace
from bitscout.training import train

WIDTHS = (2, 3, 4, 5, 6, 8)


@dataclass(frozen=True)
class Problem:
    """One benchmark space: model, data, searched layers and training recipe."""

    name: str
    dataset: str
    model: str
    model_options: Mapping[str, Any]
    layers: Mapping[str, Mapping[str, Sequence[int]]]
    epochs: int
    learning_rate: float
    batch_size: int
    num_samples: int
    description: str = ""


SPACES: dict[str, Problem] = {
    "mlp": Problem(
        name="mlp",
        dataset="digits",
        model="mlp",
        model_options={"hidden": (64, 32)},
        layers={
            name: {"weight_width": WIDTHS, "data_in_width": WIDTHS} for name in ("fc1", "fc2", "fc3")
        },
        epochs=40,
        learning_rate=3e-3,
        batch_size=64,
        num_samples=540,
        description="digits MLP 64-64-32-10, weight and input widths of fc1..fc3 in {2,3,4,5,6,8}",
    ),
    "cnn": Problem(
        name="cnn",
        dataset="mnist5k",
        model="cnn",
        model_options={"channels": (8, 16)},
        layers={
            "conv1": {"weight_width": WIDTHS, "data_in_width": (2, 3, 4, 8)},
            "conv2": {"weight_width": WIDTHS, "data_in_width": WIDTHS},
            "fc": {"weight_width": WIDTHS, "data_in_width": (2, 3, 4, 6, 8)},
        },
        epochs=8,
        learning_rate=3e-3,
        batch_size=64,
        num_samples=500,
        description="mnist5k CNN (8, 16 channels), weight and input widths of conv1, conv2, fc",
    ),
}


def layer_choices(problem: Problem) -> dict[str, dict[str, Any]]:
    """The search-space choices of ``problem`` (MASE's flat per-layer form)."""
    out: dict[str, dict[str, Any]] = {}
    for layer, fields in problem.layers.items():
        out[layer] = {
            "name": ["integer"],
            "weight_width": list(fields["weight_width"]),
            "weight_frac_width": ["NA"],
            "data_in_width": list(fields["data_in_width"]),
            "data_in_frac_width": ["NA"],
            "bias_width": [8],
            "bias_frac_width": ["NA"],
        }
    return out


@dataclass
class Prepared:
    """A problem made concrete: trained model, traced graph, space, runners, objective."""

    problem: Problem
    dataset: Dataset
    traced: TracedModel
    quantizer: Quantizer
    space: SearchSpace
    runners: RunnerSet
    objective: Objective
    float_accuracy: float
    train_seconds: float


def _strategy_config(problem: Problem) -> StrategyConfig:
    """The ``[search.strategy]`` section of the benchmark's objective."""
    return StrategyConfig(
        sw_runners={"basic_evaluation": {"data_loader": "val_dataloader", "num_samples": problem.num_samples}},
        hw_runners={"average_bitwidth": {"compare_to": 32}, "activation_bitwidth": {}},
        setup=Setup(sum_scaled_metrics=True, direction="maximize"),
        metrics={
            "accuracy": MetricSpec(scale=1.0, direction="maximize"),
            "average_bitwidth": MetricSpec(scale=0.2, direction="minimize", normalize=True),
            "activation_bitwidth": MetricSpec(scale=0.2, direction="minimize", normalize=True),
        },
    )


def prepare(problem: Problem, cache_dir: Path, *, seed: int = 0) -> Prepared:
    """Train (or load from ``cache_dir``) the float model and build the search objects."""
    dataset = load_dataset(problem.dataset, seed=seed)
    torch.manual_seed(seed)
    model = build_model(problem.model, dataset.info, dict(problem.model_options))
    ckpt = cache_dir / f"{problem.name}_seed{seed}_e{problem.epochs}.pt"
    started = time.perf_counter()
    if ckpt.is_file():
        load_checkpoint(model, ckpt)
    else:
        print(f"[{problem.name}] training the float model ({problem.epochs} epochs) ...", flush=True)
        result = train(
            model,
            dataset,
            epochs=problem.epochs,
            batch_size=problem.batch_size,
            learning_rate=problem.learning_rate,
            seed=seed,
            progress=False,
        )
        save_checkpoint(
            model,
            ckpt,
            {"model": problem.model, "dataset": problem.dataset, "metrics": result.best_val.as_dict()},
        )
    train_seconds = time.perf_counter() - started
    model.eval()
    traced = trace(model, dataset.val.x[:2])
    quantizer = Quantizer(traced)
    space = SearchSpace(traced.table, layer_choices(problem))
    context = RunContext(
        traced=traced,
        quantizer=quantizer,
        dataset=dataset,
        device=torch.device("cpu"),
        batch_size=problem.batch_size,
        seed=seed,
    )
    strategy_cfg = _strategy_config(problem)
    runners = build_runners(strategy_cfg, context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)  # "MASE would add the costs": known
        objective = Objective.from_config(strategy_cfg, runners)
    reference = runners.reference()
    return Prepared(
        problem=problem,
        dataset=dataset,
        traced=traced,
        quantizer=quantizer,
        space=space,
        runners=runners,
        objective=objective,
        float_accuracy=reference.software["accuracy"],
        train_seconds=train_seconds,
    )


def enumerate_values(setup: Prepared) -> np.ndarray:
    """The objective of every configuration, indexed by ``space.index_of``.

    The model is a chain of modules (checked), so the activations after a prefix of the
    searched layers are computed once per setting of that prefix: with L searched
    layers of c settings each, the layer forwards number c + c^2 + ... + c^L instead of
    L * c^L. Hardware metrics come from the runners (they are analytic and cheap).
    """
    space, traced = setup.space, setup.traced
    gm = traced.gm
    nodes = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output")]
    previous = None
    for node in nodes:
        if node.op != "call_module" or len(node.all_input_nodes) != 1:
            raise ValueError(f"enumerate_values needs a chain of modules; node {node.name} is not one")
        if previous is not None and node.all_input_nodes[0] is not previous:
            raise ValueError(f"enumerate_values needs a chain of modules; {node.name} branches")
        previous = node
    searched = [layer for layer in space.layers if layer.params]
    names = [layer.name for layer in searched]
    # Per searched layer: the quantized module of each of its combinations.
    modules = {
        layer.name: [setup.quantizer.build({layer.name: cfg}).get_submodule(layer.name) for cfg in layer.configs]
        for layer in searched
    }
    # Segments: the float modules from one searched layer (exclusive) to the next.
    segments: list[list[torch.nn.Module]] = [[]]
    for node in nodes:
        if node.target in modules:
            segments.append([])
        else:
            segments[-1].append(gm.get_submodule(node.target))
    basic = setup.runners.software[0]
    x, y = basic._x, basic._y  # the runner's own samples: the same tensors, the same order
    sizes = [layer.size for layer in searched]
    total = math.prod(sizes)
    values = np.empty(total, dtype=np.float64)

    def run_segment(h: torch.Tensor, mods: list[torch.nn.Module]) -> torch.Tensor:
        for m in mods:
            h = m(h)
        return h

    terms = setup.objective.terms

    def objective_value(combo: tuple[int, ...], accuracy: float) -> float:
        config = {name: searched[i].configs[c] for i, (name, c) in enumerate(zip(names, combo))}
        hw = {}
        for runner in setup.runners.hardware:
            hw.update(runner.run(setup.runners.candidate(config)))
        metrics = {"accuracy": accuracy, **hw}
        return math.fsum(t.scaled(metrics) for t in terms)

    with torch.inference_mode():
        h0 = run_segment(x, segments[0])

        def descend(depth: int, h: torch.Tensor, combo: tuple[int, ...], index: int) -> None:
            layer = names[depth]
            for c, module in enumerate(modules[layer]):
                out = run_segment(module(h), segments[depth + 1])
                child = index * sizes[depth] + c
                if depth + 1 < len(names):
                    descend(depth + 1, out, combo + (c,), child)
                else:
                    accuracy = float((out.argmax(dim=-1) == y).double().mean())
                    values[child] = objective_value(combo + (c,), accuracy)

        descend(0, h0, (), 0)
    return values


def cached_values(setup: Prepared, cache_dir: Path, *, seed: int) -> tuple[np.ndarray, float]:
    """:func:`enumerate_values`, cached in ``cache_dir`` (returns values and seconds taken)."""
    problem = setup.problem
    path = cache_dir / f"{problem.name}_seed{seed}_e{problem.epochs}_n{problem.num_samples}_values.npy"
    if path.is_file():
        return np.load(path), 0.0
    started = time.perf_counter()
    values = enumerate_values(setup)
    seconds = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, values)
    return values, seconds


def check_against_runners(setup: Prepared, values: np.ndarray, n: int, *, seed: int = 0) -> int:
    """Evaluate ``n`` random configurations the search's way; they must match exactly."""
    rng = random.Random(seed)
    space = setup.space
    for _ in range(n):
        index = rng.randrange(space.size)
        config = space.decode(space.params_at(index))
        value = setup.objective.evaluate(setup.runners.run(config)).values[0]
        if value != values[index]:
            raise SystemExit(
                f"enumeration and runners disagree at {space.params_at(index)}: "
                f"{values[index]!r} against {value!r}"
            )
    return n


def describe_optimum(setup: Prepared, values: np.ndarray) -> list[str]:
    """Where the optimum lies, against the all-max and all-min configurations."""
    space = setup.space
    best = int(np.argmax(values))
    params = space.params_at(best)
    top = {p.name: max(p.choices) for p in space.params}
    low = {p.name: min(p.choices) for p in space.params}
    ties = int(np.sum(values == values[best]))
    text = ", ".join(f"{k.replace('/', '.')}={v}" for k, v in params.items())
    return [
        f"Optimum {values[best]:.6f} at {text} ({ties} configuration(s) reach it).",
        f"All-max (8 bits everywhere): {values[space.index_of(top)]:.6f}; all-min (2 bits): "
        f"{values[space.index_of(low)]:.6f}; mean over the space: {values.mean():.6f}; float "
        f"model accuracy {setup.float_accuracy:.4f}.",
    ]


DEFAULT_STRATEGIES = ("sensitivity", "tpe", "random", "qmc", "nsgaii", "brute_force")


def main(argv: Sequence[str] | None = None) -> int:
    from bitscout.evaluation import CachedEvaluator, Evaluation, RunnerEvaluator

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", default="mlp,cnn", help="comma-separated: mlp, cnn")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n-trials", type=int, default=1000)
    parser.add_argument("--budgets", default="25,50,100,200,500,1000")
    parser.add_argument("--check", type=int, default=50, help="configurations checked against the runners")
    parser.add_argument("--cache", type=Path, default=Path(".cache/sample_efficiency"))
    parser.add_argument("--out", type=Path, default=Path("runs/sample_efficiency"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small tensors: threads only add contention
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    for name in [s.strip() for s in args.spaces.split(",") if s.strip()]:
        problem = SPACES[name]
        print(f"== {name}: {problem.description}", flush=True)
        setup = prepare(problem, args.cache)
        print(setup.space.describe())
        values, seconds = cached_values(setup, args.cache, seed=0)
        took = f"in {seconds:.1f} s" if seconds else "(cached)"
        print(f"enumerated {len(values):,} configurations {took}", flush=True)
        checked = check_against_runners(setup, values, args.check)
        notes = describe_optimum(setup, values)
        notes.append(
            f"Exhaustive values from a prefix-sharing enumeration {took}; {checked} random "
            "configurations re-evaluated by the search's runners gave identical values."
        )
        print("\n".join(notes), flush=True)
        cache = CachedEvaluator(RunnerEvaluator(setup.runners, setup.objective), key=setup.space.key)
        for index in range(setup.space.size):
            cache.add(setup.space.decode(setup.space.params_at(index)), Evaluation(values=(float(values[index]),)))
        compare_and_save(setup, strategies, args, budgets, cache, notes, args.out / name)
    return 0


def compare_and_save(setup, strategies, args, budgets, cache, notes, out: Path, **options) -> None:
    """Run the comparison of one benchmark space, save it in ``out`` and print its table.

    ``options`` go to :func:`compare_strategies` (``constraints=`` for benchmarks/constrained.py).
    """
    from bitscout.compare import compare_strategies, format_comparison

    started = time.perf_counter()
    comparison = compare_strategies(
        setup.space,
        setup.runners,
        setup.objective,
        strategies,
        seeds=args.seeds,
        n_trials=args.n_trials,
        budgets=budgets,
        cache=cache,
        progress=True,
        notes=notes,
        **options,
    )
    paths = comparison.save(out)
    print(format_comparison(comparison))
    print(f"({time.perf_counter() - started:.0f} s; files: {', '.join(str(p) for p in paths.values())})\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
