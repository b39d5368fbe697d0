"""Statistics of weight tensors: histogram, summary statistics, neuron norms.

All results equal the plain NumPy computation: histogram counts are those of
:func:`numpy.histogram` for the same bins, percentiles those of
:func:`numpy.percentile` (linear interpolation), sums are accumulated in float64.
"""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass

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


def tensor_stats(a: np.ndarray) -> TensorStats:
    """Compute :class:`TensorStats` of ``a`` (any shape, real dtype).

    An empty tensor gives ``count=0`` and NaN for every other statistic.
    """
    flat = np.asarray(a).ravel()
    n = int(flat.size)
    if n == 0:
        nan = float("nan")
        return TensorStats(0, nan, nan, nan, nan, 0.0, 0.0, nan, nan, nan)
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


def zero_fraction(a: np.ndarray) -> float:
    """Fraction of elements of ``a`` exactly equal to zero (0.0 for an empty tensor)."""
    a = np.asarray(a)
    return float(a.size - np.count_nonzero(a)) / a.size if a.size else 0.0


def histogram(
    a: np.ndarray,
    bins: int = 100,
    range: tuple[float, float] | None = None,
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
        range = (lo, hi)
    elif flat.dtype.kind == "f" and not np.isfinite(flat).all():
        flat = flat[np.isfinite(flat)]
    return _parallel_histogram(flat, bins, range, threads)


_BLOCK = 65536  # NumPy's own block size in np.histogram
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


def _minmax(flat: np.ndarray, threads: int | None):
    parts = _run(lambda c: (c.min(), c.max()), _chunks(flat, threads))
    return min(p[0] for p in parts), max(p[1] for p in parts)


def _parallel_histogram(flat: np.ndarray, bins: int, range, threads: int | None):
    try:
        from numpy.lib._histograms_impl import _get_bin_edges, _unsigned_subtract
    except ImportError:  # pragma: no cover - NumPy moved its internals: stay exact, single thread
        counts, edges = np.histogram(flat, bins=bins, range=range)
        return counts.astype(np.int64), edges
    edges, uniform = _get_bin_edges(flat, bins, range, None)
    if uniform is None:  # pragma: no cover - integer bins always give uniform edges
        counts, edges = np.histogram(flat, bins=bins, range=range)
        return counts.astype(np.int64), edges
    first, last, n = uniform
    denom = _unsigned_subtract(last, first)

    def count(chunk: np.ndarray) -> np.ndarray:
        out = np.zeros(n, np.int64)
        for i in builtins.range(0, chunk.size, _BLOCK):
            t = chunk[i : i + _BLOCK]
            keep = t >= first
            keep &= t <= last
            if not np.logical_and.reduce(keep):
                t = t[keep]
            t = t.astype(edges.dtype, copy=False)
            idx = ((_unsigned_subtract(t, first) / denom) * n).astype(np.intp)
            idx[idx == n] -= 1
            idx[t < edges[idx]] -= 1
            idx[(t >= edges[idx + 1]) & (idx != n - 1)] += 1
            out += np.bincount(idx, minlength=n)
        return out

    parts = _run(count, _chunks(flat, threads))
    return sum(parts[1:], parts[0]), edges



def neuron_norms(kernel: np.ndarray, ord: int = 2) -> np.ndarray:
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
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim == 0:
        return np.abs(k).reshape(1)
    flat = k.reshape(-1, k.shape[-1])
    if ord == 1:
        return np.abs(flat).sum(axis=0)
    if ord == 2:
        return np.sqrt(np.einsum("ij,ij->j", flat, flat))
    raise ValueError(f"ord must be 1 or 2; got {ord!r}")
