"""The search loop: ask a configuration, answer duplicates from the study, evaluate the rest.

One trial, in order:

1. refresh the :class:`~bitscout.study._index.StudyIndex` from the storage (new trials
   only, any process's) and stop when the budget, the timeout or the space is spent;
2. ``study.ask(space.distributions())``: only searched parameters are suggested;
3. decode the parameters into a per-layer config and take its key; a configuration
   already evaluated in the study is answered with the stored values and marked
   ``duplicate_of`` (one write), without running anything;
4. otherwise ask the :class:`~bitscout.evaluation.Evaluator` for its
   :class:`~bitscout.evaluation.Evaluation`, store the whole record in one user attr write
   (and its constraint values, when it has some) and tell the values. A failed evaluation
   is told as FAIL with its error stored; the search goes on, unless the first 5 evaluations of the run all
   failed (:class:`~bitscout.errors.SearchError` with the first error).

``n_trials`` is a total for the study: a resumed search (or several processes sharing a
storage) stops when finished plus running trials reach it. A trial interrupted by Ctrl-C,
or left RUNNING by a killed process, is marked FAIL as interrupted, does not count, and
its parameters are enqueued so that the next trial evaluates the same configuration.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.storages import BaseStorage
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import Trial, TrialState

from bitscout._optuna_adapter import (
    allow_stop,
    clear_stop,
    is_heartbeat_enabled,
    n_trials as count_trials,
    set_trial_user_attrs,
    stop_requested,
    storage_of,
    study_id,
    trial_id,
)
from bitscout.errors import SearchError
from bitscout.evaluation import Evaluation, Evaluator, TableEvaluator, error_text
from bitscout.strategies import BruteForceSampler, Exhaustible
from bitscout.study._index import (
    DUPLICATE_ATTR,
    RECORD_ATTR,
    RETRY_ATTR,
    RULED_OUT_ATTR,
    WORKER_ATTR_PREFIX,
    StudyIndex,
)
from bitscout.study._outputs import PlotWriter
from bitscout.study._outputs import write_outputs as _write_outputs
from bitscout.study._result import result_from_study, sampled_config
from bitscout.study._records import SearchResult
from bitscout.study._locks import ask_lock
from bitscout.study._worker_storage import fail_stale_trials, open_storage
from bitscout.study._study_report import store_baseline
from bitscout.study._store import (
    Fingerprint,
    check_fingerprint,
    worker_identity,
    worker_may_be_alive,
)

if TYPE_CHECKING:
    from bitscout.config import Config

__all__ = ["run_search", "SearchSpaceLike", "FIRST_FAILURES"]

_log = logging.getLogger(__name__)

#: When this many evaluations of a run fail before any succeeds, the search stops.
FIRST_FAILURES = 5

# Seconds between two looks at the study while other workers finish their last trials,
# and while another worker evaluates the configuration this worker was given.
_WAIT_S = 0.5
_TWIN_WAIT_S = 0.05

#: Trials the table pass of a brute force writes between two looks at the study.
_TABLE_BATCH = 256


class SearchSpaceLike(Protocol):
    """What the loop needs of a search space (:class:`bitscout.space.SearchSpace`)."""

    @property
    def size(self) -> int: ...

    @property
    def distinct_size(self) -> int:
        """Configurations that build different models (at most ``size``)."""
        ...

    def distributions(self) -> dict[str, BaseDistribution]: ...

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def key(self, config: Mapping[str, Any]) -> Hashable: ...


@dataclass
class _RunState:
    """Bookkeeping of this run (this process), shared by its threads under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: bool = False
    stop_reason: str = ""
    in_flight: dict[Hashable, threading.Event] = field(default_factory=dict)
    # Trial numbers asked by this process: its threads coordinate through in_flight, so
    # they are never another worker's "twin" to wait for (that would be a deadlock).
    asked_here: set[int] = field(default_factory=set)
    evaluated: int = 0
    succeeded: int = 0
    first_error: str | None = None
    first_error_trial: int | None = None
    finished_here: int = 0
    fatal: BaseException | None = None
    interrupted: bool = False


@dataclass
class _Outcome:
    """What an evaluation writes into its trial (the loop's and the table pass's)."""

    state: TrialState
    values: list[float] | None
    # The record (RECORD_ATTR) and each finite metric as its own attribute.
    attrs: dict[str, Any]
    # Constraint values measured (<= 0: met); one that was not measured is left out.
    constraints: dict[str, float]
    error: str | None = None


