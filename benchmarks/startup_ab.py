"""Start-up to first trial and journal storage per trial: two source trees side by side.

Compares two copies of bitscout's ``src`` (e.g. a ``git archive`` snapshot of main and
one of a branch) in one window, so that both see the same machine load::

    git archive main src | tar -x -C /tmp/a && git archive HEAD src | tar -x -C /tmp/b
    .venv/bin/python benchmarks/startup_ab.py /tmp/a/src /tmp/b/src --rounds 5 --json ab.json

1. **Start-up** of the MASE lab case (``configs/jsc_tiny_lab.toml``, a synthetic
   200,000-row JSC Parquet file written here, data cache warm), in fresh interpreters,
   round-robin over the variants: a bare ``import torch``; speed.py's first-trial script
   (load the config, ``prepare_search``, one trial of ``run_search``); and the
   ``bitscout search`` command until its first trial's evaluation returns (both exit
   right after, so their CPU time is the start-up's). Each tree runs twice: with Python's
   bytecode cache (what a user's Python keeps) and without it (``PYTHONDONTWRITEBYTECODE=1``,
   bitscout's modules compiled at every start, as on the development sandbox).
2. **Storage**: speed.py's storage study (seeded TPE ask/tell plus one user-attr write per
   trial) on each tree's default journal storage and on Optuna's in-memory storage, the
   three studies advancing in lockstep; the extra milliseconds per trial over in-memory,
   mean and median, in the first and the last 100 trials, in wall time and in the
   thread's CPU time (which a busy machine's other processes do not inflate).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB_CONFIG = REPO / "configs" / "jsc_tiny_lab.toml"

# speed.py's first-trial script, then an immediate exit: the process's CPU time is then
# the start-up's, without the interpreter's shutdown (as for the command below).
FIRST_TRIAL = (
    re.search(r'_FIRST_TRIAL = r"""(.*?)"""', (REPO / "benchmarks" / "speed.py").read_text(), re.S).group(1)
    + "import os\nos._exit(0)\n"
)

CLI_FIRST_TRIAL = r"""
import os, sys, time
t0 = float(sys.argv[1])
from bitscout.cli import main
from bitscout.study import _search
evaluate = _search._Search._evaluate
def first(self, *args, **kwargs):
    evaluate(self, *args, **kwargs)
    print("FIRST_TRIAL_S", time.time() - t0, flush=True)
    os._exit(0)
_search._Search._evaluate = first
main(["search", sys.argv[2], "--out", sys.argv[3], "--n-trials", "1", "--no-progress"])
"""

STORAGE = r"""
import json, sys, tempfile, time, warnings
from pathlib import Path
import optuna
from optuna.distributions import CategoricalDistribution
from bitscout.study import open_storage
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.simplefilter("ignore")
n = int(sys.argv[1])
dists = {f"fc{i}/w": CategoricalDistribution((2, 3, 4, 5, 6, 8)) for i in range(6)}
record = {"software_metrics": {"accuracy": 0.9, "loss": 0.3}, "hardware_metrics": {"average_bitwidth": 4.0}}
with tempfile.TemporaryDirectory() as tmp:
    storages = {"in-memory": optuna.storages.InMemoryStorage(), "journal": open_storage(None, Path(tmp) / "run")[0]}
    studies = {k: optuna.create_study(storage=s, sampler=optuna.samplers.TPESampler(seed=0), direction="maximize")
               for k, s in storages.items()}
    times = {k: [] for k in studies}
    cpu = {k: [] for k in studies}
    for _ in range(n):
        for kind, study in studies.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            trial = study.ask(dists)
            value = -sum((v - 5) ** 2 for v in trial.params.values())
            study._storage.set_trial_user_attr(trial._trial_id, "bitscout_record", record)
            study.tell(trial, value)
            times[kind].append(time.perf_counter() - start)
            cpu[kind].append(time.thread_time() - start_cpu)
