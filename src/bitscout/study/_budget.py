"""Whether a hardware budget can be met at all, decided before the first trial.

Bounds on analytic hardware metrics (``model_size.max = "4 KiB"``,
``average_bitwidth.max = 4``) are known from a configuration alone, in microseconds. A
budget that no configuration of the space meets would otherwise give a search whose every
trial is skipped unmeasured, and a report with nothing in it. :func:`closest_to_budget`
looks for a configuration that meets them (a coordinate descent on how far the budget is
missed, from the most and the least precise ends of every parameter's choices), and checks
every distinct configuration when the space is small enough to prove that none does;
:func:`check_budget_reachable` turns the answer into an error (proven unreachable) or a
warning (none found in a space too large to check every configuration).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bitscout.errors import BitscoutWarning, SearchError
from bitscout.metrics import SIZE_METRICS

if TYPE_CHECKING:
    from bitscout.metrics import Constraints
    from bitscout.space import SearchSpace

__all__ = ["BudgetReach", "check_budget_reachable", "closest_to_budget"]

#: Spaces with at most this many distinct configurations are checked in full (about
#: 50 microseconds each) before a budget is declared unreachable.
ENUMERATE_LIMIT = 20_000

#: Coordinate-descent sweeps from each start before giving up (each sweep tries every
#: choice of every parameter once; additive metrics settle in one or two).
_MAX_SWEEPS = 8


@dataclass(frozen=True)
class BudgetReach:
    """What :func:`closest_to_budget` found.

    Attributes:
        feasible: A configuration meeting the budget was found (it is ``params``).
        proven: Every distinct configuration was checked: when ``feasible`` is false,
            no configuration meets the budget.
        violation: How far ``params`` misses the budget (0.0 when feasible), in the
            scale of :meth:`bitscout.metrics.Constraints.config_violation`.
        params: The best configuration found, as study parameters.
        checked: Distinct configurations whose violation was computed.
    """

    feasible: bool
    proven: bool
    violation: float
    params: dict[str, Any]
    checked: int


def closest_to_budget(
    space: SearchSpace,
    violation: Callable[[Mapping[str, Any]], float],
    *,
    enumerate_limit: int = ENUMERATE_LIMIT,
) -> BudgetReach:
    """The configuration of ``space`` that misses the budget least (or one that meets it).

    Args:
        space: The search space.
        violation: Parameters -> how far that configuration misses the budget (0 = met).
        enumerate_limit: Check every distinct configuration when the space has at most
            this many, so that "none meets it" is proven rather than only not found.
    """
    cache: dict[int, float] = {}

    def cost(params: Mapping[str, Any]) -> float:
        index = space.distinct_index_of(params)
        value = cache.get(index)
        if value is None:
            value = cache[index] = float(violation(params))
        return value

    best_params: dict[str, Any] = space.distinct_params_at(0)
    best = cost(best_params)
    params = space.params
    # Two starts: every parameter at its first listed choice, and at its last (seeds list
    # widths in either order; formats are unordered, the sweep tries every choice anyway).
    for start in (
        {p.name: p.choices[0] for p in params},
        {p.name: p.choices[-1] for p in params},
    ):
        current, value = dict(start), cost(start)
        for _ in range(_MAX_SWEEPS):
            improved = False
            for p in params:
                for choice in p.choices:
                    if value <= 0:
                        break
                    trial = {**current, p.name: choice}
                    trial_value = cost(trial)
                    if trial_value < value:
                        current, value, improved = trial, trial_value, True
            if value <= 0 or not improved:
                break
        if value < best:
            best_params, best = current, value
        if best <= 0:
            return BudgetReach(True, False, 0.0, space.canonical(best_params), len(cache))
    total = space.distinct_size
    if total > enumerate_limit:
        return BudgetReach(False, False, best, space.canonical(best_params), len(cache))
    for index in range(total):
        if index in cache:
            continue
        candidate = space.distinct_params_at(index)
        value = cost(candidate)
        if value < best:
            best_params, best = candidate, value
            if best <= 0:
                return BudgetReach(True, False, 0.0, space.canonical(best_params), len(cache))
    return BudgetReach(False, True, best, space.canonical(best_params), len(cache))


def check_budget_reachable(
    space: SearchSpace, constraints: Constraints, *, enumerate_limit: int = ENUMERATE_LIMIT
) -> BudgetReach | None:
    """Raise when no configuration of ``space`` meets the hardware-only constraints.

    Only bounds known from the configuration count (``constraints.hardware_only``);
    bounds measured on data (``accuracy_drop``) or on the built model (``latency``) are
    judged per trial, as before.

    Args:
        space: The search space.
        constraints: The search's constraints.
        enumerate_limit: See :func:`closest_to_budget`.

    Returns:
        What :func:`closest_to_budget` found, or None when no bound is known from the
        configuration alone.

    Raises:
        SearchError: Every distinct configuration was checked and none meets them: the
            message names each bound, the closest configuration's values and what to do.

    Warns:
        BitscoutWarning: None was found, but the space is too large to check every
            configuration (the search runs, skipping what it proves infeasible).
    """
    budget = constraints.hardware_only
    if not budget:
        return None
    reach = closest_to_budget(
        space, lambda params: budget.config_violation(space.decode(params)), enumerate_limit=enumerate_limit
    )
    if reach.feasible:
        return reach
    config = space.decode(reach.params)
    metrics = budget.config_metrics(config)
    missed = []
    for item in budget:
        value = metrics[item.metric]
        unit = " B" if item.metric in SIZE_METRICS else ""
        relation = "<=" if item.bound == "max" else ">="
        state = "met" if item.value(value) <= 0 else "missed"
        missed.append(
            f"search.strategy.constraints.{item.key}: {item.metric} {relation} {item.limit:g}{unit} "
            f"({state}: the closest configuration has {_fmt(value)}{unit})"
        )
    closest = ", ".join(f"{name} = {value!r}" for name, value in reach.params.items()) or "the only one"
    if reach.proven:
        raise SearchError(
            f"no configuration of the search space meets the hardware budget: every one of its "
            f"{space.distinct_size:,} distinct configurations was checked. "
            + "; ".join(missed)
            + f". The closest is {closest}. Raise the bound, or give [search.search_space] "
            "choices that need fewer bits (smaller widths, for more of the tensors)."
        )
    warnings.warn(
        f"no configuration meeting the hardware budget was found before the search "
        f"(a descent over {reach.checked:,} of the space's {space.distinct_size:,} distinct "
        "configurations; too many to check them all): "
        + "; ".join(missed)
        + f". The closest found is {closest}. Trials that miss the budget are skipped "
        "unmeasured; raise the bound or give [search.search_space] smaller choices if "
        "every trial is skipped.",
        BitscoutWarning,
        stacklevel=2,
    )
    return reach


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(value) and value == int(value) and abs(value) >= 1000 else f"{value:g}"
