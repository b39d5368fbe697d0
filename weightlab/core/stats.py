"""Statistics of weight tensors: histogram, summary statistics, neuron norms.

All results equal the plain NumPy computation: histogram counts are those of
:func:`numpy.histogram` for the same bins, percentiles those of
:func:`numpy.percentile` (linear interpolation), sums are accumulated in float64.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TensorStats:
    """Summary statistics of a tensor, computed in float64.

    Attributes
    ----------
    count:
        Number of elements.
    min, max, mean, std:
        Over all finite and non-finite elements alike (NaN propagates, as in
        NumPy); ``std`` is the population standard deviation (``ddof=0``).
    l1, l2:
        ``sum(|w|)`` and ``sqrt(sum(w**2))``.
    zeros:
        Fraction of elements exactly equal to zero, in [0, 1].
    p1, p99:
        1st and 99th percentile (``np.percentile``, linear interpolation).
    """

    count: int
    min: float
    max: float
    mean: float
    std: float
    l1: float
    l2: float
    zeros: float
    p1: float
    p99: float

    def as_dict(self) -> dict[str, float | int]:
        """Return the statistics as a plain dict (JSON-serialisable)."""
        return asdict(self)


def tensor_stats(a: np.ndarray, *, threads: int | None = None) -> TensorStats:
    """Compute :class:`TensorStats` of ``a`` (any shape, real dtype).

    An empty tensor gives ``count=0`` and NaN for every other statistic.
    Large finite tensors are summarised block by block (no float64 copy of the
    tensor; sums in float64 per block, combined with Chan's formula, equal to
    NumPy's within float64 rounding); ``min``, ``max``, ``zeros``, ``p1`` and
    ``p99`` are exactly NumPy's (the percentiles from the exact order
    statistics, interpolated by NumPy's own code). ``threads`` splits that
    work (default: the number of CPUs).
    """
    flat = np.asarray(a).ravel()
    n = int(flat.size)
    if n == 0:
        nan = float("nan")
        return TensorStats(0, nan, nan, nan, nan, 0.0, 0.0, nan, nan, nan)
    if n >= _BLOCKED_MIN and flat.dtype.kind in "biuf":
        st = _blocked_stats(flat, threads)
        if st is not None:
            return st
    x = flat.astype(np.float64, copy=False)
    p1, p99 = np.percentile(x, [1.0, 99.0])
    return TensorStats(
        count=n,
        min=float(x.min()),
        max=float(x.max()),
        mean=float(x.mean()),
        std=float(x.std()),
        l1=float(np.abs(x).sum()),
        l2=float(np.sqrt(np.dot(x, x))),
        zeros=float(np.count_nonzero(x == 0)) / n,
        p1=float(p1),
        p99=float(p99),
    )


#: Elements counted per call by :func:`zero_fraction`: ``np.count_nonzero`` keeps
#: Python's interpreter lock while it runs (about 60 ms for 102.8M float32
#: values on the 2-core machine), so a large tensor is counted in pieces and a
#: window's thread gets the lock between them.
COUNT_CHUNK = 1 << 22


def count_nonzero(a: np.ndarray) -> int:
    """``np.count_nonzero(a)``, counted in pieces of :data:`COUNT_CHUNK` elements.

    Other Python threads (a window's) run between the pieces; a
    non-contiguous ``a`` is copied piecewise by ``reshape``. A numeric
    piece is first compared with zero by ``np.not_equal`` into a boolean
    buffer (a ufunc: it lets go of the interpreter lock) and the booleans
    are counted (about 0.2 ms per piece with the lock, against about 2 ms
    for ``np.count_nonzero`` of 4M float32 values): NaN counts as non-zero
    and -0.0 as zero, as in NumPy.

    Returns
    -------
    int
        The number of elements that are not zero (``False`` for booleans).
    """
    flat = np.asarray(a).reshape(-1)
    if flat.dtype.kind not in "iufc" or flat.size <= COUNT_CHUNK // 16:
        return sum(int(np.count_nonzero(flat[i : i + COUNT_CHUNK])) for i in range(0, flat.size, COUNT_CHUNK))
    buf = np.empty(min(COUNT_CHUNK, flat.size), dtype=bool)
    total = 0
    for i in range(0, flat.size, COUNT_CHUNK):
        piece = flat[i : i + COUNT_CHUNK]
        b = buf[: piece.size]
        np.not_equal(piece, 0, out=b)
        total += int(np.count_nonzero(b))
    return total


def zero_fraction(a: np.ndarray) -> float:
    """Fraction of elements of ``a`` exactly equal to zero (0.0 for an empty tensor).

    Equal to ``(a.size - np.count_nonzero(a)) / a.size``, counted in pieces
    (:func:`count_nonzero`).
    """
    a = np.asarray(a)
    return float(a.size - count_nonzero(a)) / a.size if a.size else 0.0


def histogram(
    a: np.ndarray,
    bins: int = 100,
    range: tuple[float, float] | None = None,  # noqa: A002 - np.histogram's keyword
    *,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of all elements of ``a``; counts and edges identical to ``np.histogram``.

    Large arrays are split across threads; each element's bin is computed by
    NumPy's own equal-width algorithm (``numpy.lib._histograms_impl``: the
    same edges, the same ``(x - first) / (last - first) * bins`` index and the
    same one-ULP corrections), so the counts are exactly NumPy's whatever the
    split.

    Parameters
    ----------
    a:
        Any shape; flattened.
    bins:
        Number of equal-width bins (>= 1).
    range:
        ``(lo, hi)``; defaults to the finite min and max of ``a``. Non-finite
        values are left out of the counts.
    threads:
        Worker threads for large arrays (default: the number of CPUs).

    Returns
    -------
    counts:
        ``int64`` array of shape ``(bins,)``.
    edges:
        Array of shape ``(bins + 1,)``, in the dtype ``np.histogram`` gives
        (the data's float dtype when ``range`` is None).
    """
    flat = np.asarray(a).ravel()
    if flat.size == 0:
        counts, edges = np.histogram(flat, bins=bins, range=range or (0.0, 1.0))
        return counts.astype(np.int64), edges
    if range is None:
        # min/max are NaN or inf exactly when some element is not finite.
        lo, hi = _minmax(flat, threads)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            flat = flat[np.isfinite(flat)]
            if flat.size == 0:
                return histogram(flat, bins, (0.0, 1.0))
            lo, hi = flat.min(), flat.max()
        # NumPy scalars of the data's dtype: the same edge arithmetic as range=None.
        return _parallel_histogram(flat, bins, (lo, hi), threads, inside=True)
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        flat = flat[np.isfinite(flat)]
    return _parallel_histogram(flat, bins, range, threads)


_BLOCK = 1 << 18  # elements per step; each bin is computed per element, so any block size gives NumPy's counts
_PARALLEL_MIN = 1 << 21


def _chunks(flat: np.ndarray, threads: int | None) -> list[np.ndarray]:
    import os

    n = max(1, min(threads or os.cpu_count() or 1, flat.size // _PARALLEL_MIN))
    return np.array_split(flat, n)


def _run(fn, parts):
    if len(parts) == 1:
        return [fn(parts[0])]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(parts)) as pool:
        return list(pool.map(fn, parts))


def _minmax(flat: np.ndarray, threads: int | None) -> tuple[Any, Any]:
    parts = _run(lambda c: (c.min(), c.max()), _chunks(flat, threads))
    return min(p[0] for p in parts), max(p[1] for p in parts)


def _parallel_histogram(
    flat: np.ndarray, bins: int, value_range: tuple[float, float] | None, threads: int | None, inside: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of ``np.histogram(flat, bins, value_range)``, exactly, split across threads.

    ``inside``: every element is known to lie within ``value_range`` (it is the
    data's own min and max), so the range filter is skipped.
    """
    try:
        # NumPy's private helpers (not in its stubs): the exact edges and bin arithmetic of np.histogram.
        from numpy.lib._histograms_impl import _get_bin_edges, _unsigned_subtract  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - NumPy moved its internals: stay exact, single thread
        counts, edges = np.histogram(flat, bins=bins, range=value_range)
        return counts.astype(np.int64), edges
    edges, uniform = _get_bin_edges(flat, bins, value_range, None)
    if uniform is None:  # pragma: no cover - integer bins always give uniform edges
        counts, edges = np.histogram(flat, bins=bins, range=value_range)
        return counts.astype(np.int64), edges
    first, last, n = uniform
    denom = _unsigned_subtract(last, first)
    # NumPy's bin index of x is trunc(g(x)) corrected by one against the
    # edges, with g(x) = (x - first) / denom * n in the edges' dtype. g is a
    # composition of correctly rounded operations with fixed operands, so it
    # is monotone: x in bin j implies g(e_j) <= g(x) <= g(e_j+1). With
    # delta = max_j |g(e_j) - j|, a value whose fractional part of g(x) lies
    # strictly inside (delta, 1 - delta) is in bin trunc(g(x)) and NumPy's
    # corrections leave it there; only the (rare) others need them.
    g_edges = (_unsigned_subtract(edges, first) / denom) * n
    delta = float(np.max(np.abs(g_edges.astype(np.float64) - np.arange(n + 1))))
    tol = max(2.0 * delta, 1e-6)
    fast = edges.dtype.kind == "f" and edges.dtype.itemsize >= 4 and tol < 0.25
    tol_lo, tol_hi = edges.dtype.type(tol), edges.dtype.type(1.0 - tol)

    def exact_index(t: np.ndarray) -> np.ndarray:
        idx = ((_unsigned_subtract(t, first) / denom) * n).astype(np.intp)
        idx[idx == n] -= 1
        idx[t < edges[idx]] -= 1
        idx[(t >= edges[idx + 1]) & (idx != n - 1)] += 1
        return idx

    def count(chunk: np.ndarray) -> np.ndarray:
        out = np.zeros(n, np.int64)
        m = min(_BLOCK, chunk.size)
        g = np.empty(m, edges.dtype)
        tr = np.empty(m, edges.dtype)
        idx = np.empty(m, np.intp)
        amb = np.empty(m, bool)
        amb2 = np.empty(m, bool)
        for i in builtins.range(0, chunk.size, _BLOCK):
            t = chunk[i : i + _BLOCK]
            if not inside:
                keep = t >= first
                keep &= t <= last
                if not np.logical_and.reduce(keep):
                    t = t[keep]
            t = t.astype(edges.dtype, copy=False)
            k = t.size
            if not fast:
                out += np.bincount(exact_index(t), minlength=n)
                continue
            gg, tt, ii, aa, a2 = g[:k], tr[:k], idx[:k], amb[:k], amb2[:k]
            np.subtract(t, first, out=gg)
            np.divide(gg, denom, out=gg)
            np.multiply(gg, n, out=gg)
            np.trunc(gg, out=tt)
            np.subtract(gg, tt, out=gg)  # exact fractional part
            np.less_equal(gg, tol_lo, out=aa)
            np.greater_equal(gg, tol_hi, out=a2)
            aa |= a2
            np.copyto(ii, tt, casting="unsafe")
            if aa.any():
                pos = np.flatnonzero(aa)
                ii[pos] = exact_index(t[pos])
            out += np.bincount(ii, minlength=n)
        return out

    parts = _run(count, _chunks(flat, threads))
    return sum(parts[1:], parts[0]), edges


# -- large tensors: summary in blocks -------------------------------------------

#: Tensors with at least this many elements are summarised block by block.
_BLOCKED_MIN = 1 << 20
#: Fraction of elements collected in each tail to find the 1st/99th percentile.
_TAIL = 0.02


def summarize(
    a: np.ndarray, bins: int = 100, *, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray, TensorStats]:
    """Histogram and statistics of ``a`` together: ``histogram(a, bins)`` and ``tensor_stats(a)``.

    The same results as calling both, in fewer passes over a large tensor
    (one pass for min/max, sums and the tails holding the percentiles, one
    for the bins), split across ``threads``.

    Returns
    -------
    counts, edges, stats
        As :func:`histogram` (range None) and :func:`tensor_stats`.
    """
    flat = np.asarray(a).ravel()
    if flat.size >= _BLOCKED_MIN and flat.dtype.kind in "biuf":
        st = _blocked_stats(flat, threads)
        if st is not None and np.isfinite(st.min) and np.isfinite(st.max):
            lo, hi = flat.dtype.type(st.min), flat.dtype.type(st.max)
            if lo == st.min and hi == st.max:
                counts, edges = _parallel_histogram(flat, bins, (lo, hi), threads, inside=True)
                return counts, edges, st
    counts, edges = histogram(flat, bins, threads=threads)
    return counts, edges, tensor_stats(flat, threads=threads)


def _blocked_stats(flat: np.ndarray, threads: int | None) -> TensorStats | None:
    """:class:`TensorStats` of a large 1-D array in blocks; None when it holds NaN or inf."""
    n = int(flat.size)
    q = np.true_divide(np.asarray([1.0, 99.0]), 100)
    plan = _percentile_plan(n, q)
    if plan is None:
        return None
    prev, nxt, _ = plan
    need = sorted({int(i) % n for i in (*prev, *nxt)})
    # Thresholds from a strided sample: the low tail (x <= lo_t) and the high
    # tail (x >= hi_t) each hold about _TAIL of the elements, enough to find
    # the order statistics around 1% and 99%; checked below, exact either way.
    # The values beyond a threshold are collected, those equal to it only
    # counted: a clipped tensor has many ties at its bounds (a sixth of the
    # values of a normal clipped at one sigma), all of one known value.
    step = max(1, n // 65536)
    sample = np.sort(flat[::step].astype(np.float64))
    lo_t = flat.dtype.type(sample[min(sample.size - 1, int(_TAIL * sample.size))])
    hi_t = flat.dtype.type(sample[max(0, int((1 - _TAIL) * sample.size))])
    cap = int(4 * _TAIL * n) + 1024

    def part(chunk: np.ndarray) -> tuple[Any, ...] | None:
        mn, mx = chunk.min(), chunk.max()
        if not (np.isfinite(mn) and np.isfinite(mx)):
            return None
        m = min(_BLOCK, chunk.size)
        x64 = np.empty(m, np.float64)
        d = np.empty(m, np.float64)
        mk_lo = np.empty(m, bool)
        mk_hi = np.empty(m, bool)
        cnt, mean, m2, l1, l2, zeros = 0, 0.0, 0.0, 0.0, 0.0, 0
        lows, nlow, eq_lo, eq_hi = [], 0, 0, 0
        for i in builtins.range(0, chunk.size, _BLOCK):
            t = chunk[i : i + _BLOCK]
            k = t.size
            xx, dd = x64[:k], d[:k]
            np.copyto(xx, t, casting="unsafe")
            bmean = float(np.add.reduce(xx)) / k
            np.subtract(xx, bmean, out=dd)
            bm2 = float(np.einsum("i,i->", dd, dd))  # no BLAS: its threads stall on busy CPUs
            l2 += bm2 + k * bmean * bmean  # sum(x^2) = sum((x - mean)^2) + k mean^2, no cancellation
            np.abs(xx, out=dd)
            l1 += float(np.add.reduce(dd))
            np.not_equal(t, 0, out=mk_lo[:k])  # a ufunc (no interpreter lock), then a fast count of booleans
            zeros += k - int(np.count_nonzero(mk_lo[:k]))
            # Chan et al.: combine (cnt, mean, m2) with the block's.
            tot = cnt + k
            delta = bmean - mean
            mean += delta * k / tot
            m2 += bm2 + delta * delta * cnt * k / tot
            cnt = tot
            if nlow <= 2 * cap:  # one compress for both tails, split below
                np.equal(t, lo_t, out=mk_lo[:k])
                eq_lo += int(np.count_nonzero(mk_lo[:k]))
                np.equal(t, hi_t, out=mk_hi[:k])
                eq_hi += int(np.count_nonzero(mk_hi[:k]))
                np.less(t, lo_t, out=mk_lo[:k])
                np.greater(t, hi_t, out=mk_hi[:k])
                mk_lo[:k] |= mk_hi[:k]
                sel = t[mk_lo[:k]]
                nlow += sel.size
                lows.append(sel)
        return mn, mx, cnt, mean, m2, l1, l2, zeros, lows, nlow, eq_lo, eq_hi

    parts = _run(part, _chunks(flat, threads))
    if any(p is None for p in parts):
        return None
    cnt, mean, m2 = 0, 0.0, 0.0
    for p in parts:
        k, bmean, bm2 = p[2], p[3], p[4]
        tot = cnt + k
        delta = bmean - mean
        mean += delta * k / tot
        m2 += bm2 + delta * delta * cnt * k / tot
        cnt = tot
    values: dict[int, float] = {}
    if sum(p[9] for p in parts) <= 2 * cap:
        tails = np.concatenate([x for p in parts for x in p[8]])
        # Complete sets: every element < lo_t, every element > hi_t; and how many equal each.
        low, high = tails[tails < lo_t], tails[tails > hi_t]
        eq_lo, eq_hi = sum(p[10] for p in parts), sum(p[11] for p in parts)
        for i in need:
            if i < low.size:  # all elements < lo_t are in `low`: ranks 0..low.size-1
                values[i] = float(np.partition(low, i)[i])
            elif i < low.size + eq_lo:  # then the ties at lo_t
                values[i] = float(lo_t)
            elif i >= n - high.size:
                j = i - (n - high.size)
                values[i] = float(np.partition(high, j)[j])
            elif i >= n - high.size - eq_hi:  # the ties at hi_t, below the elements > hi_t
                values[i] = float(hi_t)
    if len(values) < len(need):  # the sample misled us (or heavy ties): exact, slower
        work = flat.copy()
        work.partition(need)
        values = {i: float(work[i]) for i in need}
    p1, p99 = _percentile_finish(plan, values, n)
    return TensorStats(
        count=n,
        min=float(min(p[0] for p in parts)),
        max=float(max(p[1] for p in parts)),
        mean=float(mean),
        std=float(np.sqrt(m2 / n)),
        l1=float(sum(p[5] for p in parts)),
        l2=float(np.sqrt(sum(p[6] for p in parts))),
        zeros=float(sum(p[7] for p in parts)) / n,
        p1=p1,
        p99=p99,
    )


def _percentile_plan(n: int, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """NumPy's linear-method indices and weights for quantiles ``q`` of ``n`` values, or None."""
    try:
        # NumPy's private helpers (not in its stubs): np.percentile's exact interpolation plan.
        from numpy.lib._function_base_impl import (  # type: ignore[attr-defined]
            _get_gamma,
            _get_indexes,
            _QuantileMethods,
        )
    except ImportError:  # pragma: no cover - NumPy moved its internals
        return None
    method = _QuantileMethods["linear"]
    virtual = np.asanyarray(method["get_virtual_index"](n, q))
    prev, nxt = _get_indexes(np.empty(0, np.float64), virtual, n)
    gamma = _get_gamma(virtual, prev, method)
    return prev, nxt, gamma.reshape(virtual.shape)


def _percentile_finish(
    plan: tuple[np.ndarray, np.ndarray, np.ndarray], values: dict[int, float], n: int
) -> tuple[float, float]:
    """Interpolate as ``np.percentile`` does, from the order statistics in ``values``."""
    from numpy.lib._function_base_impl import _lerp  # type: ignore[attr-defined]  # private, not in NumPy's stubs

    prev, nxt, gamma = plan
    a = np.array([values[int(i) % n] for i in prev], np.float64)
    b = np.array([values[int(i) % n] for i in nxt], np.float64)
    out = _lerp(a, b, gamma)
    return float(out[0]), float(out[1])


def neuron_norms(kernel: np.ndarray, ord: int = 2) -> np.ndarray:  # noqa: A002 - np.linalg.norm's keyword
    """Norm of each output neuron/filter: one value per index on the last axis.

    Parameters
    ----------
    kernel:
        Dense kernel ``(in, out)``, Conv kernel ``(..., in, out)`` or a vector
        ``(out,)`` (then the norm is ``|w|``).
    ord:
        1 for the L1 norm, 2 for the L2 norm.

    Returns
    -------
    ``float64`` array of shape ``(out,)``.
    """
    if ord not in (1, 2):
        raise ValueError(f"ord must be 1 or 2; got {ord!r}")
    k = np.asarray(kernel)
    if k.ndim == 0:
        return np.abs(k.astype(np.float64)).reshape(1)
    flat = k.reshape(-1, k.shape[-1])
    # Accumulate in float64 over blocks of rows: no float64 copy of the whole
    # kernel (VGG16's fc1 would need 822 MB for it).
    acc = np.zeros(flat.shape[1], np.float64)
    step = max(1, _NORM_BLOCK_ELEMENTS // max(1, flat.shape[1]))
    for i in builtins.range(0, flat.shape[0], step):
        block = flat[i : i + step].astype(np.float64)
        acc += np.abs(block).sum(axis=0) if ord == 1 else np.einsum("ij,ij->j", block, block)
    return acc if ord == 1 else np.sqrt(acc)


_NORM_BLOCK_ELEMENTS = 1 << 22


# -- proportions ------------------------------------------------------------------

#: Two-sided 95% standard normal quantile, Phi^-1(0.975).
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    The interval of Wilson (1927), "Probable inference, the law of succession,
    and statistical inference", *Journal of the American Statistical
    Association* 22(158), 209-212: the set of proportions ``p`` whose normal
    score test does not reject ``successes`` out of ``n``. Unlike the Wald
    interval it stays inside [0, 1], always contains the estimate
    ``successes / n`` and is not degenerate when that estimate is 0 or 1.

    Parameters
    ----------
    successes:
        Number of successes (correctly classified samples), ``0 <= successes <= n``.
    n:
        Number of trials (samples evaluated so far).
    z:
        Standard normal quantile; the default gives a 95% interval.

    Returns
    -------
    tuple of float
        ``(low, high)`` in [0, 1]; ``(0.0, 1.0)`` when ``n == 0``.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    low = 0.0 if successes <= 0 else max(0.0, center - half)  # exact ends: no round-off past p
    high = 1.0 if successes >= n else min(1.0, center + half)
    return low, high