print("TIMES", json.dumps({"wall": times, "cpu": cpu}))
"""


def _write_lab_data(path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from speed import write_jsc_parquet

    write_jsc_parquet(path, 200_000)


def _env(src: str, data: Path, bytecode: bool) -> dict[str, str]:
    env = dict(os.environ, BITSCOUT_DATA=str(data), MPLBACKEND="Agg", PYTHONPATH=src)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _median(values: list[float]) -> float:
    return statistics.median(values)


def startup(trees: dict[str, Path], rounds: int, work: Path) -> dict[str, dict[str, list[float]]]:
    data = work / "hls4ml_lhc_jets_hlf.parquet"
    _write_lab_data(data)
    variants: dict[str, tuple[str | None, str, bool]] = {"import torch": (None, "", False)}
    for name, src in trees.items():
        cached = work / f"{name}-bytecode"
        shutil.copytree(src, cached)
        import compileall

        compileall.compile_dir(str(cached), quiet=1)
        for bytecode in (True, False):
            tag = "bytecode cached" if bytecode else "no bytecode"
            tree = str(cached) if bytecode else str(src)
            variants[f"{name}: first trial ({tag})"] = (FIRST_TRIAL, tree, bytecode)
            variants[f"{name}: bitscout search ({tag})"] = (CLI_FIRST_TRIAL, tree, bytecode)
    # Warm the data cache and the OS file cache once per tree.
    for code, src, bytecode in list(variants.values())[1:]:
        subprocess.run([sys.executable, "-c", code, str(time.time()), str(LAB_CONFIG), str(work / f"warm-{abs(hash((code, src, bytecode)))}")],
                       env=_env(src, data, bytecode), capture_output=True, check=True, cwd=work)
    out: dict[str, dict[str, list[float]]] = {k: {"wall_s": [], "cpu_s": []} for k in variants}
    for r in range(rounds):
        for name, (code, src, bytecode) in variants.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.time()
            if code is None:
                subprocess.run([sys.executable, "-c", "import torch"], check=True, env=_env("", data, False))
                wall = time.time() - start
            else:
                proc = subprocess.run(
                    [sys.executable, "-c", code, str(start), str(LAB_CONFIG), str(work / f"run{r}-{len(out[name]['wall_s'])}-{abs(hash(name))}")],
                    env=_env(src, data, bytecode), capture_output=True, text=True, check=True, cwd=work,
                )
                wall = float(re.search(r"FIRST_TRIAL_S ([0-9.]+)", proc.stdout).group(1))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            out[name]["wall_s"].append(wall)
            out[name]["cpu_s"].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        print(f"  start-up round {r + 1}/{rounds} done (load {os.getloadavg()[0]:.2f})", flush=True)
    return out


def storage(trees: dict[str, Path], sizes: list[int], repeats: int) -> dict[str, dict[int, list[dict]]]:
    out: dict[str, dict[int, list[dict]]] = {name: {n: [] for n in sizes} for name in trees}
    for _ in range(repeats):
        for n in sizes:
            for name, src in trees.items():  # alternated, so that both see the same load
                env = dict(os.environ, PYTHONPATH=str(src))
                proc = subprocess.run([sys.executable, "-c", STORAGE, str(n)], env=env, capture_output=True,
                                      text=True, check=True)
                measured = json.loads(proc.stdout.split("TIMES", 1)[1])
                figures: dict[str, float] = {"load": os.getloadavg()[0]}
                for clock in ("wall", "cpu"):  # cpu: this thread's CPU time, blind to other processes
                    times = measured[clock]
                    extra = [(j - m) * 1e3 for j, m in zip(times["journal"], times["in-memory"])]
                    figures |= {
                        f"{clock}_extra_mean_ms": statistics.mean(extra),
                        f"{clock}_extra_median_ms": _median(extra),
                        f"{clock}_first100_mean_ms": statistics.mean(extra[:100]),
                        f"{clock}_last100_mean_ms": statistics.mean(extra[-100:]),
                        f"{clock}_in_memory_mean_ms": statistics.mean(times["in-memory"]) * 1e3,
                    }
                out[name][n].append(figures)
                print(f"  storage {name}, {n} trials: +{figures['wall_extra_mean_ms']:.2f} ms/trial wall, "
                      f"+{figures['cpu_extra_mean_ms']:.2f} ms CPU (means)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="the first src tree (e.g. main's)")
    parser.add_argument("b", type=Path, help="the second src tree (e.g. the branch's)")
    parser.add_argument("--names", default="main,branch", help="names of the two trees (default main,branch)")
    parser.add_argument("--rounds", type=int, default=5, help="start-up rounds (default 5)")
    parser.add_argument("--storage-trials", default="100,1000", help="storage study sizes (default 100,1000)")
    parser.add_argument("--storage-repeats", type=int, default=2, help="storage repeats per size and tree (default 2)")
    parser.add_argument("--only", choices=("startup", "storage"), help="run one part only")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args()
    names = args.names.split(",")
    trees = {names[0]: args.a.resolve(), names[1]: args.b.resolve()}
    results: dict = {"load_start": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "startup"):
            results["startup"] = startup(trees, args.rounds, Path(tmp))
            print("\nstart-up to first trial, MASE lab case (median over rounds; min in brackets):")
            for name, v in results["startup"].items():
                print(f"  {name:45s} wall {_median(v['wall_s']):.2f} s ({min(v['wall_s']):.2f})   "
                      f"CPU {_median(v['cpu_s']):.2f} s ({min(v['cpu_s']):.2f})")
        if args.only in (None, "storage"):
            sizes = [int(n) for n in args.storage_trials.split(",")]
            results["storage"] = storage(trees, sizes, args.storage_repeats)
            for clock in ("wall", "cpu"):
                print(f"\njournal storage over in-memory, {clock} ms per trial (each run: mean; first / last 100 trials):")
                for name, by_n in results["storage"].items():
                    for n, runs in by_n.items():
                        cells = ", ".join(
                            f"+{r[clock + '_extra_mean_ms']:.2f} ({r[clock + '_first100_mean_ms']:.2f} / "
                            f"{r[clock + '_last100_mean_ms']:.2f})"
                            for r in runs
                        )
                        print(f"  {name:8s} {n:>6,} trials: {cells}")
    results["load_end"] = os.getloadavg()
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"\nload average (1, 5, 15 min): start {results['load_start']}, end {results['load_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
