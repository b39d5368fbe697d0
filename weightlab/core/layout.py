"""How a tensor of any rank is laid out as a 2-D heatmap image.

The image is row-major (``image[row, col]``) and always puts output
neurons/filters along the columns, so a neuron is a column (Dense) or a column
of blocks (Conv):

* scalar ``()`` -> ``(1, 1)``; vector ``(n,)`` -> one row ``(1, n)``;
* Dense kernel ``(in, out)`` -> the matrix itself, ``(in, out)``;
* Conv2D kernel ``(kh, kw, in, out)`` -> a grid of ``kh x kw`` blocks, one
  block row per input channel and one block column per output filter, blocks
  separated by one NaN pixel: shape ``(in*(kh+1)-1, out*(kw+1)-1)``;
* Conv1D kernel ``(k, in, out)`` -> as Conv2D with ``kw = 1``;
* anything else ``(..., out)`` -> ``(prod(...), out)``.

Large images are shown at a level of detail: :func:`lod_factors` picks block
sizes so that a region fits a pixel budget and :func:`render_region` returns
the region reduced by :func:`block_extreme` (per block, the value of largest
magnitude, sign kept), without building the full image of a Dense kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HeatmapLayout:
    """Maps a tensor of ``shape`` to a 2-D image and back.

    Attributes
    ----------
    shape:
        The tensor's shape.
    image_shape:
        ``(rows, cols)`` of the image.
    """

    shape: tuple[int, ...]
    image_shape: tuple[int, int]
    _kind: str
    _block: tuple[int, int] = (1, 1)

    @property
    def neuron_count(self) -> int:
        """Number of output neurons (size of the last axis; 1 for a scalar)."""
        return self.shape[-1] if self.shape else 1

    def image(self, a: np.ndarray) -> np.ndarray:
        """Return the heatmap image of ``a`` (float64; NaN marks block separators)."""
        a = np.asarray(a, dtype=np.float64)
        if tuple(a.shape) != self.shape:
            raise ValueError(f"layout is for shape {self.shape}; got {a.shape}")
        if self._kind == "scalar":
            return a.reshape(1, 1)
        if self._kind == "vector":
            return a.reshape(1, -1)
        if self._kind == "matrix":
            return a.reshape(-1, self.shape[-1])
        kh, kw = self._block
        cin, cout = self.shape[-2], self.shape[-1]
        # (kh, kw, in, out) -> (in, kh, out, kw), pad each block with one NaN
        # row and column, flatten to the grid and drop the trailing gap.
        blocks = a.reshape(kh, kw, cin, cout).transpose(2, 0, 3, 1)
        padded = np.pad(blocks, ((0, 0), (0, 1), (0, 0), (0, 1)), constant_values=np.nan)
        grid = padded.reshape(cin * (kh + 1), cout * (kw + 1))
        return grid[:-1, :-1].copy()

    def region(self, a: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """``image(a)[r0:r1, c0:c1]`` (float64), without the full image for non-block layouts.

        For scalars, vectors and matrices the slice is taken from a view of
        ``a``, so only the region is converted; conv block layouts build the
        full image first (their kernels are small).
        """
        (r0, r1), (c0, c1) = rows, cols
        if self._kind == "blocks":
            return self.image(a)[r0:r1, c0:c1]
        a = np.asarray(a)
        if tuple(a.shape) != self.shape:
            raise ValueError(f"layout is for shape {self.shape}; got {a.shape}")
        return np.asarray(a.reshape(self.image_shape)[r0:r1, c0:c1], dtype=np.float64)

    def index_at(self, row: int, col: int) -> tuple[int, ...] | None:
        """Tensor index shown at image pixel ``(row, col)``, or None for a gap/outside."""
        rows, cols = self.image_shape
        if not (0 <= row < rows and 0 <= col < cols):
            return None
        if self._kind == "scalar":
            return ()
        if self._kind == "vector":
            return (col,)
        if self._kind == "matrix":
            lead = self.shape[:-1]
            return (*map(int, np.unravel_index(row, lead)), col) if len(lead) != 1 else (row, col)
        kh, kw = self._block
        i, r = divmod(row, kh + 1)
        o, c = divmod(col, kw + 1)
        if r == kh or c == kw:
            return None
        if len(self.shape) == 3:
            return (r, i, o)
        return (r, c, i, o)

    def neuron_at(self, col: int) -> int | None:
        """Output neuron/filter shown in image column ``col``, or None for a gap."""
        if not (0 <= col < self.image_shape[1]):
            return None
        if self._kind in ("scalar",):
            return 0
        if self._kind in ("vector", "matrix"):
            return col
        kw = self._block[1]
        o, c = divmod(col, kw + 1)
        return None if c == kw else o

    def neuron_columns(self, neuron: int) -> tuple[int, int]:
        """Half-open column range ``[c0, c1)`` of the image showing ``neuron``."""
        if self._kind in ("scalar", "vector", "matrix"):
            return neuron, neuron + 1
        kw = self._block[1]
        return neuron * (kw + 1), neuron * (kw + 1) + kw


def heatmap_layout(shape: tuple[int, ...]) -> HeatmapLayout:
    """Choose the heatmap layout for a tensor of ``shape`` (see module docstring)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return HeatmapLayout(shape, (1, 1), "scalar")
    if len(shape) == 1:
        return HeatmapLayout(shape, (1, shape[0]), "vector")
    if len(shape) in (3, 4) and all(s > 0 for s in shape):
        if len(shape) == 4:
            kh, kw, cin, cout = shape
        else:
            kh, cin, cout = shape
            kw = 1
        return HeatmapLayout(
            shape, (cin * (kh + 1) - 1, cout * (kw + 1) - 1), "blocks", (kh, kw)
        )
    return HeatmapLayout(shape, (math.prod(shape[:-1]), shape[-1]), "matrix")


