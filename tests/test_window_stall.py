"""Part G: the pool's work behind the views, made cheaper for the window's thread, gives NumPy's results.

Each function changed to shorten the time the views' and the tree's pool
threads compete with the window's thread (benchmarks/bench_edit_stall.py,
the "window" way) is compared here with the plain NumPy computation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from weightlab.core.layout import block_extreme, heatmap_layout, render_region


def _plain_block_extreme(img: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Per block of the float64 image, the finite value of largest magnitude (positive on ties); NaN if none."""
    img = np.asarray(img, dtype=np.float64)
    rows, cols = img.shape
    out = np.full((math.ceil(rows / fy), math.ceil(cols / fx)), np.nan)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = img[i * fy : (i + 1) * fy, j * fx : (j + 1) * fx]
            block = block[~np.isnan(block)]
            if block.size:
                hi, lo = block.max(), block.min()
                out[i, j] = hi if hi >= -lo else lo
    return out


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.bool_])
@pytest.mark.parametrize("shape", [(37, 53), (64, 48), (5, 200)])
def test_block_extreme_in_the_image_dtype_equals_float64(dtype, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) * 3
    if dtype is np.bool_:
        img = x > 0.5
    elif np.dtype(dtype).kind == "i":
        img = np.round(x * 1000).astype(dtype)
    else:
        img = x.astype(dtype)
        img[0, :5] = -img[0, :5]  # equal magnitudes of both signs in a block: the positive one
        img[0, 5:8] = np.asarray([0.0, -0.0, np.inf], dtype=dtype)
        img[3:6, 10:20] = np.nan  # gaps
        img[:2, :2] = np.nan  # an all-NaN block at (fy, fx) <= (2, 2)
    for fy, fx in [(1, 2), (2, 2), (3, 5), (4, 1), (7, 3)]:
        out = block_extreme(img, fy, fx, chunk_pixels=97)
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, _plain_block_extreme(img, fy, fx))


def test_render_region_of_a_float32_kernel_equals_the_float64_reduction():
    rng = np.random.default_rng(2)
    k = rng.standard_normal((3000, 700)).astype(np.float32)
    k[rng.random(k.shape) < 0.3] = 0
    lay = heatmap_layout(k.shape)
    img, (fy, fx) = render_region(lay, k, (0, 3000), (0, 700), 20_000)
    assert (fy, fx) != (1, 1)
    np.testing.assert_array_equal(img, _plain_block_extreme(k.astype(np.float64), fy, fx))
    mask, lod = render_region(lay, k == 0, (0, 3000), (0, 700), 20_000)
    assert lod == (fy, fx)
    np.testing.assert_array_equal(mask, _plain_block_extreme((k == 0).astype(np.float64), fy, fx))


