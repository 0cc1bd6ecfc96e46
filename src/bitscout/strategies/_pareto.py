"""``pareto``: bitscout's strategy for multi-objective (Pareto) searches.

Made for mixed-precision spaces, where each objective is close to a sum of per-layer
effects: a hardware cost (``average_bitwidth``, ``weight_bytes``, ``bitops``) is exactly
such a sum (over parameters, or over pairs of parameters of one layer), and accuracy
nearly is. Everything is derived from the study's trials (a resumed study, or several
workers sharing one, continue where the trials say):

1. **Profile.** The most precise configuration, then each parameter alone at each of
   its other values (``1 + sum(choices - 1)`` trials, in an order drawn from the seed):
   every setting's effect measured in isolation.
2. **Model.** Per objective, a Bayesian linear model on one-hot features of each
   parameter value plus pairs of values of two parameters of one layer (or of every
   pair, an option), the pairs shrunk harder. Its noise is estimated from the
   residuals: an objective the model fits exactly (a hardware cost) gets a posterior
   that is all but certain, accuracy one whose spread says where the model has not
   looked yet. Trials weigh less the further (in steps) they lie from the observed
   front, so that the models are accurate where the front is (accuracy is far from
   additive across a whole space, nearly so along a front).
3. **Proposal.** One joint draw of every objective's coefficients from the posterior
   (Thompson sampling: the seed decides the draws, so seeds follow different
   trajectories). Under that draw the exact Pareto front of the per-layer part of the
   model is computed by merging per-layer tables (a multi-objective knapsack, each
   partial front kept non-dominated); its unseen configurations, the unseen neighbours
   (one step in a parameter's order) of the trials on the observed front, and
   layer-wise crossovers of two of those trials are the candidates. Their drawn values
   are corrected by what the drawn model gets wrong at measured trials nearby (each
   trial's residual weighs ``kernel ** d``, ``d`` the parameters in which it differs):
   a neighbour of a front trial is predicted from that trial's measured value plus the
   model's difference between the two, not from the model's level, which on accuracy
   is off by more than the front's steps. The proposal is the candidate whose values
   add the most hypervolume to the observed front (with the predicted values of
   running trials added to it, so that parallel workers spread along the front); when
   none adds any, the one closest to the front.
4. **Local phase.** From ``refine_after`` configurations on (by default half of the
   trials, with one or two objectives), the proposal is the unseen one-parameter neighbour of an observed front
   trial (the next value up or down of a numeric parameter, any other value of an
   unordered one) with the largest expected hypervolume improvement, averaged over
   ``refine_draws`` draws of the full posterior (each corrected by its residuals).
   Front points are "lucky" configurations a few validation samples above their
   neighbours: the model points at the region, and the last step is a search among
   near-ties next to what was measured. A front point found here re-enters the
   neighbourhoods at once; when no neighbour is expected to improve the front, the
   model phase proposes.

A configuration already evaluated, running or failed in the study is never proposed
while an unseen one remains. With one objective the same machinery maximizes it
(improvement over the best instead of hypervolume), but ``sensitivity`` is made for that
case.

**Constraints** that a configuration alone decides (``average_bitwidth <= 4``) are
checked before a configuration is proposed: one they prove infeasible is never proposed
while a feasible unseen one remains (:attr:`ParetoSampler.skipped_infeasible`). Trials
that broke a constraint measured on data do not count for the observed front; the model
still learns the objectives from them.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from pydantic import Field

from bitscout._optuna_adapter import hypervolume
from bitscout.space import SearchSpace
from bitscout.strategies._base import (
    ConfigConstraints,
    ConstraintAware,
    Strategy,
    StrategyOptions,
    register_strategy,
)
from bitscout.strategies._sensitivity import _is_numeric, _one_blas_thread, value_order

__all__ = ["ParetoStrategy", "ParetoSampler", "non_dominated", "hypervolume_improvement"]


def _offsets(n: int, radius: int) -> np.ndarray:
    """Every integer vector of length ``n`` with 1 <= L1 norm <= ``radius``."""
    rows: list[tuple[int, ...]] = []

    def walk(prefix: tuple[int, ...], left: int) -> None:
        if len(prefix) == n:
            if left < radius:
                rows.append(prefix)
            return
        for d in range(-left, left + 1):
            walk(prefix + (d,), left - abs(d))

    walk((), radius)
    return np.array(rows, dtype=np.int64).reshape(-1, n)


# "auto" models every pair of parameters while that needs at most this many features,
# else only pairs within a layer (the same rule as ``sensitivity``).
_MAX_PAIR_FEATURES = 1500

# The noise variance of a standardized objective is never estimated below this: an
# exactly additive cost would otherwise make the posterior singular.
_MIN_NOISE = 1e-8

# With three or more objectives each hypervolume improvement is an exact hypervolume
# computation (milliseconds): only this many candidates, those standing out furthest
# from the front, get one per proposal.
_MAX_EXACT_IMPROVEMENTS = 32

# Layer-wise crossovers of two trials of the observed front scored per proposal.
_MAX_CROSSOVERS = 256


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``points`` no other row dominates (larger is better).

    Equal rows: only the first is kept. Two columns: a sort and a running maximum
    (n log n); more: pairwise comparisons against the survivors.
    """
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if points.shape[1] == 1:
        return np.array([int(np.argmax(points[:, 0]))])
    if points.shape[1] == 2:
        # Best first in column 0 (ties: best in column 1); a row survives when it beats
        # every earlier row in column 1.
        order = np.lexsort((-points[:, 1], -points[:, 0]))
        col = points[order, 1]
        running = np.maximum.accumulate(col)
        keep = np.ones(n, dtype=bool)
        keep[1:] = col[1:] > running[:-1]
        return np.sort(order[keep])
    # Lexicographic order, best first: a row can only be dominated by an earlier one.
    order = np.lexsort(tuple(-points[:, j] for j in reversed(range(points.shape[1]))))
    kept = np.empty(n, dtype=np.int64)
    front = np.empty_like(points)
    size = 0
    for i in order:
        p = points[i]
        if size and (front[:size] >= p).all(axis=1).any():
            continue
        kept[size] = i
        front[size] = p
        size += 1
    return np.sort(kept[:size])


