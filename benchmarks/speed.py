"""How close a bitscout trial is to the cost of evaluating the candidate itself.

One command (from the repository root)::

    .venv/bin/python benchmarks/speed.py            # everything (several minutes)
    .venv/bin/python benchmarks/speed.py --quick    # fewer repeats and trials (~1-2 min)
    .venv/bin/python benchmarks/speed.py --device cuda --quick --json out.json
    .venv/bin/python benchmarks/speed.py --results benchmarks/RESULTS-run.md
                                                    # every section once (~15 min on 2 idle CPUs):
                                                    # one markdown block, each figure against its
                                                    # target, with the load average; plots beside it
    .venv/bin/python benchmarks/speed.py --dry-run --results /tmp/r.md   # plumbing only (~2 min)

Every figure is measured in this run, side by side, with its median and spread (the
interquartile range, "IQR", over repeats). What is measured:

1. **trial / float forward**: one trial's objective (build the candidate with the
   Quantizer, ``basic_evaluation`` on the samples, hardware metrics, objective; not the
   sampler) against one bare float forward pass over the same samples, interleaved
   pair by pair so both see the same machine load. Models are seeded, untrained (the
   speed of a forward pass does not depend on the weights' values), and data is
   synthetic where marked: jsc-tiny on 512 samples; jsc-s on a JSC-sized synthetic set
   (160,000 validation rows); the digits CNN (540 validation samples); the mnist5k CNN
   (1,500). Candidates cycle through 32 configurations of a per-layer space, so after
   the first round the quantized-weight cache is warm, as in a long search.
2. **naive / ours** on jsc-tiny: the same trial the way MASE does it (``copy.deepcopy``
   of the model, swap in quantized modules that quantize their weights on every call,
   iterate a ``torch.utils.data.DataLoader`` over the samples, ``num_workers=0``, which
   is kinder to the naive path than MASE's worker processes).
3. **storage overhead per trial** at 100 and 1,000 trials: the search's default
   storage (bitscout's journal file in a temporary run folder), Optuna's stock
   ``JournalStorage(JournalFileBackend)`` and SQLite, against ``InMemoryStorage``, each
   with a seeded TPE sampler doing ask/tell and one user-attr write per trial.
4. **start-up to first trial** of the MASE lab case (``configs/jsc_tiny_lab.toml``,
   BITSCOUT_DATA pointing at a JSC-format Parquet file written here: 200,000 synthetic
   rows; data cache warm): a fresh interpreter that does what ``bitscout search`` does
   up to the end of its first trial; plus the whole ``bitscout search --n-trials 1``
   command, and the slowest imports (``python -X importtime``).
5. **peak memory** of the lab case over 200 TPE trials (max RSS of the child process).
6. **sampler cost**: TPE's time per trial (ask + tell, in-memory storage) around
   trials 100, 1,000 and 2,000 on the digits MLP space (6 parameters x 6 choices), for
   the ``tpe`` strategy's sampler and for Optuna's stock ``TPESampler``.
7. **exhaustive evaluation**: all 46,656 configurations of the digits MLP space
   (weight and data_in widths per layer in {2, 3, 4, 5, 6, 8}) with
   :func:`bitscout.evaluation.evaluate_runner_set_exhaustively`, bit-identical
   to trial-by-trial evaluation, against the trial-by-trial estimate.
8. **scaling** (``--only scaling``): cost per trial against the number of trials, for
   every strategy, in one run: whole bitscout searches (``run_search``, in-memory study,
   a table evaluator of the digits MLP space) of 10,000 trials (2,000 with ``--quick``;
   ``gp``: 200), timing the sampler's own work (CPU and wall time of every call into it)
   and the whole loop per trial; Optuna's stock ``TPESampler`` on the same history at
   100 / 1,000 / 10,000 trials; and the cost per trial against the number of validation
   samples (jsc-tiny, 256 to 65,536 synthetic samples). Writes
   ``benchmarks/figures/scaling_trials.png`` and ``scaling_samples.png`` with the
   targets and the load average.

The machine is shared: wall times rise with other processes' load. CPU seconds (of this
process) are printed beside wall times where a section is long; the ratios of
interleaved measurements are the most robust figures.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
LAB_CONFIG = REPO / "configs" / "jsc_tiny_lab.toml"

RESULTS: dict[str, Any] = {}


# ----- small helpers ------------------------------------------------------------------------


def _summary(values: Sequence[float]) -> tuple[float, float, float]:
    """Median, first and third quartile."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(med), float(q1), float(q3)


def _fmt(values: Sequence[float], unit: str = "ms", digits: int = 3) -> str:
    med, q1, q3 = _summary(values)
    return f"{med:.{digits}f} {unit} (IQR {q1:.{digits}f}-{q3:.{digits}f})"


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def _header(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)), flush=True)


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ----- how much each section measures ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
    """Repeats and sizes of every section: one preset per mode of the command.

    ``full`` is the default, ``quick`` the ``--quick`` run, ``results`` the
    ``--results FILE.md`` run (every section once, sized to fit about 15 minutes on the
    2-core machine at low load: fewer repeats where the median stays stable), ``dry``
    the ``--dry-run`` (tiny sizes, a 64-configuration space: checks the plumbing, not
    the speed).
    """

    name: str
    jsc_tiny_repeats: int
    jsc_s_rows: int
    jsc_s_repeats: int
    digits_cnn_samples: int
    digits_cnn_repeats: int
    mnist_cnn_samples: int
    mnist_cnn_repeats: int
    naive_repeats: int
    naive_worker_repeats: int
    storage_trials: tuple[int, ...]
    startup_repeats: int
    startup_rows: int
    memory_trials: int
    sampler_trials: int
    widths: tuple[int, ...]
    exhaustive_rounds: int
    exhaustive_checks: int
    scaling_trials: int
    scaling_marks: tuple[int, ...]
    gp_trials: int
    sample_counts: tuple[int, ...]

    def describe(self) -> str:
        """The repeats and sizes, one line per section (for the results file)."""
        return "\n".join([
            f"- trials: jsc-tiny {self.jsc_tiny_repeats} interleaved pairs; jsc-s ({self.jsc_s_rows:,} rows) "
            f"{self.jsc_s_repeats}; digits CNN ({self.digits_cnn_samples} samples) {self.digits_cnn_repeats}; "
            f"mnist5k CNN ({self.mnist_cnn_samples} samples) {self.mnist_cnn_repeats}",
            f"- naive: {self.naive_repeats} pairs without workers, {self.naive_worker_repeats} with workers",
            f"- storage: {' and '.join(f'{n:,}' for n in self.storage_trials)} trials",
            f"- start-up: {self.startup_repeats} fresh interpreters ({self.startup_rows:,} JSC rows); "
            f"memory: {self.memory_trials} TPE trials",
            f"- sampler (section 6): {self.sampler_trials:,} trials",
            f"- exhaustive: widths {list(self.widths)} per operand, {self.exhaustive_rounds} rounds, "
            f"{self.exhaustive_checks} configurations checked against trial by trial",
            f"- scaling: {self.scaling_trials:,} trials per strategy (gp {self.gp_trials}), marks "
            f"{', '.join(f'{m:,}' for m in self.scaling_marks)}; samples {', '.join(f'{n:,}' for n in self.sample_counts)}",
        ])


PLANS = {
    "full": Plan("full", 1500, 160_000, 15, 540, 200, 1500, 20, 300, 30, (100, 1000), 5, 200_000, 200, 2000,
                 (2, 3, 4, 5, 6, 8), 3, 300, 10_000, (100, 1_000, 10_000), 100,
                 (256, 1_024, 4_096, 16_384, 65_536)),
    "quick": Plan("quick", 400, 160_000, 8, 540, 60, 1500, 8, 60, 8, (100, 300), 3, 200_000, 200, 1000,
                  (2, 3, 4, 5, 6, 8), 1, 100, 2_000, (100, 1_000), 40, (256, 1_024, 4_096, 16_384)),
    # One run of every figure in ~15 minutes (2 CPUs, low load): fewer pairs where the
    # medians of the ratios stay stable; section 6 stops at 1,000 trials (Optuna's stock
    # TPE alone took 196 s for 2,000 at load 10; scaling times it at 10,000 anyway).
    "results": Plan("results", 1000, 160_000, 12, 540, 100, 1500, 10, 200, 20, (100, 1000), 3, 200_000, 200, 1000,
                    (2, 3, 4, 5, 6, 8), 3, 200, 10_000, (100, 1_000, 10_000), 60,
                    (256, 1_024, 4_096, 16_384, 65_536)),
    "dry": Plan("dry", 5, 2048, 2, 64, 2, 64, 2, 3, 2, (20,), 1, 20_000, 5, 60, (2, 8), 1, 10, 60, (20, 50), 5,
                (256, 1_024)),
}


