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
            return (*np.unravel_index(row, lead), col) if len(lead) != 1 else (row, col)
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