def _choices(dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return repr(dist)


def _fingerprint(space: SearchSpaceLike, evaluator: Evaluator, config: Config | None) -> Fingerprint:
    dists = space.distributions()
    first = {name: dist.choices[0] for name, dist in dists.items() if isinstance(dist, CategoricalDistribution)}
    try:
        point = sampled_config(space.decode(first))
    except Exception:  # noqa: BLE001  (a space that cannot decode a point fails later, plainly)
        point = {}
    space_part = {"params": {n: _choices(d) for n, d in dists.items()}, "point": point}
    parts: dict[str, Any] = {"space": space_part, "objective": evaluator.fingerprint()}
    if config is not None:
        strategy = config.search.strategy if config.search is not None else None
        parts["evaluation"] = {
            "model": config.model,
            "model_options": config.model_options,
            "dataset": config.dataset,
            "checkpoint": None if config.load_name is None else str(config.load_name),
            "sw_runners": None if strategy is None else strategy.sw_runners,
            "hw_runners": None if strategy is None else strategy.hw_runners,
        }
    return Fingerprint(parts)


class _Search:
    """One run of the loop over one study (see the module docstring)."""

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpaceLike,
        evaluator: Evaluator,
        *,
        n_trials: int,
        timeout: float | None,
        exhaustible: Exhaustible | None,
        progress: Any,
    ) -> None:
        self.study = study
        self.storage: BaseStorage = storage_of(study)
        self.space = space
        self.evaluator = evaluator
        self.n_trials = n_trials
        self.timeout = timeout
        self.exhaustible = exhaustible
        self.distributions = space.distributions()
        # Configurations that build different models (a space may count a layer left in
        # float once per value of its unused widths: those share one key).
        self.n_distinct = int(space.distinct_size)
        self.index = StudyIndex(study, self._key_of_params)
        self.state = _RunState()
        self.progress = progress
        self.started = time.monotonic()
        # Workers sharing the study (other processes, other machines) take this lock to
        # read the study, decide and ask, so n_trials is never overshot; with a heartbeat
        # they also fail lost trials (queued again) and wait for running ones at the end.
        self.ask_lock = ask_lock(self.storage, study.study_name)
        self.heartbeat = is_heartbeat_enabled(self.storage)
        self.last_sweep = -math.inf

    def _key_of_params(self, params: Mapping[str, Any]) -> Hashable:
        return self.space.key(self.space.decode(params))

    # ----- stopping ----------------------------------------------------------------------

    def _should_stop(self) -> bool:
        """Called with the index fresh and ``state.lock`` held."""
        st = self.state
        if st.stop:
            return True
        reason = ""
        if self.index.counted + self.index.running >= self.n_trials:
            if self.index.counted < self.n_trials and self.heartbeat:
                return False  # a running trial may yet be lost and queued again: see _must_wait
            reason = f"reached n_trials = {self.n_trials}"
        elif self.timeout is not None and time.monotonic() - self.started >= self.timeout:
            reason = f"timeout of {self.timeout:g} s"
        elif len(self.index.first) >= self.n_distinct and not self.index.running:
            reason = f"every one of the {self.n_distinct} configurations is evaluated"
        elif self._exhausted():
            if self._waiting() or (self.index.running and self.heartbeat):
                return False  # a queued configuration to run, or one that may be queued
            reason = "the strategy has proposed every configuration"
        elif stop_requested(self.study):
            reason = "the sampler stopped the study (its space is exhausted)"
        if reason:
            st.stop, st.stop_reason = True, reason
        return st.stop

    def _must_wait(self) -> bool:
        """Nothing new to start, but trials still run (here or in other workers).

        Only with a heartbeat: a running trial whose worker is lost is failed and its
        configuration queued, and a worker must still be there to run it.
        """
        if not self.heartbeat or not self.index.running:
            return False
        if self.index.counted + self.index.running >= self.n_trials:
            return True  # the budget is taken: wait to see whether a running trial is lost
        if self._exhausted():
            return not self._waiting()
        return False

    def _exhausted(self) -> bool:
        """The sampler can run out of configurations (brute force) and has."""
        return self.exhaustible is not None and self.exhaustible.is_exhausted(self.study)

    def _waiting(self) -> bool:
        """Queued trials (a lost or interrupted trial's configuration) wait in the study."""
        return bool(count_trials(self.study, TrialState.WAITING))

    def _sweep(self) -> None:
        """Fail lost trials (no heartbeat) and queue them again, at most once a second."""
        now = time.monotonic()
        if self.heartbeat and now - self.last_sweep >= 1.0:
            self.last_sweep = now
            fail_stale_trials(self.study)

    # ----- one trial ---------------------------------------------------------------------

    def _next_trial(self) -> Trial | None:
        while True:
            with self.state.lock, self.ask_lock:
                self._sweep()
                self.index.refresh()
                if self._should_stop():
                    return None
                if not self._must_wait():
                    trial = self.study.ask(self.distributions)
                    self.state.asked_here.add(trial.number)
                    return trial
            time.sleep(_WAIT_S)

    def enter_thread(self) -> None:
        """Let samplers call ``study.stop()`` as they may inside ``study.optimize``.

        Optuna raises when ``stop`` is called outside its own loop; samplers such as
        Optuna's BruteForceSampler call it from ``after_trial`` when their space is
        exhausted. The flag it sets is one of this loop's stop conditions.
        """
        allow_stop(self.study, True)

    def leave_thread(self) -> None:
        allow_stop(self.study, False)

    def run_one(self) -> bool:
        """Run one trial; False when the run should stop."""
        trial = self._next_trial()
        if trial is None:
            return False
        try:
            self._handle(trial)
        except UpdateFinishedTrialError:
            # Another worker saw no heartbeat from this one (a stall longer than the grace
            # period), failed the trial and queued its configuration: that rerun counts.
            _log.warning("trial %d was failed as lost by another worker; its result here is dropped", trial.number)
        except KeyboardInterrupt:
            self._interrupt(trial, "interrupted by the user (Ctrl-C)")
            with self.state.lock:
                self.state.stop, self.state.interrupted = True, True
                self.state.stop_reason = "interrupted by the user"
            return False
        return not self.state.stop

    def _handle(self, trial: Trial) -> None:
        params = trial.params
        try:
            config = self.space.decode(params)
            key = self.space.key(config)
        except Exception as exc:  # noqa: BLE001  (stored as the trial's error)
            self._fail(trial, None, self._failure({}, error_text(exc), 0.0))
            return
        while True:
            hit = self.index.lookup(key)
            if hit is not None:
                self._tell_duplicate(trial, key, hit)
                return
            with self.state.lock:
                waiting = self.state.in_flight.get(key)
                if waiting is None:
                    self.state.in_flight[key] = threading.Event()
                    break
            waiting.wait()  # another thread evaluates it; then reuse its result
        try:
            hit = self._await_other_workers(trial, key)
            if hit is not None:
                self._tell_duplicate(trial, key, hit)
            else:
                self._evaluate(trial, key, config)
        finally:
            with self.state.lock:
                self.state.in_flight.pop(key).set()

    def _await_other_workers(self, trial: Trial, key: Hashable) -> tuple[int, tuple[float, ...]] | None:
        """Wait while an earlier trial of another worker evaluates the same configuration.

        Returns its result when it completes (this trial is then a duplicate of it), or
        None when no other worker has it or its trial failed: evaluate it here. Only the
        later of two such trials waits, so two workers never wait for each other.
        """
        if not self.index.running:
            return None  # nothing else was running when this trial was asked
        while True:
            # Look for the running twin BEFORE reading the finished trials: a twin that
            # finishes between the two reads is then found by the second. (In the other
            # order it could finish in between and be seen by neither, and its
            # configuration would be evaluated twice.)
            twin = self._running_twin(trial, key)
            self.index.refresh()
            hit = self.index.lookup(key)
            if hit is not None:
                return hit
            if twin is None:
                return None
            while not self.storage.get_trial(trial_id(twin)).state.is_finished():
                self._sweep()  # its worker may be lost
                time.sleep(_TWIN_WAIT_S)

    def _running_twin(self, trial: Trial, key: Hashable) -> optuna.trial.FrozenTrial | None:
        for other in self.storage.get_all_trials(study_id(self.study), deepcopy=False, states=(TrialState.RUNNING,)):
            if (
                other.number >= trial.number
                or other.number in self.state.asked_here
                or len(other.params) < len(self.distributions)
            ):
                continue
            try:
                if self._key_of_params(other.params) == key:
                    return other
            except Exception:  # noqa: BLE001  (params of another space: not a twin)
                continue
        return None

    def _tell_duplicate(self, trial: Trial, key: Hashable, hit: tuple[int, tuple[float, ...]]) -> None:
        first, values = hit
        self.storage.set_trial_user_attr(trial_id(trial), DUPLICATE_ATTR, first)
        # The same configuration is as feasible as it was: constraint-aware samplers
        # count every trial, duplicates included.
        for name, value in self.index.constraints_of(key).items():
            trial.set_constraint(name, value)
        self.study.tell(trial, list(values))
        self.index.add(trial.number, key, values, duplicate_of=first)
        self._finished()

    def _evaluate(self, trial: Trial, key: Hashable, config: dict[str, Any]) -> None:
        outcome = self._outcome(config)
        if outcome.state == TrialState.FAIL:
            self._fail(trial, key, outcome)
            return
        # Optuna's constraint-aware samplers and best_trials read these (<= 0: feasible).
        for name, value in outcome.constraints.items():
            trial.set_constraint(name, value)
        # The record and the metrics in one write on the journal.
        set_trial_user_attrs(self.storage, trial_id(trial), outcome.attrs)
        if outcome.state == TrialState.PRUNED:
            self.study.tell(trial, state=TrialState.PRUNED)
            self.index.add(trial.number, None, None)
        else:
            self.study.tell(trial, outcome.values)
            self.index.add(trial.number, key, outcome.values, constraints=outcome.constraints)
        self._count(outcome, trial.number)
        self._finished()

    def _outcome(self, config: dict[str, Any]) -> _Outcome:
        """Evaluate ``config`` and say what its trial records."""
        start = time.perf_counter()
        try:
            evaluation = self.evaluator.evaluate(config)
        except Exception as exc:  # noqa: BLE001  (an evaluator breaking its contract fails the trial only)
            evaluation = Evaluation.failed(error_text(exc), seconds=time.perf_counter() - start)
        if evaluation.error is not None:
            return self._failure(config, evaluation.error, evaluation.seconds)
        record: dict[str, Any] = {
            "software_metrics": dict(evaluation.metrics.software),
            "hardware_metrics": dict(evaluation.metrics.hardware),
            "scaled_metrics": dict(evaluation.scaled),
            "sampled_config": sampled_config(config),
            "duration_s": time.perf_counter() - start,
        }
        known: dict[str, float] = {}
        if evaluation.constraints:
            names = self.evaluator.constraint_names or tuple(f"constraint_{i}" for i in range(len(evaluation.constraints)))
            # NaN: measured on data, which a skipped trial never reached (Optuna refuses NaN).
            record["constraints"] = {n: None if math.isnan(v) else v for n, v in zip(names, evaluation.constraints)}
            known = {n: v for n, v in record["constraints"].items() if v is not None}
        # Each finite metric as its own attribute too, so that optuna-dashboard can chart any.
        metrics = {name: value for name, value in evaluation.metrics.all().items() if math.isfinite(value)}
        if evaluation.skipped:
            # Proven infeasible from the configuration alone: nothing was built or run.
            record["skipped"] = True
            return _Outcome(TrialState.PRUNED, None, {RECORD_ATTR: record, **metrics}, known)
        return _Outcome(TrialState.COMPLETE, list(evaluation.values), {RECORD_ATTR: record, **metrics}, known)

    @staticmethod
    def _failure(config: Mapping[str, Any], message: str, duration: float) -> _Outcome:
        record = {
            "sampled_config": sampled_config(config) if config else {},
            "duration_s": duration,
            "error": message,
        }
        return _Outcome(TrialState.FAIL, None, {RECORD_ATTR: record}, {}, error=message)

    def _fail(self, trial: Trial, key: Hashable | None, outcome: _Outcome) -> None:
        _log.debug("trial %d failed: %s", trial.number, outcome.error)
        self.storage.set_trial_user_attr(trial_id(trial), RECORD_ATTR, outcome.attrs[RECORD_ATTR])
        self.study.tell(trial, state=TrialState.FAIL)
        self.index.add(trial.number, key, None)
        self._count(outcome, trial.number)
        self._finished()

    def _count(self, outcome: _Outcome, number: int) -> None:
        """This run's tallies; the first failures in a row stop the search."""
        if outcome.state == TrialState.PRUNED:
            return  # skipped: nothing was evaluated
        with self.state.lock:
            st = self.state
            st.evaluated += 1
            if outcome.state == TrialState.COMPLETE:
                st.succeeded += 1
                return
            if st.first_error is None:
                st.first_error, st.first_error_trial = outcome.error, number
            if st.succeeded == 0 and st.evaluated >= FIRST_FAILURES and not st.stop:
                st.stop = True
                st.stop_reason = f"the first {FIRST_FAILURES} trials failed"
                st.fatal = SearchError(
                    f"the first {FIRST_FAILURES} trials of this search all failed, so it "
                    f"stopped. The first error (trial {st.first_error_trial}) was:\n  "
                    f"{st.first_error}"
                )

    # ----- a brute force answered from a table -------------------------------------------

    def run_table_pass(self) -> None:
        """Write a brute force's main pass from a table, many finished trials at a time.

        With every configuration's metrics already in a :class:`TableEvaluator`, the
        per-trial round trip of the loop (ask, one storage write per parameter, the
        record, tell: about 14 journal entries and 5-6 ms a trial) costs a hundred times
        the look-up. Here trial ``n`` is created finished, with the parameters the brute
        force gives trial ``n`` (:meth:`BruteForceSampler.params_for`) and the record the
        loop would write, one storage entry each, under the ask lock. A configuration the
        study already holds (from an earlier run with another strategy) becomes a
        duplicate of it, as in the loop. What is left afterwards (queued trials, retries of
        failed ones) goes through the loop. Interrupted between two trials, the study
        holds whole trials only: a resumed run goes on from the next number.
        """
        sampler = self.exhaustible
        assert isinstance(sampler, BruteForceSampler) and isinstance(self.evaluator, TableEvaluator)
        while True:
            with self.ask_lock:
                with self.state.lock:
                    self.index.refresh()
                    if self._should_stop():
                        return
                    start = count_trials(self.study)  # the next trial's number
                    if start >= sampler.total or self.index.running or self._waiting():
                        return  # the loop hands out what is left
                    stop = min(sampler.total, start + _TABLE_BATCH, start + self.n_trials - self.index.counted)
                templates = [self._table_trial(sampler.params_for(number), number) for number in range(start, stop)]
                self.study.add_trials(templates)
            for _ in templates:
                self._finished()

    def _table_trial(self, params: dict[str, Any], number: int) -> optuna.trial.FrozenTrial:
        """The finished trial the loop would record for ``params`` as trial ``number``."""
        try:
            config = self.space.decode(params)
            key = self.space.key(config)
        except Exception as exc:  # noqa: BLE001  (stored as the trial's error)
            outcome = self._failure({}, error_text(exc), 0.0)
        else:
            hit = self.index.lookup(key)
            if hit is not None:
                first, values = hit
                trial = optuna.trial.create_trial(
                    params=params, distributions=self.distributions, values=list(values),
                    user_attrs={DUPLICATE_ATTR: first},
                )
                for name, value in self.index.constraints_of(key).items():
                    trial.set_constraint(name, value)
                return trial
            outcome = self._outcome(config)
        self._count(outcome, number)
        trial = optuna.trial.create_trial(
            state=outcome.state, params=params, distributions=self.distributions,
            values=outcome.values, user_attrs=outcome.attrs,
        )
        for name, value in outcome.constraints.items():
            trial.set_constraint(name, value)
        return trial

    def _interrupt(self, trial: Trial, why: str) -> None:
        """Mark an unfinished trial FAIL as interrupted and enqueue its params for a rerun."""
        try:
            frozen = self.storage.get_trial(trial_id(trial))
            if frozen.state != TrialState.RUNNING:
                return
            fail_interrupted(self.study, frozen, why)
            self.index.add(trial.number, None, None, interrupted=True)
        except Exception:  # noqa: BLE001  (a second Ctrl-C mid-write: resume cleans it up)
            _log.debug("could not mark trial %d as interrupted", trial.number, exc_info=True)

    def _finished(self) -> None:
        with self.state.lock:
            self.state.finished_here += 1
        if self.progress is not None:
            self.progress.update(1)