# ----- building trials ------------------------------------------------------------------------


def _synthetic_jsc(n_val: int, seed: int = 0) -> Any:
    """A JSC-shaped data set (16 features, 5 classes), labelled synthetic."""
    from bitscout.data import Dataset, DatasetInfo, Split

    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(5, 16, generator=g) * 1.5
    y = torch.randint(0, 5, (n_val,), generator=g)
    x = centers[y] + torch.randn(n_val, 16, generator=g)
    split = Split(x.float(), y)
    info = DatasetInfo(
        name="synthetic-jsc",
        input_shape=(16,),
        num_classes=5,
        class_names=("g", "q", "w", "z", "t"),
        source="SYNTHETIC Gaussian clusters shaped like JSC (speed benchmark only)",
        synthetic=True,
    )
    return Dataset(info=info, train=split, val=split, test=Split(x[:1].float(), y[:1]))


class TrialBench:
    """A model, its runners, its objective and a cycle of configurations."""

    def __init__(
        self,
        label: str,
        model_name: str,
        dataset: Any,
        num_samples: int,
        device: torch.device,
        *,
        model_options: dict[str, Any] | None = None,
        widths: Sequence[int] = (2, 4, 8),
        n_configs: int = 32,
    ) -> None:
        from bitscout.graph import trace
        from bitscout.metrics import (
            AverageBitwidth,
            BasicEvaluation,
            Bitops,
            Objective,
            ObjectiveTerm,
            RunContext,
            RunnerSet,
        )
        from bitscout.models import build_model
        from bitscout.quant import Quantizer
        from bitscout.space import SearchSpace

        self.label = label
        self.device = device
        torch.manual_seed(0)
        model = build_model(model_name, dataset.info, model_options or {}).to(device).eval()
        self.traced = trace(model, dataset.val.x[:2].to(device))
        context = RunContext(
            traced=self.traced,
            quantizer=Quantizer(self.traced),
            dataset=dataset,
            device=device,
            batch_size=512,
        )
        self.evaluation = BasicEvaluation(BasicEvaluation.Options(num_samples=num_samples), context)
        self.runners = RunnerSet(
            [
                self.evaluation,
                AverageBitwidth(AverageBitwidth.Options(), context),
                Bitops(Bitops.Options(), context),
            ],
            context,
        )
        self.objective = Objective(
            [
                ObjectiveTerm("accuracy", 1.0, "maximize", False, "software"),
                ObjectiveTerm("average_bitwidth", 0.2, "minimize", False, "hardware", sign=-1.0),
            ],
            sum_scaled=True,
            direction="maximize",
        )
        table = self.traced.table
        choices = {
            layer.name: {
                "name": "integer",
                "data_in_width": [4, 8],
                "weight_width": list(widths),
                "bias_width": 8,
            }
            for layer in table
            if layer.op in ("linear", "conv1d", "conv2d")
        }
        self.space = SearchSpace(table, choices)
        rng = random.Random(0)
        indices = rng.sample(range(self.space.size), min(n_configs, self.space.size))
        self.configs = [self.space.decode(self.space.params_at(i)) for i in indices]
        split = dataset.split("val")
        n = self.evaluation.num_samples
        self.x = split.x[:n].to(device)
        self.y = split.y[:n].to(device)
        self.num_samples = n

    def trial(self, config: Any) -> float:
        metrics = self.runners.run(config)
        return self.objective.evaluate(metrics).values[0]

    def float_forward(self) -> None:
        with torch.inference_mode():
            self.traced.gm(self.x)


def _interleaved(bench: TrialBench, repeats: int) -> dict[str, list[float]]:
    sync = _sync(bench.device)
    for config in bench.configs[:repeats]:  # warm: weight cache, allocator, kernels
        bench.trial(config)
    for _ in range(3):
        bench.float_forward()
    sync()
    floats, trials, ratios = [], [], []
    for r in range(repeats):
        config = bench.configs[r % len(bench.configs)]
        t0 = time.perf_counter()
        bench.float_forward()
        sync()
        t1 = time.perf_counter()
        bench.trial(config)
        sync()
        t2 = time.perf_counter()
        floats.append((t1 - t0) * 1e3)
        trials.append((t2 - t1) * 1e3)
        ratios.append((t2 - t1) / (t1 - t0))
    return {"float_ms": floats, "trial_ms": trials, "ratio": ratios}


def section_trials(device: torch.device, plan: Plan) -> dict[str, TrialBench]:
    from bitscout.data import load_dataset

    from bitscout._allocator import tune_allocator

    _header("1. trial objective vs one bare float forward over the same samples")
    print("(models seeded, untrained; 'ratio' = trial / float forward, per interleaved pair)")
    # The allocator as the `bitscout` command sets it at start-up (BITSCOUT_MALLOC=default:
    # glibc's own), so that these figures are what a search gets.
    allocator = tune_allocator()
    print(f"(allocator: {allocator or 'left as it is'})")
    RESULTS["allocator"] = allocator
    digits = load_dataset("digits", seed=0)
    mnist = load_dataset("mnist5k", seed=0)
    jsc_small = _synthetic_jsc(4096)
    jsc_big = _synthetic_jsc(plan.jsc_s_rows)
    cases = [
        ("jsc-tiny, 512 samples (synthetic JSC)", "jsc-tiny", jsc_small, 512, {}, plan.jsc_tiny_repeats),
        (f"jsc-s, {plan.jsc_s_rows:,} samples (synthetic JSC)", "jsc-s", jsc_big, plan.jsc_s_rows, {},
         plan.jsc_s_repeats),
        (f"digits CNN, {plan.digits_cnn_samples:,} samples", "cnn", digits, plan.digits_cnn_samples, {},
         plan.digits_cnn_repeats),
        (f"mnist5k CNN, {plan.mnist_cnn_samples:,} samples", "cnn", mnist, plan.mnist_cnn_samples, {},
         plan.mnist_cnn_repeats),
    ]
    benches = {}
    rows = []
    for label, name, data, n, options, repeats in cases:
        bench = TrialBench(label, name, data, n, device, model_options=options)
        res = _interleaved(bench, repeats)
        benches[name if name != "cnn" else label.split(",")[0]] = bench
        ratio_med = _summary(res["ratio"])[0]
        print(f"{label}")
        print(f"    float forward {_fmt(res['float_ms'])}")
        print(f"    trial         {_fmt(res['trial_ms'])}")
        target = 1.5 if name.startswith("jsc") else 1.1  # issue 16: 1.5x on JSC, 1.1x on the CNNs
        print(f"    ratio         {_fmt(res['ratio'], 'x', 2)}   target <= {target}x: {_verdict(ratio_med <= target)}")
        rows.append({"case": label, "model": name, "target": target, "repeats": repeats,
                     **{k: _summary(v) for k, v in res.items()}})
        if name == "jsc-tiny":
            trial_med = _summary(res["trial_ms"])[0]
            print(f"    jsc-tiny trial under 1 ms: {_verdict(trial_med < 1.0)} ({trial_med:.3f} ms)")
    RESULTS["trials"] = rows
    return benches


# ----- the naive way ----------------------------------------------------------------------------


