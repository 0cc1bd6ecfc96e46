"""The sample-efficiency suite: models x spaces x objectives, every table cached on disk.

A *member* is one search problem: a trained model, a search space over its layers and an
objective (a weighting of accuracy against bit costs, a hard budget through the
constraints feature, or a Pareto pair). Strategies are measured on every member with the
search's own loop; what a configuration is worth comes from a table computed once, so a
run costs table lookups, not model evaluations.

The API (``benchmarks/`` on ``sys.path``, then ``import suite``)::

    suite.names()                  # every member, e.g. "mlp/w1", "cnn/budget", "deep/pareto"
    suite.names(quick=True)        # the small subset the --quick run and the tests use
    m = suite.load("mlp/w1")       # trains/enumerates on first use, then reads .cache/
    m.space                        # bitscout.space.SearchSpace
    m.evaluator                    # bitscout Evaluator answering from the table (a CachedEvaluator)
    m.directions                   # ["maximize"] or, for Pareto members, one per objective
    m.constraints                  # bitscout.metrics.Constraints or None
    m.optimum                      # Optimum: .value / .front, .exact (False: best known), ...
    m.reached(value)               # whether an objective value equals the optimum
    m.compare(["tpe", "sensitivity"], seeds=20, n_trials=1000)   # bitscout.compare on it

and with bitscout's own entry points::

    from bitscout.compare import compare_strategies
    compare_strategies(m.space, m.runners, m.objective, ["tpe"], cache=m.evaluator,
                       constraints=m.constraints, exact_limit=m.exact_limit)
    from bitscout.study import run_search
    sampler = strategy.make_sampler(m.space, seed=0, directions=m.directions, options={},
                                    n_trials=1000, constraints=m.hardware_constraints)
    run_search(m.space, sampler, m.evaluator, out_dir=tmp, storage=InMemoryStorage(),
               n_trials=1000, progress=False, write_outputs=False)

Models (trained once, seeded, checkpoints cached):

* ``mlp``: the digits MLP 64-64-32-10 (40 epochs), as in the two-space benchmark.
* ``cnn``: the mnist5k CNN (8 and 16 channels, 8 epochs), likewise.
* ``jsc``: ``jsc-tiny`` (BatchNorm, ReLU, Linear 16-5, ReLU) on SYNTHETIC jet-substructure
  data: 12,000 rows drawn from a seeded class-conditional model, written as a CSV in the
  OpenML ``hls4ml_lhc_jets_hlf`` format and read through bitscout's own JSC loader (MASE's
  preprocessing, validation = training split). Its accuracies say nothing about real JSC.
* ``deep``: a 6-layer digits MLP 64-64-64-64-32-10 (30 epochs).

Spaces (``space.describe()`` prints each):

* ``mlp``: weight and input widths of fc1..fc3 in {2, 3, 4, 5, 6, 8}, fixed point with
  ``frac_width = "NA"`` (width // 2): 46,656 configurations, exact.
* ``mlp-shuffled``: the same space with each parameter's six widths listed in a fixed
  shuffled order (the same configurations and table; a strategy must not lean on order).
* ``mlp-int``: the ``int`` (scaled integer) format on fc1..fc3 with UNORDERED choices per
  layer: weight width {2, 3, 4, 6, 8}, input width {2, 4, 8}, ``weight_granularity``
  {tensor, channel} (a scale per output channel costs 32 bits each, counted in
  ``average_bitwidth``) and ``data_in_symmetric`` {true, false}: 216,000, exact.
* ``cnn``: weight widths of conv1, conv2, fc in {2..8} and input widths as in the
  two-space benchmark: 25,920, exact.
* ``jsc``: format NAME per layer: the Linear layer's ``name`` in {integer, int, log}
  (unordered), its weight width in {2, 3, 4, 5, 6, 8}, input width in {2, 3, 4, 6, 8},
  bias width in {4, 8}; the first ReLU's input in {3, 4, 6, 8} bits with
  ``data_in_frac_width`` in {"auto", "NA"} (unordered): 1,440, exact.
* ``jsc-shuffled``: the jsc space with every parameter's choices, the format names and
  ``"auto"``/``"NA"`` included, listed in a fixed shuffled order (the same table).
* ``deep``: weight width in {2, 3, 4, 6, 8} and input width in {3, 4, 6, 8} for each of
  fc1..fc6 (``frac_width = "auto"``): 64,000,000 configurations. Too many to enumerate:
  a configuration is evaluated the first time any run asks for it and kept in an
  on-disk cache; the "optimum" is the BEST KNOWN value (over every configuration ever
  evaluated, seeded by a coordinate-ascent polish from 12 starts), flagged ``exact=False``.

Objectives (every model; the same metrics table serves all of them):

* ``w1``: accuracy - 0.2 average_bitwidth/32 - 0.2 activation_bitwidth/32 (the DESIGN's sum)
* ``w2``: accuracy - 0.6 average_bitwidth/32 - 0.05 activation_bitwidth/32 (weights dear)
* ``w3``: accuracy - 0.05 average_bitwidth/32 - 0.6 activation_bitwidth/32 (activations dear)
* ``w4``: accuracy - 0.4 bitops/bitops_float (an interaction: weight x input bits per MAC)
* ``budget``: accuracy alone, constraint ``average_bitwidth <= 4`` (mlp, cnn: what
  ``benchmarks/constrained.py`` measured) or ``weight_bytes <= 3/8 of the float32
  weights' bytes``, i.e. 3 bits a weight on average (jsc, deep)
* ``pareto``: accuracy (maximize) and average_bitwidth (minimize), not summed.

Members: every model x every objective, plus ``mlp-shuffled/w1``, ``jsc-shuffled/w1``
and ``mlp-int/w1``, ``mlp-int/w2``, ``mlp-int/budget`` (29). Everything is deterministic; values are bit-identical
to the search's own runners (checked on random configurations when a table is built).

Cache: ``.cache/sample_efficiency/`` (override with ``BITSCOUT_SUITE_CACHE``), keyed by a
hash of each recipe and of the scoring code the values come from, so a changed recipe or
a changed metric never reads a stale table.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import random
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bitscout.config.schema import MetricSpec, Setup, StrategyConfig
from bitscout.data import JSC_CLASS_NAMES, JSC_FEATURES, Dataset, load_dataset
from bitscout.evaluation import (
    CachedEvaluator,
    Evaluation,
    Evaluator,
    ExhaustiveResult,
    ObjectiveEvaluator,
    TableEvaluator,
    evaluate_runner_set_exhaustively,
)
from bitscout.metrics import Constraints, MetricWarning, Objective, RunContext, RunnerSet, TrialMetrics, build_runners
from bitscout.models import build_model, load_checkpoint, save_checkpoint
from bitscout.quant import Quantizer, prepare_ptq
from bitscout.space import SearchSpace
from bitscout.training import evaluate, train

__all__ = [
    "ModelSpec",
    "SpaceSpec",
    "ObjectiveSpec",
    "Optimum",
    "Member",
    "MODELS",
    "SPACES",
    "OBJECTIVES",
    "MEMBERS",
    "QUICK",
    "names",
    "load",
    "cache_dir",
]

WIDTHS = (2, 3, 4, 5, 6, 8)
CHECKED = 12
"""Random configurations re-evaluated by the search's own runners when a table is built."""


