"""Issue 17's targets on the whole benchmark suite (``benchmarks/suite.py``), in one command.

::

    .venv/bin/python benchmarks/sample_efficiency.py                  # every member, 20 seeds (the targets table)
    .venv/bin/python benchmarks/sample_efficiency.py --write-doc      # the same, and the table into docs/sample_efficiency.md
    .venv/bin/python benchmarks/sample_efficiency.py --quick          # the quick subset: 3 seeds, 200 evaluations
    .venv/bin/python benchmarks/sample_efficiency.py --members mlp/w1,cnn/budget --strategies sensitivity,tpe,random

Per member (a model, a space, an objective: see ``suite.py``), by default: one objective:
the default strategy (``sensitivity``) and TPE; Pareto: ``pareto`` (to 200 unique
evaluations, its target's budget), NSGA-II and TPE; every one with the same seeds
(``--strategies`` runs the strategies named on every member instead). A run is a fresh
in-memory study driven by :func:`lean_search`: the decisions of the search's own loop
(:func:`bitscout.study.run_search`: duplicates answered from the study, configurations a
hardware budget rules out skipped), the strategy's real sampler through Optuna's
ask/tell, answers from the member's cached table; the same trajectory as run_search (the
tests check it), without the records only a person reads. A run stops at the optimum
(one objective), after ``--max-unique`` unique evaluations (default 1,000) or after 1.5 x
that many trials (duplicates included: a strategy that mostly repeats itself uses up its
trials, as in a search). Runs go to ``--jobs`` forked worker processes (default: one per
CPU), which share the members (tables) the parent loaded, read-only.

Printed and written to ``--out``/suite.md (every run in suite.json): the TARGETS table,
one row per member with met/missed (:class:`Verdict` defines each check):

* one objective: the default's seeds at the exact optimum (best known for the lazy
  ``deep`` space) within 500 unique evaluations (target: 19 of 20), its median unique
  evaluations to it (target: at most 100; a seed that never reached it counts as
  infinitely late: "never" when more than half did not), its distinct trajectories
  (target: one per seed), and "never behind TPE at 1,000": its seeds at the optimum
  within 1,000 unique evaluations at least TPE's AND its median best value after 1,000
  unique evaluations at least TPE's;
* Pareto: the median hypervolume of ``pareto``'s feasible points after 200 unique
  evaluations, as a fraction of the exact front's (best known for ``deep``), at least
  NSGA-II's and TPE's after 1,000 (medians over the same seeds);

then the detailed table (every strategy: seeds within 500 / 1,000, median, distinct
runs, HV@200 / HV@1000, sampler seconds per run). ``--write-doc`` puts the targets table,
with the date, wall time and load average, between the markers in
``docs/sample_efficiency.md``.

Runs of Optuna's own samplers (``tpe``, ``random``, ``nsgaii``, ``qmc``) and of
``brute_force`` are deterministic for a seed and cached under the suite's cache folder
(keyed by the member's table and optimum, Optuna's version and the source files of the
strategy and its sampler), so a rerun only pays for the strategies being developed;
``--fresh`` ignores that cache. For members whose optimum is the best known (the
64-million-configuration ``deep`` space), the best known is recomputed after the runs:
when a run found better, the earlier "reached" verdicts of that member are judged
against the new value and the report says so.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import threadpoolctl
import torch
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))

import suite  # noqa: E402  (benchmarks/ is not a package)

from bitscout._optuna_adapter import allow_stop, clear_stop, stop_requested  # noqa: E402
from bitscout.compare import seed_quantile  # noqa: E402  (the same rule as compare's table)
from bitscout.errors import SearchError  # noqa: E402
from bitscout.strategies import Exhaustible, get_strategy  # noqa: E402
from bitscout.study import run_search  # noqa: E402

DEFAULT_SINGLE = "sensitivity"
"""bitscout's default strategy for one (summed) objective: the one the targets judge."""
DEFAULT_PARETO = "pareto"
"""bitscout's strategy for several objectives."""
SINGLE_STRATEGIES = (DEFAULT_SINGLE, "tpe")
PARETO_STRATEGIES = (DEFAULT_PARETO, "nsgaii", "tpe")
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
    max_unique: int = 0
    cpu_s: float = 0.0  # CPU time of the run's process (0: not measured)
    cached: bool = False  # read from the run cache, not run now
    hv: dict[str, float] = field(default_factory=dict)
    points: list[list[Any]] = field(default_factory=list)
    error: str | None = None