def section_naive(bench: TrialBench, plan: Plan) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from bitscout.quant import DEFAULT_LAYER_MAP, QuantizedLayer, QuantizedTensorCache, layer_map_key

    _header("2. the same trial done the naive (MASE) way, jsc-tiny, 512 samples")
    sync = _sync(bench.device)
    hardware = bench.runners.hardware
    dataset = TensorDataset(bench.x, bench.y)

    def naive_trial(config: Any, workers: int = 0) -> float:
        model = copy.deepcopy(bench.traced.gm)
        for name, layer_config in config.items():
            if layer_config is None:
                continue
            float_module = model._modules[name]
            spec = DEFAULT_LAYER_MAP[layer_map_key(float_module)]
            # A fresh cache per trial: MASE's quantized modules quantize their weights on
            # every forward call.
            model.add_module(name, QuantizedLayer(name, float_module, spec, layer_config, QuantizedTensorCache()))
        model.eval()
        loader = DataLoader(dataset, batch_size=512, shuffle=False, num_workers=workers)
        correct = torch.zeros((), dtype=torch.long, device=bench.device)
        loss = torch.zeros((), dtype=torch.float64, device=bench.device)
        with torch.no_grad():
            for xb, yb in loader:
                logits = model(xb)
                loss += F.cross_entropy(logits, yb, reduction="sum").double()
                correct += (logits.argmax(-1) == yb).sum()
        accuracy = float(correct) / len(dataset)
        from bitscout.metrics import Candidate

        candidate = Candidate(config, bench.runners.context)
        for runner in hardware:
            runner.run(candidate)
        return accuracy + float(loss)

    for config in bench.configs[:4]:
        naive_trial(config)
    ours, naive, ratios = [], [], []
    repeats = plan.naive_repeats
    for r in range(repeats):
        config = bench.configs[r % len(bench.configs)]
        t0 = time.perf_counter()
        bench.trial(config)
        sync()
        t1 = time.perf_counter()
        naive_trial(config)
        sync()
        t2 = time.perf_counter()
        ours.append((t1 - t0) * 1e3)
        naive.append((t2 - t1) * 1e3)
        ratios.append((t2 - t1) / (t1 - t0))
    med = _summary(ratios)[0]
    print(f"    ours   {_fmt(ours)}")
    print(f"    naive, DataLoader without workers  {_fmt(naive)}")
    print(f"    naive / ours {_fmt(ratios, 'x', 1)}   target >= 20x: {_verdict(med >= 20)}")
    RESULTS["naive"] = {"ours_ms": _summary(ours), "naive_ms": _summary(naive), "ratio": _summary(ratios)}
    # MASE's data module gives its DataLoaders os.cpu_count() workers, started afresh
    # for every trial's evaluation: the same trial with that loader.
    if bench.device.type == "cpu":
        workers = os.cpu_count() or 1
        ours_w, naive_w, ratios_w = [], [], []
        for r in range(plan.naive_worker_repeats):
            config = bench.configs[r % len(bench.configs)]
            t0 = time.perf_counter()
            bench.trial(config)
            t1 = time.perf_counter()
            naive_trial(config, workers)
            t2 = time.perf_counter()
            ours_w.append((t1 - t0) * 1e3)
            naive_w.append((t2 - t1) * 1e3)
            ratios_w.append((t2 - t1) / (t1 - t0))
        med_w = _summary(ratios_w)[0]
        print(f"    naive, DataLoader with {workers} workers as MASE  {_fmt(naive_w)}")
        print(f"    naive / ours {_fmt(ratios_w, 'x', 1)}   target >= 20x: {_verdict(med_w >= 20)}")
        RESULTS["naive_workers"] = {"workers": workers, "naive_ms": _summary(naive_w), "ratio": _summary(ratios_w)}


# ----- storage ----------------------------------------------------------------------------------


def _open_study(kind: str, folder: Path) -> Any:
    import optuna
    from optuna.storages import InMemoryStorage, JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    from bitscout.study import open_storage

    folder.mkdir(parents=True, exist_ok=True)
    if kind == "in-memory":
        storage: Any = InMemoryStorage()
    elif kind == "bitscout journal (default)":
        storage, _ = open_storage(None, folder / "run")
    elif kind == "optuna journal":
        storage = JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))
    elif kind == "sqlite":
        storage = RDBStorage(f"sqlite:///{folder / 'study.db'}")
    else:
        raise ValueError(kind)
    return optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0), direction="maximize")


def _storage_lockstep(kinds: Sequence[str], n_trials: int, folder: Path) -> dict[str, list[float]]:
    """Seconds per trial for each storage, the studies advancing in lockstep.

    Every study has the same seeded sampler and gets the same values, so each proposes
    the same parameters and does the same sampler work at trial i; running trial i of
    every study back to back gives each the same machine load. The difference to the
    in-memory study at the same trial is the storage's own cost.
    """
    from optuna.distributions import CategoricalDistribution

    dists = {f"fc{i}/w": CategoricalDistribution((2, 3, 4, 5, 6, 8)) for i in range(6)}
    studies = {kind: _open_study(kind, folder / kind.split()[0]) for kind in kinds}
    record = {"software_metrics": {"accuracy": 0.9, "loss": 0.3}, "hardware_metrics": {"average_bitwidth": 4.0}}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(n_trials):
        for kind, study in studies.items():
            start = time.perf_counter()
            trial = study.ask(dists)
            value = -sum((v - 5) ** 2 for v in trial.params.values())
            study._storage.set_trial_user_attr(trial._trial_id, "bitscout_record", record)
            study.tell(trial, value)
            times[kind].append(time.perf_counter() - start)
    return times


def section_storage(plan: Plan) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _header("3. storage overhead per trial (TPE ask/tell + one user-attr write)")
    print("(studies run in lockstep with the same seeded TPE; overhead = storage - in-memory, per trial)")
    out = {}
    for n in plan.storage_trials:
        # SQLite costs 30-300 ms per trial here: shown at 100 trials, for reference.
        kinds = ["in-memory", "bitscout journal (default)", "optuna journal"] + (["sqlite"] if n <= 100 else [])
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times = _storage_lockstep(kinds, n, Path(tmp))
        base = times["in-memory"]
        print(f"  {n} trials: in-memory {statistics.mean(base) * 1e3:.2f} ms/trial (mean)")
        out[n] = {}
        for kind in kinds[1:]:
            extra = [(t - b) * 1e3 for t, b in zip(times[kind], base)]
            mean_extra = statistics.mean(extra)
            line = (f"    {kind:28s} {statistics.mean(times[kind]) * 1e3:7.2f} ms/trial, "
                    f"+{mean_extra:6.2f} ms over in-memory (mean; per-trial median {_fmt(extra, 'ms', 2)})")
            if kind == "bitscout journal (default)":
                line += f"   target <= 3 ms: {_verdict(mean_extra <= 3.0)}"
            print(line)
            out[n][kind] = {"ms_per_trial": statistics.mean(times[kind]) * 1e3, "extra_ms_mean": mean_extra,
                            "extra_ms_quartiles": _summary(extra)}
        out[n]["in-memory"] = {"ms_per_trial": statistics.mean(base) * 1e3}
    RESULTS["storage_ms_per_trial"] = out


# ----- the MASE lab case as a user runs it -------------------------------------------------------


def write_jsc_parquet(path: Path, rows: int = 200_000, seed: int = 0) -> None:
    """A JSC-format Parquet file (OpenML layout: 16 feature columns + 'class'), synthetic."""
    import pandas as pd

    from bitscout.data._jsc import JSC_CLASS_NAMES, JSC_FEATURES

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, rows)
    centers = rng.normal(0, 1.5, (5, 16))
    x = centers[y] + rng.normal(0, 1, (rows, 16))
    frame = pd.DataFrame(x.astype(np.float32), columns=list(JSC_FEATURES))
    frame["class"] = np.asarray(JSC_CLASS_NAMES)[y]
    frame.to_parquet(path, index=False)


