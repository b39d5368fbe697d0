"""Everything the tensor views show, computed off the GUI thread.

The napari slicer pattern: the window builds an immutable
:class:`TensorRequest` on the GUI thread, :func:`compute_view` turns it into a
:class:`TensorView` (statistics, histogram, heatmap image, neuron norms) on a
thread-pool thread, and :class:`TensorComputer` hands the view back on the GUI
thread, dropping any view whose request is no longer the latest one.

Small tensors are computed synchronously (the round trip through the pool would
cost more than the work), large ones in the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from weightlab.core.errors import WeightLabError
from weightlab.core.layout import HeatmapLayout, heatmap_layout
from weightlab.core.stats import TensorStats, histogram, neuron_norms, tensor_stats

#: Tensors with at most this many elements are computed on the GUI thread.
SYNC_LIMIT = 1_000_000


@dataclass(frozen=True)
class TensorRequest:
    """What to compute for one tensor; built on the GUI thread, never mutated.

    Attributes
    ----------
    generation:
        Increasing request number; only the latest one is shown.
    name:
        Canonical tensor name.
    source:
        Gives ``array(name)``/``original(name)`` (the session). Arrays of a
        session are immutable, so reading them from another thread is safe.
    bins:
        Histogram bin count.
    edited:
        True when the tensor differs from the file: the original histogram is
        computed too, on the same bins.
    norms_of:
        Tensor whose output-neuron L2 norms to plot (the layer's kernel), or None.
    size:
        Element count of the tensor (decides synchronous vs pooled work).
    """

    generation: int
    name: str
    source: Any
    bins: int
    edited: bool
    norms_of: str | None
    size: int


@dataclass(frozen=True)
class TensorView:
    """Result of a :class:`TensorRequest`: everything the views draw.

    ``counts``/``edges`` are exactly :func:`weightlab.core.stats.histogram` of the
    current values (``np.histogram(a, bins)``); for an edited tensor the range
    spans both the current and the original values, and ``ghost`` holds the
    original's counts on the same edges (None when not edited). ``sorted_values`` (float64, ascending, finite)
    lets the histogram count values inside a brushed range in ``O(log n)``. ``pruned`` marks the
    entries that are zero now and were non-zero in the file (None when not edited).
    """

    request: TensorRequest
    array: np.ndarray
    stats: TensorStats
    counts: np.ndarray
    edges: np.ndarray
    ghost: np.ndarray | None
    sorted_values: np.ndarray
    layout: HeatmapLayout
    image: np.ndarray
    norms: np.ndarray | None
    pruned: np.ndarray | None = None

    @property
    def mask_image(self) -> np.ndarray | None:
        """``pruned`` in the heatmap layout (1.0 pruned, 0.0 not, NaN gaps), or None."""
        return None if self.pruned is None else self.layout.image(self.pruned)

    def count_between(self, lo: float, hi: float) -> int:
        """Number of values ``v`` with ``lo <= v <= hi``."""
        s = self.sorted_values
        return int(np.searchsorted(s, hi, side="right") - np.searchsorted(s, lo, side="left"))


def compute_view(req: TensorRequest) -> TensorView:
    """Compute the :class:`TensorView` of ``req`` (any thread).

    Raises
    ------
    WeightLabError
        When the tensor cannot be read from the file.
    """
    a = req.source.array(req.name)
    ghost = pruned = None
    if req.edited:
        # Same bins for both, spanning the values of either (a clip must not hide the original tails).
        orig = req.source.original(req.name)
        lo, hi = _finite_range(a)
        olo, ohi = _finite_range(orig)
        rng = (min(lo, olo), max(hi, ohi))
        counts, edges = histogram(a, bins=req.bins, range=rng)
        ghost, _ = histogram(orig, bins=req.bins, range=rng)
        pruned = (a == 0) & (orig != 0)
    else:
        counts, edges = histogram(a, bins=req.bins)
    flat = np.asarray(a, dtype=np.float64).ravel()
    sorted_values = np.sort(flat[np.isfinite(flat)])
    layout = heatmap_layout(tuple(a.shape))
    norms = None
    if req.norms_of is not None:
        norms = neuron_norms(req.source.array(req.norms_of))
    return TensorView(
        request=req,
        array=a,
        stats=tensor_stats(a),
        counts=counts,
        edges=edges,
        ghost=ghost,
        sorted_values=sorted_values,
        layout=layout,
        image=layout.image(a),
        norms=norms,
        pruned=pruned,
    )


def _finite_range(a: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of the finite values of ``a`` (``(0, 1)`` when there are none)."""
    flat = np.asarray(a).ravel()
    finite = flat[np.isfinite(flat)] if not np.all(np.isfinite(flat)) else flat
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


class _Job(QRunnable):
    """Runs :func:`compute_view` in the pool and reports through ``owner``'s signals."""

    def __init__(self, req: TensorRequest, owner: TensorComputer):
        super().__init__()
        self.req = req
        self.owner = owner

    def run(self) -> None:  # pool thread: touch no widget, only emit signals
        try:
            view = compute_view(self.req)
        except WeightLabError as e:
            self.owner._failed.emit(self.req.generation, str(e))
        except Exception as e:  # noqa: BLE001 - a bad file must not kill the pool
            self.owner._failed.emit(self.req.generation, f"{self.req.name}: {type(e).__name__}: {e}")
        else:
            self.owner._done.emit(view)


class TensorComputer(QObject):
    """Schedules :class:`TensorRequest` s and emits ``ready(view)`` for the latest only.

    Signals
    -------
    ready(TensorView):
        The latest request's view (GUI thread).
    failed(str):
        The latest request failed; the message names the file or tensor.
    busy(bool):
        True while a pooled request is being computed.
    """

    ready = Signal(object)
    failed = Signal(str)
    busy = Signal(bool)

    _done = Signal(object)
    _failed = Signal(int, str)

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None):
        super().__init__(parent)
        self._pool = pool or QThreadPool.globalInstance()
        self._generation = 0
        self._done.connect(self._on_done)
        self._failed.connect(self._on_failed)

    def next_generation(self) -> int:
        """Reserve the number of a new request (making older ones stale)."""
        self._generation += 1
        return self._generation

    def submit(self, req: TensorRequest) -> None:
        """Compute ``req`` (synchronously when small) and emit ``ready`` when it is still latest."""
        if req.size <= SYNC_LIMIT:
            try:
                view = compute_view(req)
            except WeightLabError as e:
                self._on_failed(req.generation, str(e))
                return
            self._on_done(view)
            return
        self.busy.emit(True)
        self._pool.start(_Job(req, self))

    def cancel(self) -> None:
        """Make every pending request stale."""
        self._generation += 1

    def _on_done(self, view: TensorView) -> None:
        if view.request.generation == self._generation:
            self.busy.emit(False)
            self.ready.emit(view)

    def _on_failed(self, generation: int, message: str) -> None:
        if generation == self._generation:
            self.busy.emit(False)
            self.failed.emit(message)
