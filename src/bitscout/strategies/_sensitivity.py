"""``sensitivity``: bitscout's own strategy for mixed-precision spaces.

It exploits what such spaces look like: each parameter's choices are ordered (more bits
rarely hurts accuracy), costs add up over layers, and a layer's sensitivity can be
measured alone. Three phases, all derived from the study's trials (so a resumed study,
or several workers sharing one, continue where the trials say):

1. **Profile.** The most precise configuration (every numeric parameter at its largest
   value), then each parameter alone at each of its other values with the rest at their
   largest: ``1 + sum(choices - 1)`` trials measure every setting's effect in isolation.
2. **Model.** A ridge regression of the objective on one-hot features of each parameter
   value (the additive part: after the profile it predicts every configuration as the
   sum of the measured one-at-a-time effects), plus pairs of values of two parameters
   (every pair while that stays under 1,500 features, else the pairs within a layer,
   whose weight and input widths interact), shrunk harder than the additive part. It is
   refitted on every finished trial, weighted towards the incumbent (the best trial so
   far) so that it is accurate where it matters. The best configurations of its
   per-layer part are enumerated exactly (a best-first walk over per-layer tables).
3. **Local search.** The unseen configurations one or two steps (one position in a
   parameter's ordered choices) from the best trials join the model's best ones; the
   proposal is the candidate the model scores highest.

A configuration already evaluated (or running, or failed) in the study is never proposed
again while an unseen one remains. One objective only: a Pareto search raises the
contract's :class:`bitscout.errors.SearchError`.

**Constraints** that a configuration alone decides (``average_bitwidth <= 4``: hardware
metrics computed from the configuration) are predicted exactly before anything is
evaluated, and a configuration they prove infeasible is never proposed while a feasible
unseen one remains (:attr:`SensitivitySampler.skipped_infeasible` counts the ones passed
over). The profile then starts from the most precise *feasible* configuration: the most
precise one, repaired by single steps that each reduce the violation, always stepping the
parameter that is furthest from the end it moves towards (so widths come down evenly);
a probe that breaks the constraints is repaired the same way with its own parameter
held. Every candidate of the local search and of the model's best list is checked.

Constraints measured on data (``accuracy_drop <= 0.01``) are known only after a trial,
from the values the loop records with ``trial.set_constraint``: the incumbent and the
neighbourhoods are then feasible trials, and once a trial has broken one, a second model
of the same form predicts the largest constraint value, and candidates it expects to be
infeasible are proposed only when it expects every candidate to be.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from pydantic import Field

from bitscout.errors import SearchError
from bitscout.space import SearchSpace
from bitscout.strategies._base import (
    ConfigConstraints,
    ConstraintAware,
    Strategy,
    StrategyOptions,
    register_strategy,
)

__all__ = ["SensitivityStrategy", "SensitivitySampler", "value_order"]

_NA = "NA"

_CONTROLLER: Any = None

# "auto" models every pair of parameters while that needs at most this many features
# (the fit solves a system of that size per proposal), else only pairs within a layer.
_MAX_PAIR_FEATURES = 1500

# A configuration on the edge of a data-measured constraint (value 0) is often the best
# feasible one; the ridge-shrunk constraint model puts it a little above 0. Candidates
# predicted within this much (in standard deviations of the observed values) count as
# feasible: the trial itself then says whether they are.
_CONSTRAINT_SLACK = 0.1


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run the small linear algebra of a fit on one BLAS thread.

    The fits are tiny (a few hundred unknowns); a multithreaded BLAS on a busy machine
    spends 10-20x longer synchronizing its threads than computing (measured: 16 ms
    against 1 ms for one solve on two shared cores).
    """
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController  # installed with scikit-learn
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        yield
        return
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        yield


def value_order(choices: Sequence[Any]) -> list[int]:
    """Positions of ``choices`` from the most to the least precise.

    Numbers (widths): largest first. Anything else keeps the listed order, except that
    ``"NA"`` (floating point, the most precise) comes first.
    """
    positions = list(range(len(choices)))
    numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
    if numeric:
        return sorted(positions, key=lambda i: (-float(choices[i]), i))
    return sorted(positions, key=lambda i: (choices[i] != _NA, i))


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