def fail_interrupted(study: optuna.Study, trial: optuna.trial.FrozenTrial, why: str) -> None:
    """Mark a RUNNING trial FAIL as interrupted and enqueue its params to run again."""
    storage = storage_of(study)
    storage.set_trial_user_attr(trial_id(trial), RECORD_ATTR, {"error": why, "interrupted": True})
    storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)
    if trial.params:
        study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: trial.number})


def _recover_stale_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials of dead runs of this study and enqueue them again.

    Without a heartbeat (the journal file, SQLite), a RUNNING trial cannot say whether
    its process lives. bitscout records each process that runs the study in the study's
    user attrs; when none of them may still be alive (every one ran on this host and its
    process is gone), every RUNNING trial is stale. When a recorded process may live (on
    another host, or still running here) nothing is touched: use a storage with a
    heartbeat (PostgreSQL, see the multi-worker guide) for such setups.
    """
    storage = storage_of(study)
    if is_heartbeat_enabled(storage):
        return fail_stale_trials(study)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    workers = [v for k, v in study.user_attrs.items() if k.startswith(WORKER_ATTR_PREFIX)]
    alive = [w for w in workers if worker_may_be_alive(w)]
    if alive:
        _log.warning(
            "%d trials are RUNNING and another process may still run them (%s); they are "
            "left alone", len(running), ", ".join(f"{w.get('host')}:{w.get('pid')}" for w in alive)
        )
        return []
    for trial in running:
        fail_interrupted(study, trial, "interrupted: the process running this trial stopped before it finished")
    return [t.number for t in running]


def _register_worker(study: optuna.Study) -> None:
    me = worker_identity()
    study.set_user_attr(f"{WORKER_ATTR_PREFIX}{me['host']}:{me['pid']}:{me['created']}", me)


def run_search(
    space: SearchSpaceLike,
    sampler: optuna.samplers.BaseSampler,
    evaluator: Evaluator,
    *,
    out_dir: Path,
    config: Config | None = None,
    storage: str | BaseStorage | None = None,
    study_name: str | None = None,
    n_trials: int = 20,
    timeout: float | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    write_outputs: bool = True,
    plot: PlotWriter | None = None,
    fsync: bool = False,
    baseline: bool = False,
    table_pass: bool = True,
    num_classes: int | None = None,
    class_names: tuple[str, ...] = (),
) -> SearchResult:
    """Run (or resume) a search and return every trial of the study.

    Args:
        space: The search space (:class:`bitscout.space.SearchSpace`).
        sampler: The Optuna sampler proposing configurations (a strategy's
            ``make_sampler(...)``).
        evaluator: What a configuration is worth (:class:`bitscout.evaluation.Evaluator`,
            e.g. ``RunnerEvaluator(runners, objective)``).
        out_dir: The run folder: the default storage and the outputs go there.
        config: The resolved config, written as ``config.toml`` and part of the study's
            fingerprint (model, data set, runners).
        storage: None for ``<out_dir>/study.journal``; an Optuna storage URL or object.
        study_name: The study's name in the storage (default: ``config.project`` or
            ``"bitscout"``).
        n_trials: Finished trials in total for the study (resumed runs and other workers
            included); interrupted trials do not count.
        timeout: Stop starting trials after this many seconds of this run.
        n_jobs: Trials evaluated in parallel threads of this process.
        progress: Show a progress bar.
        write_outputs: Write log.json, trials.csv, best.json and config.toml.
        plot: Draws the plots into the run folder with the other outputs
            (:func:`bitscout.report.write_plots`; study draws none itself).
        fsync: With the default journal storage, force every write to disk.
        baseline: Evaluate the unquantized model once (``evaluator.baseline()``) and
            keep it as ``result.baseline``; it is also stored in the study
            (:func:`bitscout.study.stored_baseline`), so that the process that started
            ``--workers`` can report the float model it never evaluated.
        table_pass: With a brute-force sampler and a :class:`TableEvaluator`, write the
            main pass's trials finished from the table (the same trials as the loop, one
            storage entry each); False sends every trial through the loop (to time the
            loop's proposals, or to compare the two).
        num_classes: The data's class count, stored with the baseline (the chance-level
            warning of ``--workers`` compares the float model with ``1 / num_classes``).
        class_names: The data's class names in class order, stored likewise.

    Returns:
        The study's trials (this run's and earlier ones), with its best trial or Pareto
        set. ``result.interrupted`` is True after Ctrl-C.

    Raises:
        SearchError: The stored study belongs to another space or objective, or the first
            5 trials of the run all failed (outputs are written first).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = study_name or (config.project if config is not None and config.project else "bitscout")
    store, store_text = open_storage(storage, out_dir, fsync=fsync)
    if not isinstance(evaluator, Evaluator):
        raise TypeError(f"run_search needs a bitscout.evaluation.Evaluator; got {type(evaluator).__qualname__}")
    directions = list(evaluator.directions)
    fingerprint = _fingerprint(space, evaluator, config)
    where = f"{name!r} in {store_text}"
    # Workers started together create, check and recover the study one at a time
    # (create_study(load_if_exists=True) alone leaves the fingerprint check racing).
    with ask_lock(store, name):
        try:
            existing = store.get_study_id_from_name(name)
        except KeyError:
            existing = None
        if existing is not None:
            stored_dirs = [d.name.lower() for d in store.get_study_directions(existing)]
            if stored_dirs != directions:
                raise SearchError(
                    f"the study {where} optimizes {stored_dirs} but this search has the "
                    f"directions {directions}, so it cannot be resumed. Use another --out "
                    "(run folder) or --study-name to start a new study."
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                storage=store, sampler=sampler, study_name=name, directions=directions, load_if_exists=True
            )
        check_fingerprint(study, fingerprint, where=where)
        objective_names = evaluator.objective_names
        if study.user_attrs.get("bitscout_objective_names") != objective_names:
            study.set_user_attr("bitscout_objective_names", objective_names)
        # Configurations a brute force never hands out (its constraints rule them out from
        # the configuration alone): no trial holds them, so the study keeps their count.
        ruled_out = int(getattr(sampler, "skipped_infeasible", 0))
        if study.user_attrs.get(RULED_OUT_ATTR, 0) != ruled_out:
            study.set_user_attr(RULED_OUT_ATTR, ruled_out)
        recovered = _recover_stale_trials(study)
        if recovered:
            _log.warning("trials %s were interrupted in an earlier run; their configurations run again", recovered)
        _register_worker(study)

    bar = None
    search = _Search(
        study, space, evaluator,
        n_trials=n_trials, timeout=timeout,
        # A sampler that can run out of configurations (brute force) stops the search then.
        exhaustible=sampler if isinstance(sampler, Exhaustible) else None,
        progress=None,
    )
    search.index.refresh()
    if progress:
        from tqdm.auto import tqdm

        # A strategy that visits each configuration once ends with the space.
        total = min(n_trials, search.n_distinct) if search.exhaustible is not None else n_trials
        bar = tqdm(total=total, initial=min(search.index.counted, total), desc="search", unit="trial", dynamic_ncols=True)
        search.progress = bar
    started = time.perf_counter()
    clear_stop(study)
    try:
        if n_jobs <= 1:
            search.enter_thread()
            try:
                if table_pass and isinstance(sampler, BruteForceSampler) and isinstance(evaluator, TableEvaluator):
                    search.run_table_pass()
                while search.run_one():
                    pass
            except KeyboardInterrupt:
                # Ctrl-C outside a trial's evaluation (while asking): a trial it left
                # RUNNING is recovered as interrupted by the next run.
                search.state.stop, search.state.interrupted = True, True
                search.state.stop_reason = "interrupted by the user"
            finally:
                search.leave_thread()
        else:
            _run_threads(search, n_jobs)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    base = evaluator.baseline() if baseline else None
    if base is not None and base.error is None:
        store_baseline(study, base, num_classes, class_names)
    result = result_from_study(study, storage_name=store_text, objective_names=objective_names)
    result.wall_time_s = wall
    result.interrupted = search.state.interrupted
    result.stop_reason = search.state.stop_reason
    result.baseline = base
    if write_outputs:
        result.outputs = _write_outputs(result, out_dir, config=config, plot=plot)
    else:
        result.run_dir = out_dir
    if search.state.fatal is not None:
        raise search.state.fatal
    return result


def _run_threads(search: _Search, n_jobs: int) -> None:
    def worker() -> None:
        search.enter_thread()
        try:
            while search.run_one():
                pass
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread)
            with search.state.lock:
                search.state.stop = True
                search.state.fatal = search.state.fatal or exc

    with ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="bitscout-trial") as pool:
        futures = [pool.submit(worker) for _ in range(n_jobs)]
        try:
            for f in futures:
                f.result()
        except KeyboardInterrupt:
            # Threads cannot be interrupted: let each finish its trial, start no new one.
            with search.state.lock:
                search.state.stop, search.state.interrupted = True, True
                search.state.stop_reason = "interrupted by the user"
            for f in futures:
                f.result()
