"""Helpers of the strategy tests: a deterministic objective and an ask-and-tell loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from bitscout.space import SearchSpace
from bitscout.strategies import Exhaustible


def bits_objective(space: SearchSpace, params: dict[str, Any], n_objectives: int) -> list[float]:
    """A deterministic stand-in for (accuracy, cost): more bits, better 'accuracy'."""
    config = space.decode(params)
    bits = [32 if cfg is None else cfg.data_in.width for cfg in config.values()]
    weights = [
        32 if cfg is None or cfg.weight is None else cfg.weight.width for cfg in config.values()
    ]
    score = sum(min(b, 6) for b in bits) - 0.1 * sum(weights)
    return [score, float(sum(weights))][:n_objectives]


def run_ask_tell(
    space: SearchSpace,
    sampler: optuna.samplers.BaseSampler,
    directions: Sequence[str],
    n_trials: int,
    *,
    fail: set[int] | None = None,
    storage: Any = None,
) -> optuna.Study:
    """Runs up to ``n_trials``, stopping when the sampler is exhausted.

    Trials whose configuration's distinct index is in ``fail`` are told FAIL.
    """
    study = optuna.create_study(sampler=sampler, directions=list(directions), storage=storage)
    dists = space.distributions()
    for _ in range(n_trials):
        if _exhausted(sampler, study):
            break
        trial = study.ask(dists)
        if fail is not None and space.distinct_index_of(trial.params) in fail:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        study.tell(trial, bits_objective(space, trial.params, len(directions)))
    return study


def _exhausted(sampler, study) -> bool:
    """What the loop asks: a sampler that can run out (Exhaustible) and has."""
    return isinstance(sampler, Exhaustible) and sampler.is_exhausted(study)