def hypervolume_improvement(
    candidates: np.ndarray, front: np.ndarray, reference: np.ndarray, *, limit: int | None = None
) -> np.ndarray:
    """Hypervolume each row of ``candidates`` adds to ``front`` (larger is better).

    Both are measured from ``reference``; ``front`` must be non-dominated. A candidate's
    improvement is the volume of its box minus that of the front clipped to the box:
    vectorized over candidates for one and two objectives, Optuna's exact hypervolume
    per candidate for more. There, with ``limit``, only the ``limit`` candidates that
    stand out furthest from the front (the largest margin by which they beat every
    front point in some objective, relative to each objective's range) are computed;
    the others get 0.
    """
    c, m = candidates.shape
    gain = np.clip(candidates - reference, 0.0, None)
    box = np.prod(gain, axis=1)
    if len(front) == 0:
        return box
    if m == 1:
        return np.clip(candidates[:, 0] - front[:, 0].max(), 0.0, None)
    if m == 2:
        # The front sorted by the first objective, best first, is a staircase whose
        # second objective rises; clipping to a candidate's box keeps both orders.
        order = np.argsort(-front[:, 0], kind="stable")
        fx = np.minimum(front[order, 0][None, :], candidates[:, :1])
        fy = np.minimum(front[order, 1][None, :], candidates[:, 1:])
        fx = np.clip(fx, reference[0], None)
        fy = np.clip(fy, reference[1], None)
        widths = fx - np.concatenate([fx[:, 1:], np.full((c, 1), reference[0])], axis=1)
        covered = (widths * (fy - reference[1])).sum(axis=1)
        return np.clip(box - covered, 0.0, None)
    out = np.zeros(c)
    rows = np.flatnonzero((box > 0) & ~(front[None, :, :] >= candidates[:, None, :]).all(axis=2).any(axis=1))
    if limit is not None and len(rows) > limit:
        span = np.ptp(np.vstack([front, candidates]), axis=0)
        span[span == 0] = 1.0
        margin = ((candidates[rows, None, :] - front[None, :, :]) / span).max(axis=2).min(axis=1)
        rows = rows[np.argsort(-margin, kind="stable")[:limit]]
    for i in rows:
        p = candidates[i]
        clipped = np.minimum(front, p)
        clipped = clipped[(clipped > reference).all(axis=1)]
        covered = hypervolume(-clipped, -reference) if len(clipped) else 0.0
        out[i] = max(0.0, box[i] - covered)
    return out