def cache_dir() -> Path:
    """Where tables and checkpoints live (``BITSCOUT_SUITE_CACHE`` or ``.cache/sample_efficiency``)."""
    return Path(os.environ.get("BITSCOUT_SUITE_CACHE", ".cache/sample_efficiency"))


def _digest(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()[:10]


@functools.lru_cache(maxsize=None)
def _metrics_code() -> str:
    """A digest of the code a table's values come from: the trial's scoring (accuracy,
    cross-entropy) and the runner that calls it. A change there (session 8 moved every
    loss by one float32 rounding) must not let an older table be read as current."""
    import bitscout.metrics._software as software
    import bitscout.training._evaluate as evaluate
    import bitscout.training._scores as scores

    return _digest(*(Path(m.__file__).read_text() for m in (scores, evaluate, software)))


# -- recipes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A trained model: data, architecture and training recipe.

    Attributes:
        name: Suite name of the model.
        dataset: A registered data set name, or ``"synthetic-jsc"`` (written here).
        model: bitscout model name (``mlp``, ``cnn``, ``jsc-tiny``).
        options: The model's options.
        epochs, learning_rate, batch_size: Training recipe (seed 0).
        num_samples: Validation samples every configuration is evaluated on.
        description: One line for the tables.
    """

    name: str
    dataset: str
    model: str
    options: Mapping[str, Any]
    epochs: int
    learning_rate: float
    batch_size: int
    num_samples: int
    description: str


@dataclass(frozen=True)
class SpaceSpec:
    """A search space over one model's layers.

    Attributes:
        name: Suite name of the space.
        model: The :class:`ModelSpec` name.
        choices: Layer -> field -> choices (MASE's flat form, as ``SearchSpace`` takes).
        exact: Enumerate every configuration (exact optimum); else evaluate lazily.
        shuffle: Seed that shuffles the listed order of every parameter's choices (None:
            as written). The configurations, hence the table, are those of ``table_of``.
        table_of: The space whose table this one reads (itself when None).
        description: One line for the tables.
    """

    name: str
    model: str
    choices: Mapping[str, Mapping[str, tuple[Any, ...]]]
    exact: bool
    description: str
    shuffle: int | None = None
    table_of: str | None = None

    def layer_choices(self) -> dict[str, dict[str, list[Any]]]:
        """The choices as ``SearchSpace`` takes them, shuffled when asked."""
        out: dict[str, dict[str, list[Any]]] = {}
        rng = random.Random(self.shuffle)
        for layer, fields in self.choices.items():
            out[layer] = {}
            for name, values in fields.items():
                values = list(values)
                if self.shuffle is not None and len(values) > 1:
                    original = list(values)
                    while values == original:  # a shuffle that changes nothing tests nothing
                        rng.shuffle(values)
                out[layer][name] = values
        return out


@dataclass(frozen=True)
class ObjectiveSpec:
    """An objective over the suite's metrics.

    Attributes:
        name: Suite name (``w1``, ``budget``, ``pareto``, ...).
        metrics: (metric, scale, direction or None, normalize) per term.
        sum_scaled: One summed objective (True) or one per metric (a Pareto search).
        constraints: ``[search.strategy.constraints]`` as a mapping, per model name
            (``"*"``: every model), or None.
        description: One line for the tables.
    """

    name: str
    metrics: tuple[tuple[str, float, str | None, bool], ...]
    description: str
    sum_scaled: bool = True
    constraints: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None

    def constraints_for(self, model: str) -> dict[str, dict[str, float]] | None:
        if self.constraints is None:
            return None
        chosen = self.constraints.get(model, self.constraints.get("*"))
        return None if chosen is None else {k: dict(v) for k, v in chosen.items()}


def _linear(name: str, weight: Sequence[Any], data_in: Sequence[Any], frac: str = "NA", **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": ("integer",),
        "weight_width": tuple(weight),
        "weight_frac_width": (frac,),
        "data_in_width": tuple(data_in),
        "data_in_frac_width": (frac,),
        "bias_width": (8,),
        "bias_frac_width": (frac,),
    }
    fields.update({k: tuple(v) for k, v in extra.items()})
    return fields


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(
        "mlp", "digits", "mlp", {"hidden": (64, 32)}, 40, 3e-3, 64, 540,
        "digits MLP 64-64-32-10",
    ),
    "cnn": ModelSpec(
        "cnn", "mnist5k", "cnn", {"channels": (8, 16)}, 8, 3e-3, 64, 500,
        "mnist5k CNN (8, 16 channels)",
    ),
    "jsc": ModelSpec(
        "jsc", "synthetic-jsc", "jsc-tiny", {}, 12, 1e-2, 256, 2000,
        "jsc-tiny on SYNTHETIC JSC-format data",
    ),
    "deep": ModelSpec(
        "deep", "digits", "mlp", {"hidden": (64, 64, 64, 64, 32)}, 30, 3e-3, 64, 540,
        "deep digits MLP 64-64-64-64-64-32-10 (6 Linear layers)",
    ),
}

_INT = {
    "name": ("int",),
    "weight_width": (2, 3, 4, 6, 8),
    "data_in_width": (2, 4, 8),
    "bias_width": (8,),
    "weight_granularity": ("tensor", "channel"),
    "data_in_symmetric": (True, False),
}

# The jsc space's choices: a format name and widths of the Linear layer, input width and
# frac width of the first ReLU (jsc-shuffled lists the same choices in another order).
_JSC_LAYERS = {
    "seq_blocks_1": {
        "name": ("integer",),
        "data_in_width": (3, 4, 6, 8),
        "data_in_frac_width": ("auto", "NA"),
    },
    "seq_blocks_2": {
        "name": ("integer", "int", "log"),
        "weight_width": WIDTHS,
        "data_in_width": (2, 3, 4, 6, 8),
        "bias_width": (4, 8),
    },
}

SPACES: dict[str, SpaceSpec] = {
    "mlp": SpaceSpec(
        "mlp", "mlp",
        {name: _linear(name, WIDTHS, WIDTHS) for name in ("fc1", "fc2", "fc3")},
        exact=True,
        description="weight and input widths of fc1..fc3 in {2,3,4,5,6,8}",
    ),
    "mlp-shuffled": SpaceSpec(
        "mlp-shuffled", "mlp",
        {name: _linear(name, WIDTHS, WIDTHS) for name in ("fc1", "fc2", "fc3")},
        exact=True,
        shuffle=17,
        table_of="mlp",
        description="the mlp space with every parameter's widths listed in a shuffled order",
    ),
    "mlp-int": SpaceSpec(
        "mlp-int", "mlp",
        {name: dict(_INT) for name in ("fc1", "fc2", "fc3")},
        exact=True,
        description="int format on fc1..fc3: weight width, input width, weight granularity "
        "{tensor, channel}, input symmetric {true, false}",
    ),
    "cnn": SpaceSpec(
        "cnn", "cnn",
        {
            "conv1": _linear("conv1", WIDTHS, (2, 3, 4, 8)),
            "conv2": _linear("conv2", WIDTHS, WIDTHS),
            "fc": _linear("fc", WIDTHS, (2, 3, 4, 6, 8)),
        },
        exact=True,
        description="weight and input widths of conv1, conv2, fc",
    ),
    "jsc": SpaceSpec(
        "jsc", "jsc",
        _JSC_LAYERS,
        exact=True,
        description="format name {integer, int, log} and widths of the Linear layer; "
        "input width and frac width {auto, NA} of the first ReLU",
    ),
    "jsc-shuffled": SpaceSpec(
        "jsc-shuffled", "jsc",
        _JSC_LAYERS,
        exact=True,
        shuffle=5,
        table_of="jsc",
        description="the jsc space with every parameter's choices (format names too) listed in a shuffled order",
    ),
    "deep": SpaceSpec(
        "deep", "deep",
        {f"fc{i}": _linear(f"fc{i}", (2, 3, 4, 6, 8), (3, 4, 6, 8), frac="auto") for i in range(1, 7)},
        exact=False,
        description="weight width {2,3,4,6,8} and input width {3,4,6,8} of fc1..fc6",
    ),
}

_BUDGETS = {
    "mlp": {"average_bitwidth": {"max": 4.0}},
    "cnn": {"average_bitwidth": {"max": 4.0}},
}

OBJECTIVES: dict[str, ObjectiveSpec] = {
    "w1": ObjectiveSpec(
        "w1",
        (("accuracy", 1.0, None, False), ("average_bitwidth", 0.2, "minimize", True),
         ("activation_bitwidth", 0.2, "minimize", True)),
        "accuracy - 0.2 weight-width ratio - 0.2 activation-width ratio",
    ),
    "w2": ObjectiveSpec(
        "w2",
        (("accuracy", 1.0, None, False), ("average_bitwidth", 0.6, "minimize", True),
         ("activation_bitwidth", 0.05, "minimize", True)),
        "accuracy - 0.6 weight-width ratio - 0.05 activation-width ratio",
    ),
    "w3": ObjectiveSpec(
        "w3",
        (("accuracy", 1.0, None, False), ("average_bitwidth", 0.05, "minimize", True),
         ("activation_bitwidth", 0.6, "minimize", True)),
        "accuracy - 0.05 weight-width ratio - 0.6 activation-width ratio",
    ),
    "w4": ObjectiveSpec(
        "w4",
        (("accuracy", 1.0, None, False), ("bitops", 0.4, "minimize", True)),
        "accuracy - 0.4 bitops ratio (weight x input bits per MAC)",
    ),
    "budget": ObjectiveSpec(
        "budget",
        (("accuracy", 1.0, None, False),),
        "accuracy; hard budget (constraint)",
        constraints=_BUDGETS,
    ),
    "pareto": ObjectiveSpec(
        "pareto",
        (("accuracy", 1.0, "maximize", False), ("average_bitwidth", 1.0, "minimize", False)),
        "Pareto: accuracy (max) vs average_bitwidth (min)",
        sum_scaled=False,
    ),
}

_ALL_OBJECTIVES = ("w1", "w2", "w3", "w4", "budget", "pareto")
MEMBERS: dict[str, tuple[str, str]] = {
    **{f"mlp/{o}": ("mlp", o) for o in _ALL_OBJECTIVES},
    "mlp-shuffled/w1": ("mlp-shuffled", "w1"),
    "mlp-int/w1": ("mlp-int", "w1"),
    "mlp-int/w2": ("mlp-int", "w2"),
    "mlp-int/budget": ("mlp-int", "budget"),
    **{f"cnn/{o}": ("cnn", o) for o in _ALL_OBJECTIVES},
    **{f"jsc/{o}": ("jsc", o) for o in _ALL_OBJECTIVES},
    "jsc-shuffled/w1": ("jsc-shuffled", "w1"),
    **{f"deep/{o}": ("deep", o) for o in _ALL_OBJECTIVES},
}
"""Member name -> (space, objective)."""

QUICK = ("jsc/w1", "jsc/w3", "jsc/budget", "jsc/pareto", "mlp/w1", "mlp-shuffled/w1")
"""The members of ``names(quick=True)``: small tables, every kind of objective."""


def names(quick: bool = False) -> list[str]:
    """Member names, in the suite's order (``quick``: the subset the tests run)."""
    return list(QUICK) if quick else list(MEMBERS)


# -- synthetic JSC data --------------------------------------------------------------------


def synthetic_jsc_file(folder: Path, rows: int = 12_000, seed: int = 0) -> Path:
    """Write SYNTHETIC jet-substructure data as OpenML's ``hls4ml_lhc_jets_hlf.csv``.

    Five classes (g, q, w, z, t) with class-dependent means along a random mixing of the
    16 features, class-dependent spreads, two positive heavy-tailed features (a mass
    and an integer multiplicity): separable enough for ``jsc-tiny`` to reach ~70%, far
    from trivially. Seeded: the same file every time.
    """
    path = folder / f"synthetic-{rows}-{seed}" / "hls4ml_lhc_jets_hlf.csv"
    if path.is_file():
        return path
    import pandas as pd

    rng = np.random.default_rng(seed)
    k, d = len(JSC_CLASS_NAMES), len(JSC_FEATURES)
    y = rng.integers(0, k, size=rows)
    centres = rng.normal(0.0, 1.0, size=(k, 6))
    mixing = rng.normal(0.0, 1.0, size=(6, d)) / np.sqrt(6)
    spread = 0.6 + 0.5 * rng.random(size=(k, d))
    latent = centres[y] + rng.normal(0.0, 0.9, size=(rows, 6))
    x = latent @ mixing + rng.normal(0.0, 1.0, size=(rows, d)) * spread[y]
    x[:, -2] = np.exp(0.5 * x[:, -2] + 3.0)  # a mass: positive, skewed
    x[:, -1] = np.round(np.exp(0.3 * x[:, -1] + 2.5))  # a multiplicity: a positive integer
    frame = pd.DataFrame(x.astype(np.float32), columns=list(JSC_FEATURES))
    frame["class"] = [JSC_CLASS_NAMES[i] for i in y]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


# -- the prepared model --------------------------------------------------------------------

_METRIC_RUNNERS = {"average_bitwidth": {}, "activation_bitwidth": {}, "model_size": {}, "bitops": {}}


@dataclass
class Prepared:
    """A trained model made ready to evaluate: data, traced graph, quantizer, runners."""

    spec: ModelSpec
    dataset: Dataset
    runners: RunnerSet
    float_accuracy: float
    checkpoint: Path


def _dataset(spec: ModelSpec, root: Path) -> Dataset:
    if spec.dataset == "synthetic-jsc":
        return load_dataset("jsc", path=synthetic_jsc_file(root / "jsc-data"))
    return load_dataset(spec.dataset, seed=0)


def _runner_config(spec: ModelSpec) -> StrategyConfig:
    return StrategyConfig(
        sw_runners={"basic_evaluation": {"data_loader": "val_dataloader", "num_samples": spec.num_samples}},
        hw_runners={k: dict(v) for k, v in _METRIC_RUNNERS.items()},
        setup=Setup(sum_scaled_metrics=True, direction="maximize"),
        metrics={"accuracy": MetricSpec(scale=1.0)},
    )


@functools.lru_cache(maxsize=None)
def prepare(model: str) -> Prepared:
    """Train (or load) model ``model`` and build its runners, as a search would."""
    spec = MODELS[model]
    root = cache_dir()
    dataset = _dataset(spec, root)
    torch.manual_seed(0)
    net = build_model(spec.model, dataset.info, dict(spec.options))
    ckpt = root / f"{spec.name}_{_digest(spec.model, dict(spec.options), spec.dataset, spec.epochs, spec.learning_rate, spec.batch_size)}.pt"
    if ckpt.is_file():
        load_checkpoint(net, ckpt)
    else:
        print(f"[suite] training {spec.name} ({spec.epochs} epochs) ...", flush=True)
        result = train(
            net, dataset, epochs=spec.epochs, batch_size=spec.batch_size,
            learning_rate=spec.learning_rate, seed=0, progress=False,
        )
        save_checkpoint(net, ckpt, {"model": spec.model, "dataset": spec.dataset, "metrics": result.best_val.as_dict()})
    net.eval()
    split = dataset.val if len(dataset.val) else dataset.train
    # As prepare_search does: BatchNorm folded where it can be, ranges calibrated once
    # on the first 256 training samples (the config default).
    prepared = prepare_ptq(net, split.x[:2], dataset.train.x[:256], fold_bn=True, source="train[:256]")
    context = RunContext(
        traced=prepared.traced,
        quantizer=Quantizer(prepared.traced, calibration=prepared.calibration),
        dataset=dataset,
        device=torch.device("cpu"),
        batch_size=256,
        seed=0,
    )
    runners = build_runners(_runner_config(spec), context)
    return Prepared(spec, dataset, runners, runners.reference().software["accuracy"], ckpt)


@functools.lru_cache(maxsize=None)
def _space(name: str) -> SearchSpace:
    spec = SPACES[name]
    return SearchSpace(prepare(spec.model).runners.context.traced.table, spec.layer_choices())


# -- metric tables -------------------------------------------------------------------------


def _table_path(space: str) -> Path:
    spec = SPACES[space]
    model = MODELS[spec.model]
    key = _digest(model, {k: dict(v) for k, v in spec.choices.items()}, sorted(_METRIC_RUNNERS), _metrics_code())
    return cache_dir() / f"table_{space}_{key}.npz"


def _check(space: SearchSpace, runners: RunnerSet, measure: Any, n: int, *, seed: int = 0) -> None:
    """``n`` random configurations measured the search's way must match ``measure`` exactly."""
    rng = random.Random(seed)
    for _ in range(n):
        config = space.decode(space.distinct_params_at(rng.randrange(space.distinct_size)))
        fresh, stored = runners.run(config), measure(config)
        if fresh.software != stored.software or fresh.hardware != stored.hardware:
            raise RuntimeError(
                f"suite table and runners disagree at {space.key(config)}: {stored} against {fresh}"
            )


@functools.lru_cache(maxsize=None)
def table(space: str) -> ExhaustiveResult:
    """The metrics of every configuration of an exact space (enumerated once, cached)."""
    spec = SPACES[space]
    if spec.table_of is not None:
        base = table(spec.table_of)
        return base  # configs of a reordered space are looked up by value in the base table
    if not spec.exact:
        raise ValueError(f"space {space!r} is evaluated lazily; it has no table")
    path = _table_path(space)
    sp = _space(space)
    runners = prepare(spec.model).runners
    if path.is_file():
        with np.load(path) as data:
            hardware = {k[3:]: data[k] for k in data.files if k.startswith("hw_")}
            return ExhaustiveResult(
                space=sp, accuracy=data["accuracy"], balanced_accuracy=data["balanced_accuracy"],
                loss=data["loss"], hardware=hardware, num_samples=int(data["num_samples"]),
                seconds=float(data["seconds"]),
            )
    print(f"[suite] enumerating {sp.distinct_size:,} configurations of {space} ...", flush=True)
    result = evaluate_runner_set_exhaustively(sp, runners)
    _check(sp, runners, result.metrics_for, CHECKED)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp, accuracy=result.accuracy, balanced_accuracy=result.balanced_accuracy, loss=result.loss,
        num_samples=result.num_samples, seconds=result.seconds,
        **{f"hw_{k}": v for k, v in result.hardware.items()},
    )
    tmp.replace(path)
    print(f"[suite] {space}: {len(result):,} configurations in {result.seconds:.1f} s", flush=True)
    return result


