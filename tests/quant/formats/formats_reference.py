"""Independent numpy references for the quantization formats, and test helpers.

Written from the formats' definitions, never by calling bitscout: most formats are
checked by enumerating every representable value and picking the nearest one (exact
midpoint comparisons in float64), the integer format also with exact rational
arithmetic (``fractions.Fraction``), and the data-dependent scales with ``math.fsum``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

F32 = np.float32


# ---------------------------------------------------------------------------- helpers


def assert_same_bits(actual, expected) -> None:
    """Asserts float32 arrays are equal bit for bit (so -0.0 != +0.0), NaN matching NaN."""
    a = np.asarray(actual, dtype=np.float32).ravel()
    e = np.asarray(expected, dtype=np.float32).ravel()
    assert a.shape == e.shape, (a.shape, e.shape)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    bad = nan_a != nan_e
    both = ~nan_a & ~nan_e
    bad |= both & (a.view(np.uint32) != e.view(np.uint32))
    if bad.any():
        idx = np.flatnonzero(bad)[:8]
        raise AssertionError(
            f"{bad.sum()} of {a.size} differ; first: "
            + ", ".join(f"[{i}] got {a[i]!r} want {e[i]!r}" for i in idx)
        )


def nearest_on_grid(x: np.ndarray, grid: np.ndarray, prefer: np.ndarray) -> np.ndarray:
    """Rounds each x to the nearest value of a sorted, finite grid.

    Ties go to the candidate whose ``prefer`` flag is set (exactly one of two neighbours
    is expected to have it). Values beyond the grid's ends (±inf included) saturate to
    them; NaN stays NaN. Midpoints of neighbours are exact in float64 for every grid
    used here (at most 33 significant bits), so the comparisons are exact.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    nan = np.isnan(x)
    xs = np.where(nan, 0.0, x)
    hi_idx = np.clip(np.searchsorted(grid, xs, side="left"), 1, len(grid) - 1)
    lo_idx = hi_idx - 1
    lo, hi = grid[lo_idx], grid[hi_idx]
    mid = lo / 2 + hi / 2
    pick_hi = (xs > mid) | ((xs == mid) & prefer[hi_idx])
    out = np.where(pick_hi, hi, lo)
    if len(grid) == 1:
        out = np.full_like(x, grid[0])
    out = np.where(xs <= grid[0], grid[0], out)
    out = np.where(xs >= grid[-1], grid[-1], out)
    out = np.where(out == 0, np.copysign(0.0, x), out)
    return np.where(nan, np.nan, out)


def values_around(grid: np.ndarray, extra: tuple[float, ...] = ()) -> np.ndarray:
    """Test inputs (float32): every grid value, every midpoint, values one float32 step either side.

    Plus zeros, tiny and huge magnitudes, NaN and ±inf, and ``extra``.
    """
    g = grid.astype(np.float64)
    mids = g[:-1] / 2 + g[1:] / 2
    with np.errstate(over="ignore"):  # grid values beyond float32 become inf, dropped below
        pts = np.concatenate([g, mids]).astype(np.float32)
    pts = pts[np.isfinite(pts)]
    up = np.nextafter(pts, np.float32(np.inf))
    down = np.nextafter(pts, np.float32(-np.inf))
    with np.errstate(over="ignore"):
        specials = np.array(
            [0.0, -0.0, 1e-30, -1e-30, 1e-45, -1e-45, 1e30, -1e30, 3e38, -3e38, np.nan, np.inf, -np.inf]
            + list(extra),
            dtype=np.float32,
        )
    return np.concatenate([pts, up, down, specials, -pts]).astype(np.float32)


# --------------------------------------------------------------------------- integer


def integer_grid(width: int, frac: int) -> tuple[np.ndarray, np.ndarray]:
    """All values k * 2**-frac, k in -2**(w-1) .. 2**(w-1)-1, and "k is even" flags."""
    k = np.arange(-(2 ** (width - 1)), 2 ** (width - 1), dtype=np.int64)
    return k.astype(np.float64) * 2.0**-frac, (k % 2) == 0


def integer_ref_enum(x: np.ndarray, width: int, frac: int) -> np.ndarray:
    grid, even = integer_grid(width, frac)
    return nearest_on_grid(x, grid, even).astype(np.float32)


