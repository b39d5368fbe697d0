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