def lean_search(member: suite.Member, sampler: optuna.samplers.BaseSampler, *, max_trials: int) -> str:
    """The search loop of :func:`bitscout.study.run_search`, for one worker, on a table.

    The same decisions in the same order (stop checks, ``study.ask`` with the space's
    distributions, a configuration already evaluated answered with its first values and
    constraint values, a configuration a hardware budget rules out told PRUNED, a failed
    evaluation told FAIL), so a sampler sees exactly the study it sees in a search and
    proposes the same trajectory (``tests/benchmarks`` checks it against run_search).
    Left out: what only a person or another worker reads (the record and metric user
    attrs, the fingerprint, locks, heartbeats, outputs), which cost as much as the
    sampler on a table. Returns the stop reason.
    """
    space, evaluator = member.space, member.evaluator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(), sampler=sampler, directions=member.directions
        )
    distributions = space.distributions()
    n_distinct = int(space.distinct_size)
    exhaustible = sampler if isinstance(sampler, Exhaustible) else None
    first: dict[Any, tuple[tuple[float, ...], dict[str, float]]] = {}
    counted = 0
    clear_stop(study)
    allow_stop(study, True)  # samplers may call study.stop(), as inside run_search
    try:
        while True:
            if counted >= max_trials:
                return f"reached n_trials = {max_trials}"
            if len(first) >= n_distinct:
                return f"every one of the {n_distinct} configurations is evaluated"
            if exhaustible is not None and exhaustible.is_exhausted(study):
                return "the strategy has proposed every configuration"
            if stop_requested(study):
                return "the sampler stopped the study (its space is exhausted)"
            trial = study.ask(distributions)
            counted += 1
            config = space.decode(trial.params)
            key = space.key(config)
            known = first.get(key)
            if known is not None:
                values, constraints = known
                for name, value in constraints.items():
                    trial.set_constraint(name, value)
                study.tell(trial, list(values))
                continue
            entry = evaluator.evaluate(config)
            if entry.error is not None:
                study.tell(trial, state=TrialState.FAIL)
                continue
            constraints = {}
            if entry.constraints:
                names = evaluator.constraint_names or tuple(f"constraint_{i}" for i in range(len(entry.constraints)))
                constraints = {n: v for n, v in zip(names, entry.constraints) if not math.isnan(v)}
                for name, value in constraints.items():
                    trial.set_constraint(name, value)
            if entry.skipped:
                study.tell(trial, state=TrialState.PRUNED)
                continue
            study.tell(trial, list(entry.values))
            first[key] = (tuple(entry.values), constraints)
    finally:
        allow_stop(study, False)


def run_one(
    member: suite.Member,
    strategy: str,
    seed: int,
    *,
    max_unique: int,
    max_trials: int,
    options: Mapping[str, Any] | None = None,
    loop: str = "lean",
) -> Run:
    """One run of ``strategy`` with ``seed`` on ``member``.

    ``loop = "lean"``: :func:`lean_search`; ``"search"``: bitscout's own
    :func:`bitscout.study.run_search` (the same trajectory, slower).
    """
    chosen = dict(options if options is not None else _DEFAULT_OPTIONS.get(strategy, {}))
    started, cpu = time.perf_counter(), time.process_time()
    try:
        sampler = get_strategy(strategy).make_sampler(
            member.space, seed=seed, directions=member.directions, options=chosen,
            n_trials=max_unique, constraints=member.hardware_constraints,
        )
    except SearchError as exc:
        return Run(member.name, strategy, seed, 0, 0, 0, None, None, None, None, "", 0.0, 0.0, "refused", error=str(exc))
    target = None if member.multi else member.optimum.value
    recorder = _Recorder(sampler, member, max_unique, target)
    if loop == "lean":
        stop = lean_search(member, recorder, max_trials=max_trials)
    else:
        with tempfile.TemporaryDirectory(prefix="bitscout-suite-") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stop = run_search(
                member.space, recorder, member.evaluator, out_dir=Path(tmp),
                storage=optuna.storages.InMemoryStorage(), study_name=f"{strategy}-{seed}",
                n_trials=max_trials, progress=False, write_outputs=False,
            ).stop_reason
    trajectory = hashlib.sha1(np.asarray(recorder.proposals, dtype=np.int64).tobytes()).hexdigest()[:16]
    run = Run(
        member=member.name, strategy=strategy, seed=seed, trials=len(recorder.proposals),
        unique=recorder.unique, skipped=recorder.skipped,
        trials_to_opt=recorder.hit[0] if recorder.hit else None,
        unique_to_opt=recorder.hit[1] if recorder.hit else None,
        best=recorder.best, target=target, trajectory=trajectory, sampler_s=recorder.seconds,
        wall_s=time.perf_counter() - started, stop=stop, max_unique=max_unique,
        cpu_s=time.process_time() - cpu,
    )
    if member.multi:
        run.points = [[u, list(v)] for u, v in recorder.points]
        run.hv = hypervolumes(member, run.points, max_unique)
    return run