_FIRST_TRIAL = r"""
import sys, time
from pathlib import Path
t0 = float(sys.argv[1])
from bitscout.config import ConfigOverrides, load_config
from bitscout.study import prepare_search, run_search
config = load_config(Path(sys.argv[2]), ConfigOverrides(out=Path(sys.argv[3]), n_trials=1))
prepared = prepare_search(config)
setup = prepared.config.search.strategy.setup
run_search(prepared.space, prepared.sampler, prepared.evaluator(precompute=False),
           out_dir=prepared.out_dir, config=prepared.config, n_trials=1, progress=False,
           write_outputs=False)
print("FIRST_TRIAL_S", time.time() - t0)
"""

_MAXRSS = r"""
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _env(data: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["BITSCOUT_DATA"] = str(data)
    env.setdefault("MPLBACKEND", "Agg")
    # A user's Python writes each module's bytecode once and reads it at every later
    # start; a sandbox that sets this would make every measured start compile
    # bitscout's ~90 modules afresh (0.3-0.5 s). The warm-up run writes the caches.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _bitscout_cmd() -> list[str]:
    return [sys.executable, "-m", "bitscout"]


def section_startup(plan: Plan) -> None:
    _header("4. start-up to first trial, MASE lab case (configs/jsc_tiny_lab.toml)")
    repeats = plan.startup_repeats
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = tmp_path / "hls4ml_lhc_jets_hlf.parquet"
        write_jsc_parquet(data, plan.startup_rows)
        env = _env(data)
        # Warm the data cache (and the OS file cache) once.
        subprocess.run(
            [*_bitscout_cmd(), "search", str(LAB_CONFIG), "--out", str(tmp_path / "warm"), "--n-trials", "1", "--no-progress"],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
        )
        first, whole, cpu = [], [], []
        for r in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.time()
            proc = subprocess.run(
                [sys.executable, "-c", _FIRST_TRIAL, str(start), str(LAB_CONFIG), str(tmp_path / f"first{r}")],
                check=True, env=env, capture_output=True, text=True, cwd=REPO,
            )
            first.append(float(re.search(r"FIRST_TRIAL_S ([0-9.]+)", proc.stdout).group(1)))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            start = time.perf_counter()
            subprocess.run(
                [*_bitscout_cmd(), "search", str(LAB_CONFIG), "--out", str(tmp_path / f"cli{r}"), "--n-trials", "1", "--no-progress"],
                check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
            )
            whole.append(time.perf_counter() - start)
        med = _summary(first)[0]
        print(f"    fresh interpreter -> first trial done: {_fmt(first, 's', 2)}   target < 3 s: {_verdict(med < 3.0)}")
        print(f"      (CPU time of that process: {_fmt(cpu, 's', 2)}; wall exceeds it when the machine is shared)")
        print(f"    whole `bitscout search --n-trials 1` (with outputs and plots): {_fmt(whole, 's', 2)}")
        imports = _import_times(env, tmp_path)
        print("    slowest imports of `bitscout search` (cumulative ms, python -X importtime):")
        for name, ms in imports:
            print(f"      {ms:8.1f}  {name}" if ms else f"      {name}")
        RESULTS["startup_s"] = {
            "first_trial": _summary(first),
            "first_trial_cpu": _summary(cpu),
            "cli_one_trial": _summary(whole),
            "imports_ms": imports,
        }

        _header(f"5. peak memory, MASE lab case, {plan.memory_trials} TPE trials")
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _MAXRSS, *_bitscout_cmd(), "search", str(LAB_CONFIG), "--out", str(tmp_path / "mem"), "--n-trials", str(plan.memory_trials), "--no-progress"],
            check=True, env=env, capture_output=True, text=True, cwd=REPO,
        )
        wall = time.perf_counter() - start
        rss_mb = int(re.search(r"MAXRSS_KB (\d+)", proc.stdout).group(1)) / 1024
        print(f"    max RSS {rss_mb:.0f} MB (whole run: {wall:.1f} s for {plan.memory_trials} trials)   "
              f"target <= 400 MB: {_verdict(rss_mb <= 400)}")
        RESULTS["peak_memory"] = {"max_rss_mb": rss_mb, "trials": plan.memory_trials, "wall_s": wall}


def _import_times(env: dict[str, str], tmp: Path) -> list[tuple[str, float]]:
    """Cumulative import times: the 10 slowest packages, then bitscout's slow modules."""
    code = (
        "import sys; sys.argv=['bitscout','search',%r,'--out',%r,'--n-trials','1','--no-progress'];"
        "from bitscout.cli import main; main()"
    ) % (str(LAB_CONFIG), str(tmp / "importtime"))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, cwd=REPO
    )
    packages: dict[str, float] = {}
    ours: list[tuple[str, float]] = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if not m:
            continue
        ms, name = int(m.group(2)) / 1e3, m.group(4)
        if "." not in name:  # a package's own line holds its whole import
            packages[name] = max(ms, packages.get(name, 0.0))
        elif name.startswith("bitscout.") and ms >= 100:
            ours.append((f"{'  ' * (len(m.group(3)) // 2)}{name}", ms))
    top = sorted(packages.items(), key=lambda kv: -kv[1])[:10]
    return top + [("-- bitscout modules >= 100 ms, in import order (indent = nesting):", 0.0)] + ours


# ----- sampler cost ------------------------------------------------------------------------------


def digits_mlp_runners(digits: Any, device: torch.device) -> tuple[Any, Any]:
    """The seeded, untrained digits MLP traced on ``device``, and its runners (accuracy on
    the 540 validation samples, average bitwidth, BitOPs): the setup the exhaustive and
    table benchmarks here and in gpu_bench.py share."""
    from bitscout.graph import trace
    from bitscout.metrics import AverageBitwidth, BasicEvaluation, Bitops, RunContext, RunnerSet
    from bitscout.models import build_model
    from bitscout.quant import Quantizer

    torch.manual_seed(0)
    model = build_model("mlp", digits.info).to(device).eval()
    traced = trace(model, digits.val.x[:2].to(device))
    context = RunContext(traced=traced, quantizer=Quantizer(traced), dataset=digits, device=device, batch_size=64)
    runners = RunnerSet(
        [
            BasicEvaluation(BasicEvaluation.Options(num_samples=540), context),
            AverageBitwidth(AverageBitwidth.Options(), context),
            Bitops(Bitops.Options(), context),
        ],
        context,
    )
    return traced, runners


def _digits_mlp_space(widths: Sequence[int] = (2, 3, 4, 5, 6, 8)) -> tuple[Any, Any]:
    from bitscout.data import load_dataset
    from bitscout.graph import trace
    from bitscout.models import build_model
    from bitscout.space import SearchSpace

    digits = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("mlp", digits.info).eval()
    traced = trace(model, digits.val.x[:2])
    widths = list(widths)
    choices = {
        layer.name: {"name": "integer", "data_in_width": widths, "weight_width": widths, "bias_width": 8}
        for layer in traced.table
        if layer.op == "linear"
    }
    return digits, SearchSpace(traced.table, choices)


def tpe_per_trial(space: Any, n_trials: int, *, options: dict[str, Any] | None = None,
                  score: Callable[[dict[str, Any]], float] | None = None, stock: bool = False) -> list[float]:
    """Seconds of ask + tell per trial of a TPE study in memory (bitscout's TPE defaults).

    ``stock``: Optuna's own ``TPESampler`` with the same options, instead of the ``tpe``
    strategy's sampler (:class:`bitscout._optuna_adapter.CachedTPESampler`).
    """
    import optuna

    from bitscout.strategies import get_strategy

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = get_strategy("tpe").make_sampler(space, seed=0, directions=["maximize"], options=options or {})
    if stock:
        sampler = optuna.samplers.TPESampler(seed=0, **(options or {}))
    study = optuna.create_study(sampler=sampler, direction="maximize")
    dists = space.distributions()
    score = score or (lambda p: -sum((v - 5) ** 2 for v in p.values()))
    times = []
    for _ in range(n_trials):
        t0 = time.perf_counter()
        trial = study.ask(dists)
        value = score(trial.params)
        study.tell(trial, value)
        times.append(time.perf_counter() - t0)
    return times