def lod_factors(rows: int, cols: int, budget: int) -> tuple[int, int]:
    """Block size ``(fy, fx)`` that reduces a ``rows x cols`` image to at most about ``budget`` pixels.

    ``(1, 1)`` when the image already fits. Blocks are square where the image
    allows it; a single-row (or single-column) image is reduced along its
    long axis only.
    """
    pixels = rows * cols
    if pixels <= budget:
        return 1, 1
    side = math.sqrt(pixels / budget)  # the square block that would fit
    if rows <= side:  # a few long rows: reduce along the columns only
        return rows, math.ceil(cols / budget)
    if cols <= side:
        return math.ceil(rows / budget), cols
    fy = math.ceil(side)
    fx = max(1, math.ceil(math.ceil(rows / fy) * cols / budget))
    return fy, fx


def block_extreme(image: np.ndarray, fy: int, fx: int, chunk_pixels: int = 1 << 20) -> np.ndarray:
    """Reduce ``image`` by ``fy x fx`` blocks to each block's value of largest magnitude.

    The value keeps its sign (a block whose extreme is ``-0.8`` shows
    ``-0.8``); NaN pixels (layout gaps) are ignored and an all-NaN block gives
    NaN. When the largest and the most negative value have equal magnitude
    the positive one is shown.
    Edge blocks may be smaller. Works in bands of whole block rows holding
    about ``chunk_pixels`` input pixels. A float image is reduced in its
    own dtype and only the (small) result converted to float64: the
    largest and smallest values and their comparison are the same in
    either precision, and the reduction moves half the bytes of a float32
    image (booleans, as a pruned mask, are reduced as float32 0/1; other
    dtypes in float64).

    Returns
    -------
    np.ndarray
        float64, shape ``(ceil(rows / fy), ceil(cols / fx))``.
    """
    rows, cols = image.shape
    if (fy, fx) == (1, 1):
        return np.asarray(image, dtype=np.float64)
    out_r, out_c = -(-rows // fy), -(-cols // fx)
    out = np.empty((out_r, out_c), dtype=np.float64)
    image = np.asarray(image)
    work = image.dtype if image.dtype.kind == "f" else np.dtype(np.float32 if image.dtype.kind == "b" else np.float64)
    band = max(1, chunk_pixels // max(1, cols * fy)) * fy
    for r0 in range(0, rows, band):
        part = np.asarray(image[r0 : r0 + band], dtype=work)
        pr, pc = -(-part.shape[0] // fy) * fy, out_c * fx
        if part.shape != (pr, pc):
            part = np.pad(part, ((0, pr - part.shape[0]), (0, pc - cols)), constant_values=np.nan)
        blocks = part.reshape(pr // fy, fy, out_c, fx)
        with np.errstate(invalid="ignore"):
            # Over the block's rows first (whole contiguous rows at a time), then over its columns on
            # the fy-times smaller rest; max and min of a set do not depend on the order.
            hi = np.fmax.reduce(np.fmax.reduce(blocks, axis=1), axis=2)  # NaN only when all NaN
            lo = np.fmin.reduce(np.fmin.reduce(blocks, axis=1), axis=2)
        vals = np.where(hi >= -lo, hi, lo)
        out[r0 // fy : r0 // fy + pr // fy] = vals
    return out


def render_region(
    layout: HeatmapLayout, a: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], budget: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """The region ``rows x cols`` of ``layout.image(a)`` within ``budget`` pixels.

    Returns ``(image, (fy, fx))``: the full-resolution region when it fits,
    else its :func:`block_extreme` reduction by blocks of ``fy x fx`` pixels.
    """
    fy, fx = lod_factors(rows[1] - rows[0], cols[1] - cols[0], budget)
    if (fy, fx) == (1, 1):
        return layout.region(a, rows, cols), (1, 1)
    if layout._kind == "blocks":
        return block_extreme(layout.region(a, rows, cols), fy, fx), (fy, fx)
    view = np.asarray(a).reshape(layout.image_shape)[rows[0] : rows[1], cols[0] : cols[1]]
    return block_extreme(view, fy, fx), (fy, fx)
