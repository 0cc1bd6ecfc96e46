"""Sample efficiency of bitscout's strategies on the benchmark suite (``benchmarks/suite.py``).

One command::

    .venv/bin/python benchmarks/sample_efficiency.py                  # every member, 20 seeds
    .venv/bin/python benchmarks/sample_efficiency.py --quick          # the quick subset (< 3 min)
    .venv/bin/python benchmarks/sample_efficiency.py --members mlp/w1,cnn/budget --strategies sensitivity,tpe

Every member (a model, a space, an objective: see ``suite.py``) is searched by every
strategy with every seed, each run its own in-memory Optuna study driven by the search's
own loop (:func:`bitscout.study.run_search`: duplicates are answered from the study,
configurations a hardware budget rules out are skipped), answered from the member's
cached table. A run stops when it reaches the optimum (one objective), after
``--max-unique`` unique evaluations (default 1,000), or after ``--max-trials`` trials
(duplicates included; default 1.5 x ``--max-unique``: a strategy that mostly repeats
itself uses up its trials, as in a search).

Printed (and written to ``--out``/suite.md, every run in suite.json), per member and
strategy:

* ``<=500``: seeds that reached the optimum within 500 unique evaluations;
  ``<=1000``: within 1,000 (the budget TPE is judged at);
* ``median``: median unique evaluations to the optimum over seeds (a seed that never
  reached it counts as infinitely late: "never" when more than half did not);
* ``runs``: DISTINCT trajectories among the seeds (distinct sequences of proposed
  configurations): 20 seeds that follow one path are one run, not 20;
* Pareto members: ``HV@200`` and ``HV@1000``, the median hypervolume of the feasible
  points found within 200 / 1,000 unique evaluations, as a fraction of the true front's
  (exact members) or of the best known front's;
* ``target``: issue 17's targets for that row: one objective: at least 19 of 20 seeds
  within 500, median at most 100, and at least as many seeds within 1,000 as TPE;
  Pareto: HV@200 at least the HV@1000 of NSGA-II and of TPE.

Runs of Optuna's own samplers (``tpe``, ``random``, ``nsgaii``, ``qmc``) and of
``brute_force`` are deterministic for a seed and cached under the suite's cache folder
(keyed by the member's table and optimum, the strategy's source and Optuna's version),
so a rerun only pays for the strategies being developed; ``--fresh`` ignores that cache.
For members whose optimum is the best known (the 64-million-configuration ``deep``
space), the best known is recomputed after the runs: when a run found better, the
earlier "reached" verdicts of that member are judged against the new value and the
report says so.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))

import suite  # noqa: E402  (benchmarks/ is not a package)

from bitscout.compare import seed_quantile  # noqa: E402  (the same rule as compare's table)
from bitscout.errors import SearchError  # noqa: E402
from bitscout.strategies import Exhaustible, get_strategy  # noqa: E402
from bitscout.study import run_search  # noqa: E402

DEFAULT_STRATEGIES = ("sensitivity", "tpe", "random", "nsgaii")
QUICK_STRATEGIES = ("sensitivity", "tpe", "random", "nsgaii")
REUSABLE = frozenset({"tpe", "random", "nsgaii", "nsgaiii", "qmc", "brute_force"})
"""Strategies whose runs are cached: Optuna's samplers and brute force, fixed for a seed."""

HV_BUDGETS = (200, 1000)
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {"brute_force": {"shuffle": True}}


# -- one run -------------------------------------------------------------------------------