def hypervolumes(member: suite.Member, points: Sequence[Sequence[Any]], max_unique: int = 0) -> dict[str, float]:
    """Hypervolume ratio (found / the optimum's front) within each budget of HV_BUDGETS
    that the run had (``max_unique``; 0: every budget)."""
    opt = member.optimum
    out = {}
    for budget in HV_BUDGETS:
        if max_unique and budget > max_unique:
            continue  # a run that stopped at 200 says nothing about 1,000
        found = np.array([v for u, v in points if u <= budget]).reshape(-1, len(member.directions))
        hv = suite.hypervolume_of(found, opt.reference_point, member.directions)
        out[str(budget)] = hv / opt.hypervolume if opt.hypervolume else 0.0
    return out


# -- the run cache -------------------------------------------------------------------------


_DIGESTS: dict[str, str] = {}


def _source_digest(member: suite.Member, strategy: str) -> str:
    """Optuna's version and the source files a strategy's runs depend on.

    The strategy's own file and every bitscout module its sampler's classes come from
    (``CachedTPESampler`` lives in ``bitscout/_optuna_adapter.py``, not beside
    ``TPEStrategy``): an edit to either invalidates the cached runs.
    """
    if strategy not in _DIGESTS:
        sampler = get_strategy(strategy).make_sampler(
            member.space, seed=0, directions=member.directions, options=_DEFAULT_OPTIONS.get(strategy, {}),
            n_trials=10, constraints=member.hardware_constraints,
        )
        files = {inspect.getsourcefile(type(get_strategy(strategy)))}
        files |= {inspect.getsourcefile(c) for c in type(sampler).__mro__ if c.__module__.startswith("bitscout")}
        digest = hashlib.sha1(optuna.__version__.encode())
        for path in sorted(f for f in files if f):
            digest.update(Path(path).read_bytes())
        _DIGESTS[strategy] = digest.hexdigest()[:10]
    return _DIGESTS[strategy]


def _run_path(member: suite.Member, strategy: str, seed: int, max_unique: int, max_trials: int) -> Path:
    opt = member.optimum
    # What the run depends on: a single-objective run stops at the optimum, so its value
    # is in the key. A Pareto run does not stop at its front: an exact front stands for
    # the table (in the key), a best-known one improves with every run and the ratios are
    # recomputed against it anyway (rejudge), so it is left out.
    front, reference = (opt.front, opt.reference_point) if member.exact else (None, None)
    key = hashlib.sha1(
        json.dumps(
            [member.name, member.description, opt.value, front, reference, strategy,
             _DEFAULT_OPTIONS.get(strategy, {}), _source_digest(member, strategy), max_unique, max_trials],
            default=repr,
        ).encode()
    ).hexdigest()[:12]
    return suite.cache_dir() / "runs" / member.name.replace("/", "_") / f"{strategy}-s{seed}-{key}.json"


def cached_run(
    member: suite.Member, strategy: str, seed: int, *, max_unique: int, max_trials: int, reuse: bool, cache_all: bool = False
) -> Run:
    """:func:`run_one`, read from / written to the run cache for the reusable strategies
    (for every strategy with ``cache_all``: then a change outside the strategy's source
    files is not noticed)."""
    cached = strategy in REUSABLE or cache_all
    try:
        path = _run_path(member, strategy, seed, max_unique, max_trials) if cached else None
    except SearchError:
        path = None  # a strategy that refuses the member: run_one says so
    if reuse and path is not None and path.is_file():
        return Run(**{**json.loads(path.read_text()), "cached": True})
    run = run_one(member, strategy, seed, max_unique=max_unique, max_trials=max_trials)
    if path is not None and run.error is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(run)))
        tmp.replace(path)
    return run


