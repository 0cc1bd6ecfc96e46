"""``sensitivity``: bitscout's own strategy for mixed-precision spaces (the default for one objective).

It exploits what such spaces look like: a layer's sensitivity can be measured alone, and
costs and accuracy losses roughly add up over layers. Three phases, all derived from the
study's trials (so a resumed study, or several workers sharing one, continue where the
trials say):

1. **Profile.** The most precise configuration (every numeric parameter at its largest
   value, an unordered choice at its first listed value, ``"NA"`` first), then each
   parameter alone at each of its other values with the rest as they were:
   ``1 + sum(choices - 1)`` trials measure every setting's effect in isolation. The
   order of these probes is drawn from the seed.
2. **Model.** A Bayesian ridge regression of the objective on one-hot features of each
   parameter value (the additive part: after the profile its mean predicts every
   configuration as the sum of the measured one-at-a-time effects), plus pairs of
   values of two parameters (every pair while that stays under 1,500 features, else the
   pairs within a layer, whose weight and input widths interact), shrunk harder than the
   additive part. It is weighted towards the incumbent (the best trial so far) so that it
   is accurate where it matters, and refitted on every new best and otherwise as the
   history grows by about 5%. The best configurations of its per-layer part are
   enumerated exactly (a best-first walk over per-layer tables).
3. **Search.** The candidates are the model's best unseen configurations, every unseen
   configuration that differs from one of the best trials in one or two parameters (any
   other value of a parameter counts, so neither the listed order nor any order of the
   choices matters: format names and shuffled labels are handled alike), and a few
   uniformly random ones. Each proposal scores them with one draw from the model's
   posterior (Thompson sampling; ``exploration`` scales its spread) and takes the best:
   a configuration the model is unsure about gets its chance, and different seeds take
   different paths. The posterior's noise is at least the model's error on its newest
   observations as predicted without them (a model that mispredicts its own proposals,
   because the table has interactions it cannot express, is less sure of itself), and
   the spread doubles every 20 trials without a new best beyond the first 20 (up to 64
   times): a search stuck beside a near-tie explores instead of polishing. With
   ``widen_when_stalled`` (off by default), such a stalled search also scores the
   incumbent's neighbours one change further (three parameters changed; at most
   2,500 of them a proposal, drawn afresh where there are more).

A configuration already evaluated, running (in this process or another worker's, as
soon as its parameters are in the storage) or failed is never proposed again while an
unseen one remains; a proposal counts as taken the moment it is made, so threads of one
process never collide. One objective only: a Pareto search raises the contract's
:class:`bitscout.errors.SearchError`.

**Constraints** that a configuration alone decides (``average_bitwidth <= 4``: hardware
metrics computed from the configuration) are predicted exactly before anything is
evaluated, and a configuration they prove infeasible is never proposed while a feasible
unseen one remains (:attr:`SensitivitySampler.skipped_infeasible` counts the ones passed
over). The profile then starts from the most precise *feasible* configuration: the most
precise one, repaired by single steps that each reduce the violation, always stepping the
parameter that is furthest from the end it moves towards (so widths come down evenly);
a probe that breaks the constraints is repaired the same way with its own parameter
held. Every candidate is checked before it is proposed.

Constraints measured on data (``accuracy_drop <= 0.01``) are known only after a trial,
from the values the loop records with ``trial.set_constraint``: the incumbent and the
neighbourhoods are then feasible trials, and once a trial has broken one, a second model
of the same form predicts the largest constraint value, and candidates it expects to be
infeasible are proposed only when it expects every candidate to be.

**Cost.** The study is read incrementally (only the trials from the first unfinished one
on), taken configurations are a byte or bit map, the neighbourhoods of the best trials
(their rows, distinct indices and model columns) and the model's own candidates are
cached, candidates are scored as arrays and the best one is found without sorting, the
model's one-hot normal equations are a sparse product, and the model is refitted only
on the schedule above: between refits a proposal is one posterior draw (a triangular
solve) and a few array operations (benchmarks/RESULTS.md has the measurements). None of
this changes a proposal: ``tests/strategies/test_ours.py`` pins them.
"""

from __future__ import annotations

import bisect
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

# The least noise the model assumes (in standard deviations of the observed values):
# after the profile the additive model fits its trials exactly, yet it is not certain
# about the configurations no trial has shown.
_NOISE_FLOOR = 0.05

# Fewer unseen neighbours than this around the best trials: take in the next best's.
_MIN_NEIGHBOURS = 32

# Trials without a new best after which the model's locality starts to widen and the
# spread of its posterior draws to grow (doubling every _STALL more trials, up to
# _MAX_BOOST times): a search stuck next to a near-tie explores instead of polishing.
_STALL = 20
_MAX_BOOST = 64.0

# With `widen_when_stalled`, a stalled search also scores the incumbent's neighbours
# one change beyond `radius`: all of them up to this many (2,500 on the suite's MLP,
# 1,790 on its CNN), else this many drawn afresh each proposal (the 64-million space
# has 9,380), from this many trials past the first _STALL without a new best.
_MAX_FAR = 2500
_FAR_AFTER = 1