class LazyTable:
    """Metrics of a space too large to enumerate, computed on first request and kept on disk.

    Accuracy, balanced accuracy and loss are computed by a chain walk that reuses the
    quantized layer modules a candidate would hold and the activations of recently seen
    prefixes (the models here are chains of layers); the results are those of
    ``runners.run`` bit for bit (checked on random configurations when the table is
    first opened). Hardware metrics come from the configuration (the analytic runners).
    Records are appended to one binary file (index, accuracy, balanced accuracy, loss),
    so every run, in any process, adds to what later runs find.
    """

    _RECORD = np.dtype([("index", "<i8"), ("accuracy", "<f8"), ("balanced_accuracy", "<f8"), ("loss", "<f8")])

    def __init__(self, space_name: str, space: SearchSpace, runners: RunnerSet, path: Path) -> None:
        self.space_name = space_name
        self.space = space
        self.runners = runners
        self.path = path
        self.software: dict[int, tuple[float, float, float]] = {}
        self.computed = 0
        self._hardware: dict[int, dict[str, float]] = {}
        self._positions = [
            {cfg: pos for cfg, pos in zip(layer.configs, layer.distinct)} for layer in space.layers
        ]
        # decode() hands out the layers' own config objects: look them up by identity
        # first (hashing a frozen config walks all its formats).
        self._by_id = [
            {id(cfg): pos for cfg, pos in zip(layer.configs, layer.distinct)} for layer in space.layers
        ]
        self._prefix: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()
        self._plan = self._make_plan()
        # The samples basic_evaluation scores, as evaluate_runner_set_exhaustively takes them.
        evaluation = runners.software[0]
        split = runners.context.dataset.split(evaluation.options.data_loader)
        self._x = split.x[: evaluation.num_samples].to(runners.context.device)
        self._y = split.y[: evaluation.num_samples].to(runners.context.device)
        self._read = 0  # records of the file read so far
        if path.is_file():
            self.reload()
        else:
            _check(space, runners, self.metrics, CHECKED)

    def __len__(self) -> int:
        return len(self.software)

    def reload(self) -> int:
        """Read the records other processes appended since the last read; returns how many."""
        if not self.path.is_file():
            return 0
        size = self.path.stat().st_size // self._RECORD.itemsize  # whole records only
        records = np.fromfile(self.path, dtype=self._RECORD, count=size - self._read, offset=self._read * self._RECORD.itemsize)
        for r in records:
            self.software[int(r["index"])] = (float(r["accuracy"]), float(r["balanced_accuracy"]), float(r["loss"]))
        self._read = size
        return len(records)

    def _make_plan(self) -> tuple[list[list[torch.nn.Module]], list[list[torch.nn.Module]]]:
        traced = self.runners.context.traced
        gm = traced.gm
        nodes = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output")]
        previous = None
        for node in nodes:
            if node.op != "call_module" or len(node.all_input_nodes) != 1:
                raise ValueError(f"LazyTable needs a chain of modules; node {node.name} is not one")
            if previous is not None and node.all_input_nodes[0] is not previous:
                raise ValueError(f"LazyTable needs a chain of modules; {node.name} branches")
            previous = node
        quantizer = self.runners.context.quantizer
        searched = {layer.name: layer for layer in self.space.layers}
        segments: list[list[torch.nn.Module]] = [[]]
        modules: list[list[torch.nn.Module]] = []
        for node in nodes:
            layer = searched.get(str(node.target))
            if layer is not None and layer.params:
                per_config = []
                for r in layer.representatives:
                    cfg = layer.configs[r]
                    per_config.append(
                        gm.get_submodule(str(node.target)) if cfg is None
                        else quantizer.build({layer.name: cfg}).get_submodule(layer.name)
                    )
                modules.append(per_config)
                segments.append([])
            elif layer is not None and layer.configs[0] is not None:
                raise ValueError(f"LazyTable: layer {layer.name} has a fixed quantized config; search it or leave it float")
            else:
                segments[-1].append(gm.get_submodule(str(node.target)))
        return segments, modules

    def index_of(self, config: Mapping[str, Any]) -> tuple[int, tuple[int, ...]]:
        """The distinct index of a decoded config, and its per-layer positions."""
        index = 0
        digits = []
        for layer, by_id, positions in zip(self.space.layers, self._by_id, self._positions):
            cfg = config.get(layer.name)
            pos = by_id.get(id(cfg))
            if pos is None or layer.configs[layer.representatives[pos]] is not cfg:
                pos = positions[cfg]
            digits.append(pos)
            index = index * layer.distinct_size + pos
        return index, tuple(d for d, layer in zip(digits, self.space.layers) if layer.params)

    def _logits(self, digits: tuple[int, ...]) -> torch.Tensor:
        segments, modules = self._plan
        depth = len(digits)
        start = depth
        while start > 0 and digits[:start] not in self._prefix:
            start -= 1
        with torch.inference_mode():
            if start == 0:
                h = self._x
                for m in segments[0]:
                    h = m(h)
            else:
                h = self._prefix[digits[:start]]
                self._prefix.move_to_end(digits[:start])
            for k in range(start, depth):
                h = modules[k][digits[k]](h)
                for m in segments[k + 1]:
                    h = m(h)
                if k + 1 < depth:
                    self._prefix[digits[: k + 1]] = h
                    if len(self._prefix) > 512:
                        self._prefix.popitem(last=False)
        return h

    def metrics(self, config: Mapping[str, Any]) -> TrialMetrics:
        """The metrics of one decoded configuration (computed and stored on first request)."""
        index, digits = self.index_of(config)
        soft = self.software.get(index)
        if soft is None:
            logits = self._logits(digits)
            # Scored by the very function basic_evaluation calls (one chunk: the runners'
            # chunk holds every sample here, which the check on opening confirms).
            result = evaluate(_Fixed(logits), self._x, self._y, device=self._x.device)
            soft = (result.accuracy, result.balanced_accuracy, result.loss)
            self.software[index] = soft
            self.computed += 1
            record = np.array([(index, *soft)], dtype=self._RECORD)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as f:  # one small append: whole records, any process
                f.write(record.tobytes())
        hardware = self._hardware.get(index)
        if hardware is None:
            hardware = self._hardware[index] = self.runners.config_metrics(config)
        return TrialMetrics(
            software={"accuracy": soft[0], "balanced_accuracy": soft[1], "loss": soft[2]},
            hardware=dict(hardware),
        )