@dataclass(frozen=True)
class Task:
    """One run to do."""

    member: str
    strategy: str
    seed: int
    max_unique: int
    max_trials: int
    reuse: bool
    cache_all: bool


def _quiet() -> None:
    torch.set_num_threads(1)
    # One BLAS thread per process: the workers already fill the CPUs, and a strategy's
    # model fit (a Cholesky factorization) ran three times slower with two BLAS threads
    # per worker on the 2-core machine than with one.
    threadpoolctl.threadpool_limits(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")


def _task(task: Task) -> Run:
    _quiet()
    # suite.load is cached per process: a forked worker finds the parent's members
    # (tables shared, read-only, copy-on-write) and loads nothing.
    return cached_run(
        suite.load(task.member), task.strategy, task.seed, max_unique=task.max_unique,
        max_trials=task.max_trials, reuse=task.reuse, cache_all=task.cache_all,
    )


def run_tasks(tasks: Sequence[Task], jobs: int, done: Callable[[Run], None]) -> list[Run]:
    """Every task, in ``jobs`` forked worker processes (1: here), longest first."""
    # Longest first, so that no worker is left with one long run at the end: the lazily
    # evaluated space's members (evaluations to compute, the largest models), then by budget.
    order = sorted(tasks, key=lambda t: (suite.SPACES[suite.MEMBERS[t.member][0]].exact, -t.max_unique))
    runs: list[Run] = []
    if jobs <= 1:
        for task in order:
            runs.append(_task(task))
            done(runs[-1])
        return runs
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_task, task) for task in order]
        for future in as_completed(futures):
            runs.append(future.result())
            done(runs[-1])
    return runs


# -- summary -------------------------------------------------------------------------------


@dataclass
class Row:
    """One member x strategy line of the detailed table."""

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
    best: float | None = None


def summarize(member: suite.Member, runs: Sequence[Run]) -> Row:
    """The table row of one strategy's runs on ``member``."""
    first = runs[0]
    if first.error is not None:
        return Row(member.name, first.strategy, len(runs), 0, 0, None, 0, None, None, 0.0, refused=first.error)
    reached = [r.unique_to_opt for r in runs]

    def hv(budget: int) -> float | None:
        got = [r.hv.get(str(budget)) for r in runs]
        return None if not member.multi or None in got else float(np.median(got))

    bests = [r.best for r in runs]
    return Row(
        member=member.name,
        strategy=first.strategy,
        seeds=len(runs),
        within_500=sum(u is not None and u <= 500 for u in reached),
        within_1000=sum(u is not None and u <= 1000 for u in reached),
        median=None if member.multi else seed_quantile(reached, 0.5),
        distinct=len({r.trajectory for r in runs}),
        hv200=hv(200),
        hv1000=hv(1000),
        sampler_s=float(np.mean([r.sampler_s for r in runs])),
        best=_median_best(member, bests),
    )


def _median_best(member: suite.Member, bests: Sequence[float | None]) -> float | None:
    """Median of the runs' best values (a run without a feasible value counts as worst)."""
    if member.multi:
        return None
    sign = 1.0 if member.directions[0] == "maximize" else -1.0
    signed = [-math.inf if b is None else sign * b for b in bests]
    middle = float(np.median(signed))
    return None if math.isinf(middle) else sign * middle


def rejudge(member: suite.Member, runs: list[Run]) -> str | None:
    """Judge runs of a best-known member against the best known after them.

    A run stopped at the best known of its start counts only while that is still the
    best known; a run that found better raises it (the lazy table holds its evaluation:
    re-read here, since worker processes appended to it). Returns a note when the best
    known changed.
    """
    if member.exact:
        return None
    before = member.optimum.value if not member.multi else member.optimum.hypervolume
    if member._lazy is not None:
        member._lazy.reload()
    member.refresh()
    after = member.optimum.value if not member.multi else member.optimum.hypervolume
    if member.multi:
        for run in runs:
            if run.error is None:
                run.hv = hypervolumes(member, run.points, run.max_unique)
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
    """Fill ``Row.target`` of the detailed table (see :func:`judge` for the rules)."""
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