def _tied(kind: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    n = 1_500_000  # above stats._BLOCKED_MIN: the blocked summary
    x = rng.standard_normal(n).astype(np.float32)
    if kind == "clipped at one sigma":  # a sixth of the values at each bound: ties at both percentiles
        return np.clip(x, np.float32(-1), np.float32(1))
    if kind == "clipped at three sigma":  # ties at the bounds, percentiles beyond the ties
        return np.clip(x, np.float32(-3), np.float32(3))
    if kind == "clipped low only":
        return np.maximum(x, np.float32(-0.5))
    if kind == "60 % zeros":
        return np.where(rng.random(n) < 0.6, np.float32(0), x)
    if kind == "constant":
        return np.full(n, np.float32(-2.25))
    if kind == "small integers":
        return rng.integers(-3, 4, n).astype(np.int16)
    return x.astype(np.float64)


@pytest.mark.parametrize(
    "kind",
    ["clipped at one sigma", "clipped at three sigma", "clipped low only", "60 % zeros", "constant",
     "small integers", "normal float64"],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_tensor_stats_of_tied_tensors_equal_numpy(kind, threads):
    from weightlab.core.stats import tensor_stats

    a = _tied(kind)
    st = tensor_stats(a, threads=threads)
    x = a.astype(np.float64)
    p1, p99 = np.percentile(x, [1.0, 99.0])
    assert (st.p1, st.p99) == (p1, p99)
    assert (st.min, st.max, st.count) == (x.min(), x.max(), x.size)
    assert st.zeros == (x.size - np.count_nonzero(x)) / x.size
    assert st.mean == pytest.approx(x.mean(), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8, np.uint16, np.int64, np.complex64,
                                   np.bool_])
@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1024, 1025, 5000])
def test_count_nonzero_in_pieces_equals_numpy(monkeypatch, dtype, size):
    from weightlab.core import stats

    monkeypatch.setattr(stats, "COUNT_CHUNK", 1024)  # pieces of 1024; numeric arrays above 64 go through not_equal
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size) * 2
    x[rng.random(size) < 0.4] = 0
    if np.dtype(dtype).kind == "f":
        a = x.astype(dtype)
        a[::17] = np.nan
        a[5::23] = -0.0
        a[7::29] = np.inf
    elif dtype is np.bool_:
        a = x != 0
    elif dtype is np.complex64:
        a = (x + 1j * np.roll(x, 1)).astype(dtype)
    else:
        a = np.round(x).astype(dtype)
    assert stats.count_nonzero(a) == np.count_nonzero(a)
    if size >= 64:  # a non-contiguous view of a 2-D array, and the zero fraction
        m = np.stack([a, a[::-1]], axis=1)[::2]
        assert stats.count_nonzero(m) == np.count_nonzero(m)
        assert stats.zero_fraction(m) == (m.size - np.count_nonzero(m)) / m.size


def test_zero_fraction_of_a_large_tensor_equals_numpy():
    from weightlab.core.stats import COUNT_CHUNK, zero_fraction

    a = np.random.default_rng(4).standard_normal(2 * COUNT_CHUNK + 12345).astype(np.float32)
    a[np.abs(a) < 0.7] = 0
    a[::1001] = np.nan
    assert zero_fraction(a) == (a.size - np.count_nonzero(a)) / a.size


def _plain_finite_range(a: np.ndarray) -> tuple[float, float]:
    finite = a[np.isfinite(a)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


@pytest.mark.parametrize(
    "values",
    [[0.5, -2.0, 3.0], [np.nan, 1.0, -1.0], [np.inf, 2.0, -3.0], [-np.inf, 0.0], [np.nan, np.inf, -np.inf],
     [np.nan], [], [-0.0, 0.0], [7.0]],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_finite_range_equals_the_plain_expression(values, dtype):
    from weightlab.gui.tensor_worker import _finite_range

    a = np.asarray(values, dtype=dtype)
    assert _finite_range(a) == _plain_finite_range(a)
    big = np.resize(a, (40, 50)) if a.size else a
    assert _finite_range(big) == _plain_finite_range(big.ravel())


def test_finite_range_of_integers_equals_the_plain_expression():
    from weightlab.gui.tensor_worker import _finite_range

    a = np.arange(-5, 9, dtype=np.int16).reshape(2, 7)
    assert _finite_range(a) == (-5.0, 8.0) == _plain_finite_range(a)


@pytest.mark.parametrize("shape", [(0,), (1,), (1000,), (37, 53), (3, 3, 5, 7)])
def test_pruned_mask_in_pieces_equals_the_plain_expression(monkeypatch, shape):
    from weightlab.gui import tensor_worker

    monkeypatch.setattr(tensor_worker, "COUNT_CHUNK", 64)
    rng = np.random.default_rng(6)
    orig = rng.standard_normal(shape).astype(np.float32)
    orig[rng.random(shape) < 0.2] = 0
    a = np.where(rng.random(shape) < 0.5, np.float32(0), orig)
    a[rng.random(shape) < 0.05] = np.nan
    out = tensor_worker.pruned_mask(a, orig)
    assert out.shape == a.shape and out.dtype == bool
    np.testing.assert_array_equal(out, (a == 0) & (orig != 0))
    with pytest.raises(ValueError, match="shapes differ"):
        tensor_worker.pruned_mask(a, orig.reshape(-1)[:-1] if orig.size else np.zeros(1))
