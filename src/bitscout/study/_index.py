"""The study's memory of what was evaluated: configuration key -> first trial, kept incrementally.

Every process keeps its own index and refreshes it from the storage before each trial,
reading only trials it has not absorbed yet: trials of other processes sharing the study
count for deduplication and for the trial budget, at a cost that does not grow with the
history (no per-trial full-history decoding).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from bitscout._optuna_adapter import storage_of, study_id

__all__ = ["StudyIndex", "RECORD_ATTR", "DUPLICATE_ATTR", "RETRY_ATTR", "RULED_OUT_ATTR", "WORKER_ATTR_PREFIX"]

# The one user attr an evaluated (or failed) trial gets: its record, written in one write.
RECORD_ATTR = "bitscout_record"
#: Study user attr: configurations the sampler never hands out, ruled out by the
#: constraints from the configuration alone (a brute force under a budget).
RULED_OUT_ATTR = "bitscout_ruled_out"
# The one user attr a duplicate gets: the number of the trial that evaluated its config.
DUPLICATE_ATTR = "duplicate_of"
# Set at creation on a trial that reruns an interrupted one: the interrupted trial's number.
RETRY_ATTR = "bitscout_retry_of"
# Study user attrs naming the processes that ran the study (to tell dead ones).
WORKER_ATTR_PREFIX = "bitscout_worker:"


def is_interrupted(trial: FrozenTrial) -> bool:
    """A FAIL trial that never finished its evaluation (killed, or stopped by Ctrl-C).

    Such trials do not count toward ``n_trials``: their configuration is run again.
    A FAIL trial without a bitscout record was failed from outside the loop (a stale
    trial failed by a heartbeat, or by bitscout on resume).
    """
    if trial.state != TrialState.FAIL:
        return False
    record = trial.user_attrs.get(RECORD_ATTR)
    return record is None or bool(record.get("interrupted"))


class StudyIndex:
    """Configuration key -> (first trial number, its objective values), plus trial counts.

    Args:
        study: The study (its storage is read incrementally).
        key_of: Trial params -> the configuration's key (``space.key(space.decode(p))``).
    """

    def __init__(self, study: optuna.Study, key_of: Callable[[Mapping[str, Any]], Hashable]) -> None:
        self._study = study
        self._store = storage_of(study)
        self._id = study_id(study)
        self._key_of = key_of
        self._absorbed: set[int] = set()
        self._low = 0  # every trial below this number is finished and absorbed
        self.first: dict[Hashable, tuple[int, tuple[float, ...]]] = {}
        # Constraint values of the first trial of a configuration, for its duplicates.
        self.constraints: dict[Hashable, dict[str, float]] = {}
        self.counted = 0  # finished trials that count toward n_trials
        self.running = 0  # RUNNING trials in the storage at the last refresh
        self.interrupted: list[FrozenTrial] = []
        self.lock = threading.RLock()

    def refresh(self) -> None:
        """Absorb every trial that finished since the last refresh, in any process."""
        with self.lock:
            trials: Sequence[FrozenTrial] = self._store.get_all_trials(
                self._id, deepcopy=False
            )
            running = 0
            low: int | None = None
            for trial in trials[self._low :]:
                if trial.number in self._absorbed:
                    continue
                if trial.state.is_finished():
                    self._absorb(trial)
                    continue
                if trial.state == TrialState.RUNNING:
                    running += 1
                if low is None:
                    low = trial.number
            self._low = len(trials) if low is None else low
            self.running = running

    def _absorb(self, trial: FrozenTrial) -> None:
        self._absorbed.add(trial.number)
        if is_interrupted(trial):
            self.interrupted.append(trial)
            return
        self.counted += 1
        if trial.state != TrialState.COMPLETE or trial.values is None:
            return
        try:
            key = self._key_of(trial.params)
        except Exception:  # noqa: BLE001  (params from another space: not a duplicate source)
            return
        first = trial.user_attrs.get(DUPLICATE_ATTR, trial.number)
        known = self.first.get(key)
        if known is None or first < known[0]:
            self.first[key] = (int(first), tuple(trial.values))
            if trial.constraints:
                self.constraints[key] = dict(trial.constraints)

    def add(
        self,
        number: int,
        key: Hashable | None,
        values: Sequence[float] | None,
        *,
        duplicate_of: int | None = None,
        interrupted: bool = False,
        constraints: Mapping[str, float] | None = None,
    ) -> None:
        """Record a trial this process just finished (no storage read needed)."""
        with self.lock:
            if number in self._absorbed:
                return
            self._absorbed.add(number)
            if interrupted:
                return
            self.counted += 1
            if key is not None and values is not None:
                first = number if duplicate_of is None else duplicate_of
                known = self.first.get(key)
                if known is None or first < known[0]:
                    self.first[key] = (first, tuple(values))
                    if constraints:
                        self.constraints[key] = dict(constraints)

    def constraints_of(self, key: Hashable) -> dict[str, float]:
        """The constraint values recorded for a configuration (empty: none)."""
        with self.lock:
            return dict(self.constraints.get(key, {}))

    def lookup(self, key: Hashable) -> tuple[int, tuple[float, ...]] | None:
        with self.lock:
            return self.first.get(key)