def integer_ref_exact(x: np.ndarray, width: int, frac: int) -> np.ndarray:
    """Element by element in exact rationals: Python's round() of a Fraction is half-even."""
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    out = []
    scale = Fraction(2) ** frac
    for v in np.asarray(x, dtype=np.float32).ravel().tolist():
        if math.isnan(v):
            out.append(math.nan)
            continue
        if math.isinf(v):
            k = hi if v > 0 else lo
        else:
            k = min(hi, max(lo, round(Fraction(v) * scale)))
        if k == 0:
            out.append(math.copysign(0.0, v))
        else:
            # k * 2**-frac has at most 32 significant bits: exact in float64.
            out.append(float(Fraction(k) / scale))
    with np.errstate(over="ignore"):  # levels beyond float32's range round to inf
        return np.array(out, dtype=np.float64).astype(np.float32).reshape(np.shape(x))


# ------------------------------------------------------------------------- minifloat


def minifloat_grid(width: int, ew: int, bias: int, ieee: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every finite value of the format (both signs) and "mantissa code is even" flags."""
    m = width - 1 - ew
    top = 2**ew - (2 if ieee else 1)
    vals, even = [], []
    for c in range(top + 1):
        for k in range(2**m):
            if c == 0:
                v = math.ldexp(k, 1 - bias - m)
            else:
                v = math.ldexp(2**m + k, c - bias - m)
            vals.append(v)
            even.append(k % 2 == 0)
    pos = np.array(vals)
    ev = np.array(even)
    grid = np.concatenate([-pos[::-1], pos[1:]])
    flags = np.concatenate([ev[::-1], ev[1:]])
    return grid, flags


def minifloat_ref(x: np.ndarray, width: int, ew: int, bias: int | None = None, ieee: bool = False):
    if bias is None:
        bias = 2 ** (ew - 1) - 1
    grid, even = minifloat_grid(width, ew, bias, ieee)
    x64 = np.asarray(x, dtype=np.float64)
    out = nearest_on_grid(x64, grid, even)
    if ieee:
        m = width - 1 - ew
        top = grid[-1]
        half_ulp = math.ldexp(1.0, (2**ew - 2 - bias) - m - 1)
        over = np.abs(x64) >= top + half_ulp
        out = np.where(over, np.copysign(np.inf, x64), out)
    with np.errstate(over="ignore"):
        return out.astype(np.float32)


def bfloat16_ref(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 -> float32 with round-to-nearest-even, by integer bit arithmetic."""
    x = np.asarray(x, dtype=np.float32)
    b = x.view(np.uint32).astype(np.uint64)
    rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), out)


# ------------------------------------------------------------------------------- log


def log_grid(width: int, bias: int) -> np.ndarray:
    """0 and ±2**(c - bias) for c = 1 .. 2**(width-1)-1, sorted."""
    pos = np.array([math.ldexp(1.0, c - bias) for c in range(1, 2 ** (width - 1))])
    return np.concatenate([-pos[::-1], [0.0], pos])


def log_ref(x: np.ndarray, width: int, bias: int | None = None) -> np.ndarray:
    if bias is None:
        bias = 2 ** (width - 2)
    grid = log_grid(width, bias)
    x64 = np.asarray(x, dtype=np.float64)
    # Ties away from zero: on the positive side the upper neighbour wins, on the negative
    # side the lower one. Round the magnitudes on the non-negative half-grid instead.
    half = grid[grid >= 0]
    prefer_upper = np.ones(len(half), dtype=bool)
    mag = nearest_on_grid(np.abs(x64), half, prefer_upper)
    out = np.copysign(mag, x64)
    with np.errstate(over="ignore"):
        return np.where(np.isnan(x64), np.nan, out).astype(np.float32)


# -------------------------------------------------------------------------- block fp


def block_fp_ref(
    x: np.ndarray,
    width: int,
    ew: int = 8,
    bias: int | None = None,
    block_size: int = 16,
    block_dim: int = -1,
) -> np.ndarray:
    """Block by block, element by element in exact rationals (Python's round() is half-even).

    The shared exponent comes from np.frexp of the block's largest non-NaN magnitude.
    """
    if bias is None:
        bias = 2 ** (ew - 1) - 1
    emin, emax = -bias, 2**ew - 1 - bias
    kmax = 2 ** (width - 1) - 1
    x64 = np.asarray(x, dtype=np.float64)
    if x64.ndim == 0:
        return block_fp_ref(x64.reshape(1), width, ew, bias, block_size, 0).reshape(())
    moved = np.moveaxis(x64, block_dim, -1)
    out = np.empty_like(moved)
    n = moved.shape[-1]
    for index in np.ndindex(moved.shape[:-1]):
        row = moved[index]
        for start in range(0, n, block_size):
            block = row[start : start + block_size]
            mags = np.abs(block[~np.isnan(block)])
            biggest = mags.max() if mags.size else 0.0
            if biggest == 0:
                e = emin
            elif np.isinf(biggest):
                e = emax
            else:
                e = int(np.frexp(biggest)[1]) - 1
            e = min(emax, max(emin, e))
            step = Fraction(2) ** (e - (width - 2))
            for j, v in enumerate(block.tolist(), start):
                if math.isnan(v):
                    out[index][j] = math.nan
                    continue
                k = kmax if v > 0 else -kmax
                if not math.isinf(v):
                    k = min(kmax, max(-kmax, round(Fraction(v) / step)))
                out[index][j] = float(k * step) if k else math.copysign(0.0, v)
    with np.errstate(over="ignore"):
        return np.moveaxis(out, -1, block_dim).astype(np.float32)