# The model's error on its newest observations, predicted by a fit without them, is
# measured on up to this many (and at most a quarter of the observations).
_HOLDOUT = 16

# The best trials remembered (the incumbent and the centres of the neighbourhoods).
_KEEP_BEST = 16

# Taken configurations are one byte each up to this many distinct configurations (4 MiB
# at the limit; membership is then one gather, 3-4x faster than a bitmap's shifts and
# masks, a tenth of a proposal), a bitmap up to the next limit (one bit each: 32 MiB at
# the limit; the 64-million `deep` space of the benchmark suite takes 8), a set beyond.
_BYTEMAP_LIMIT = 1 << 22
_BITMAP_LIMIT = 1 << 28

# Up to this many rows (the random candidates of every proposal), a configuration's model
# columns and distinct index are integer matrix products (one call each, 2x faster than
# a gather per parameter or layer); beyond, numpy's integer matmul (no BLAS) is slower.
_FEW_ROWS = 64


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


def _is_numeric(choices: Sequence[Any]) -> bool:
    return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)


def value_order(choices: Sequence[Any]) -> list[int]:
    """Positions of ``choices`` from the most to the least precise.

    Numbers (widths): largest first, whatever the listed order. Anything else keeps the
    listed order, except that ``"NA"`` (floating point, the most precise) comes first;
    only the profile's starting point uses that order (neighbourhoods and the model
    treat such choices as unordered).
    """
    positions = list(range(len(choices)))
    if _is_numeric(choices):
        return sorted(positions, key=lambda i: (-float(choices[i]), i))
    return sorted(positions, key=lambda i: (choices[i] != _NA, i))


def _shifts(radices: Sequence[int], radius: int, smallest: int = 1) -> np.ndarray:
    """Every change of ``smallest`` to ``radius`` parameters to any other of their values.

    Rows of per-parameter shifts: ``(vector + shift) % radices`` is a neighbour. Any other
    value counts (not only the next one in some order), so neighbourhoods do not depend
    on how the choices are listed or whether they are ordered at all.
    """
    n = len(radices)
    rows: list[list[int]] = []
    for k in range(smallest, radius + 1):
        for params in itertools.combinations(range(n), k):
            for steps in itertools.product(*(range(1, radices[p]) for p in params)):
                row = [0] * n
                for p, step in zip(params, steps):
                    row[p] = step
                rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(-1, n)


def _fit_points(limit: int = 1 << 53) -> tuple[int, ...]:
    """The refit schedule 64, 67, 70, ... (each point ``int(point * 1.05) + 1``) up to ``limit``."""
    points = [64]
    while points[-1] <= limit:
        points.append(int(points[-1] * 1.05) + 1)
    return tuple(points)


# Computed once (about 600 points): walking the schedule from 64 at every proposal cost
# as much as a twentieth of a proposal at 1,000 trials.
_FIT_POINTS = _fit_points()


def _fit_size(n: int, newest_best: int) -> int:
    """How many of ``n`` observations (in trial order) the model is fitted on.

    All of them while there are at most 64, or when the best one is among the newest;
    otherwise the largest point of the schedule 64, 67, 70, ... (5% steps) up to ``n``.
    """
    if n <= _FIT_POINTS[0]:
        return n
    point = _FIT_POINTS[bisect.bisect_right(_FIT_POINTS, n) - 1]
    return n if newest_best >= point else point