class _Fixed(torch.nn.Module):
    """A "model" that returns precomputed logits, so that ``evaluate`` scores them its way."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


@functools.lru_cache(maxsize=None)
def lazy_table(space: str) -> LazyTable:
    """The on-disk, lazily filled metrics of a space too large to enumerate."""
    spec = SPACES[space]
    model = MODELS[spec.model]
    key = _digest(model, {k: dict(v) for k, v in spec.choices.items()}, "lazy", _metrics_code())
    return LazyTable(space, _space(space), prepare(spec.model).runners, cache_dir() / f"lazy_{space}_{key}.bin")


class LazyTableEvaluator(ObjectiveEvaluator):
    """Answers a configuration from a :class:`LazyTable` (evaluating it on first request)."""

    def __init__(self, lazy: LazyTable, objective: Objective, *, constraints: Constraints | None = None) -> None:
        super().__init__(objective, constraints=constraints)
        self.lazy = lazy

    def measure(self, config: Mapping[str, Any]) -> TrialMetrics:
        return self.lazy.metrics(config)

    def baseline(self) -> Evaluation | None:
        return self.score(self.lazy.runners.reference())


# -- members -------------------------------------------------------------------------------


@dataclass
class Optimum:
    """What a run must reach.

    Attributes:
        exact: True when every configuration was evaluated; False: the best known value
            (over every configuration any run has evaluated so far).
        value: The best objective value (single objective), else None.
        front: The Pareto front's values (several objectives), else None.
        configs: Distinct configurations reaching ``value`` (exact only).
        params: One optimal parameter vector (single objective).
        mean: The mean objective over the (feasible) configurations (single objective;
            over the evaluated ones when not exact).
        reference_point: The hypervolume reference point (several objectives).
        hypervolume: The front's hypervolume from that point (several objectives).
        evaluated: Configurations the value is taken over.
        feasible: Of those, the ones meeting the constraints.
    """

    exact: bool
    value: float | None = None
    front: list[list[float]] | None = None
    configs: int | None = None
    params: dict[str, Any] | None = None
    mean: float | None = None
    reference_point: list[float] | None = None
    hypervolume: float | None = None
    evaluated: int = 0
    feasible: int = 0

    def describe(self) -> str:
        kind = "exact" if self.exact else f"best known over {self.evaluated:,} evaluated"
        if self.value is not None:
            return f"{self.value:.6f} ({kind}; {self.configs or '?'} configuration(s))"
        return f"front of {len(self.front or [])} points, hypervolume {self.hypervolume:.6g} ({kind})"


TOLERANCE = 1e-9
"""Two objective values closer than this are equal (sums of floats in other orders)."""


@dataclass
class Member:
    """One search problem of the suite (see the module docstring).

    Attributes:
        name: ``"<space>/<objective>"``.
        space: The search space.
        evaluator: Answers every configuration from the table (a CachedEvaluator over a
            TableEvaluator, or over a LazyTableEvaluator for lazy spaces).
        objective: The bitscout objective.
        constraints: The constraints (None without).
        runners: The runners the table reproduces (for ``compare_strategies``' signature).
        optimum: The exact optimum, or the best known (``optimum.exact`` says which).
        description: One line.
    """

    name: str
    space_name: str
    objective_name: str
    space: SearchSpace
    evaluator: CachedEvaluator
    objective: Objective
    constraints: Constraints | None
    runners: RunnerSet
    optimum: Optimum
    description: str
    float_accuracy: float
    _lazy: LazyTable | None = field(default=None, repr=False)
    _lazy_values: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def directions(self) -> list[str]:
        return list(self.objective.directions)

    @property
    def exact(self) -> bool:
        return self.optimum.exact

    @property
    def size(self) -> int:
        return int(self.space.distinct_size)

    @property
    def multi(self) -> bool:
        return len(self.directions) > 1

    @property
    def hardware_constraints(self) -> Constraints | None:
        """What strategies' ``make_sampler(constraints=...)`` takes (the config-decided part)."""
        return self.constraints.hardware_only if self.constraints else None

    @property
    def exact_limit(self) -> int:
        """What to give ``compare_strategies`` so that it enumerates exactly the exact members."""
        return self.size if self.exact else 0

    def reached(self, value: float | None) -> bool:
        """Whether a (feasible) objective value equals the single-objective optimum."""
        if value is None or self.optimum.value is None:
            return False
        sign = 1.0 if self.directions[0] == "maximize" else -1.0
        return sign * (self.optimum.value - value) <= TOLERANCE

    def refresh(self) -> Optimum:
        """Recompute a best-known optimum from everything evaluated so far (lazy members)."""
        if self._lazy is not None:
            self.optimum = _lazy_optimum(self)
        return self.optimum

    def compare(self, strategies: Sequence[Any], **options: Any) -> Any:
        """:func:`bitscout.compare.compare_strategies` on this member (options passed on)."""
        from bitscout.compare import compare_strategies

        options.setdefault("exact_limit", self.exact_limit)
        return compare_strategies(
            self.space, self.runners, self.objective, strategies,
            cache=self.evaluator, constraints=self.constraints, **options,
        )


def _objective(spec: ObjectiveSpec, model: str, runners: RunnerSet) -> tuple[Objective, Constraints | None]:
    strategy_cfg = StrategyConfig(
        setup=Setup(sum_scaled_metrics=spec.sum_scaled, direction="maximize"),
        metrics={
            metric: MetricSpec(scale=scale, direction=direction, normalize=normalize)
            for metric, scale, direction, normalize in spec.metrics
        },
        constraints=_budget(spec, model, runners),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)  # "MASE would add the costs": known
        objective = Objective.from_config(strategy_cfg, runners)
    constraints = Constraints.from_config(strategy_cfg, runners)
    return objective, (constraints if constraints else None)


def _budget(spec: ObjectiveSpec, model: str, runners: RunnerSet) -> dict[str, Any]:
    chosen = spec.constraints_for(model)
    if spec.constraints is not None and chosen is None:
        # jsc, deep: weight memory of 3 bits a weight on average, in bytes.
        float_bytes = runners.reference().hardware["weight_bytes"]
        chosen = {"weight_bytes": {"max": float_bytes * 3 / 32}}
    return chosen or {}


def _values(member: Member, configs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Objective values (rows) and feasibility of configurations, through the evaluator."""
    width = len(member.directions)
    values = np.full((len(configs), width), np.nan)
    feasible = np.zeros(len(configs), dtype=bool)
    for i, config in enumerate(configs):
        entry = member.evaluator.evaluate(config)
        if entry.ok and entry.feasible:
            values[i] = entry.values
            feasible[i] = True
    return values, feasible


def _front(points: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Non-dominated rows (``signs * value``: larger is better), duplicates once.

    Two objectives: one sweep in order of the first (O(n log n): the tables have up to
    216,000 points); more: bitscout's own O(n^2) ``pareto_front``.
    """
    pts = np.unique(points, axis=0)
    if pts.shape[1] != 2:
        from bitscout.study import pareto_front

        directions = ["maximize" if s > 0 else "minimize" for s in signs]
        return pts[pareto_front(pts, directions)]
    better = pts * signs
    order = np.lexsort((-better[:, 1], -better[:, 0]))  # best first, ties by the second
    keep, best_second = [], -math.inf
    for i in order:
        if better[i, 1] > best_second:
            keep.append(i)
            best_second = better[i, 1]
    return pts[sorted(keep)]


def hypervolume_of(points: np.ndarray, reference: Sequence[float], directions: Sequence[str]) -> float:
    """Hypervolume of ``points`` (raw values) up to ``reference``, two objectives."""
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    if len(points) == 0:
        return 0.0
    loss = -signs * np.asarray(points, dtype=float)
    ref = -signs * np.asarray(reference, dtype=float)
    loss = loss[(loss < ref).all(axis=1)]
    if len(loss) == 0:
        return 0.0
    if loss.shape[1] != 2:
        from bitscout._optuna_adapter import hypervolume

        return float(hypervolume(loss, ref))
    order = np.argsort(loss[:, 0], kind="stable")
    volume, best_y = 0.0, ref[1]
    for x, y in loss[order]:
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(volume)


def _optimum_from(member: Member, values: np.ndarray, feasible: np.ndarray, *, exact: bool, params_at: Any) -> Optimum:
    directions = member.directions
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    pool = values[feasible]
    if len(pool) == 0:
        raise RuntimeError(f"member {member.name}: no feasible configuration evaluated")
    if len(directions) == 1:
        column = pool[:, 0]
        best = float(column.max() if signs[0] > 0 else column.min())
        hits = np.flatnonzero(feasible & (np.abs(values[:, 0] - best) <= TOLERANCE))
        return Optimum(
            exact=exact, value=best, configs=int(len(hits)), params=params_at(int(hits[0])),
            mean=float(column.mean()), evaluated=len(values), feasible=int(feasible.sum()),
        )
    front = _front(pool, signs)
    worst = np.where(signs > 0, pool.min(axis=0), pool.max(axis=0))
    span = np.ptp(pool, axis=0)
    span[span == 0] = 1.0
    reference = worst - signs * 0.01 * span
    return Optimum(
        exact=exact, front=front.tolist(), reference_point=reference.tolist(),
        hypervolume=hypervolume_of(front, reference, directions),
        evaluated=len(values), feasible=int(feasible.sum()),
    )


def _exact_optimum(member: Member) -> Optimum:
    space = member.space
    key = _digest(member.name, str(_table_path(SPACES[member.space_name].table_of or member.space_name)),
                  [list(p.choices) for p in space.params])
    path = cache_dir() / f"values_{member.name.replace('/', '_')}_{key}.npz"
    if path.is_file():
        with np.load(path) as data:
            values, feasible = data["values"], data["feasible"]
    else:
        configs = [space.decode(space.distinct_params_at(i)) for i in range(space.distinct_size)]
        values, feasible = _values(member, configs)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, values=values, feasible=feasible)
        tmp.replace(path)
    return _optimum_from(member, values, feasible, exact=True, params_at=space.distinct_params_at)


def _lazy_optimum(member: Member) -> Optimum:
    """The best known over every configuration of the lazy table.

    The member's objective values of the table's configurations are kept on disk
    (``lazyvalues_<member>_<hash>.npz``) and extended with the configurations added
    since: loading a member, or refreshing it after a run, evaluates only those (tens of
    thousands of table look-ups otherwise, minutes per member).
    """
    lazy = member._lazy
    assert lazy is not None
    space = member.space
    key = _digest(member.name, lazy.path.name, member.description, len(member.directions))
    path = cache_dir() / f"lazyvalues_{member.name.replace('/', '_')}_{key}.npz"
    if member._lazy_values is None:
        width = len(member.directions)
        member._lazy_values = (np.zeros(0, dtype=np.int64), np.zeros((0, width)), np.zeros(0, dtype=bool))
        if path.is_file():
            with np.load(path) as data:
                member._lazy_values = (data["indices"], data["values"], data["feasible"])
    indices, values, feasible = member._lazy_values
    known = set(indices.tolist())
    new = np.array(sorted(i for i in lazy.software if i not in known), dtype=np.int64)
    if len(new):
        new_values, new_feasible = _values(member, [space.decode(space.distinct_params_at(int(i))) for i in new])
        indices = np.concatenate([indices, new])
        values = np.concatenate([values, new_values])
        feasible = np.concatenate([feasible, new_feasible])
        order = np.argsort(indices, kind="stable")  # index order: the same optimum.params as ever
        indices, values, feasible = indices[order], values[order], feasible[order]
        member._lazy_values = (indices, values, feasible)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, indices=indices, values=values, feasible=feasible)
        tmp.replace(path)

    def params_at(i: int) -> dict[str, Any]:
        return space.distinct_params_at(int(indices[i]))

    return _optimum_from(member, values, feasible, exact=False, params_at=params_at)