def _fit_size(n: int, newest_best: int) -> int:
    """How many of ``n`` observations (in trial order) the model is fitted on.

    All of them while there are at most 64, or when the best one is among the newest;
    otherwise the largest point of the schedule 64, 67, 70, ... (5% steps) up to ``n``.
    """
    point = 64
    if n <= point:
        return n
    while int(point * 1.05) + 1 <= n:
        point = int(point * 1.05) + 1
    return n if newest_best >= point else point


class _Model:
    """Weighted ridge regression on one-hot values and value pairs of parameter pairs."""

    def __init__(
        self, radices: Sequence[int], pairs: Sequence[tuple[int, int]], ridge: float, pair_ridge: float
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
        # Pairs are corrections to the additive model: shrunk harder, so that a pair of
        # values seen only through one-at-a-time probes predicts the sum of its effects.
        self.penalty = np.full(self.n_features, pair_ridge)
        self.penalty[: offsets[-1]] = ridge
        self.coef = np.zeros(self.n_features)
        self.intercept = 0.0

    def columns(self, x: np.ndarray) -> np.ndarray:
        """Active feature columns per row: shape (n, params + pairs)."""
        cols = [x[:, p] + self.main_offsets[p] for p in range(len(self.radices))]
        for (a, b), off in zip(self.pairs, self.pair_offsets):
            cols.append(off + x[:, a] * self.radices[b] + x[:, b])
        return np.stack(cols, axis=1)

    def fit(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        cols = self.columns(x)
        n, active = cols.shape
        f = self.n_features
        sw = w / w.sum()
        self.intercept = float(sw @ y)
        centered = y - self.intercept
        # The design is one-hot: build X^T W X and X^T W y from the active columns only.
        flat = (cols[:, :, None] * f + cols[:, None, :]).reshape(n, -1)
        gram = np.bincount(
            flat.ravel(), weights=np.repeat(sw, active * active), minlength=f * f
        ).reshape(f, f)
        gram[np.diag_indices_from(gram)] += self.penalty
        rhs = np.bincount(cols.ravel(), weights=np.repeat(sw * centered, active), minlength=f)
        self.coef = np.linalg.solve(gram, rhs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + self.coef[self.columns(x)].sum(axis=1)


class SensitivitySampler(optuna.samplers.BaseSampler, ConstraintAware):
    """The sampler of :class:`SensitivityStrategy` (see the module docstring).

    Args:
        space: The search space.
        seed: Seed of the tie-breaking noise and of the fallback for parameters outside
            the space.
        direction: ``"maximize"`` or ``"minimize"``.
        ridge: Ridge penalty of the model (relative to the weighted mean square).
        locality: How fast the model's weights fall with the distance (in steps) from
            the incumbent: weight ``exp(-distance / locality)``.
        model_candidates: How many of the model's best unseen configurations compete
            with the neighbours of the best trials in each proposal.
        neighbourhood_of: How many of the best trials contribute their neighbours.
        radius: Neighbours lie within this many steps of a best trial.
        pairs: ``"auto"``, ``"all"``, ``"layer"`` or ``"none"``: the model's pair terms.
        pair_ridge: Ridge penalty of the pair terms.
        constraints: Constraints a configuration alone decides (see
            :meth:`use_constraints`).
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int | None = None,
        direction: str = "maximize",
        ridge: float = 1e-3,
        locality: float = 2.0,
        model_candidates: int = 32,
        neighbourhood_of: int = 3,
        radius: int = 2,
        pairs: str = "auto",
        pair_ridge: float = 1.0,
        constraints: ConfigConstraints | None = None,
    ) -> None:
        self._space = space
        self._params = space.params
        self._names = [p.name for p in self._params]
        self._distributions = space.distributions()
        self._sign = 1.0 if direction == "maximize" else -1.0
        self._ridge = ridge
        self._locality = locality
        self._model_candidates = model_candidates
        self._neighbourhood_of = neighbourhood_of
        self._rng = np.random.default_rng(seed)
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._lock = threading.Lock()
        self._radices = [len(p.choices) for p in self._params]
        # rank[p][position] = 0 for the most precise choice, 1 for the next, ...
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
        self._model = _Model(self._radices, pair_list, ridge, pair_ridge)
        self._offsets = _offsets(len(self._params), radius)
        self._finished: dict[int, tuple[tuple[int, ...], float | None, float | None]] = {}
        # Constraints measured on data (accuracy_drop <= 0.01) are known only after a
        # trial: a second model of the same form predicts the largest constraint value.
        self._constraint_model = _Model(self._radices, pair_list, ridge, pair_ridge)
        self._constraint_fitted = False
        self._worst: dict[tuple[int, ...], float] = {}
        self._fitted = -1
        self._distinct_cache: dict[tuple[int, ...], int] = {}
        self._constraints: ConfigConstraints | None = None
        self._violations: dict[int, float] = {}  # distinct index -> violation
        self._skipped: set[int] = set()
        self._probe_list: list[tuple[int, ...]] | None = None
        if constraints is not None:
            self.use_constraints(constraints)

    # -- constraints -------------------------------------------------------------------

    def use_constraints(self, constraints: ConfigConstraints) -> None:
        """Never propose a configuration ``constraints`` prove infeasible (see the module)."""
        with self._lock:
            self._constraints = constraints
            self._violations.clear()
            self._probe_list = None

    @property
    def skipped_infeasible(self) -> int:
        """Distinct configurations passed over because the constraints prove them infeasible."""
        return len(self._skipped)

    def _violation(self, vector: tuple[int, ...]) -> float:
        """How far ``vector`` misses the constraints (0.0: feasible, or no constraints)."""
        if self._constraints is None:
            return 0.0
        index = self._distinct(vector)
        value = self._violations.get(index)
        if value is None:
            params = {name: p.choices[v] for name, p, v in zip(self._names, self._params, vector)}
            value = self._violations[index] = float(
                self._constraints.config_violation(self._space.decode(params))
            )
        return value

    def _feasible(self, vector: tuple[int, ...]) -> bool:
        """Whether ``vector`` may be proposed; an infeasible one is counted as skipped."""
        if self._violation(vector) <= 0:
            return True
        self._skipped.add(self._distinct(vector))
        return False

    def _repair(self, vector: tuple[int, ...], held: int | None = None) -> tuple[int, ...] | None:
        """The nearest feasible configuration by single steps, or None if there is none.

        Each step moves one parameter (not ``held``) one position in its order and must
        reduce the violation; of those, the parameter furthest from the end it moves
        towards goes first (so widths come down, or up, evenly), then the larger
        reduction, then the lower parameter index. Deterministic.
        """
        current = vector
        violation = self._violation(current)
        while violation > 0:
            best: tuple[tuple[float, float, int], tuple[int, ...], float] | None = None
            for p in range(len(self._params)):
                if p == held or self._radices[p] < 2:
                    continue
                rank = self._rank[p][current[p]]
                last = self._radices[p] - 1
                for step in (1, -1):  # 1: less precise, -1: more precise
                    new_rank = rank + step
                    if not 0 <= new_rank <= last:
                        continue
                    moved = current[:p] + (self._order[p][new_rank],) + current[p + 1 :]
                    after = self._violation(moved)
                    if after >= violation:
                        continue
                    # How far the parameter still is from where it is heading.
                    room = (last - rank) / last if step == 1 else rank / last
                    key = (-room, after, p)
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
            observed, taken = self._read(study, exclude=trial.number)
            vector = self._propose(observed, taken)
        return {name: p.choices[v] for name, p, v in zip(self._names, self._params, vector)}

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

    def _vector(self, params: dict[str, Any]) -> tuple[int, ...] | None:
        try:
            return tuple(pos[params[name]] for name, pos in zip(self._names, self._positions))
        except (KeyError, TypeError):
            return None

    def _distinct(self, vector: tuple[int, ...]) -> int:
        index = self._distinct_cache.get(vector)
        if index is None:
            params = {name: p.choices[v] for name, p, v in zip(self._names, self._params, vector)}
            index = self._distinct_cache[vector] = self._space.distinct_index_of(params)
        return index

    def _read(
        self, study: optuna.Study, *, exclude: int
    ) -> tuple[dict[tuple[int, ...], float], set[int]]:
        """(vector -> signed value of finished trials, distinct indices already taken).

        Also fills :attr:`_worst`: vector -> the largest constraint value a finished
        trial recorded (``trial.set_constraint``), for trials that recorded any.
        """
        observed: dict[tuple[int, ...], float] = {}
        taken: set[int] = set()
        self._worst: dict[tuple[int, ...], float] = {}
        for t in study.get_trials(deepcopy=False):
            if t.number == exclude:
                continue
            known = self._finished.get(t.number)
            if known is None:
                vector = self._vector(t.params)
                if vector is None:
                    continue
                value = worst = None
                if t.state == TrialState.COMPLETE and t.values is not None and len(t.values) == 1:
                    value = self._sign * float(t.values[0])
                    if not math.isfinite(value):
                        value = None
                    recorded = t.constraints.values()
                    if value is not None and recorded:
                        worst = max(recorded)
                if t.state.is_finished():
                    self._finished[t.number] = (vector, value, worst)
            else:
                vector, value, worst = known
            taken.add(self._distinct(vector))
            if value is not None:
                observed[vector] = value
                if worst is not None:
                    self._worst[vector] = worst
        return observed, taken

    # -- proposing ---------------------------------------------------------------------

    def _probes(self) -> list[tuple[int, ...]]:
        if self._probe_list is not None:
            return self._probe_list
        base: tuple[int, ...] | None = tuple(order[0] for order in self._order)
        if self._constraints is not None:
            repaired = self._repair(base)
            if repaired is None:
                # No configuration is feasible (even stepping every parameter): search
                # as if unconstrained; the study flags its best as infeasible.
                self._constraints = None
            else:
                base = repaired
        probes = [base]
        for p, order in enumerate(self._order):
            for pos in order:
                if pos == base[p]:
                    continue
                probe = base[:p] + (pos,) + base[p + 1 :]
                if self._constraints is not None and self._violation(probe) > 0:
                    self._skipped.add(self._distinct(probe))
                    probe = self._repair(probe, held=p)
                    if probe is None:
                        continue
                probes.append(probe)
        self._probe_list = list(dict.fromkeys(probes))
        return self._probe_list

    def _propose(self, observed: dict[tuple[int, ...], float], taken: set[int]) -> tuple[int, ...]:
        for probe in self._probes():
            if self._distinct(probe) not in taken:
                return probe
        if len(taken) >= self._space.distinct_size:
            return self._repeat_best(observed)
        if not observed:  # every trial so far failed: nothing to model
            unseen = self._any_unseen(taken)
            return unseen[0] if unseen else self._repeat_best(observed)
        vectors = list(observed)  # in trial order
        x = np.array(vectors, dtype=np.int64)
        y = np.array([observed[v] for v in vectors])
        infeasible = [self._worst.get(v, 0.0) > 0 for v in vectors]
        # Feasible trials first: the incumbent and the neighbourhoods are feasible ones.
        ranked = sorted(range(len(vectors)), key=lambda i: (infeasible[i], -y[i]))
        m = _fit_size(len(vectors), ranked[0])
        if self._fitted != m:
            # The model of the first m trials: a function of the trials alone (resume
            # gives the same proposals), refitted on every new best and otherwise as the
            # history grows by about 5%, to keep a proposal cheap late in a long search.
            head = list(range(m))
            incumbent = x[max(head, key=lambda i: y[i])]
            distance = np.abs(self._ranks(x[:m]) - self._ranks(incumbent[None, :])).sum(axis=1)
            weights = np.exp(-distance / self._locality)
            scale = float(np.std(y[:m])) or 1.0
            with _one_blas_thread():
                self._model.fit(x[:m], y[:m] / scale, weights)
                self._fit_constraints(vectors[:m], weights)
            self._fitted = m
        candidates = self._model_best(taken)
        for i in ranked[: self._neighbourhood_of]:
            candidates.extend(self._neighbours(vectors[i], taken))
        if not candidates:
            candidates = self._any_unseen(taken)
        if not candidates:  # every feasible configuration has been seen
            return self._repeat_best(observed)
        unique = list(dict.fromkeys(candidates))
        scores = self._model.predict(np.array(unique, dtype=np.int64))
        if self._constraint_fitted:
            # Candidates the constraint model expects to break a data-measured constraint
            # go last, ordered by how far they are expected to miss it.
            worst = self._constraint_model.predict(np.array(unique, dtype=np.int64))
            allowed = worst <= _CONSTRAINT_SLACK
            scores = np.where(allowed, scores, -np.inf) if allowed.any() else -worst
        # Ties (common: equal settings score equally) are broken by the seed.
        scores = scores + 1e-9 * self._rng.random(len(unique))
        return unique[int(np.argmax(scores))]

    def _fit_constraints(self, vectors: list[tuple[int, ...]], weights: np.ndarray) -> None:
        """Fit the constraint model when some trial broke a constraint measured on data."""
        rows = [i for i, v in enumerate(vectors) if v in self._worst]
        if not any(self._worst[vectors[i]] > 0 for i in rows):
            self._constraint_fitted = False
            return
        x = np.array([vectors[i] for i in rows], dtype=np.int64)
        y = np.array([self._worst[vectors[i]] for i in rows])
        scale = float(np.std(y)) or 1.0
        self._constraint_model.fit(x, y / scale, weights[rows])
        # The model predicts y / scale, whose sign is that of y: feasibility reads the same.
        self._constraint_fitted = True

    def _repeat_best(self, observed: dict[tuple[int, ...], float]) -> tuple[int, ...]:
        """Nothing new is left: the best trial again (the loop answers it from the study)."""
        if not observed:
            return self._probes()[0]
        return max(observed, key=lambda v: (self._worst.get(v, 0.0) <= 0, observed[v]))

    def _ranks(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for p, rank in enumerate(self._rank):
            out[:, p] = np.asarray(rank)[x[:, p]]
        return out

    def _neighbours(self, vector: tuple[int, ...], taken: set[int]) -> list[tuple[int, ...]]:
        """Unseen configurations within ``radius`` steps (a step: the next choice in order)."""
        ranks = np.array([self._rank[p][v] for p, v in enumerate(vector)]) + self._offsets
        ok = ((ranks >= 0) & (ranks < np.asarray(self._radices))).all(axis=1)
        out = []
        for row in ranks[ok]:
            cand = tuple(self._order[p][r] for p, r in enumerate(row))
            if self._distinct(cand) not in taken and self._feasible(cand):
                out.append(cand)
        return out

    def _model_best(self, taken: set[int]) -> list[tuple[int, ...]]:
        """The model's best unseen configurations, exactly (best-first over layers)."""
        coef, model = self._model.coef, self._model
        tables = []
        for group, combos in zip(self._groups, self._group_combos):
            scores = np.zeros(len(combos))
            for j, p in enumerate(group):
                scores += coef[model.main_offsets[p] + combos[:, j]]
            for (a, b), off in zip(model.pairs, model.pair_offsets):
                if a in group and b in group:
                    ia, ib = group.index(a), group.index(b)
                    scores += coef[off + combos[:, ia] * self._radices[b] + combos[:, ib]]
            order = np.argsort(-scores, kind="stable")
            tables.append(([tuple(int(v) for v in combos[i]) for i in order], scores[order].tolist()))
        start = (0,) * len(tables)
        heap = [(-sum(t[1][0] for t in tables), start)]
        seen = {start}
        found: list[tuple[int, ...]] = []
        pops = 0
        # Constrained, most of the model's favourites may be infeasible (the most precise
        # ones first): walk further to find as many feasible ones.
        max_pops = (64 if self._constraints is not None else 8) * self._model_candidates
        while heap and len(found) < self._model_candidates and pops < max_pops:
            neg, state = heapq.heappop(heap)
            pops += 1
            vector = [0] * len(self._params)
            for group, (combos, _), r in zip(self._groups, tables, state):
                for p, v in zip(group, combos[r]):
                    vector[p] = v
            candidate = tuple(vector)
            if self._distinct(candidate) not in taken and self._feasible(candidate):
                found.append(candidate)
            for g, (combos, scores) in enumerate(tables):
                if state[g] + 1 < len(combos):
                    nxt = state[:g] + (state[g] + 1,) + state[g + 1 :]
                    if nxt not in seen:
                        seen.add(nxt)
                        delta = scores[state[g] + 1] - scores[state[g]]
                        heapq.heappush(heap, (neg - delta, nxt))
        return found

    def _any_unseen(self, taken: set[int]) -> list[tuple[int, ...]]:
        """One unseen configuration the constraints allow (random, then in order), or none."""
        for _ in range(1000):
            index = int(self._rng.integers(self._space.distinct_size))
            if index not in taken:
                params = self._space.distinct_params_at(index)
                vector = self._vector(params)
                if vector is not None and self._feasible(vector):
                    return [vector]
        for index in range(self._space.distinct_size):
            if index not in taken:
                vector = self._vector(self._space.distinct_params_at(index))
                if vector is not None and self._feasible(vector):
                    return [vector]
        return []


@register_strategy
class SensitivityStrategy(Strategy):
    """bitscout's own strategy: sensitivity profile, additive model, local search.

    See :mod:`bitscout.strategies._sensitivity` for how it works. Made for one
    (summed) objective: with several, :meth:`make_sampler` raises
    :class:`bitscout.errors.SearchError` and names the alternatives.
    """

    name = "sensitivity"
    summary = "per-layer sensitivity profile + additive model + local search; 1 objective"
    max_objectives = 1

    class Options(StrategyOptions):
        """Options of ``sensitivity``.

        Attributes:
            ridge: Ridge penalty of the surrogate model (1e-3).
            locality: Weight of a trial in the model falls as ``exp(-d / locality)``
                with its distance ``d`` in steps from the best trial (2.0).
            model_candidates: The model's best unseen configurations considered per
                proposal (32).
            neighbourhood_of: How many of the best trials contribute their
                neighbours as candidates (3).
            radius: Neighbours are the configurations within this many steps (one
                step: the next value of one parameter in order) (2).
            pairs: Which pairs of parameters the model may couple: ``"all"``,
                ``"layer"`` (pairs within a layer), ``"none"`` (additive only) or
                ``"auto"`` (all while that needs at most 1,500 features, else layer).
            pair_ridge: Ridge penalty of the pair features (1.0): larger keeps the
                model closer to additive.
        """

        ridge: float = Field(1e-3, gt=0.0)
        locality: float = Field(2.0, gt=0.0)
        model_candidates: int = Field(32, ge=1)
        neighbourhood_of: int = Field(3, ge=1)
        radius: int = Field(2, ge=1, le=4)
        pairs: Literal["auto", "none", "layer", "all"] = "auto"
        pair_ridge: float = Field(1.0, gt=0.0)

    def build_sampler(
        self,
        space: SearchSpace,
        options: SensitivityStrategy.Options,
        *,
        seed: int | None,
        directions: tuple[str, ...],
        n_trials: int | None,
    ) -> optuna.samplers.BaseSampler:
        if len(directions) != 1:  # make_sampler checks max_objectives first
            raise SearchError("sampler 'sensitivity' supports one objective")
        return SensitivitySampler(
            space,
            seed=seed,
            direction=directions[0],
            ridge=options.ridge,
            locality=options.locality,
            model_candidates=options.model_candidates,
            neighbourhood_of=options.neighbourhood_of,
            radius=options.radius,
            pairs=options.pairs,
            pair_ridge=options.pair_ridge,
        )