# ------------------------------------------------------------------ binary / ternary


def _mean_abs(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return math.fsum(np.abs(values).tolist()) / len(values) if len(values) else 0.0


def binary_ref(x: np.ndarray, scale: float | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    s = F32(_mean_abs(x[np.isfinite(x)]) if scale is None else scale)
    out = np.where(x < 0, -s, s).astype(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), out)


def ternary_ref(x: np.ndarray, threshold: float | None = None, scale: float | None = None):
    x = np.asarray(x, dtype=np.float32)
    finite = x[np.isfinite(x)].astype(np.float64)
    t = 0.7 * _mean_abs(finite) if threshold is None else float(threshold)
    above = np.abs(x.astype(np.float64)) > t
    s = F32(_mean_abs(finite[np.abs(finite) > t]) if scale is None else scale)
    out = np.where(above, np.where(x < 0, -s, s), F32(0.0)).astype(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), out)


# ------------------------------------------------------- range-calibrated (auto, int)


def finite_range_ref(x: np.ndarray) -> tuple[float, float]:
    """Smallest and largest finite value, (0, 0) when there is none."""
    v = np.asarray(x, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return (0.0, 0.0) if v.size == 0 else (float(v.min()), float(v.max()))


def auto_frac_ref(width: int, max_abs: float) -> int:
    """width - 1 - ceil(log2(m)) in exact rationals: the smallest e with 2**e >= m."""
    if not (max_abs > 0 and math.isfinite(max_abs)):
        return width - 1
    m = Fraction(max_abs)
    e = 0
    while Fraction(2) ** e < m:
        e += 1
    while Fraction(2) ** (e - 1) >= m:
        e -= 1
    return width - 1 - e


def int_fit_ref(lo: float, hi: float, width: int, symmetric: bool) -> tuple[float, int]:
    """Scale (a float32 value) and zero point of the scaled-int format for [lo, hi]."""
    qmax = 2 ** (width - 1) - 1
    qmin = -qmax if symmetric else -qmax - 1
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = max(-lo, hi) if symmetric else hi - lo
    if span == 0:
        return 1.0, 0
    steps = qmax if symmetric else 2**width - 1
    # Exact rational quotient rounded to float32 by numpy (float64 division first, as the
    # format defines it: one float64 division, then one rounding to float32).
    scale = float(np.float32(np.float64(span) / np.float64(steps)))
    scale = max(scale, float(np.float32(2.0**-149)))
    if symmetric:
        return scale, 0
    zero = qmin - int(np.round(np.float64(lo) / np.float64(scale)))
    return scale, int(min(qmax, max(qmin, zero)))


def int_ref(x: np.ndarray, width: int, symmetric: bool, scale: float, zero: int) -> np.ndarray:
    """clamp(round(x / s) + z, qmin, qmax) - z, times s: numpy float64, then float32.

    Element by element with Python Fractions for the rounding step, so that ties and
    the clamp are decided exactly on the float64 quotient.
    """
    qmax = 2 ** (width - 1) - 1
    qmin = -qmax if symmetric else -qmax - 1
    out = []
    for v in np.asarray(x, dtype=np.float32).ravel().tolist():
        if math.isnan(v):
            out.append(math.nan)
            continue
        if math.isinf(v):
            code = qmax if v > 0 else qmin
        else:
            quotient = float(np.float64(v) / np.float64(scale))  # the format's one division
            code = min(qmax, max(qmin, round(Fraction(quotient)) + zero))
        value = float(np.float64(code - zero) * np.float64(scale))
        out.append(math.copysign(0.0, v) if value == 0 and symmetric and not math.isinf(v) else value)
    return np.array(out, dtype=np.float64).astype(np.float32).reshape(np.shape(x))