def _polish(member: Member, starts: int = 12, seed: int = 0) -> None:
    """Coordinate ascent from several starts, so that "best known" is a strong target.

    Single objective: from the all-widest configuration and ``starts - 1`` random ones,
    repeatedly move to the best single-parameter change until none improves. Pareto:
    the same on each summed weighting w1..w4 (their configurations enter the cache).
    """
    space = member.space
    rng = random.Random(seed)
    evaluators = [member.evaluator] if not member.multi else [load(f"{member.space_name}/{w}").evaluator for w in ("w1", "w2", "w3", "w4")]
    for evaluator in evaluators:
        sign = 1.0 if evaluator.directions[0] == "maximize" else -1.0

        def score(params: dict[str, Any]) -> float:
            entry = evaluator.evaluate(space.decode(params))
            return sign * entry.values[0] if entry.ok and entry.feasible else -math.inf

        for s in range(starts):
            if s == 0:
                params = {p.name: max(p.choices, key=lambda c: (isinstance(c, (int, float)), c)) for p in space.params}
            else:
                params = {p.name: rng.choice(p.choices) for p in space.params}
            best = score(params)
            improved = True
            while improved:
                improved = False
                for p in space.params:
                    for choice in p.choices:
                        if choice == params[p.name]:
                            continue
                        trial = {**params, p.name: choice}
                        value = score(trial)
                        if value > best + TOLERANCE:
                            params, best, improved = trial, value, True