# -- the targets table ---------------------------------------------------------------------


@dataclass
class Verdict:
    """Issue 17's targets on one member: what was measured and which were met.

    Single objective (default strategy D, TPE T, the same seeds): ``within_500``: D's
    seeds at the optimum within 500 unique evaluations (met: at least 95%, 19 of 20);
    ``median``: D's median unique evaluations to it (met: at most 100); ``distinct``: D's
    distinct trajectories (met: one per seed); "never behind TPE at 1,000" (met: D's
    seeds at the optimum within 1,000 at least T's, AND D's median best value after
    1,000 unique evaluations at least T's). Pareto: the default Pareto strategy's median
    hypervolume ratio after 200 unique evaluations at least NSGA-II's and TPE's after
    1,000 (medians over the same seeds).
    """

    member: str
    strategy: str
    seeds: int
    checks: dict[str, bool]
    row: Row
    tpe: Row | None = None
    nsgaii: Row | None = None

    @property
    def met(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


def judge(member: suite.Member, rows: Mapping[str, Row], default: str) -> Verdict | None:
    """The :class:`Verdict` of ``member`` from its rows (None without the default's row)."""
    row = rows.get(default)
    if row is None:
        return None
    tpe, nsgaii = rows.get("tpe"), rows.get("nsgaii")
    checks: dict[str, bool] = {}
    if row.refused is not None:
        checks["runs"] = False
    elif member.multi:
        ran = {name: _final_hv(r) for name, r in (("NSGA-II", nsgaii), ("TPE", tpe)) if r is not None and r.refused is None}
        others = [hv for hv in ran.values() if hv is not None]
        label = f"HV@200 >= {', '.join(ran) or 'no baseline'} @1000"
        checks[label] = bool(others) and row.hv200 is not None and row.hv200 >= max(others) - 1e-12
    else:
        sign = 1.0 if member.directions[0] == "maximize" else -1.0
        checks["<=500"] = row.within_500 >= math.ceil(0.95 * row.seeds)
        checks["median"] = row.median is not None and row.median <= 100
        checks["runs"] = row.distinct == row.seeds
        if tpe is not None and tpe.refused is None:
            best_ok = row.best is not None and (tpe.best is None or sign * row.best >= sign * tpe.best - suite.TOLERANCE)
            checks["vs TPE"] = row.within_1000 >= tpe.within_1000 and best_ok
    return Verdict(member.name, default, row.seeds, checks, row, tpe, nsgaii)


def _final_hv(row: Row) -> float | None:
    """A baseline's hypervolume at the end of its budget (1,000; 200 in --quick runs)."""
    return row.hv1000 if row.hv1000 is not None else row.hv200


def _fmt(value: float | None, digits: int = 0) -> str:
    return "never" if value is None else f"{value:.{digits}f}"


def _optimum_text(m: suite.Member) -> str:
    if m.multi:
        return f"front of {len(m.optimum.front or [])} ({'exact' if m.exact else 'best known'})"
    return f"{m.optimum.value:.6f} ({'exact' if m.exact else 'best known'})"


def format_targets(members: Sequence[suite.Member], verdicts: Sequence[Verdict]) -> str:
    """Issue 17's targets, one row per member (see :class:`Verdict`)."""
    lines = [
        "| member | configurations | optimum | default | seeds <=500 | median | runs | <=1000 default / TPE "
        "| best@1000 default / TPE | HV@200 default / HV@1000 NSGA-II, TPE | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_name = {m.name: m for m in members}
    for v in verdicts:
        m, r = by_name[v.member], v.row
        head = f"| {v.member} | {m.size:,} | {_optimum_text(m)} | {v.strategy} |"
        missed = [name for name, ok in v.checks.items() if not ok]
        verdict = "met" if v.met else "missed: " + ", ".join(missed)
        if m.multi and v.tpe is None:
            verdict += " (TPE not run)"
        if r.refused is not None:
            lines.append(f"{head} refused ({r.refused.split(';')[0]}) | | | | | | {verdict} |")
            continue
        if m.multi:
            others = ", ".join(
                f"{_fmt(_final_hv(o), 3) if o is not None and o.refused is None else '-'}" for o in (v.nsgaii, v.tpe)
            )
            lines.append(
                f"{head} - | - | {r.distinct}/{r.seeds} | - | - | {_fmt(r.hv200, 3)} / {others} | {verdict} |"
            )
            continue
        t = v.tpe
        vs_count = f"{r.within_1000}/{r.seeds} / " + (f"{t.within_1000}/{t.seeds}" if t and t.refused is None else "-")
        vs_best = f"{_fmt(r.best, 6)} / " + (_fmt(t.best, 6) if t and t.refused is None else "-")
        lines.append(
            f"{head} {r.within_500}/{r.seeds} | {_fmt(r.median)} | {r.distinct}/{r.seeds} | {vs_count} | {vs_best} | - | {verdict} |"
        )
    return "\n".join(lines)


def format_table(members: Sequence[suite.Member], rows: Sequence[Row]) -> str:
    """The detailed table: one block per member, one row per strategy."""
    lines = [
        "| member | configurations | optimum | strategy | <=500 | <=1000 | median | runs | HV@200 | HV@1000 | sampler s/run | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_name = {m.name: m for m in members}
    for row in rows:
        m = by_name[row.member]
        opt = _optimum_text(m)
        if row.refused is not None:
            reason = row.refused.split(";")[0]
            lines.append(f"| {row.member} | {m.size:,} | {opt} | {row.strategy} | refused ({reason}) | | | | | | | |")
            continue
        multi = m.multi
        lines.append(
            f"| {row.member} | {m.size:,} | {opt} | {row.strategy} | "
            f"{'-' if multi else f'{row.within_500}/{row.seeds}'} | {'-' if multi else f'{row.within_1000}/{row.seeds}'} | "
            f"{'-' if multi else _fmt(row.median)} | {row.distinct}/{row.seeds} | "
            f"{_fmt(row.hv200, 3) if multi else '-'} | {_fmt(row.hv1000, 3) if multi and row.hv1000 is not None else '-'} | "
            f"{row.sampler_s:.2f} | {'-' if row.target is None else ('yes' if row.target else 'no')} |"
        )
    return "\n".join(lines)


def _members_text(members: Sequence[suite.Member]) -> str:
    lines = []
    for m in members:
        lines.append(f"- {m.name} ({m.size:,} configurations): {m.description}; optimum {m.optimum.describe()}")
    return "\n".join(lines)


DOC = Path(__file__).resolve().parents[1] / "docs" / "sample_efficiency.md"
DOC_BEGIN = "<!-- suite-targets:begin (written by benchmarks/sample_efficiency.py --write-doc) -->"
DOC_END = "<!-- suite-targets:end -->"


def write_doc(text: str, path: Path = DOC) -> None:
    """Replace what stands between the doc's two markers with ``text``."""
    doc = path.read_text()
    if DOC_BEGIN not in doc or DOC_END not in doc:
        raise SystemExit(f"{path}: the markers {DOC_BEGIN!r} and {DOC_END!r} are missing; add them where the table goes")
    head, rest = doc.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    path.write_text(f"{head}{DOC_BEGIN}\n{text}\n{DOC_END}{tail}")


# -- cost per proposal ---------------------------------------------------------------------


def proposal_cost(strategy: str, member_name: str = "cnn/w1", histories: Sequence[int] = (1000, 10000), proposals: int = 200) -> list[str]:
    """What one proposal costs a strategy's sampler with a long history (issue 16 item 1).

    A study holding ``n`` random distinct configurations of the member with their table
    values; then ``proposals + 1`` proposals, each timed from reading the study to the
    proposal (``sample_relative``), without Optuna's own ``ask``. The first proposal reads
    the whole history and fits the model: reported apart. Returns one line per history.
    """
    member = suite.load(member_name)
    space = member.space
    distributions = space.distributions()
    rng = np.random.default_rng(0)
    lines = []
    for n in histories:
        study = optuna.create_study(directions=member.directions)
        chosen = rng.choice(space.distinct_size, min(n, space.distinct_size), replace=False)
        trials = []
        for i in chosen:
            params = space.distinct_params_at(int(i))
            entry = member.evaluator.evaluate(space.decode(params))
            if entry.error is not None or entry.skipped:
                continue  # over a budget: a search would not have evaluated it
            trials.append(optuna.trial.create_trial(params=params, distributions=distributions, values=list(entry.values)))
        study.add_trials(trials)
        sampler = get_strategy(strategy).make_sampler(
            space, seed=0, directions=member.directions, options=_DEFAULT_OPTIONS.get(strategy, {}),
            n_trials=n + proposals + 1, constraints=member.hardware_constraints,
        )
        times = []
        for _ in range(proposals + 1):
            trial = study.ask()  # a running trial the sampler must not count as observed
            frozen = study.get_trials(deepcopy=False)[-1]
            begin = time.perf_counter()
            sampler.sample_relative(study, frozen, sampler.infer_relative_search_space(study, frozen))
            times.append(time.perf_counter() - begin)
            study.tell(trial, state=TrialState.FAIL)
        lines.append(
            f"{strategy} on {member_name}, {len(trials):,} trials: first proposal {times[0] * 1000:.1f} ms; then median "
            f"{float(np.median(times[1:])) * 1000:.2f} ms, 90th percentile {float(np.percentile(times[1:], 90)) * 1000:.2f} ms"
        )
    return lines


# -- main ----------------------------------------------------------------------------------


def plan(
    members: Sequence[suite.Member], strategies: Sequence[str] | None, *, seeds: int, pareto_seeds: int,
    lazy_seeds: int, max_unique: int, max_trials: int | None, reuse: bool, cache_all: bool,
    pareto_strategies: Sequence[str] = PARETO_STRATEGIES,
) -> list[Task]:
    """The runs: per member, the default strategy and the baselines it is judged against
    (or ``strategies`` on every member), with ``seeds`` seeds (``pareto_seeds`` on Pareto
    members, ``lazy_seeds`` on the lazily evaluated space's, whichever is fewer). The
    default Pareto strategy runs only to its target's budget (200 unique evaluations);
    everything else to ``max_unique``."""
    tasks = []
    for m in members:
        chosen = list(strategies) if strategies else list(pareto_strategies if m.multi else SINGLE_STRATEGIES)
        n_seeds = min(pareto_seeds if m.multi else seeds, seeds if m.exact else lazy_seeds)
        for strategy in chosen:
            budget = max_unique
            if m.multi and strategy == DEFAULT_PARETO:
                budget = min(max_unique, HV_BUDGETS[0])
            trials = max_trials if max_trials is not None else budget * 3 // 2
            for seed in range(n_seeds):
                tasks.append(Task(m.name, strategy, seed, budget, trials, reuse, cache_all))
    return tasks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick subset: 3 seeds, 200 unique evaluations")
    parser.add_argument("--members", default=None, help="comma-separated member names (default: all, or the quick ones)")
    parser.add_argument(
        "--strategies", default=None,
        help=f"comma-separated, run on every member (default: {','.join(SINGLE_STRATEGIES)} on one objective, "
        f"{','.join(PARETO_STRATEGIES)} on Pareto members)",
    )
    parser.add_argument(
        "--pareto-strategies", default=",".join(PARETO_STRATEGIES),
        help="the default Pareto strategy and its baselines on Pareto members (leave out tpe to save its cost)",
    )
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 20; 3 with --quick)")
    parser.add_argument("--pareto-seeds", type=int, default=None, help="seeds of the Pareto members (default: --seeds)")
    parser.add_argument(
        "--lazy-seeds", type=int, default=None,
        help="seeds of the members of the lazily evaluated 64-million space (default: --seeds)",
    )
    parser.add_argument("--max-unique", type=int, default=None, help="unique evaluations per run (default 1000; 200 with --quick)")
    parser.add_argument("--max-trials", type=int, default=None, help="trials per run, duplicates included (default 1.5 x its unique budget)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: one per CPU)")
    parser.add_argument("--fresh", action="store_true", help="ignore cached runs of the reusable strategies")
    parser.add_argument(
        "--cache-all", action="store_true",
        help="cache (and reuse) the runs of every strategy, keyed by its own source files",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/sample_efficiency"))
    parser.add_argument("--write-doc", action="store_true", help=f"write the targets table into {DOC.name}")
    parser.add_argument(
        "--cost", metavar="STRATEGY", default=None,
        help="instead: the strategy's cost per proposal with 1,000 and 10,000 trials in the study (cnn/w1)",
    )
    args = parser.parse_args(argv)
    _quiet()
    if args.cost:
        for line in proposal_cost(args.cost):
            print(line, flush=True)
        return 0
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    member_names = args.members.split(",") if args.members else suite.names(quick=args.quick)
    strategies = args.strategies.split(",") if args.strategies else None
    seeds = args.seeds if args.seeds is not None else (3 if args.quick else 20)
    pareto_seeds = args.pareto_seeds if args.pareto_seeds is not None else seeds
    lazy_seeds = args.lazy_seeds if args.lazy_seeds is not None else seeds
    max_unique = args.max_unique if args.max_unique is not None else (200 if args.quick else 1000)
    for name in strategies or (*SINGLE_STRATEGIES, *args.pareto_strategies.split(",")):
        get_strategy(name)  # an unknown name fails before anything runs
    members = [suite.load(name) for name in member_names]  # before forking: shared by the workers
    built = time.perf_counter() - started
    print(f"{len(members)} members ready in {built:.0f} s", flush=True)
    tasks = plan(
        members, strategies, seeds=seeds, pareto_seeds=pareto_seeds, lazy_seeds=lazy_seeds, max_unique=max_unique,
        max_trials=args.max_trials, reuse=not args.fresh, cache_all=args.cache_all,
        pareto_strategies=args.pareto_strategies.split(","),
    )

    def done(run: Run) -> None:
        reached = "refused" if run.error else f"optimum after {_fmt(run.unique_to_opt)}"
        print(f"  {run.member} {run.strategy} seed {run.seed}: {run.unique} unique, {reached}, {run.wall_s:.1f} s", flush=True)

    runs = run_tasks(tasks, args.jobs, done)
    runs.sort(key=lambda r: (member_names.index(r.member), r.strategy, r.seed))
    notes, rows, verdicts = [], [], []
    for m in members:
        mine = [r for r in runs if r.member == m.name]
        note = rejudge(m, mine)
        if note:
            notes.append(note)
        member_rows = {}
        for s in dict.fromkeys(r.strategy for r in mine):
            member_rows[s] = summarize(m, [r for r in mine if r.strategy == s])
            rows.append(member_rows[s])
        verdict = judge(m, member_rows, DEFAULT_PARETO if m.multi else DEFAULT_SINGLE)
        if verdict is not None:
            verdicts.append(verdict)
    mark_targets(rows)
    took = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    met = sum(v.met for v in verdicts)
    command = "benchmarks/sample_efficiency.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `{command.strip()}`; {len(members)} members, "
        f"{len(runs)} runs ({seeds} seeds; {pareto_seeds} on Pareto members, {lazy_seeds} on the 64-million space's; at most {max_unique} unique "
        f"evaluations a run, 1.5 x that many trials); wall time {took / 60:.1f} min ({built:.0f} s loading "
        f"tables), {args.jobs} worker process(es) on {os.cpu_count()} CPUs, load average "
        f"{load_before:.1f} at the start and {load_after:.1f} at the end; {sum(r.cached for r in runs)} runs read "
        f"from the run cache; the runs' own wall times (each measured when it ran) add up to "
        f"{sum(r.wall_s for r in runs) / 60:.1f} min, their CPU times to {sum(r.cpu_s for r in runs) / 60:.1f} min "
        f"({sum(r.cpu_s for r in runs if not r.cached) / 60:.1f} min of it for the runs done now; runs cached "
        f"before this was measured count 0). Targets met on {met} of {len(verdicts)} members."
    )
    targets = format_targets(members, verdicts)
    text = "\n\n".join(
        [
            header,
            targets,
            *(["Notes:\n" + "\n".join(f"- {n}" for n in notes)] if notes else []),
            "Every strategy:",
            format_table(members, rows),
            "Members:\n" + _members_text(members),
        ]
    )
    print(text, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "suite.md").write_text(text + "\n")
    (args.out / "suite.json").write_text(
        json.dumps(
            {
                "header": header,
                "verdicts": [{"member": v.member, "strategy": v.strategy, "checks": v.checks, "met": v.met} for v in verdicts],
                "rows": [asdict(r) for r in rows],
                "runs": [asdict(r) for r in runs],
                "notes": notes,
            },
            indent=1,
        )
        + "\n"
    )
    if args.write_doc:
        write_doc("\n\n".join([header, targets, *(["Notes:\n" + "\n".join(f"- {n}" for n in notes)] if notes else [])]))
        print(f"wrote the targets table into {DOC}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