class _IndexSet:
    """A growing set of distinct-configuration indices with a vectorized membership test.

    One byte a configuration while the space has at most :data:`_BYTEMAP_LIMIT`
    distinct configurations, a bitmap (one bit a configuration) up to
    :data:`_BITMAP_LIMIT` (membership of a thousand candidates is one gather), a Python
    set beyond.
    """

    def __init__(self, size: int) -> None:
        self._bytes = np.zeros(size, dtype=bool) if size <= _BYTEMAP_LIMIT else None
        small = self._bytes is None and size <= _BITMAP_LIMIT
        self._bits = np.zeros((size + 7) // 8, dtype=np.uint8) if small else None
        self._set: set[int] = set()

    def __len__(self) -> int:
        return len(self._set)

    def __contains__(self, index: int) -> bool:
        return index in self._set

    def add(self, index: int) -> None:
        self._set.add(index)
        if self._bytes is not None:
            self._bytes[index] = True
        elif self._bits is not None:
            self._bits[index >> 3] |= 1 << (index & 7)

    def mask(self, indices: np.ndarray) -> np.ndarray:
        """Membership of every index in ``indices`` (bool array)."""
        if self._bytes is not None:
            return self._bytes[indices]
        if self._bits is not None:
            return ((self._bits[indices >> 3] >> (indices & 7).astype(np.uint8)) & 1).astype(bool)
        members = self._set
        return np.fromiter((i in members for i in indices.tolist()), dtype=bool, count=len(indices))


class _Model:
    """Bayesian ridge regression on one-hot values and value pairs of parameter pairs.

    The posterior mean is the weighted ridge fit; its covariance is
    ``noise^2 / sum(w) * (X^T W X / sum(w) + penalty)^-1``, with the noise the weighted
    residual spread (floored: a model that fits its trials exactly is not certain about
    the configurations it has not seen). :meth:`sample` draws coefficients from it.
    """

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
        self._factor: np.ndarray | None = None
        self._trtrs: Any = None
        self._spread = 0.0
        # Column j of a row is x[first[j]] * scale[j] + x[second[j]] * paired[j] + offset[j]:
        # a value's own feature (scale 1, nothing paired) or a pair's cell (a * radix_b + b).
        # Two gathers for all columns at once instead of one small array per column (the
        # per-array overhead was a fifth of a proposal).
        main = range(len(self.radices))
        self._first = np.array([*main, *(a for a, _ in self.pairs)], dtype=np.int64)
        self._second = np.array([*main, *(b for _, b in self.pairs)], dtype=np.int64)
        self._scale = np.array([1] * len(self.radices) + [self.radices[b] for _, b in self.pairs], dtype=np.int64)
        self._paired = np.array([0] * len(self.radices) + [1] * len(self.pairs), dtype=np.int64)
        self._offset = np.array([*self.main_offsets, *self.pair_offsets], dtype=np.int64)
        # The same as one integer matrix: x @ weights + offset.
        self._weights = np.zeros((len(self.radices), len(self._offset)), dtype=np.int64)
        every = np.arange(len(self._offset))
        self._weights[self._first, every] += self._scale
        self._weights[self._second, every] += self._paired

    def columns(self, x: np.ndarray) -> np.ndarray:
        """Active feature columns per row: shape (n, params + pairs)."""
        if len(x) <= _FEW_ROWS:
            return x @ self._weights + self._offset
        return x[:, self._first] * self._scale + x[:, self._second] * self._paired + self._offset

    def fit(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, *, noise_floor: float = 0.0) -> None:
        """Fit on ``(x, y)`` with weights ``w``.

        Args:
            x: Rows of value positions.
            y: Observed values (scaled).
            w: Weight of each row.
            noise_floor: The least noise the posterior assumes.
        """
        # Imported here, not with the module: every search imports the strategies, and
        # scipy (0.3 s CPU with what it pulls in) would delay the first trial of those
        # that never fit this model.
        import scipy.linalg
        import scipy.sparse

        cols = self.columns(x)
        n, active = cols.shape
        f = self.n_features
        total = float(w.sum())
        sw = w / total
        self.intercept = float(sw @ y)
        centered = y - self.intercept
        # The design is one-hot, `active` ones per row: X^T W X as a sparse product (2.6x
        # faster than counting every pair of active columns with 1,400 features).
        rows = np.arange(0, n * active + 1, active)
        weighted = scipy.sparse.csr_matrix((np.repeat(sw, active), cols.ravel(), rows), shape=(n, f))
        design = scipy.sparse.csr_matrix((np.ones(n * active), cols.ravel(), rows), shape=(n, f))
        gram = (weighted.T @ design).toarray()
        gram[np.diag_indices_from(gram)] += self.penalty
        rhs = np.bincount(cols.ravel(), weights=np.repeat(sw * centered, active), minlength=f)
        self._factor = np.linalg.cholesky(gram)
        # L^T of the C-ordered L is the Fortran-ordered upper factor: LAPACK reads it in
        # place (given L itself, scipy copies the matrix first; 4x the solve's cost).
        self.coef = scipy.linalg.cho_solve((self._factor.T, False), rhs, check_finite=False)
        if self._trtrs is None:
            (self._trtrs,) = scipy.linalg.get_lapack_funcs(("trtrs",), (self._factor,))
        residual = centered - self.coef[cols].sum(axis=1)
        noise = math.sqrt(max(float(sw @ residual**2), noise_floor**2))
        self._spread = noise / math.sqrt(total)

    def sample(self, rng: np.random.Generator, scale: float) -> np.ndarray:
        """Coefficients drawn from the posterior, its spread multiplied by ``scale``."""
        if self._factor is None or scale <= 0 or self._spread <= 0:
            return self.coef
        z = rng.standard_normal(self.n_features)
        # cov = spread^2 * (L L^T)^-1: L^-T z has covariance (L L^T)^-1. LAPACK's trtrs on
        # the Fortran-ordered upper factor L^T, called directly: the very call
        # scipy.linalg.solve_triangular(L, z, lower=True, trans="T") makes, without its
        # checks (0.1 ms, a tenth of a proposal).
        draw, info = self._trtrs(self._factor.T, z, lower=False, trans=0, unitdiag=False)
        if info != 0:  # pragma: no cover - a Cholesky factor has a positive diagonal
            raise np.linalg.LinAlgError(f"singular factor: trtrs info {info}")
        return self.coef + scale * self._spread * draw

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + self.coef[self.columns(x)].sum(axis=1)


class SensitivitySampler(optuna.samplers.BaseSampler, ConstraintAware):
    """The sampler of :class:`SensitivityStrategy` (see the module docstring).

    Args:
        space: The search space.
        seed: Seed of the profile order, the posterior draws and the random candidates.
        direction: ``"maximize"`` or ``"minimize"``.
        ridge: Ridge penalty of the model (relative to the weighted mean square).
        locality: How fast the model's weights fall with the distance from the
            incumbent: weight ``exp(-distance / locality)``.
        model_candidates: How many of the model's best unseen configurations compete
            with the neighbours of the best trials in each proposal.
        neighbourhood_of: How many of the best trials contribute their neighbours.
        radius: Neighbours differ from a best trial in at most this many parameters.
        pairs: ``"auto"``, ``"all"``, ``"layer"`` or ``"none"``: the model's pair terms.
        pair_ridge: Ridge penalty of the pair terms.
        exploration: Multiplier of the posterior spread of the model's draws (0: the
            posterior mean, pure exploitation).
        random_candidates: Uniformly random configurations that compete in each proposal.
        widen_when_stalled: Whether a stalled search also scores the incumbent's
            neighbours with ``radius + 1`` changes.
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
        exploration: float = 0.05,
        random_candidates: int = 32,
        widen_when_stalled: bool = False,
        constraints: ConfigConstraints | None = None,
    ) -> None:
        self._space = space
        self._params = space.params
        self._names = [p.name for p in self._params]
        self._distributions = space.distributions()
        self._sign = 1.0 if direction == "maximize" else -1.0
        self._locality = locality
        self._model_candidates = model_candidates
        self._neighbourhood_of = neighbourhood_of
        self._exploration = exploration
        self._random_candidates = random_candidates
        self._rng = np.random.default_rng(seed)
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._lock = threading.Lock()
        self._radices = [len(p.choices) for p in self._params]
        self._radix_array = np.asarray(self._radices, dtype=np.int64)
        # rank[p][position] = 0 for the most precise choice, 1 for the next, ...
        self._order = [value_order(p.choices) for p in self._params]
        self._rank = []
        for order in self._order:
            rank = [0] * len(order)
            for r, pos in enumerate(order):
                rank[pos] = r
            self._rank.append(rank)
        self._rank_table = [np.asarray(rank, dtype=np.float64) for rank in self._rank]
        # The model's weights fall with the distance from the incumbent: steps in value
        # order for numbers (a width one step away is close), 1 for any other value of an
        # unordered choice (a format name is equally far from every other one).
        self._numeric = [_is_numeric(p.choices) for p in self._params]
        self._positions = [{c: i for i, c in enumerate(p.choices)} for p in self._params]
        layers: dict[str, list[int]] = {}
        for i, p in enumerate(self._params):
            layers.setdefault(p.layer, []).append(i)
        self._groups = list(layers.values())
        self._group_combos = [
            np.array(list(itertools.product(*(range(self._radices[p]) for p in group))), dtype=np.int64)
            for group in self._groups
        ]
        self._init_distinct_tables()
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
        self._shifts = _shifts(self._radices, radius)
        self._near_cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._near_union: tuple[tuple[tuple[int, ...], ...], tuple[np.ndarray, ...]] | None = None
        self._far_shifts = (
            _shifts(self._radices, radius + 1, smallest=radius + 1) if widen_when_stalled else None
        )
        # What the study's trials say, read incrementally (see _read).
        self._scan_from = 0
        self._counted: set[int] = set()  # trial numbers whose configuration is in _taken
        self._done: set[int] = set()  # finished trial numbers already read
        self._taken = _IndexSet(space.distinct_size)
        self._vectors: list[tuple[int, ...]] = []  # distinct finished configurations, in reading order
        self._values: list[float] = []
        self._seen_vectors: dict[tuple[int, ...], int] = {}
        self._worst: dict[tuple[int, ...], float] = {}
        self._best: list[tuple[tuple[bool, float], tuple[int, ...]]] = []
        # Constraints measured on data (accuracy_drop <= 0.01) are known only after a
        # trial: a second model of the same form predicts the largest constraint value.
        self._constraint_model = _Model(self._radices, pair_list, ridge, pair_ridge)
        self._constraint_fitted = False
        self._fitted = -1
        # Whether every distinct index is one vector (no float layer whose other fields
        # collapse): then repeated candidates are duplicates and need no deduplication.
        self._injective = space.size == space.distinct_size
        self._set_pool(np.zeros((0, len(self._params)), dtype=np.int64))
        self._pool_full = False
        self._constraints: ConfigConstraints | None = None
        self._violations: dict[int, float] = {}  # distinct index -> violation
        self._skipped = _IndexSet(space.distinct_size)
        self._probe_list: list[tuple[int, ...]] | None = None
        self._probes_done = 0
        if constraints is not None:
            self.use_constraints(constraints)

    def _init_distinct_tables(self) -> None:
        """Per layer, the share of each of its combinations in the distinct index.

        ``distinct_index_of`` is a mixed-radix number over layers, so it is a sum of
        per-layer terms: the index of a vector whose other layers sit at their first
        combination, minus that of the all-first vector, is the layer's term.
        """
        first = {p.name: p.choices[0] for p in self._params}
        self._distinct_base = self._space.distinct_index_of(first)
        self._distinct_terms = []
        for group, combos in zip(self._groups, self._group_combos):
            terms = np.empty(len(combos), dtype=np.int64)
            for row, combo in enumerate(combos):
                params = dict(first)
                for p, v in zip(group, combo):
                    params[self._names[p]] = self._params[p].choices[v]
                terms[row] = self._space.distinct_index_of(params) - self._distinct_base
            strides = np.ones(len(group), dtype=np.int64)
            for j in range(len(group) - 2, -1, -1):
                strides[j] = strides[j + 1] * self._radices[group[j + 1]]
            self._distinct_terms.append((np.asarray(group), strides, terms))
        self._distinct_lists = [
            (group.tolist(), strides.tolist(), terms.tolist()) for group, strides, terms in self._distinct_terms
        ]
        # For a few rows: every layer's combination in one product, all terms in one table.
        self._combo_strides = np.zeros((len(self._params), len(self._groups)), dtype=np.int64)
        starts = [0]
        for g, (group, strides, terms) in enumerate(self._distinct_terms):
            self._combo_strides[group, g] = strides
            starts.append(starts[-1] + len(terms))
        self._term_starts = np.asarray(starts[:-1], dtype=np.int64)
        self._all_terms = np.concatenate([terms for _, _, terms in self._distinct_terms] or [np.zeros(0, np.int64)])

    def _distinct_many(self, x: np.ndarray) -> np.ndarray:
        """Distinct indices of the rows of ``x`` (vectorized :meth:`_distinct`)."""
        if len(x) <= _FEW_ROWS:
            return self._distinct_base + self._all_terms[x @ self._combo_strides + self._term_starts].sum(axis=1)
        out = np.full(len(x), self._distinct_base, dtype=np.int64)
        for group, strides, terms in self._distinct_terms:
            out += terms[x[:, group] @ strides]
        return out

    # -- constraints -------------------------------------------------------------------

    def use_constraints(self, constraints: ConfigConstraints) -> None:
        """Never propose a configuration ``constraints`` prove infeasible (see the module)."""
        with self._lock:
            self._constraints = constraints
            self._violations.clear()
            self._probe_list = None
            self._probes_done = 0

    @property
    def skipped_infeasible(self) -> int:
        """Distinct configurations passed over because the constraints prove them infeasible."""
        return len(self._skipped)

    def _violation(self, vector: tuple[int, ...], index: int | None = None) -> float:
        """How far ``vector`` misses the constraints (0.0: feasible, or no constraints)."""
        if self._constraints is None:
            return 0.0
        if index is None:
            index = self._distinct(vector)
        value = self._violations.get(index)
        if value is None:
            params = {name: p.choices[v] for name, p, v in zip(self._names, self._params, vector)}
            value = self._violations[index] = float(
                self._constraints.config_violation(self._space.decode(params))
            )
        return value

    def _feasible(self, vector: tuple[int, ...], index: int | None = None) -> bool:
        """Whether ``vector`` may be proposed; an infeasible one is counted as skipped."""
        if index is None:
            index = self._distinct(vector)
        if self._violation(vector, index) <= 0:
            return True
        self._skipped.add(index)
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
            self._read(study, exclude=trial.number)
            vector = self._propose()
            # Taken from now on: a concurrent worker's next proposal (asked before this
            # trial's parameters reach the storage) must not be the same configuration.
            self._taken.add(self._distinct(vector))
            self._counted.add(trial.number)
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
        """Distinct index of one configuration (what ``distinct_index_of`` gives, cheaper)."""
        index = self._distinct_base
        for group, strides, terms in self._distinct_lists:
            index += terms[sum(vector[p] * s for p, s in zip(group, strides))]
        return index

    def _read(self, study: optuna.Study, *, exclude: int) -> None:
        """Take in the trials that are new since the last call.

        Every trial whose configuration is known (running, finished, failed; another
        worker's too) is *taken*: never proposed again while an unseen one remains.
        Finished ones with a value join the observations, in reading order, with the
        largest constraint value they recorded (``trial.set_constraint``), if any. Only
        the trials from the first one not yet finished on are looked at, so a proposal
        late in a long search reads a few trials, not all of them.
        """
        trials = study.get_trials(deepcopy=False)
        settled = True
        for position in range(self._scan_from, len(trials)):
            t = trials[position]
            number = t.number
            if number == exclude:
                settled = False
                continue
            if number not in self._counted:
                vector = self._vector(t.params)
                if vector is not None:
                    self._taken.add(self._distinct(vector))
                    self._counted.add(number)
            if not t.state.is_finished():
                settled = False
                continue
            if number not in self._done:
                self._done.add(number)
                self._observe(t)
            if settled:
                self._scan_from = position + 1

    def _observe(self, t: FrozenTrial) -> None:
        if t.state != TrialState.COMPLETE or t.values is None or len(t.values) != 1:
            return
        vector = self._vector(t.params)
        value = self._sign * float(t.values[0])
        if vector is None or not math.isfinite(value) or vector in self._seen_vectors:
            return
        self._seen_vectors[vector] = len(self._vectors)
        self._vectors.append(vector)
        self._values.append(value)
        recorded = t.constraints.values()
        infeasible = False
        if recorded:
            self._worst[vector] = worst = max(recorded)
            infeasible = worst > 0
        # The best trials, feasible ones first: the incumbent and the neighbourhoods.
        self._best.append(((not infeasible, value), vector))
        self._best.sort(key=lambda item: item[0], reverse=True)
        del self._best[_KEEP_BEST:]

    # -- proposing ---------------------------------------------------------------------

    def _probes(self) -> list[tuple[int, ...]]:
        """The profile: the most precise (feasible) configuration, then one parameter at a time.

        After the first, the probes come in an order drawn from the seed: different seeds
        measure the same effects along different paths.
        """
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
        probes = []
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
        shuffled = [probes[i] for i in self._rng.permutation(len(probes))]
        self._probe_list = list(dict.fromkeys([base, *shuffled]))
        return self._probe_list

    def _propose(self) -> tuple[int, ...]:
        probes = self._probes()
        # Taken configurations stay taken: the probes before the first untaken one are done.
        while self._probes_done < len(probes):
            probe = probes[self._probes_done]
            if self._distinct(probe) not in self._taken:
                return probe
            self._probes_done += 1
        if len(self._taken) >= self._space.distinct_size:
            return self._repeat_best()
        if not self._vectors:  # every trial so far failed: nothing to model
            unseen = self._any_unseen()
            return unseen if unseen is not None else self._repeat_best()
        incumbent = self._best[0][1]
        m = _fit_size(len(self._vectors), self._seen_vectors[incumbent])
        if self._fitted != m:
            self._refit(m)
        elif self._pool_full and self._taken.mask(self._pool_indices).all():
            self._set_pool(self._model_best())  # its list is used up: the next best unseen ones
        candidates, indices, columns = [self._pool], [self._pool_indices], [self._pool_columns]
        if self._random_candidates:
            random = (self._rng.random((self._random_candidates, len(self._params))) * self._radix_array).astype(
                np.int64
            )
            candidates.append(random)
            indices.append(self._distinct_many(random))
            columns.append(self._model.columns(random))
        keep = np.flatnonzero(~self._taken.mask(np.concatenate(indices)))
        candidates = [np.concatenate(candidates).take(keep, axis=0)]
        indices = [np.concatenate(indices).take(keep)]
        columns = [np.concatenate(columns).take(keep, axis=0)]
        # The neighbourhoods of the best trials, of more of them once the best ones' are
        # used up (a search that has seen every neighbour of its incumbent moves on).
        found = 0
        for near, near_indices, near_columns in self._neighbourhoods():
            if found >= _MIN_NEIGHBOURS:
                break
            keep = np.flatnonzero(~self._taken.mask(near_indices))  # positions: take() beats a mask
            candidates.append(near.take(keep, axis=0))
            indices.append(near_indices.take(keep))
            columns.append(near_columns.take(keep, axis=0))
            found += len(keep)
        stalled = max(0, len(self._vectors) - 1 - self._seen_vectors[incumbent] - _STALL)
        if self._far_shifts is not None and stalled >= _FAR_AFTER:
            # Stuck: the incumbent's neighbours one change further join in (on the CNN
            # the optimum is three changes from a near-tie whose 1- and 2-change
            # neighbours are all worse).
            shifts = self._far_shifts
            if len(shifts) > _MAX_FAR:
                shifts = shifts[self._rng.choice(len(shifts), _MAX_FAR, replace=False)]
            near = (np.asarray(incumbent, dtype=np.int64) + shifts) % self._radix_array
            near_indices = self._distinct_many(near)
            keep = ~self._taken.mask(near_indices)
            candidates.append(near[keep])
            indices.append(near_indices[keep])
            columns.append(self._model.columns(near[keep]))
        candidates, indices = np.concatenate(candidates), np.concatenate(indices)
        if not len(candidates):
            unseen = self._any_unseen()
            return unseen if unseen is not None else self._repeat_best()
        # Thompson sampling: every candidate is scored by one draw from the model's
        # posterior (the exploration option scales its spread), so that a configuration
        # the model is unsure about gets its chance (the mean alone can stall next to the
        # optimum), and different seeds take different paths. Scored part by part: a row's
        # sum does not depend on the rows beside it, and the columns need no concatenation.
        boost = min(_MAX_BOOST, 2.0 ** (stalled / _STALL))
        coef = self._model.sample(self._rng, self._exploration * boost)
        scores = np.concatenate([coef[cols].sum(axis=1) for cols in columns])
        if self._constraint_fitted:
            limits = self._constraint_model.coef
            worst = self._constraint_model.intercept + np.concatenate([limits[cols].sum(axis=1) for cols in columns])
        if not self._injective:
            # Two rows of one distinct index may be different vectors (a float layer's
            # other fields): each index is scored by its first row, as listed above.
            indices, first = np.unique(indices, return_index=True)
            candidates, scores = candidates[first], scores[first]
            if self._constraint_fitted:
                worst = worst[first]
        if self._constraint_fitted:
            # Candidates the constraint model expects to break a data-measured constraint
            # go last, ordered by how far they are expected to miss it.
            allowed = worst <= _CONSTRAINT_SLACK
            scores = np.where(allowed, scores, -np.inf) if allowed.any() else -worst
        if self._constraints is not None:
            scores[self._skipped.mask(indices)] = -np.inf  # proven infeasible before
        return self._best_feasible(candidates, indices, scores)

    def _best_feasible(self, candidates: np.ndarray, indices: np.ndarray, scores: np.ndarray) -> tuple[int, ...]:
        """The best-scoring feasible candidate; ties go to the lowest distinct index.

        ``indices`` may repeat (the neighbourhoods overlap) only where a repeated index is
        the same vector, hence the same score. The order is that of sorting the distinct
        indices and then the scores, best first (stable), so that the proposals do not
        depend on the order in which the candidates were gathered; the best one is
        usually feasible, and found without sorting.
        """
        top = int(np.argmax(scores))
        score = scores[top]
        if not np.isnan(score):  # a NaN score sorts last, not first
            tied = np.flatnonzero(scores == score)
            if len(tied) > 1:
                top = int(tied[np.argmin(indices[tied])])
            vector = tuple(candidates[top].tolist())
            if self._feasible(vector, int(indices[top])):
                return vector
        indices, first = np.unique(indices, return_index=True)
        candidates, scores = candidates[first], scores[first]
        # Rarely more than one row: convert them one at a time, not all.
        for i in np.argsort(-scores, kind="stable").tolist():
            vector = tuple(candidates[i].tolist())
            if self._feasible(vector, int(indices[i])):
                return vector
        unseen = self._any_unseen()
        return unseen if unseen is not None else self._repeat_best()

    def _set_pool(self, pool: np.ndarray) -> None:
        """Make ``pool`` the model's candidates, with their distinct indices and model columns."""
        self._pool = pool
        self._pool_indices = self._distinct_many(pool)
        self._pool_columns = self._model.columns(pool)

    def _neighbourhoods(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The neighbourhoods of the best trials, best first: rows, distinct indices, model columns.

        Those of the first ``neighbourhood_of`` best trials come as one (their rows
        concatenated in that order, cached until those trials change: proposal after
        proposal they are the same), then one best trial's at a time.
        """
        centres = tuple(vector for _, vector in self._best[: self._neighbourhood_of])
        if not centres:
            return
        if self._near_union is None or self._near_union[0] != centres:
            parts = [self._neighbours(vector) for vector in centres]
            self._near_union = (centres, tuple(np.concatenate(arrays) for arrays in zip(*parts)))
        yield self._near_union[1]
        for _, vector in self._best[self._neighbourhood_of :]:
            yield self._neighbours(vector)

    def _neighbours(self, vector: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every configuration within ``radius`` changes of ``vector``: rows, distinct indices, model columns.

        Cached: the same few best trials are the centres of the neighbourhoods proposal
        after proposal (the model's columns depend on the rows alone, not on its fit).
        """
        cached = self._near_cache.get(vector)
        if cached is None:
            if len(self._near_cache) >= 2 * _KEEP_BEST:
                self._near_cache.clear()
            near = (np.asarray(vector, dtype=np.int64) + self._shifts) % self._radix_array
            columns = self._model.columns(near).astype(np.int32)
            cached = self._near_cache[vector] = (near, self._distinct_many(near), columns)
        return cached

    def _refit(self, m: int) -> None:
        """Fit the model on the first ``m`` observations and list its best unseen configurations.

        The model of the first m observations is a function of the trials alone (resume
        gives the same fit); it is refitted on every new best and otherwise as the
        history grows by about 5%, so that a proposal late in a long search is cheap.
        """
        x = np.array(self._vectors[:m], dtype=np.int64)
        y = np.array(self._values[:m])
        infeasible = np.array([self._worst.get(v, 0.0) > 0 for v in self._vectors[:m]])
        key = np.where(infeasible, -np.inf, y)
        at = int(np.argmax(key)) if np.isfinite(key).any() else int(np.argmax(y))
        distance = self._distance(x, x[at])
        # A search stuck on one incumbent widens the model's view: the longer no trial has
        # beaten it, the more the far trials count (the best basin may be elsewhere).
        stalled = max(0, m - 1 - at - _STALL)
        weights = np.exp(-distance / (self._locality * (1.0 + stalled / _STALL)))
        scale = float(np.std(y)) or 1.0
        # How well the model predicts what it has not seen: fitted without the newest k
        # observations (mostly its own proposals), its error on them is a floor of its
        # noise. A model that is wrong there (interactions it cannot express) is less
        # sure of itself.
        floor = _NOISE_FLOOR
        k = min(_HOLDOUT, m // 4)
        if k >= 4:
            with _one_blas_thread():
                self._model.fit(x[:-k], y[:-k] / scale, weights[:-k], noise_floor=_NOISE_FLOOR)
            error = self._model.predict(x[-k:]) - y[-k:] / scale
            floor = max(floor, float(np.sqrt(np.mean(error**2))))
        with _one_blas_thread():
            self._model.fit(x, y / scale, weights, noise_floor=floor)
            self._fit_constraints(self._vectors[:m], weights)
        self._fitted = m
        self._set_pool(self._model_best())

    def _distance(self, x: np.ndarray, incumbent: np.ndarray) -> np.ndarray:
        """Distance of each row of ``x`` from ``incumbent`` (see ``_numeric`` in __init__)."""
        distance = np.zeros(len(x))
        for p, numeric in enumerate(self._numeric):
            if numeric:
                rank = self._rank_table[p]
                distance += np.abs(rank[x[:, p]] - rank[incumbent[p]])
            else:
                distance += x[:, p] != incumbent[p]
        return distance

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

    def _repeat_best(self) -> tuple[int, ...]:
        """Nothing new is left: the best trial again (the loop answers it from the study)."""
        if not self._best:
            return self._probes()[0]
        return self._best[0][1]

    def _model_best(self) -> np.ndarray:
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
        max_pops = (16 if self._constraints is not None else 8) * self._model_candidates
        while heap and len(found) < self._model_candidates and pops < max_pops:
            neg, state = heapq.heappop(heap)
            pops += 1
            vector = [0] * len(self._params)
            for group, (combos, _), r in zip(self._groups, tables, state):
                for p, v in zip(group, combos[r]):
                    vector[p] = v
            candidate = tuple(vector)
            index = self._distinct(candidate)
            if index not in self._taken and self._feasible(candidate, index):
                found.append(candidate)
            for g, (combos, scores) in enumerate(tables):
                if state[g] + 1 < len(combos):
                    nxt = state[:g] + (state[g] + 1,) + state[g + 1 :]
                    if nxt not in seen:
                        seen.add(nxt)
                        delta = scores[state[g] + 1] - scores[state[g]]
                        heapq.heappush(heap, (neg - delta, nxt))
        # A shorter list than asked for: the walk's limit is reached, walking again finds
        # no more until the model changes.
        self._pool_full = len(found) >= self._model_candidates
        return np.array(found, dtype=np.int64).reshape(-1, len(self._params))

    def _any_unseen(self) -> tuple[int, ...] | None:
        """One unseen configuration the constraints allow (random, then in order), or None."""
        size = self._space.distinct_size
        for _ in range(1000):
            index = int(self._rng.integers(size))
            if index not in self._taken:
                vector = self._vector(self._space.distinct_params_at(index))
                if vector is not None and self._feasible(vector, index):
                    return vector
        for index in range(size):
            if index not in self._taken:
                vector = self._vector(self._space.distinct_params_at(index))
                if vector is not None and self._feasible(vector, index):
                    return vector
        return None


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
                with its distance ``d`` from the best trial: steps in value order
                for numbers, 1 per differing unordered choice (2.0).
            model_candidates: The model's best unseen configurations considered per
                proposal (32).
            neighbourhood_of: How many of the best trials contribute their
                neighbours as candidates (3).
            radius: Neighbours are the configurations that differ from a best trial
                in at most this many parameters, each at any other of its values (2).
            pairs: Which pairs of parameters the model may couple: ``"all"``,
                ``"layer"`` (pairs within a layer), ``"none"`` (additive only) or
                ``"auto"`` (all while that needs at most 1,500 features, else layer).
            pair_ridge: Ridge penalty of the pair features (1.0): larger keeps the
                model closer to additive.
            exploration: Multiplier of the posterior spread of the model's draws
                (Thompson sampling; 0: always the posterior mean, pure exploitation)
                (0.05).
            random_candidates: Uniformly random configurations that compete with the
                model's and the neighbourhoods' candidates in each proposal (32).
            widen_when_stalled: After 21 trials without a new best, the incumbent's
                neighbours with ``radius + 1`` changes compete too (False: on the
                benchmark suite it finds the CNN's ``w4`` optimum within 500 unique
                evaluations in 5 of 6 seeds instead of 0, but the ``mlp-int`` space's
                ``w1`` in 4 of 12 instead of 9).
        """

        ridge: float = Field(1e-3, gt=0.0)
        locality: float = Field(2.0, gt=0.0)
        model_candidates: int = Field(32, ge=1)
        neighbourhood_of: int = Field(3, ge=1)
        radius: int = Field(2, ge=1, le=3)
        pairs: Literal["auto", "none", "layer", "all"] = "auto"
        pair_ridge: float = Field(1.0, gt=0.0)
        exploration: float = Field(0.05, ge=0.0)
        random_candidates: int = Field(32, ge=0)
        widen_when_stalled: bool = False

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
            exploration=options.exploration,
            random_candidates=options.random_candidates,
            widen_when_stalled=options.widen_when_stalled,
        )