def section_sampler(plan: Plan) -> None:
    _header("6. sampler cost: TPE ms per trial (ask + tell, in-memory), digits MLP space")
    _, space = _digits_mlp_space(plan.widths)
    n = plan.sampler_trials
    out: dict[str, Any] = {}
    for label, stock in (("bitscout tpe (CachedTPESampler)", False), ("Optuna's TPESampler", True)):
        times = tpe_per_trial(space, n, stock=stock)
        print(f"    {label}:")
        out[label] = {}
        for at in sorted({100, 1000, 2000, n}):
            if at > n:
                continue
            window = [t * 1e3 for t in times[max(0, at - 20) : at]]
            out[label][at] = _summary(window)
            print(f"      around trial {at:5d}: {_fmt(window)}")
        print(f"      total for {n} trials: {sum(times):.1f} s")
    RESULTS["tpe_ms_per_trial"] = out


# ----- scaling ----------------------------------------------------------------------------------

FIGURES = REPO / "benchmarks" / "figures"
SAMPLER_HOOKS = ("infer_relative_search_space", "sample_relative", "sample_independent",
                 "before_trial", "after_trial", "is_exhausted")


class SamplerClock:
    """Times a sampler's own work per trial: every call Optuna or the loop makes into it.

    Wraps the sampler instance's methods (Optuna calls them through the instance), adding
    up this thread's CPU time and the wall time spent inside them; ``after_trial`` closes a
    trial's record, with the wall time since the previous trial closed (the whole loop's
    cost of that trial: ask, evaluation or duplicate answer, tell).
    """

    def __init__(self, sampler: Any) -> None:
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.loop: list[float] = []
        self._cpu = self._wall = 0.0
        self._last = time.perf_counter()
        self._depth = 0
        for name in SAMPLER_HOOKS:
            if hasattr(sampler, name):
                setattr(sampler, name, self._wrap(getattr(sampler, name), name == "after_trial"))

    def _wrap(self, method: Callable[..., Any], closes: bool) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            c0, w0 = time.thread_time(), time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:  # a hook calling another counts once
                    self._cpu += time.thread_time() - c0
                    self._wall += time.perf_counter() - w0
                if closes:
                    now = time.perf_counter()
                    self.cpu.append(self._cpu)
                    self.wall.append(self._wall)
                    self.loop.append(now - self._last)
                    self._cpu = self._wall = 0.0
                    self._last = now

        return timed


def _digits_table(widths: Sequence[int] = (2, 3, 4, 5, 6, 8)) -> tuple[Any, Any, Any]:
    """The digits MLP space and a TableEvaluator of it (every configuration evaluated once)."""
    from bitscout.evaluation import TableEvaluator
    from bitscout.metrics import Objective, ObjectiveTerm
    from bitscout.space import SearchSpace

    digits, space = _digits_mlp_space(widths)
    traced, runners = digits_mlp_runners(digits, torch.device("cpu"))
    space = SearchSpace(traced.table, {layer.name: space.layer(layer.name).choices for layer in space.layers if layer.choices})
    objective = Objective(
        [ObjectiveTerm("accuracy", 1.0, "maximize", False, "software"),
         ObjectiveTerm("average_bitwidth", 0.2, "minimize", False, "hardware", sign=-1.0)],
        sum_scaled=True, direction="maximize",
    )
    return space, TableEvaluator.from_runners(space, runners, objective), objective


def _search_clocked(space: Any, evaluator: Any, strategy: str, n_trials: int, options: dict[str, Any]) -> tuple[SamplerClock, list[Any]]:
    """A whole bitscout search (run_search, in-memory study, no outputs) with the sampler timed."""
    import optuna

    from bitscout.strategies import get_strategy
    from bitscout.study import run_search

    sampler = get_strategy(strategy).make_sampler(space, seed=0, directions=["maximize"], options=options, n_trials=n_trials)
    clock = SamplerClock(sampler)
    storage = optuna.storages.InMemoryStorage()
    # Item 1 times the sampler's proposals in the loop: a brute force answered from a table
    # would otherwise write its trials without proposals (the table pass; timed apart by
    # benchmarks/brute_force_search.py).
    with tempfile.TemporaryDirectory() as tmp:
        run_search(space, sampler, evaluator, out_dir=Path(tmp), storage=storage,
                   n_trials=n_trials, progress=False, write_outputs=False, table_pass=False)
    study_id = storage.get_all_studies()[0]._study_id
    return clock, storage.get_all_trials(study_id, deepcopy=False)


def _stock_tpe_at(study_trials: Sequence[Any], space: Any, evaluator: Any, at: int, asks: int) -> list[float]:
    """Optuna's own TPESampler's CPU ms per proposal on the first ``at`` trials of a history
    (the tpe strategy's proposals are Optuna's, so this is the history stock TPE would have)."""
    import optuna

    sampler = optuna.samplers.TPESampler(seed=0)
    clock = SamplerClock(sampler)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.add_trials(list(study_trials[:at]))
    dists = space.distributions()
    for _ in range(asks):
        trial = study.ask(dists)
        study.tell(trial, evaluator.evaluate(space.decode(trial.params)).values[0])
    return [c * 1e3 for c in clock.cpu]


def _window(values: Sequence[float], at: int, width: int) -> list[float]:
    return [v * 1e3 for v in values[max(0, at - width) : at]]