@functools.lru_cache(maxsize=None)
def load(name: str) -> Member:
    """The member ``name`` (see :func:`names`), built on first use and cached on disk.

    Raises:
        KeyError: No such member (the message lists them).
    """
    if name not in MEMBERS:
        raise KeyError(f"no suite member {name!r}; members: {', '.join(MEMBERS)}")
    space_name, objective_name = MEMBERS[name]
    space_spec = SPACES[space_name]
    prepared = prepare(space_spec.model)
    runners = prepared.runners
    space = _space(space_name)
    objective, constraints = _objective(OBJECTIVES[objective_name], space_spec.model, runners)
    lazy = None
    if space_spec.exact:
        inner: Evaluator = TableEvaluator(table(space_name), objective, constraints=constraints)
        inner.runners = runners
    else:
        lazy = lazy_table(space_name)
        inner = LazyTableEvaluator(lazy, objective, constraints=constraints)
    member = Member(
        name=name,
        space_name=space_name,
        objective_name=objective_name,
        space=space,
        evaluator=CachedEvaluator(inner, key=space.key),
        objective=objective,
        constraints=constraints,
        runners=runners,
        optimum=Optimum(exact=space_spec.exact),
        description=f"{MODELS[space_spec.model].description}; {space_spec.description}; "
        f"{OBJECTIVES[objective_name].description}",
        float_accuracy=prepared.float_accuracy,
        _lazy=lazy,
    )
    if constraints:
        member.description += f" ({constraints.describe()})"
    if space_spec.exact:
        member.optimum = _exact_optimum(member)
    else:
        marker = lazy.path.with_suffix(f".polished-{objective_name}")
        if not marker.exists():
            started = time.perf_counter()
            _polish(member)
            marker.touch()
            print(f"[suite] {name}: polished the best known in {time.perf_counter() - started:.1f} s", flush=True)
        member.optimum = _lazy_optimum(member)
    return member


def build(members: Sequence[str] | None = None) -> dict[str, float]:
    """Build (or load) every member's table; returns seconds per member."""
    out = {}
    for name in members or names():
        started = time.perf_counter()
        load(name)
        out[name] = time.perf_counter() - started
    return out


if __name__ == "__main__":
    import sys

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    chosen = sys.argv[1:] or names()
    for name, seconds in build(chosen).items():
        m = load(name)
        print(f"{name:18s} {m.size:>12,}  {m.optimum.describe()}  ({seconds:.1f} s)", flush=True)