class _Posterior:
    """Bayesian linear model on one-hot values and value pairs of parameter pairs.

    Prior: independent normal coefficients, standard deviation 1 for a parameter's
    value and ``pair_scale`` for a pair's (in standard deviations of the objective).
    Noise: estimated from the residuals of the posterior mean, at least
    ``_MIN_NOISE``.
    """

    def __init__(
        self, radices: Sequence[int], pairs: Sequence[tuple[int, int]], prior: float, pair_prior: float
    ) -> None:
        self.radices = list(radices)
        self.pairs = list(pairs)
        offsets = [0]
        for k in self.radices:
            offsets.append(offsets[-1] + k)
        self.main_offsets = offsets[:-1]
        start = offsets[-1]
        self.pair_offsets = []
        for a, b in self.pairs:
            self.pair_offsets.append(start)
            start += self.radices[a] * self.radices[b]
        self.n_features = start
        self.precision = np.full(self.n_features, 1.0 / pair_prior**2)
        self.precision[: offsets[-1]] = 1.0 / prior**2

    def columns(self, x: np.ndarray) -> np.ndarray:
        """Active feature columns per row: shape (n, params + pairs)."""
        cols = [x[:, p] + self.main_offsets[p] for p in range(len(self.radices))]
        for (a, b), off in zip(self.pairs, self.pair_offsets):
            cols.append(off + x[:, a] * self.radices[b] + x[:, b])
        return np.stack(cols, axis=1)

    def fit(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> _Fit:
        """The posterior given rows ``x`` (value positions), one objective's values ``y``.

        ``w`` (at most 1) weighs each row: a row of weight ``w`` counts as an
        observation with ``1 / w`` times the noise variance.
        """
        cols = self.columns(x)
        n, active = cols.shape
        f = self.n_features
        mean_y = float(w @ y / w.sum())
        scale = float(np.sqrt(w @ (y - mean_y) ** 2 / w.sum())) or 1.0
        z = (y - mean_y) / scale
        # The design is one-hot: X^T W X and X^T W z from the active columns only.
        flat = (cols[:, :, None] * f + cols[:, None, :]).reshape(n, -1)
        gram = np.bincount(flat.ravel(), weights=np.repeat(w, active * active), minlength=f * f).reshape(f, f)
        rhs = np.bincount(cols.ravel(), weights=np.repeat(w * z, active), minlength=f)
        noise = 0.01
        for _ in range(2):  # the noise from the residuals of the mean it implies
            inverse = _inverse_cholesky(gram / noise + np.diag(self.precision))
            mean = inverse.T @ (inverse @ (rhs / noise))
            resid = z - mean[cols].sum(axis=1)
            noise = max(float(w @ resid**2) / float(w.sum()), _MIN_NOISE)
        return _Fit(self, mean * scale, mean_y, inverse, scale)


def _inverse_cholesky(precision: np.ndarray) -> np.ndarray:
    """``L^-1`` for ``precision = L L^T``: then ``L^-T z`` is a draw of ``N(0, precision^-1)``."""
    return np.linalg.inv(np.linalg.cholesky(precision))


class _Fit:
    """One objective's posterior: its mean coefficients and draws from it."""

    def __init__(self, model: _Posterior, mean: np.ndarray, intercept: float, inverse: np.ndarray, scale: float) -> None:
        self.model = model
        self.mean = mean
        self.intercept = intercept
        self._inverse = inverse
        self._scale = scale

    def draw(self, rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
        """Coefficients drawn from the posterior (in the objective's units), their
        deviation from the mean multiplied by ``spread``."""
        z = rng.standard_normal(len(self.mean))
        return self.mean + spread * self._scale * (self._inverse.T @ z)

    def predict(self, x: np.ndarray, coef: np.ndarray | None = None) -> np.ndarray:
        coef = self.mean if coef is None else coef
        return self.intercept + coef[self.model.columns(x)].sum(axis=1)


class ParetoSampler(optuna.samplers.BaseSampler, ConstraintAware):
    """The sampler of :class:`ParetoStrategy` (see the module docstring).

    Args:
        space: The search space.
        directions: ``"maximize"`` or ``"minimize"`` per objective.
        seed: Seed of the profile's order, the posterior draws and the fallback for
            parameters outside the space.
        prior: Prior standard deviation of a parameter value's effect (in standard
            deviations of the objective).
        pair_prior: Prior standard deviation of a pair of values' effect.
        pairs: ``"auto"``, ``"all"``, ``"layer"`` or ``"none"``: the model's pair terms.
        radius: Neighbours of the observed front lie within this many steps.
        locality: Trials weigh ``exp(-d / locality)`` in the models, ``d`` their
            distance in steps from the observed front (0: all weigh 1).
        exploration: Factor on the spread of the posterior draws.
        front_size: Largest partial front kept while merging the per-layer tables.
        changes: Candidates also differ from an observed front trial in up to this
            many parameters (any values).
        kernel: Weight per differing parameter of a measured trial's residual in a
            candidate's prediction (0: no residual smoothing).
        explore_every: Every this many proposals one uses the full posterior spread.
        refine_after: The local phase starts once this many configurations are taken
            (0: never).
        refine_draws: Posterior draws of the local phase's expected improvement.
        constraints: Constraints a configuration alone decides.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        directions: Sequence[str],
        seed: int | None = None,
        prior: float = 1.0,
        pair_prior: float = 0.3,
        pairs: str = "layer",
        radius: int = 1,
        locality: float = 4.0,
        exploration: float = 0.25,
        front_size: int = 2000,
        changes: int = 0,
        kernel: float = 0.3,
        explore_every: int = 3,
        refine_after: int = 0,
        refine_draws: int = 16,
        constraints: ConfigConstraints | None = None,
    ) -> None:
        self._space = space
        self._params = space.params
        self._names = [p.name for p in self._params]
        self._distributions = space.distributions()
        self._signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
        self._rng = np.random.default_rng(seed)
        self._profile_seed = int(np.random.default_rng(seed).integers(2**32)) if seed is not None else None
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._lock = threading.Lock()
        self._radices = [len(p.choices) for p in self._params]
        self._order = [value_order(p.choices) for p in self._params]
        self._rank = []
        for order in self._order:
            rank = [0] * len(order)
            for r, pos in enumerate(order):
                rank[pos] = r
            self._rank.append(rank)
        self._positions = [{c: i for i, c in enumerate(p.choices)} for p in self._params]
        layers: dict[str, list[int]] = {}
        for i, p in enumerate(self._params):
            layers.setdefault(p.layer, []).append(i)
        self._groups = list(layers.values())
        self._group_combos = [
            np.array(list(itertools.product(*(range(self._radices[p]) for p in group))), dtype=np.int64)
            for group in self._groups
        ]
        every_pair = list(itertools.combinations(range(len(self._params)), 2))
        if pairs == "auto":
            cells = sum(self._radices[a] * self._radices[b] for a, b in every_pair)
            pairs = "all" if cells <= _MAX_PAIR_FEATURES else "layer"
        if pairs == "all":
            pair_list = every_pair
        elif pairs == "layer":
            pair_list = [pair for group in self._groups for pair in itertools.combinations(group, 2)]
        else:
            pair_list = []
        self._model = _Posterior(self._radices, pair_list, prior, pair_prior)
        self._radius = radius
        self._locality = locality
        self._exploration = exploration
        self._front_size = front_size
        self._steps = _offsets(len(self._params), radius)
        self._changes = changes
        self._kernel = kernel
        self._explore_every = explore_every
        self._refine_after = refine_after
        self._refine_draws = refine_draws
        self._numeric = [_is_numeric(p.choices) for p in self._params]
        self._templates = [self._change_templates(k) for k in range(1, changes + 1)]
        self._finished: dict[int, tuple[tuple[int, ...], np.ndarray | None, bool]] = {}
        self._distinct_cache: dict[tuple[int, ...], int] = {}
        self._constraints: ConfigConstraints | None = None
        self._violations: dict[int, float] = {}
        self._skipped: set[int] = set()
        self._probe_list: list[tuple[int, ...]] | None = None
        self._group_codes, self._group_offsets, self._base_index = self._distinct_tables()
        if constraints is not None:
            self.use_constraints(constraints)

    # -- constraints -------------------------------------------------------------------

    def use_constraints(self, constraints: ConfigConstraints) -> None:
        """Never propose a configuration ``constraints`` prove infeasible."""
        with self._lock:
            self._constraints = constraints
            self._violations.clear()
            self._probe_list = None

    @property
    def skipped_infeasible(self) -> int:
        """Distinct configurations passed over because the constraints prove them infeasible."""
        return len(self._skipped)

    def _violation(self, vector: tuple[int, ...]) -> float:
        if self._constraints is None:
            return 0.0
        index = self._distinct(vector)
        value = self._violations.get(index)
        if value is None:
            value = self._violations[index] = float(
                self._constraints.config_violation(self._space.decode(self._params_of(vector)))
            )
        return value

    def _feasible(self, vector: tuple[int, ...]) -> bool:
        if self._violation(vector) <= 0:
            return True
        self._skipped.add(self._distinct(vector))
        return False

    def _repair(self, vector: tuple[int, ...]) -> tuple[int, ...] | None:
        """Step parameters towards less precise values until feasible (None: impossible).

        Each step takes the move that reduces the violation most; ties go to the
        parameter furthest from its least precise value (widths come down evenly).
        """
        current = vector
        violation = self._violation(current)
        while violation > 0:
            best: tuple[tuple[float, int, int], tuple[int, ...], float] | None = None
            for p in range(len(self._params)):
                rank = self._rank[p][current[p]]
                if rank + 1 >= self._radices[p]:
                    continue
                moved = current[:p] + (self._order[p][rank + 1],) + current[p + 1 :]
                after = self._violation(moved)
                if after >= violation:
                    continue
                key = (after, rank, p)
                if best is None or key < best[0]:
                    best = (key, moved, after)
            if best is None:
                return None
            _, current, violation = best
        return current

    # -- Optuna's sampler interface ----------------------------------------------------

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not self._params:
            return {}
        with self._lock:
            observed, running, taken = self._read(study, exclude=trial.number)
            vector = self._propose(observed, running, taken)
        return self._params_of(vector)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        # A parameter outside the space (a user's own suggest call): nothing to model.
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    # -- reading the study -------------------------------------------------------------

    def _params_of(self, vector: Sequence[int]) -> dict[str, Any]:
        return {name: p.choices[v] for name, p, v in zip(self._names, self._params, vector)}

    def _vector(self, params: dict[str, Any]) -> tuple[int, ...] | None:
        try:
            return tuple(pos[params[name]] for name, pos in zip(self._names, self._positions))
        except (KeyError, TypeError):
            return None

    def _distinct(self, vector: tuple[int, ...]) -> int:
        index = self._distinct_cache.get(vector)
        if index is None:
            index = self._distinct_cache[vector] = self._space.distinct_index_of(self._params_of(vector))
        return index

    def _distinct_tables(self) -> tuple[list[np.ndarray], list[np.ndarray], int]:
        """What :meth:`_distinct_many` needs: the distinct index is a sum over layers
        (first layer slowest), so it is the base configuration's index plus, per layer,
        how far that layer's setting moves it (one call per setting of each layer)."""
        base = tuple(0 for _ in self._params)
        base_index = self._distinct(base) if self._params else 0
        codes, offsets = [], []
        for group, combos in zip(self._groups, self._group_combos):
            radix = np.ones(len(group), dtype=np.int64)
            for k in range(len(group) - 2, -1, -1):
                radix[k] = radix[k + 1] * self._radices[group[k + 1]]
            codes.append(radix)
            moved = np.empty(len(combos), dtype=np.int64)
            for r, combo in enumerate(combos):
                vector = list(base)
                for p, v in zip(group, combo):
                    vector[p] = int(v)
                moved[r] = self._space.distinct_index_of(self._params_of(vector)) - base_index
            offsets.append(moved)
        return codes, offsets, base_index

    def _distinct_many(self, x: np.ndarray) -> np.ndarray:
        """:meth:`_distinct` of every row of ``x``, vectorized."""
        index = np.full(len(x), self._base_index, dtype=np.int64)
        for group, radix, moved in zip(self._groups, self._group_codes, self._group_offsets):
            index += moved[x[:, group] @ radix]
        return index

    def _change_templates(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every way to set ``k`` distinct parameters to values: (parameters, values),
        each of shape (ways, k)."""
        params, values = [], []
        for chosen in itertools.combinations(range(len(self._params)), k):
            for picked in itertools.product(*(range(self._radices[p]) for p in chosen)):
                params.append(chosen)
                values.append(picked)
        if not params:
            return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.int64)
        return np.array(params, dtype=np.int64), np.array(values, dtype=np.int64)

    def _moves(self, origins: np.ndarray, taken: np.ndarray) -> np.ndarray:
        """Unseen configurations that differ from a row of ``origins`` in 1 to
        ``changes`` parameters (any values, no order assumed), deduplicated."""
        out = []
        for params, values in self._templates:
            if len(params) == 0 or len(origins) == 0:
                continue
            rows = np.repeat(origins, len(params), axis=0)
            which = np.tile(params, (len(origins), 1))
            new = np.tile(values, (len(origins), 1))
            # Only true changes: every chosen parameter moves off the origin's value.
            moved = (np.take_along_axis(rows, which, axis=1) != new).all(axis=1)
            rows, which, new = rows[moved], which[moved], new[moved]
            np.put_along_axis(rows, which, new, axis=1)
            out.append(rows)
        if not out:
            return np.zeros((0, len(self._params)), dtype=np.int64)
        x = np.vstack(out)
        index = self._distinct_many(x)
        index, first = np.unique(index, return_index=True)
        keep = ~np.isin(index, taken)
        return x[first[keep]]

    def _read(
        self, study: optuna.Study, *, exclude: int
    ) -> tuple[dict[tuple[int, ...], tuple[np.ndarray, bool]], list[tuple[int, ...]], set[int]]:
        """(vector -> (signed values, feasible) of finished trials, running vectors, taken)."""
        observed: dict[tuple[int, ...], tuple[np.ndarray, bool]] = {}
        running: list[tuple[int, ...]] = []
        taken: set[int] = set()
        m = len(self._signs)
        for t in study.get_trials(deepcopy=False):
            if t.number == exclude:
                continue
            known = self._finished.get(t.number)
            if known is None:
                vector = self._vector(t.params)
                if vector is None:
                    continue
                values: np.ndarray | None = None
                feasible = True
                if t.state == TrialState.COMPLETE and t.values is not None and len(t.values) == m:
                    values = self._signs * np.array(t.values, dtype=float)
                    if not np.isfinite(values).all():
                        values = None
                    recorded = getattr(t, "constraints", None) or {}
                    feasible = not any(v > 0 for v in dict(recorded).values())
                if t.state.is_finished():
                    self._finished[t.number] = (vector, values, feasible)
                elif t.state == TrialState.RUNNING:
                    running.append(vector)
            else:
                vector, values, feasible = known
            taken.add(self._distinct(vector))
            if values is not None:
                observed[vector] = (values, feasible)
        return observed, running, taken

    # -- proposing ---------------------------------------------------------------------

    def _probes(self) -> list[tuple[int, ...]]:
        """The profile: the most precise feasible configuration, then one change at a time."""
        if self._probe_list is not None:
            return self._probe_list
        base = tuple(order[0] for order in self._order)
        if self._constraints is not None:
            repaired = self._repair(base)
            if repaired is None:  # nothing is feasible: search as if unconstrained
                self._constraints = None
            else:
                base = repaired
        probes = []
        for p, order in enumerate(self._order):
            for pos in order:
                if pos != base[p]:
                    probe = base[:p] + (pos,) + base[p + 1 :]
                    if self._feasible(probe):
                        probes.append(probe)
        # The order of the probes does not change the model they build; drawing it
        # from the seed makes seeds differ from the second trial on.
        np.random.default_rng(self._profile_seed).shuffle(probes)
        self._probe_list = list(dict.fromkeys([base, *probes]))
        return self._probe_list

    def _propose(
        self,
        observed: dict[tuple[int, ...], tuple[np.ndarray, bool]],
        running: list[tuple[int, ...]],
        taken: set[int],
    ) -> tuple[int, ...]:
        for probe in self._probes():
            if self._distinct(probe) not in taken:
                return probe
        if len(taken) >= self._space.distinct_size:
            return self._repeat_front(observed)
        if len(observed) < 2:  # (nearly) every trial failed: nothing to model
            unseen = self._any_unseen(taken)
            return unseen[0] if unseen else self._repeat_front(observed)
        vectors = list(observed)
        x = np.array(vectors, dtype=np.int64)
        y = np.array([observed[v][0] for v in vectors])
        feasible = np.array([observed[v][1] for v in vectors])
        front_rows = np.flatnonzero(feasible)[non_dominated(y[feasible])] if feasible.any() else np.zeros(0, dtype=np.int64)
        front_vectors = [vectors[i] for i in front_rows]
        weights = self._weights(x, x[front_rows]) if len(front_rows) else np.ones(len(x))
        with _one_blas_thread():
            fits = [self._model.fit(x, y[:, j], weights) for j in range(y.shape[1])]
        # Mostly a narrowed draw (exploitation); every explore_every-th proposal a draw
        # of the full posterior, so that settings the model is unsure of (unordered
        # format names, a front point one lucky setting away) still get tried.
        full = self._explore_every > 0 and len(taken) % self._explore_every == 0
        draws = [fit.draw(self._rng, 1.0 if full else self._exploration) for fit in fits]
        points = y[feasible] if feasible.any() else np.zeros((0, y.shape[1]))
        if running:
            # Running trials count at their predicted values, so that parallel workers
            # do not all aim at the same gap of the front.
            xr = np.array(running, dtype=np.int64)
            fantasies = np.stack([fit.predict(xr) for fit in fits], axis=1)
            points = np.vstack([points, fantasies])
        front = points[non_dominated(points)] if len(points) else points

        if self._refine_after and len(taken) >= self._refine_after and front_vectors:
            refined = self._refine(front_vectors, fits, x, y, front, taken)
            if refined is not None:
                return refined

        candidates = self._drawn_front(draws, fits, taken)
        for v in front_vectors:
            candidates.extend(self._neighbours(v, taken))
        if self._changes and front_vectors:
            moves = self._moves(np.array(front_vectors, dtype=np.int64), np.fromiter(taken, dtype=np.int64))
            candidates.extend(
                c for c in map(tuple, moves.tolist()) if self._constraints is None or self._feasible(c)
            )
        candidates.extend(self._crossovers(front_vectors, taken))
        if not candidates:
            candidates = self._any_unseen(taken)
        if not candidates:
            return self._repeat_front(observed)
        unique = list(dict.fromkeys(candidates))
        xc = np.array(unique, dtype=np.int64)
        predicted = np.stack([fit.predict(xc, coef) for fit, coef in zip(fits, draws)], axis=1)
        if self._kernel > 0:
            # What the drawn model misses where it has been measured, carried to nearby
            # candidates: a front trial's neighbour is predicted from that trial's value
            # and the model's difference between the two, not from the model's level.
            residual = y - np.stack([fit.predict(x, coef) for fit, coef in zip(fits, draws)], axis=1)
            predicted = predicted + self._smooth(xc, x, residual)
        everything = np.vstack([front, predicted]) if len(front) else predicted
        low, high = everything.min(axis=0), everything.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        reference = low - 0.1 * span
        gain = hypervolume_improvement(predicted, front, reference, limit=_MAX_EXACT_IMPROVEMENTS)
        if (gain > 0).any():
            score = gain / float(np.prod(span))
        else:
            score = -self._gap(predicted, front, span)
        # Exact ties (equal settings predict equally) are broken by the seed.
        score = score + 1e-12 * self._rng.random(len(unique))
        return unique[int(np.argmax(score))]

    def _local(self, vector: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Every configuration one parameter away from ``vector``: the next value up or
        down for a numeric parameter, every other value for an unordered one."""
        out = []
        for p in range(len(self._params)):
            if self._numeric[p]:
                rank = self._rank[p][vector[p]]
                values = [self._order[p][r] for r in (rank - 1, rank + 1) if 0 <= r < self._radices[p]]
            else:
                values = [v for v in range(self._radices[p]) if v != vector[p]]
            out.extend(vector[:p] + (v,) + vector[p + 1 :] for v in values)
        return out

    def _refine(
        self,
        front_vectors: list[tuple[int, ...]],
        fits: list[_Fit],
        x: np.ndarray,
        y: np.ndarray,
        front: np.ndarray,
        taken: set[int],
    ) -> tuple[int, ...] | None:
        """The local phase's proposal: of the unseen one-parameter neighbours
        (:meth:`_local`) of the observed front's trials, the one with the largest
        expected hypervolume improvement over ``refine_draws`` draws of the full
        posterior, each draw corrected by its residuals at the measured trials (as the
        model phase's single draw is). None when none is expected to improve the front.
        """
        # Keyed by configuration: vectors that collapse to one (a parameter another one
        # makes irrelevant) are one candidate.
        fresh: dict[int, tuple[int, ...]] = {}
        for v in front_vectors:
            for c in self._local(v):
                index = self._distinct(c)
                if index not in taken and index not in fresh and self._feasible(c):
                    fresh[index] = c
        if not fresh:
            return None
        unique = list(fresh.values())
        xc = np.array(unique, dtype=np.int64)
        # Three or more objectives: each draw costs up to _MAX_EXACT_IMPROVEMENTS exact
        # hypervolumes, so fewer draws.
        k = self._refine_draws if len(self._signs) <= 2 else max(2, self._refine_draws // 4)
        smoothing = self._smoothing(xc, x) if self._kernel > 0 else None
        everything = np.vstack([front, y])
        low, high = everything.min(axis=0), everything.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        reference = low - 0.1 * span
        gain = np.zeros(len(unique))
        for _ in range(k):
            draws = [fit.draw(self._rng) for fit in fits]
            predicted = np.stack([fit.predict(xc, coef) for fit, coef in zip(fits, draws)], axis=1)
            if smoothing is not None:
                residual = y - np.stack([fit.predict(x, coef) for fit, coef in zip(fits, draws)], axis=1)
                predicted = predicted + smoothing @ residual
            gain += hypervolume_improvement(predicted, front, reference, limit=_MAX_EXACT_IMPROVEMENTS)
        if not (gain > 0).any():
            return None
        # Exact ties (equal settings predict equally) are broken by the seed.
        return unique[int(np.argmax(gain + 1e-12 * float(np.prod(span)) * k * self._rng.random(len(unique))))]

    def _smoothing(self, xc: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The matrix of :meth:`_smooth`: its product with the residuals of ``x``."""
        offsets = np.concatenate([[0], np.cumsum(self._radices)[:-1]])
        n_features = int(sum(self._radices))
        onehot_c = np.zeros((len(xc), n_features))
        onehot_c[np.arange(len(xc))[:, None], xc + offsets] = 1.0
        onehot_x = np.zeros((len(x), n_features))
        onehot_x[np.arange(len(x))[:, None], x + offsets] = 1.0
        weight = np.power(self._kernel, len(self._radices) - onehot_c @ onehot_x.T)
        return weight / (weight.sum(axis=1, keepdims=True) + self._kernel)

    def _smooth(self, xc: np.ndarray, x: np.ndarray, residual: np.ndarray) -> np.ndarray:
        """Kernel-weighted residuals of the trials ``x`` at the candidates ``xc``: weight
        ``kernel ** d`` for a trial ``d`` parameters away, shrunk towards 0 (no
        correction) as if one more trial with residual 0 sat at distance 1."""
        offsets = np.concatenate([[0], np.cumsum(self._radices)[:-1]])
        n_features = int(sum(self._radices))
        onehot_c = np.zeros((len(xc), n_features), dtype=np.float32)
        onehot_c[np.arange(len(xc))[:, None], xc + offsets] = 1.0
        onehot_x = np.zeros((len(x), n_features), dtype=np.float32)
        onehot_x[np.arange(len(x))[:, None], x + offsets] = 1.0
        distance = len(self._radices) - onehot_c @ onehot_x.T
        weight = np.power(np.float32(self._kernel), distance)
        total = weight.sum(axis=1, keepdims=True) + self._kernel
        return (weight @ residual.astype(np.float32)) / total

    def _weights(self, x: np.ndarray, front: np.ndarray) -> np.ndarray:
        """Each trial's weight in the model: ``exp(-d / locality)``, ``d`` its distance
        in steps to the nearest trial of the observed front (the model matters there)."""
        if self._locality <= 0:
            return np.ones(len(x))
        ranks, front_ranks = self._ranks(x), self._ranks(front)
        distance = np.abs(ranks[:, None, :] - front_ranks[None, :, :]).sum(axis=2).min(axis=1)
        return np.exp(-distance / self._locality)

    def _ranks(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for p, rank in enumerate(self._rank):
            out[:, p] = np.asarray(rank)[x[:, p]]
        return out

    @staticmethod
    def _gap(points: np.ndarray, front: np.ndarray, span: np.ndarray) -> np.ndarray:
        """How far (in spans, the worst objective) each point is from escaping domination."""
        if len(front) == 0:
            return np.zeros(len(points))
        diff = (front[None, :, :] - points[:, None, :]) / span
        return np.clip(diff, 0.0, None).min(axis=2).min(axis=1)

    def _drawn_front(self, draws: list[np.ndarray], fits: list[_Fit], taken: set[int]) -> list[tuple[int, ...]]:
        """The unseen feasible configurations on the front of the drawn per-layer model.

        Per layer, every setting's drawn values (its parameters' effects and the pairs
        within it); the layers are merged one by one, keeping only non-dominated
        partial sums (at most ``front_size``, thinned evenly when more).
        """
        model = self._model
        m = len(draws)
        # Fronts of three or more objectives are surfaces: far more points, each costlier
        # to filter; a tenth of the limit keeps a proposal within a fraction of a second.
        limit = self._front_size if m <= 2 else max(10, self._front_size // 10)
        partial_values = np.zeros((1, m))
        partial_rows = np.zeros((1, 0), dtype=np.int64)
        for group, combos in zip(self._groups, self._group_combos):
            table = np.zeros((len(combos), m))
            for j, coef in enumerate(draws):
                for k, p in enumerate(group):
                    table[:, j] += coef[model.main_offsets[p] + combos[:, k]]
                for (a, b), off in zip(model.pairs, model.pair_offsets):
                    if a in group and b in group:
                        ia, ib = group.index(a), group.index(b)
                        table[:, j] += coef[off + combos[:, ia] * self._radices[b] + combos[:, ib]]
            merged = (partial_values[:, None, :] + table[None, :, :]).reshape(-1, m)
            rows = np.concatenate(
                [
                    np.repeat(partial_rows, len(combos), axis=0),
                    np.tile(np.arange(len(combos)), len(partial_rows))[:, None],
                ],
                axis=1,
            )
            keep = non_dominated(merged)
            if len(keep) > limit:
                keep = keep[np.linspace(0, len(keep) - 1, limit).astype(np.int64)]
            partial_values, partial_rows = merged[keep], rows[keep]
        x = np.zeros((len(partial_rows), len(self._params)), dtype=np.int64)
        for g, (group, combos) in enumerate(zip(self._groups, self._group_combos)):
            x[:, group] = combos[partial_rows[:, g]]
        # Vectorized: the drawn front has up to front_size members every proposal.
        unseen = ~np.isin(self._distinct_many(x), np.fromiter(taken, dtype=np.int64, count=len(taken)))
        return [c for c in map(tuple, x[unseen].tolist()) if self._constraints is None or self._feasible(c)]

    def _neighbours(self, vector: tuple[int, ...], taken: set[int]) -> list[tuple[int, ...]]:
        """Unseen feasible configurations within ``radius`` steps of ``vector``."""
        ranks = np.array([self._rank[p][v] for p, v in enumerate(vector)]) + self._steps
        ok = ((ranks >= 0) & (ranks < np.asarray(self._radices))).all(axis=1)
        out = []
        for row in ranks[ok]:
            candidate = tuple(self._order[p][r] for p, r in enumerate(row))
            if self._distinct(candidate) not in taken and self._feasible(candidate):
                out.append(candidate)
        return out

    def _crossovers(self, parents: list[tuple[int, ...]], taken: set[int]) -> list[tuple[int, ...]]:
        """Unseen feasible configurations that take each layer's settings from one of two
        trials of the observed front (at most ``_MAX_CROSSOVERS``, drawn from the seed)."""
        if len(parents) < 2 or len(self._groups) < 2:
            return []
        pairs = list(itertools.combinations(range(len(parents)), 2))
        masks = self._rng.integers(0, 2, size=(_MAX_CROSSOVERS, len(self._groups)))
        picks = self._rng.integers(0, len(pairs), size=_MAX_CROSSOVERS)
        out = []
        for mask, pick in zip(masks, picks):
            a, b = parents[pairs[pick][0]], parents[pairs[pick][1]]
            child = list(a)
            for g, group in enumerate(self._groups):
                if mask[g]:
                    for p in group:
                        child[p] = b[p]
            candidate = tuple(child)
            if candidate not in (a, b) and self._distinct(candidate) not in taken and self._feasible(candidate):
                out.append(candidate)
        return out

    def _repeat_front(self, observed: dict[tuple[int, ...], tuple[np.ndarray, bool]]) -> tuple[int, ...]:
        """Nothing new is left: a trial of the front again (the loop answers it from the study)."""
        if not observed:
            return self._probes()[0]
        return max(observed, key=lambda v: (observed[v][1], float(observed[v][0][0])))

    def _any_unseen(self, taken: set[int]) -> list[tuple[int, ...]]:
        """One unseen feasible configuration (random, then in order), or none."""
        for _ in range(1000):
            index = int(self._rng.integers(self._space.distinct_size))
            if index not in taken:
                vector = self._vector(self._space.distinct_params_at(index))
                if vector is not None and self._feasible(vector):
                    return [vector]
        for index in range(self._space.distinct_size):
            if index not in taken:
                vector = self._vector(self._space.distinct_params_at(index))
                if vector is not None and self._feasible(vector):
                    return [vector]
        return []


@register_strategy
class ParetoStrategy(Strategy):
    """bitscout's multi-objective strategy: additive posterior models, drawn fronts.

    See :mod:`bitscout.strategies._pareto` for how it works.
    """

    name = "pareto"
    summary = "per-objective additive Bayesian models + Pareto front of a posterior draw; 2+ objectives"

    class Options(StrategyOptions):
        """Options of ``pareto``.

        Attributes:
            prior: Prior standard deviation of one parameter value's effect, in standard
                deviations of the objective (1.0).
            pair_prior: Prior standard deviation of a pair of values' effect (0.3):
                smaller keeps the model closer to additive.
            pairs: Which pairs of parameters the model may couple: ``"all"``,
                ``"layer"`` (pairs within a layer), ``"none"`` (additive only) or
                ``"auto"`` (all while that needs at most 1,500 features, else layer).
            radius: Neighbours of the observed front's trials within this many steps
                (one step: the next value of one parameter in order) are candidates (1).
            locality: A trial's weight in the models falls as ``exp(-d / locality)``
                with its distance ``d`` in steps from the nearest trial of the observed
                front (4.0; 0: every trial weighs the same).
            exploration: Multiplies the spread of the posterior draws (0.25; 0: the
                posterior mean, no exploration, and seeds differ only in the profile's
                order).
            front_size: Largest partial front kept while merging per-layer tables
                (2,000; a tenth of it with three or more objectives).
            changes: Configurations differing from a trial of the observed front in up
                to this many parameters (any values, no order assumed) are candidates
                too (0: none; 1 or 2 cost more sampler time and, measured on the
                suite, did not help on average).
            kernel: Residual smoothing: a candidate's predicted values are corrected
                by the model's errors at measured trials, weighted ``kernel ** d`` for
                a trial ``d`` parameters away (0.3; 0: the additive model alone).
            explore_every: Every this many proposals, one draws with the posterior's
                full spread instead of ``exploration``'s (3; 0: never).
            refine_after: From this many configurations taken on, the local phase
                (see the module docstring) proposes; unset: half of ``n_trials``
                (100 without it) with one or two objectives, never with three or
                more; 0: never.
            refine_draws: Posterior draws averaged into the local phase's expected
                hypervolume improvement (16; a quarter of it with three or more
                objectives).
        """

        prior: float = Field(1.0, gt=0.0)
        pair_prior: float = Field(0.3, gt=0.0)
        pairs: Literal["auto", "none", "layer", "all"] = "layer"
        radius: int = Field(1, ge=1, le=3)
        locality: float = Field(4.0, ge=0.0)
        exploration: float = Field(0.25, ge=0.0)
        front_size: int = Field(2000, ge=10)
        changes: int = Field(0, ge=0, le=2)
        kernel: float = Field(0.3, ge=0.0, lt=1.0)
        explore_every: int = Field(3, ge=0)
        refine_after: int | None = Field(None, ge=0)
        refine_draws: int = Field(16, ge=1)

    @staticmethod
    def _refine_after(options: ParetoStrategy.Options, directions: tuple[str, ...], n_trials: int | None) -> int:
        """The option, or by default half of ``n_trials`` (100 without it) with two
        objectives and no local phase with three or more: a front surface (166 points on
        the digits MLP's three objectives) needs the model phase's spread more than a
        search among near-ties, and the local phase lost there (measured: 0.038 against
        0.025 of the hypervolume short after 200 evaluations, 3 seeds)."""
        if options.refine_after is not None:
            return options.refine_after
        if len(directions) > 2:
            return 0
        return n_trials // 2 if n_trials else 100

    def build_sampler(
        self,
        space: SearchSpace,
        options: ParetoStrategy.Options,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        return ParetoSampler(
            space,
            directions=directions,
            seed=seed,
            prior=options.prior,
            pair_prior=options.pair_prior,
            pairs=options.pairs,
            radius=options.radius,
            locality=options.locality,
            exploration=options.exploration,
            front_size=options.front_size,
            changes=options.changes,
            kernel=options.kernel,
            explore_every=options.explore_every,
            refine_after=self._refine_after(options, directions, n_trials),
            refine_draws=options.refine_draws,
        )