def section_scaling(plan: Plan, figures: Path = FIGURES, only: Sequence[str] | None = None) -> None:
    """Cost per trial against trials (sampler, whole loop) and against samples (evaluation);
    ``only``: these strategies' rows (labels' first words, e.g. ``tpe``) instead of all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _header("8. scaling: cost per trial against trials and against validation samples")
    load_start = os.getloadavg()
    n_max = plan.scaling_trials
    marks = [m for m in plan.scaling_marks if m <= n_max]
    space, evaluator, _ = _digits_table(plan.widths)
    print(f"    digits MLP space: {space.size:,} configurations; table evaluator "
          f"({evaluator.seconds:.1f} s to evaluate every configuration once)")
    print(f"    load average at start: {load_start}")
    print("    sampler = the sampler's own CPU time per trial (every call into it); wall in brackets;")
    print("    loop = wall time per trial of bitscout's whole search loop (run_search, in-memory study)")
    strategies: list[tuple[str, str, dict[str, Any], int]] = [
        ("tpe", "tpe", {}, n_max),
        ("random", "random", {}, n_max),
        ("qmc", "qmc", {}, n_max),
        ("nsgaii", "nsgaii", {}, n_max),
        ("nsgaiii", "nsgaiii", {}, n_max),
        ("brute_force (shuffled)", "brute_force", {"shuffle": True}, n_max),
        ("sensitivity", "sensitivity", {}, n_max),
        # Optuna's GP refits a Gaussian process at every proposal: too slow for long runs.
        ("gp", "gp", {}, plan.gp_trials),
    ]
    if only:
        strategies = [row for row in strategies if row[0].split()[0] in only]
    curves: dict[str, dict[str, list[float]]] = {}
    table: dict[str, dict[int, dict[str, float]]] = {}
    tpe_trials: list[Any] = []
    for label, name, options, n in strategies:
        t0 = time.perf_counter()
        clock, trials = _search_clocked(space, evaluator, name, n, options)
        took = time.perf_counter() - t0
        if name == "tpe":
            tpe_trials = trials
        curves[label] = {"cpu": clock.cpu, "wall": clock.wall, "loop": clock.loop}
        table[label] = {}
        parts = []
        for at in [m for m in marks if m <= len(clock.cpu)] + ([len(clock.cpu)] if len(clock.cpu) < 100 or name == "gp" else []):
            width = 20 if at <= 200 else 50
            cpu, wall, loop = (_summary(_window(clock.__dict__[k], at, width))[0] for k in ("cpu", "wall", "loop"))
            table[label][at] = {"sampler_cpu_ms": cpu, "sampler_wall_ms": wall, "loop_ms": loop}
            parts.append(f"@{at}: sampler {cpu:.3f} ({wall:.3f}) ms, loop {loop:.3f} ms")
        print(f"    {label:24s} {len(clock.cpu):6d} trials in {took:6.1f} s; " + "; ".join(parts))
    # Optuna's stock TPE on the same history (identical proposals, so the same trials).
    stock: dict[int, float] = {}
    for at in marks if tpe_trials else []:
        stock[at] = _summary(_stock_tpe_at(tpe_trials, space, evaluator, at, 20 if at <= 1_000 else 5))[0]
    print("    Optuna's stock TPESampler on the same history (CPU ms per proposal): "
          + ", ".join(f"@{at}: {ms:.2f}" for at, ms in stock.items()))
    verdicts = []
    for label, rows in table.items():
        if label == "gp":
            continue
        for at, target in ((1_000, 1.0), (10_000, 2.0)):
            if at in rows:
                ok = rows[at]["sampler_cpu_ms"] <= target
                verdicts.append((label, at, rows[at]["sampler_cpu_ms"], target, ok))
                print(f"    {label:24s} sampler at {at:6,d} trials: {rows[at]['sampler_cpu_ms']:.3f} ms CPU "
                      f"(target <= {target:g} ms): {_verdict(ok)}")

    # -- evaluation against the number of validation samples ---------------------------------
    sample_counts = list(plan.sample_counts)
    data = _synthetic_jsc(max(sample_counts))
    evals = []
    for n in sample_counts:
        bench = TrialBench(f"jsc-tiny, {n} samples", "jsc-tiny", data, n, torch.device("cpu"))
        res = _interleaved(bench, 30 if n <= 4_096 else 10)
        evals.append({"samples": n, "trial_ms": _summary(res["trial_ms"])[0], "float_ms": _summary(res["float_ms"])[0],
                      "ratio": _summary(res["ratio"])[0]})
        print(f"    jsc-tiny, {n:6,d} samples: trial {evals[-1]['trial_ms']:.3f} ms, float forward "
              f"{evals[-1]['float_ms']:.3f} ms, ratio {evals[-1]['ratio']:.2f}x (target <= 1.5x)")
    load_end = os.getloadavg()
    print(f"    load average at end: {load_end}")

    # -- figures ------------------------------------------------------------------------------
    figures.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load_start[0]:.1f} -> {load_end[0]:.1f} on {os.cpu_count()} CPUs"
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for label, curve in curves.items():
        for ax, key in ((axes[0], "cpu"), (axes[1], "loop")):
            values = np.asarray(curve[key]) * 1e3
            if len(values) == 0:
                continue
            width = 25
            smooth = [float(np.median(values[max(0, i - width) : i + 1])) for i in range(len(values))]
            ax.plot(np.arange(1, len(values) + 1), smooth, label=label)
    axes[0].plot(list(stock), list(stock.values()), "k--o", label="Optuna's TPESampler (same history)")
    axes[0].plot([1_000, 10_000], [1.0, 2.0], "r*", markersize=14, label="targets: 1 ms @ 1,000, 2 ms @ 10,000")
    axes[0].set_title("sampler's own CPU time per proposal")
    axes[1].set_title("whole search loop, wall time per trial (table evaluator)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("trial number")
        ax.set_ylabel("ms (running median of 25 trials)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Cost per trial against trials, digits MLP space ({space.size:,} configurations); {stamp}", fontsize=9)
    fig.tight_layout()
    trials_figure = figures / ("scaling_trials.png" if not only else f"scaling_trials_{'_'.join(only)}.png")
    fig.savefig(trials_figure, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    xs = [e["samples"] for e in evals]
    ax.plot(xs, [e["trial_ms"] for e in evals], "o-", label="trial (build + evaluate + metrics)")
    ax.plot(xs, [e["float_ms"] for e in evals], "s-", label="bare float forward, same samples")
    ax.plot(xs, [1.5 * e["float_ms"] for e in evals], "r:", label="target: 1.5 x float forward")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("validation samples")
    ax.set_ylabel("ms per trial (median)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"jsc-tiny: cost per trial against samples\n{stamp}", fontsize=8)
    fig.tight_layout()
    fig.savefig(figures / "scaling_samples.png", dpi=110)
    plt.close(fig)
    print(f"    figures: {trials_figure}, {figures / 'scaling_samples.png'}")
    RESULTS["scaling"] = {
        "load_average_start": load_start,
        "load_average_end": load_end,
        "per_strategy": {k: {str(a): v for a, v in rows.items()} for k, rows in table.items()},
        "stock_tpe_cpu_ms": stock,
        "samples": evals,
        "verdicts": verdicts,
        "figures": [str(figures / "scaling_trials.png"), str(figures / "scaling_samples.png")],
    }


# ----- exhaustive ----------------------------------------------------------------------------------


def section_exhaustive(device: torch.device, plan: Plan) -> None:
    from bitscout.evaluation import evaluate_runner_set_exhaustively

    digits, space = _digits_mlp_space(plan.widths)
    _header(f"7. exhaustive evaluation: {space.size:,} configurations of the digits MLP")
    traced, runners = digits_mlp_runners(digits, device)
    from bitscout.space import SearchSpace

    space = SearchSpace(traced.table, {layer.name: space.layer(layer.name).choices for layer in space.layers if layer.choices})
    sync = _sync(device)
    rounds = plan.exhaustive_rounds
    # Without the loss (what a search whose objective and constraints do not read it
    # runs; the independent reference was accuracy only) and with it, alternating.
    walls, cpus, loss_walls, loss_cpus = [], [], [], []
    result = accuracy_only = None
    for _ in range(rounds):
        for loss, wall_list, cpu_list in ((False, walls, cpus), (True, loss_walls, loss_cpus)):
            c0, t0 = time.process_time(), time.perf_counter()
            out = evaluate_runner_set_exhaustively(space, runners, loss=loss)
            sync()
            wall_list.append(time.perf_counter() - t0)
            cpu_list.append(time.process_time() - c0)
            if loss:
                result = out
            else:
                accuracy_only = out
    assert result is not None and accuracy_only is not None
    # Trial-by-trial estimate and a float-forward reference, measured now.
    rng = random.Random(0)
    sample = rng.sample(range(space.size), min(plan.exhaustive_checks, space.size))
    configs = [space.decode(space.params_at(i)) for i in sample]
    x = digits.val.x[:540].to(device)
    per_trial, per_float = [], []
    mismatches = 0
    for i, config in zip(sample, configs):
        t0 = time.perf_counter()
        metrics = runners.run(config)
        sync()
        t1 = time.perf_counter()
        with torch.inference_mode():
            traced.gm(x)
        sync()
        t2 = time.perf_counter()
        per_trial.append(t1 - t0)
        per_float.append(t2 - t1)
        index = space.distinct_index_of(space.params_at(i))
        got = result.metrics_at(index)
        mismatches += got.software != metrics.software or got.hardware != metrics.hardware
        lean = accuracy_only.metrics_at(index)
        mismatches += lean.hardware != metrics.hardware or any(
            lean.software[k] != metrics.software[k] for k in ("accuracy", "balanced_accuracy")
        )
    trial_med = statistics.median(per_trial)
    float_med = statistics.median(per_float)
    wall = statistics.median(walls)
    print(f"    exhaustive: {len(result)} configurations in {wall:.2f} s wall (runs: {', '.join(f'{w:.2f}' for w in walls)}), "
          f"{statistics.median(cpus):.2f} s CPU; {result.forward_calls} layer calls; no loss (accuracies only)")
    print(f"    with the loss: {statistics.median(loss_walls):.2f} s wall (runs: {', '.join(f'{w:.2f}' for w in loss_walls)}), "
          f"{statistics.median(loss_cpus):.2f} s CPU")
    print(f"    trial by trial (estimated from {len(sample)} trials): {trial_med * len(result):.1f} s "
          f"({trial_med * 1e3:.3f} ms per trial) -> exhaustive is {trial_med * len(result) / wall:.1f}x faster")
    print(f"    one float forward over the 540 samples: {float_med * 1e3:.3f} ms; exhaustive = "
          f"{wall / float_med:.0f} float forwards = {wall / float_med / len(result):.2f} per configuration")
    print(f"    bit-identical to trial-by-trial on {len(sample)} sampled configurations: {mismatches == 0} "
          f"({mismatches} mismatches)")
    # The limit: MACs that no sharing can avoid. Layer k runs once per distinct prefix
    # (configurations of layers 0..k) on every sample; at the float forward's own MAC
    # rate that is the least time any exact enumeration on this machine can take.
    macs = {layer.name: layer.macs for layer in traced.table}
    sizes = [layer.distinct_size for layer in space.layers]
    n_samples = int(x.shape[0])
    minimum = sum(math.prod(sizes[: k + 1]) * macs[layer.name] * n_samples for k, layer in enumerate(space.layers))
    float_macs = sum(macs.values()) * n_samples
    rate = float_macs / float_med
    print(f"    minimum arithmetic (MACs no sharing avoids): {minimum / 1e9:.2f} GMAC = "
          f"{minimum / float_macs:.0f} float forwards ({minimum / float_macs / len(result):.3f} per configuration); "
          f"at the float forward's rate ({rate / 1e9:.2f} GMAC/s) {minimum / rate:.2f} s: "
          f"exhaustive takes {wall / (minimum / rate):.1f}x that")
    print(f"    target <= 2 s: {_verdict(wall <= 2.0)} (CPU seconds: {statistics.median(cpus):.2f})")
    RESULTS["exhaustive"] = {
        "configurations": len(result),
        "wall_s": walls,
        "cpu_s": cpus,
        "with_loss_wall_s": loss_walls,
        "with_loss_cpu_s": loss_cpus,
        "trial_ms": trial_med * 1e3,
        "float_forward_ms": float_med * 1e3,
        "mismatches": mismatches,
        "checks": len(sample),
        "float_forwards_per_configuration": wall / float_med / len(result),
        "minimum_gmac": minimum / 1e9,
        "minimum_s_at_float_rate": minimum / rate,
    }


# ----- one markdown block of every figure ----------------------------------------------------------


def _met(ok: bool | None) -> str:
    return "" if ok is None else ("MET" if ok else "**MISSED**")


def figure_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(item, figure, measured, target, met?) for every figure a run measured.

    ``item`` is the issue item the figure belongs to (issue 16's 1-5; "6" for issue 6's
    figures, which issue 16 asks to keep). Only the sections that ran give rows.
    """
    rows: list[tuple[str, str, str, str, str]] = []
    for row in results.get("trials", []):
        ratio, q1, q3 = row["ratio"]
        rows.append((
            "16.2", f"trial / float forward, {row['case']} ({row['repeats']} pairs)",
            f"{row['trial_ms'][0]:.3f} / {row['float_ms'][0]:.3f} ms = {ratio:.2f}x (IQR {q1:.2f}-{q3:.2f})",
            f"<= {row['target']}x", _met(ratio <= row["target"]),
        ))
        if row["model"] == "jsc-tiny":
            rows.append(("6", "jsc-tiny trial (512 samples)", f"{row['trial_ms'][0]:.3f} ms", "< 1 ms",
                         _met(row["trial_ms"][0] < 1.0)))
    if "exhaustive" in results:
        ex = results["exhaustive"]
        wall = statistics.median(ex["wall_s"])
        full = ex["configurations"] == 46_656
        rows.append((
            "16.3", f"exhaustive, {ex['configurations']:,} configurations of the digits MLP "
            "(accuracies; the loss is skipped when no objective or constraint reads it, as in the lab case)",
            f"{wall:.2f} s wall (runs {', '.join(f'{w:.2f}' for w in ex['wall_s'])}), "
            f"{statistics.median(ex['cpu_s']):.2f} s CPU",
            "<= 2 s" if full else "(46,656 in a real run)", _met(wall <= 2.0) if full else "",
        ))
        if "with_loss_wall_s" in ex:
            loss_wall = statistics.median(ex["with_loss_wall_s"])
            rows.append((
                "16.3", "the same with the cross-entropy too (an objective or constraint reads `loss`)",
                f"{loss_wall:.2f} s wall (runs {', '.join(f'{w:.2f}' for w in ex['with_loss_wall_s'])}), "
                f"{statistics.median(ex['with_loss_cpu_s']):.2f} s CPU",
                "<= 2 s" if full else "(46,656 in a real run)", _met(loss_wall <= 2.0) if full else "",
            ))
        rows.append(("16.3", "exhaustive in float forwards per configuration (one forward over the 540 samples "
                     f"= {ex['float_forward_ms']:.3f} ms)", f"{ex['float_forwards_per_configuration']:.3f}",
                     "the limit below", ""))
        rows.append(("16.3", "minimum arithmetic (MACs no sharing avoids), at the float forward's MAC rate",
                     f"{ex['minimum_gmac']:.2f} GMAC = {ex['minimum_s_at_float_rate']:.2f} s; exhaustive = "
                     f"{wall / ex['minimum_s_at_float_rate']:.1f}x that", "the limit", ""))
        rows.append(("16.3", f"exhaustive vs trial by trial ({ex['trial_ms']:.3f} ms per trial)",
                     f"{ex['trial_ms'] * ex['configurations'] / 1e3 / wall:.1f}x faster", "", ""))
        rows.append(("16.3", f"bit-identical to trial by trial ({ex['checks']} sampled configurations)",
                     f"{ex['mismatches']} mismatches", "0", _met(ex["mismatches"] == 0)))
    if "scaling" in results:
        sc = results["scaling"]
        for label, marks in sc["per_strategy"].items():
            for at, target in (("1000", 1.0), ("10000", 2.0)):
                if at in marks and label != "gp":
                    cpu = marks[at]["sampler_cpu_ms"]
                    rows.append(("16.1", f"sampler CPU per proposal, {label}, at {int(at):,} trials",
                                 f"{cpu:.3f} ms (loop {marks[at]['loop_ms']:.2f} ms wall)", f"<= {target:g} ms",
                                 _met(cpu <= target)))
        if "gp" in sc["per_strategy"]:
            at, gp = max(sc["per_strategy"]["gp"].items(), key=lambda kv: int(kv[0]))
            rows.append(("16.1", f"sampler CPU per proposal, gp, at {int(at):,} trials",
                         f"{gp['sampler_cpu_ms']:.1f} ms", "excluded (refits a GP per proposal)", ""))
        for at, ms in sc["stock_tpe_cpu_ms"].items():
            rows.append(("16.1", f"Optuna's stock TPESampler on the same history, at {int(at):,} trials",
                         f"{ms:.2f} ms", "reference", ""))
        for e in sc["samples"]:
            rows.append(("16.5", f"jsc-tiny trial / float forward, {e['samples']:,} samples",
                         f"{e['trial_ms']:.3f} / {e['float_ms']:.3f} ms = {e['ratio']:.2f}x", "<= 1.5x",
                         _met(e["ratio"] <= 1.5)))
    if "naive" in results:
        med, q1, q3 = results["naive"]["ratio"]
        rows.append(("6", "naive (MASE way) / ours, jsc-tiny, DataLoader without workers",
                     f"{med:.1f}x (IQR {q1:.1f}-{q3:.1f})", ">= 20x", _met(med >= 20)))
    if "naive_workers" in results:
        nw = results["naive_workers"]
        med, q1, q3 = nw["ratio"]
        rows.append(("6", f"naive / ours, DataLoader with {nw['workers']} workers (as MASE)",
                     f"{med:.1f}x (IQR {q1:.1f}-{q3:.1f})", ">= 20x", _met(med >= 20)))
    for n, kinds in results.get("storage_ms_per_trial", {}).items():
        for kind, fig in kinds.items():
            if kind == "in-memory":
                continue
            target = kind == "bitscout journal (default)"
            rows.append(("6", f"storage over in-memory, {kind}, {int(n):,} trials",
                         f"+{fig['extra_ms_mean']:.2f} ms/trial (mean)", "<= 3 ms" if target else "reference",
                         _met(fig["extra_ms_mean"] <= 3.0) if target else ""))
    if "startup_s" in results:
        st = results["startup_s"]
        rows.append(("6", "start-up to first trial, lab case (fresh interpreter)",
                     f"{st['first_trial'][0]:.2f} s wall, {st['first_trial_cpu'][0]:.2f} s CPU", "< 3 s",
                     _met(st["first_trial"][0] < 3.0)))
        rows.append(("6", "whole `bitscout search --n-trials 1` (outputs, plots)", f"{st['cli_one_trial'][0]:.2f} s",
                     "", ""))
    if "peak_memory" in results:
        pm = results["peak_memory"]
        rows.append(("6", f"peak memory, lab case, {pm['trials']} TPE trials",
                     f"{pm['max_rss_mb']:.0f} MB ({pm['wall_s']:.1f} s)", "<= 400 MB", _met(pm["max_rss_mb"] <= 400)))
    for label, marks in results.get("tpe_ms_per_trial", {}).items():
        rows.append(("6", f"{label}: ask + tell, in memory",
                     ", ".join(f"@{int(at):,}: {fig[0]:.2f} ms" for at, fig in marks.items()), "", ""))
    if results.get("machine", {}).get("device", "cpu") == "cpu":
        rows.append(("16.4", "GPU: compiled fake-quant / compiled float, configurations per second",
                     "not measured by this CPU run", "<= 1.1x", "see `benchmarks/gpu_check.sh`"))
    order = {"16.1": 0, "16.2": 1, "16.3": 2, "16.4": 3, "16.5": 4, "6": 5}
    return sorted(rows, key=lambda r: order[r[0]])