class _Recorder(optuna.samplers.BaseSampler, Exhaustible):
    """Wraps a strategy's sampler: times it, records what each trial proposed and got,
    and stops the study (as an exhausted sampler does) at the optimum or the budget."""

    def __init__(self, inner: optuna.samplers.BaseSampler, member: suite.Member, max_unique: int, stop_at: float | None) -> None:
        self.inner = inner
        self.member = member
        self.max_unique = max_unique
        self.stop_at = stop_at
        self.seconds = 0.0
        self.proposals: list[int] = []
        self.seen: set[int] = set()
        self.unique = 0
        self.skipped = 0
        self.best: float | None = None
        self.hit: tuple[int, int] | None = None  # (trials, unique evaluations) at the optimum
        self.points: list[tuple[int, tuple[float, ...]]] = []  # (unique count, values) of feasible firsts

    def _timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._timed(self.inner.infer_relative_search_space, study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._timed(self.inner.sample_relative, study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._timed(self.inner.sample_independent, study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._timed(self.inner.before_trial, study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._timed(self.inner.after_trial, study, trial, state, values)
        space = self.member.space
        index = space.distinct_index_of(trial.params)
        self.proposals.append(index)
        if index in self.seen:
            return
        self.seen.add(index)
        # The loop has just evaluated it: this is the shared cache's answer, not a new evaluation.
        entry = self.member.evaluator.evaluate(space.decode(trial.params))
        if entry.skipped:
            self.skipped += 1
            return
        self.unique += 1
        if not (entry.ok and entry.feasible):
            return
        self.points.append((self.unique, tuple(entry.values)))
        if self.member.multi:
            return
        value = entry.values[0]
        sign = 1.0 if self.member.directions[0] == "maximize" else -1.0
        if self.best is None or sign * value > sign * self.best:
            self.best = value
        if self.hit is None and self.member.reached(value):
            self.hit = (len(self.proposals), self.unique)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def is_exhausted(self, study: optuna.Study) -> bool:
        if self.unique >= self.max_unique:
            return True
        if self.stop_at is not None and self.hit is not None:
            return True
        return isinstance(self.inner, Exhaustible) and self.inner.is_exhausted(study)


@dataclass
class Run:
    """One strategy run with one seed on one member."""

    member: str
    strategy: str
    seed: int
    trials: int
    unique: int
    skipped: int
    trials_to_opt: int | None
    unique_to_opt: int | None
    best: float | None
    target: float | None
    trajectory: str
    sampler_s: float
    wall_s: float
    stop: str
    hv: dict[str, float] = field(default_factory=dict)
    points: list[list[Any]] = field(default_factory=list)
    error: str | None = None


def run_one(member: suite.Member, strategy: str, seed: int, *, max_unique: int, max_trials: int, options: Mapping[str, Any] | None = None) -> Run:
    """One run of ``strategy`` with ``seed`` on ``member``, through ``run_search``."""
    chosen = dict(options if options is not None else _DEFAULT_OPTIONS.get(strategy, {}))
    started = time.perf_counter()
    try:
        sampler = get_strategy(strategy).make_sampler(
            member.space, seed=seed, directions=member.directions, options=chosen,
            n_trials=max_unique, constraints=member.hardware_constraints,
        )
    except SearchError as exc:
        return Run(member.name, strategy, seed, 0, 0, 0, None, None, None, None, "", 0.0, 0.0, "refused", error=str(exc))
    target = None if member.multi else member.optimum.value
    recorder = _Recorder(sampler, member, max_unique, target)
    with tempfile.TemporaryDirectory(prefix="bitscout-suite-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_search(
            member.space, recorder, member.evaluator, out_dir=Path(tmp),
            storage=optuna.storages.InMemoryStorage(), study_name=f"{strategy}-{seed}",
            n_trials=max_trials, progress=False, write_outputs=False,
        )
    trajectory = hashlib.sha1(np.asarray(recorder.proposals, dtype=np.int64).tobytes()).hexdigest()[:16]
    run = Run(
        member=member.name, strategy=strategy, seed=seed, trials=len(recorder.proposals),
        unique=recorder.unique, skipped=recorder.skipped,
        trials_to_opt=recorder.hit[0] if recorder.hit else None,
        unique_to_opt=recorder.hit[1] if recorder.hit else None,
        best=recorder.best, target=target, trajectory=trajectory, sampler_s=recorder.seconds,
        wall_s=time.perf_counter() - started, stop=result.stop_reason,
    )
    if member.multi:
        run.points = [[u, list(v)] for u, v in recorder.points]
        run.hv = hypervolumes(member, run.points)
    return run


def hypervolumes(member: suite.Member, points: Sequence[Sequence[Any]]) -> dict[str, float]:
    """Hypervolume ratio (found / the optimum's front) within each budget of HV_BUDGETS."""
    opt = member.optimum
    out = {}
    for budget in HV_BUDGETS:
        found = np.array([v for u, v in points if u <= budget]).reshape(-1, len(member.directions))
        hv = suite.hypervolume_of(found, opt.reference_point, member.directions)
        out[str(budget)] = hv / opt.hypervolume if opt.hypervolume else 0.0
    return out


# -- the run cache -------------------------------------------------------------------------



def _source_digest(strategy: str) -> str:
    """Optuna's version and the strategy's own source file: what a cached run depends on."""
    path = inspect.getsourcefile(type(get_strategy(strategy)))
    text = Path(path).read_bytes() if path else b""
    return hashlib.sha1(optuna.__version__.encode() + text).hexdigest()[:10]


def _run_path(member: suite.Member, strategy: str, seed: int, max_unique: int, max_trials: int) -> Path:
    opt = member.optimum
    key = hashlib.sha1(
        json.dumps(
            [member.name, member.description, opt.value, opt.front, opt.reference_point, strategy,
             _DEFAULT_OPTIONS.get(strategy, {}), _source_digest(strategy), max_unique, max_trials],
            default=repr,
        ).encode()
    ).hexdigest()[:12]
    return suite.cache_dir() / "runs" / member.name.replace("/", "_") / f"{strategy}-s{seed}-{key}.json"


def cached_run(
    member: suite.Member, strategy: str, seed: int, *, max_unique: int, max_trials: int, reuse: bool, cache_all: bool = False
) -> Run:
    """:func:`run_one`, read from / written to the run cache for the reusable strategies
    (for every strategy with ``cache_all``: then a change outside the strategy's own source
    file is not noticed)."""
    cached = strategy in REUSABLE or cache_all
    path = _run_path(member, strategy, seed, max_unique, max_trials) if cached else None
    if reuse and path is not None and path.is_file():
        return Run(**json.loads(path.read_text()))
    run = run_one(member, strategy, seed, max_unique=max_unique, max_trials=max_trials)
    if path is not None and run.error is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(run)))
        tmp.replace(path)
    return run


def _task(args: tuple[str, str, int, int, int, bool, bool]) -> Run:
    name, strategy, seed, max_unique, max_trials, reuse, cache_all = args
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    return cached_run(
        suite.load(name), strategy, seed, max_unique=max_unique, max_trials=max_trials, reuse=reuse, cache_all=cache_all
    )


# -- summary -------------------------------------------------------------------------------


@dataclass
class Row:
    """One member x strategy line of the table."""

    member: str
    strategy: str
    seeds: int
    within_500: int
    within_1000: int
    median: float | None
    distinct: int
    hv200: float | None
    hv1000: float | None
    sampler_s: float
    refused: str | None = None
    target: bool | None = None


def summarize(member: suite.Member, runs: Sequence[Run]) -> Row:
    """The table row of one strategy's runs on ``member``."""
    first = runs[0]
    if first.error is not None:
        return Row(member.name, first.strategy, len(runs), 0, 0, None, 0, None, None, 0.0, refused=first.error)
    reached = [r.unique_to_opt for r in runs]
    hv = {b: [r.hv.get(str(b), 0.0) for r in runs] for b in HV_BUDGETS}
    return Row(
        member=member.name,
        strategy=first.strategy,
        seeds=len(runs),
        within_500=sum(u is not None and u <= 500 for u in reached),
        within_1000=sum(u is not None and u <= 1000 for u in reached),
        median=None if member.multi else seed_quantile(reached, 0.5),
        distinct=len({r.trajectory for r in runs}),
        hv200=float(np.median(hv[200])) if member.multi else None,
        hv1000=float(np.median(hv[1000])) if member.multi else None,
        sampler_s=float(np.mean([r.sampler_s for r in runs])),
    )


def rejudge(member: suite.Member, runs: list[Run]) -> str | None:
    """Judge runs of a best-known member against the best known after them.

    A run stopped at the best known of its start counts only while that is still the
    best known; a run that found better raises it (the cache holds its evaluation).
    Returns a note when the best known changed.
    """
    if member.exact:
        return None
    before = member.optimum.value if not member.multi else member.optimum.hypervolume
    member.refresh()
    after = member.optimum.value if not member.multi else member.optimum.hypervolume
    if member.multi:
        for run in runs:
            if run.error is None:
                run.hv = hypervolumes(member, run.points)
        return None if after == before else (
            f"{member.name}: the best known front improved during these runs "
            f"(hypervolume {before:.6g} -> {after:.6g}); ratios are to the new front"
        )
    if before is None or after is None or member.reached(before):
        return None
    for run in runs:
        if run.unique_to_opt is not None and not member.reached(run.best):
            run.unique_to_opt = run.trials_to_opt = None
    return (
        f"{member.name}: a run found better than the best known ({before:.6f} -> {after:.6f}); "
        "runs that stopped at the old value no longer count as reaching it: run again"
    )


def mark_targets(rows: list[Row]) -> None:
    """Fill ``Row.target`` (see the module docstring)."""
    by_member: dict[str, dict[str, Row]] = {}
    for row in rows:
        by_member.setdefault(row.member, {})[row.strategy] = row
    for member_rows in by_member.values():
        tpe = member_rows.get("tpe")
        for row in member_rows.values():
            if row.refused is not None:
                continue
            if row.hv200 is not None:
                others = [member_rows[s].hv1000 for s in ("nsgaii", "tpe") if s in member_rows and member_rows[s].hv1000 is not None]
                row.target = bool(others) and row.hv200 >= max(others) - 1e-12
                continue
            need = math.ceil(0.95 * row.seeds)  # 19 of 20
            row.target = (
                row.within_500 >= need
                and row.median is not None
                and row.median <= 100
                and (tpe is None or row.within_1000 >= tpe.within_1000)
            )


def _fmt(value: float | None, digits: int = 0) -> str:
    return "never" if value is None else f"{value:.{digits}f}"


def format_table(members: Sequence[suite.Member], rows: Sequence[Row]) -> str:
    """The suite's table: one block per member, one row per strategy."""
    lines = [
        "| member | configurations | optimum | strategy | <=500 | <=1000 | median | runs | HV@200 | HV@1000 | sampler s/run | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_name = {m.name: m for m in members}
    for row in rows:
        m = by_name[row.member]
        if m.multi:
            opt = f"front of {len(m.optimum.front or [])} ({'exact' if m.exact else 'best known'})"
        else:
            opt = f"{m.optimum.value:.6f} ({'exact' if m.exact else 'best known'})"
        if row.refused is not None:
            reason = row.refused.split(";")[0]
            lines.append(f"| {row.member} | {m.size:,} | {opt} | {row.strategy} | refused ({reason}) | | | | | | | |")
            continue
        multi = row.hv200 is not None
        lines.append(
            f"| {row.member} | {m.size:,} | {opt} | {row.strategy} | "
            f"{'-' if multi else f'{row.within_500}/{row.seeds}'} | {'-' if multi else f'{row.within_1000}/{row.seeds}'} | "
            f"{'-' if multi else _fmt(row.median)} | {row.distinct}/{row.seeds} | "
            f"{_fmt(row.hv200, 3) if multi else '-'} | {_fmt(row.hv1000, 3) if multi else '-'} | "
            f"{row.sampler_s:.2f} | {'-' if row.target is None else ('yes' if row.target else 'no')} |"
        )
    return "\n".join(lines)


def _members_text(members: Sequence[suite.Member]) -> str:
    lines = []
    for m in members:
        lines.append(f"- {m.name} ({m.size:,} configurations): {m.description}; optimum {m.optimum.describe()}")
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick subset: 3 seeds, 200 unique evaluations")
    parser.add_argument("--members", default=None, help="comma-separated member names (default: all, or the quick ones)")
    parser.add_argument("--strategies", default=None, help=f"comma-separated (default: {','.join(DEFAULT_STRATEGIES)})")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 20; 3 with --quick)")
    parser.add_argument("--max-unique", type=int, default=None, help="unique evaluations per run (default 1000; 200 with --quick)")
    parser.add_argument("--max-trials", type=int, default=None, help="trials per run, duplicates included (default 1.5 x --max-unique)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--fresh", action="store_true", help="ignore cached runs of the reusable strategies")
    parser.add_argument(
        "--cache-all", action="store_true",
        help="cache (and reuse) the runs of every strategy, keyed by its own source file",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/sample_efficiency"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    member_names = args.members.split(",") if args.members else suite.names(quick=args.quick)
    strategies = (args.strategies.split(",") if args.strategies else list(QUICK_STRATEGIES if args.quick else DEFAULT_STRATEGIES))
    seeds = args.seeds if args.seeds is not None else (3 if args.quick else 20)
    max_unique = args.max_unique if args.max_unique is not None else (200 if args.quick else 1000)
    max_trials = args.max_trials if args.max_trials is not None else max_unique * 3 // 2
    for name in strategies:
        get_strategy(name)  # an unknown name fails before anything runs
    members = []
    for name in member_names:
        members.append(suite.load(name))
    built = time.perf_counter() - started
    print(f"{len(members)} members ready in {built:.0f} s", flush=True)
    tasks = [(m.name, s, seed, max_unique, max_trials, not args.fresh, args.cache_all) for m in members for s in strategies for seed in range(seeds)]
    runs: list[Run] = []

    def done(run: Run) -> None:
        runs.append(run)
        reached = "refused" if run.error else f"optimum after {_fmt(run.unique_to_opt)}"
        print(f"  {run.member} {run.strategy} seed {run.seed}: {run.unique} unique, {reached}, {run.wall_s:.1f} s", flush=True)

    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for run in pool.map(_task, tasks, chunksize=1):
                done(run)
    else:
        for t in tasks:
            done(_task(t))
    notes = []
    rows = []
    for m in members:
        mine = [r for r in runs if r.member == m.name]
        note = rejudge(m, mine)
        if note:
            notes.append(note)
        for s in strategies:
            rows.append(summarize(m, [r for r in mine if r.strategy == s]))
    mark_targets(rows)
    took = time.perf_counter() - started
    table = format_table(members, rows)
    text = "\n\n".join(
        [
            f"Suite: {len(members)} members x {len(strategies)} strategies x {seeds} seeds, "
            f"at most {max_unique} unique evaluations ({max_trials} trials) per run; "
            f"{took:.0f} s in all ({built:.0f} s loading tables), {os.cpu_count()} CPUs.",
            _members_text(members),
            table,
            *(["Notes:\n" + "\n".join(f"- {n}" for n in notes)] if notes else []),
        ]
    )
    print(text, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "suite.md").write_text(text + "\n")
    (args.out / "suite.json").write_text(
        json.dumps({"rows": [asdict(r) for r in rows], "runs": [asdict(r) for r in runs], "notes": notes}, indent=1) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