def results_markdown(results: dict[str, Any], plan: Plan, figures_rel: str | None) -> str:
    """One markdown block: machine, load, command, every figure against its target, scaling."""
    info = results["machine"]
    load0, load1 = info["load_average"], info["load_average_end"]
    lines = [
        f"## All figures in one run ({info['date_utc']}, `{plan.name}` plan)",
        "",
        f"- Command: `{results['command']}` ({results['total_s']:.0f} s in all).",
        f"- Machine: {info['cpu']}, {info['nproc']} CPUs, torch {info['torch']} with {info['torch_threads']} "
        f"thread(s), Python {info['python']}, device `{info['device']}`"
        + (f" ({info['gpu']})" if "gpu" in info else "") + ".",
        f"- **Load average (1, 5, 15 min) at the start {', '.join(f'{v:.2f}' for v in load0)}; at the end "
        f"{', '.join(f'{v:.2f}' for v in load1)}** on {info['nproc']} CPUs.",
        "- Per section (seconds; 1-minute load average at its start -> end): "
        + "; ".join(f"{name} {sec['s']:.0f} s ({sec['load'][0]:.1f} -> {sec['load'][1]:.1f})"
                    for name, sec in results.get("sections", {}).items()) + ".",
        "- Repeats and sizes:",
        plan.describe(),
        "",
        "Item = issue 16's item (16.1 sampler, 16.2 trial / float forward, 16.3 exhaustive, 16.4 GPU, 16.5 "
        "scaling) or issue 6's figures (6), which issue 16 keeps. Medians; ratios are of interleaved pairs.",
        "",
        "| item | figure | measured | target | met? |",
        "|---|---|---|---|---|",
    ]
    for item, figure, measured, target, met in figure_rows(results):
        lines.append(f"| {item} | {figure} | {measured} | {target} | {met} |")
    if "scaling" in results:
        sc = results["scaling"]
        marks = sorted({int(at) for rows in sc["per_strategy"].values() for at in rows})
        lines += ["", "Scaling with trials: the sampler's own CPU ms per proposal (whole loop's wall ms per trial), "
                  "median of the trials before each mark:", "",
                  "| strategy | " + " | ".join(f"@{m:,}" for m in marks) + " |",
                  "|---|" + "---|" * len(marks)]
        for label, rows in sc["per_strategy"].items():
            cells = [f"{rows[str(m)]['sampler_cpu_ms']:.3f} ({rows[str(m)]['loop_ms']:.2f})" if str(m) in rows else "-"
                     for m in marks]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        stock = {int(k): v for k, v in sc["stock_tpe_cpu_ms"].items()}
        lines.append("| Optuna's stock TPESampler, same history | "
                     + " | ".join(f"{stock[m]:.2f}" if m in stock else "-" for m in marks) + " |")
        lines += ["", "Scaling with samples (jsc-tiny, synthetic JSC):", "",
                  "| samples | " + " | ".join(f"{e['samples']:,}" for e in sc["samples"]) + " |",
                  "|---|" + "---|" * len(sc["samples"]),
                  "| trial ms | " + " | ".join(f"{e['trial_ms']:.3f}" for e in sc["samples"]) + " |",
                  "| float forward ms | " + " | ".join(f"{e['float_ms']:.3f}" for e in sc["samples"]) + " |",
                  "| ratio (target <= 1.5x) | " + " | ".join(f"{e['ratio']:.2f}x" for e in sc["samples"]) + " |"]
        if figures_rel is not None:
            lines += ["", f"![cost per trial against trials]({figures_rel}/scaling_trials.png)",
                      f"![cost per trial against samples]({figures_rel}/scaling_samples.png)"]
    return "\n".join(lines) + "\n"


# ----- main -----------------------------------------------------------------------------------------


SECTIONS = ("trials", "naive", "storage", "startup", "sampler", "exhaustive", "scaling")


def _run_section(name: str, run: Callable[[], Any]) -> Any:
    """Run one section, recording its seconds and the load average before and after."""
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    out = run()
    RESULTS.setdefault("sections", {})[name] = {"s": time.perf_counter() - t0, "load": (load0, os.getloadavg()[0])}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--quick", action="store_true", help="fewer repeats and trials")
    modes.add_argument("--dry-run", action="store_true",
                       help="tiny sizes and a 64-configuration space: checks that every section runs, not speed")
    parser.add_argument("--results", type=Path, metavar="FILE.md",
                        help="run every section once (the 'results' plan, ~15 minutes on 2 idle CPUs, unless "
                             "--quick or --dry-run) and write one markdown block of every figure against its "
                             "target to FILE.md (figures beside it, in figures/)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (sections 1, 2 and 7 run there)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--strategies", nargs="+", help="scaling: only these strategies (e.g. tpe)")
    args = parser.parse_args(argv)
    if args.results is not None and args.only:
        parser.error("--results runs every section: leave out --only")
    plan = PLANS["dry" if args.dry_run else "quick" if args.quick else "results" if args.results else "full"]
    figures = FIGURES if args.results is None else args.results.parent / "figures"
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    sections = set(args.only or SECTIONS)
    info = machine()
    info["device"] = str(device)
    RESULTS["machine"] = info
    RESULTS["plan"] = dataclasses.asdict(plan)
    RESULTS["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    print(f"bitscout speed benchmark ({plan.name} plan)")
    for key, value in info.items():
        print(f"  {key}: {value}")
    started = time.perf_counter()
    benches: dict[str, TrialBench] = {}
    if "trials" in sections:
        benches = _run_section("trials", lambda: section_trials(device, plan))
    if "naive" in sections:
        bench = benches.get("jsc-tiny") or TrialBench("jsc-tiny", "jsc-tiny", _synthetic_jsc(4096), 512, device)
        _run_section("naive", lambda: section_naive(bench, plan))
    if "storage" in sections:
        _run_section("storage", lambda: section_storage(plan))
    if "startup" in sections:
        _run_section("startup", lambda: section_startup(plan))
    if "sampler" in sections:
        _run_section("sampler", lambda: section_sampler(plan))
    if "exhaustive" in sections:
        _run_section("exhaustive", lambda: section_exhaustive(device, plan))
    if "scaling" in sections:
        _run_section("scaling", lambda: section_scaling(plan, figures, args.strategies))
    RESULTS["total_s"] = time.perf_counter() - started
    RESULTS["machine"]["load_average_end"] = os.getloadavg()
    print(f"\ntotal {RESULTS['total_s']:.0f} s; load average at the end {os.getloadavg()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(RESULTS, indent=2, default=str))
    if args.results is not None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        block = results_markdown(RESULTS, plan, "figures")
        args.results.write_text(block)
        print(f"\n{block}\nwritten to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
