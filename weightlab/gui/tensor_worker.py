"""Everything the tensor views show, computed off the GUI thread.

The napari slicer pattern: the window builds an immutable
:class:`TensorRequest` on the GUI thread, :func:`compute_view` turns it into a
:class:`TensorView` (statistics, histogram, heatmap image, neuron norms) on a
thread-pool thread, and :class:`TensorComputer` hands the view back on the GUI
thread, dropping any view whose request is no longer the latest one.

Small tensors are computed synchronously (the round trip through the pool would
cost more than the work), large ones in the pool. For a large tensor the pool
first sends a :class:`HistogramPreview` (the histogram of a strided sample,
labelled "preview") and then the exact view; its heatmap image is a level of
detail (:func:`weightlab.core.layout.render_region`) and full-resolution tiles
of a zoomed region are computed on request (:meth:`TensorComputer.render`).
Nothing in here runs an O(n) pass over a large tensor on the GUI thread.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.ma  # np.percentile imports it on first use (~25 ms); here, not in the first view
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from weightlab.core.diff import compare_models
from weightlab.core.errors import WeightLabError
from weightlab.core.layout import HeatmapLayout, heatmap_layout, render_region
from weightlab.core.stats import TensorStats, count_nonzero, histogram, neuron_norms, tensor_stats

#: Diverging colour map of heatmaps (colorcet CET-D1: blue, white at zero, red).
COLORMAP_NAME = "CET-D1"
#: Its 256-entry RGBA lookup table (uint8), applied off the GUI thread by :func:`colorize`.
HEATMAP_LUT = pg.colormap.get(COLORMAP_NAME).getLookupTable(nPts=256, alpha=True, mode="byte")
#: Tensors with at most this many elements are computed on the GUI thread.
SYNC_LIMIT = 1_000_000
#: Heatmap images with more pixels than this are shown at a level of detail.
LOD_PIXELS = 4_000_000
#: Pixel budget of a level-of-detail image or of a zoomed tile (about a screen's worth).
TILE_PIXELS = 1 << 20
#: Values sampled for the quick histogram preview of a large tensor.
PREVIEW_SAMPLES = 1 << 20
#: Nice value of pool threads (Linux): below the GUI thread's priority.
BACKGROUND_NICE = 10
#: Values per chunk when counting a brushed range.
COUNT_CHUNK = 1 << 22


def count_between(a: np.ndarray, lo: float, hi: float) -> int:
    """Number of values ``v`` of ``a`` with ``lo <= v <= hi`` (NaN never counts).

    Vectorised in chunks of :data:`COUNT_CHUNK` values, so no sorted or
    float64 copy of the tensor is made (any thread).
    """
    flat = np.asarray(a).ravel()
    return int(sum(np.count_nonzero((c >= lo) & (c <= hi)) for c in _chunks(flat, COUNT_CHUNK)))


def _chunks(flat: np.ndarray, size: int):
    for i in range(0, flat.size, size):
        yield flat[i : i + size]


@dataclass(frozen=True)
class HistogramPreview:
    """Histogram of every ``step``-th value of a large tensor, shown until the exact counts arrive."""

    request: TensorRequest
    counts: np.ndarray
    edges: np.ndarray
    step: int


@dataclass(frozen=True)
class Tile:
    """A region of a heatmap image at the best resolution within :data:`TILE_PIXELS`.

    ``rows``/``cols`` are half-open full-resolution image ranges; ``image``
    covers them, reduced by blocks of ``lod`` pixels (``(1, 1)``: full resolution).
    """

    generation: int
    name: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    image: np.ndarray
    lod: tuple[int, int]
    rgba: np.ndarray | None = None


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
    original's counts on the same edges (None when not edited). ``pruned`` marks the
    entries that are zero now and were non-zero in the file (None when not edited).

    ``image`` is the heatmap image of the whole tensor, reduced by blocks of
    ``lod = (fy, fx)`` pixels when the full image has more than
    :data:`LOD_PIXELS` pixels (``(1, 1)``: full resolution), and ``rgba`` the
    same image in colour (:func:`colorize` with ``vmax``); ``mask`` is the
    pruned mask in the same reduction (1.0 where a block holds a pruned
    entry) and ``pruned_count`` its number of entries. ``vmax`` is the largest
    finite magnitude (the colour limit).
    """

    request: TensorRequest
    array: np.ndarray
    stats: TensorStats
    counts: np.ndarray
    edges: np.ndarray
    ghost: np.ndarray | None
    layout: HeatmapLayout
    image: np.ndarray
    norms: np.ndarray | None
    pruned: np.ndarray | None = None
    lod: tuple[int, int] = (1, 1)
    mask: np.ndarray | None = None
    pruned_count: int = 0
    vmax: float = 1.0
    rgba: np.ndarray | None = None

    @property
    def large(self) -> bool:
        """True when exact work on the whole tensor belongs off the GUI thread."""
        return self.array.size > SYNC_LIMIT

    @property
    def mask_image(self) -> np.ndarray | None:
        """The pruned mask as drawn (1.0 pruned, 0.0 not, NaN gaps; reduced like ``image``), or None."""
        return self.mask

    def count_between(self, lo: float, hi: float) -> int:
        """Exact number of values ``v`` with ``lo <= v <= hi`` (O(n): off the GUI thread when :attr:`large`)."""
        return count_between(self.array, lo, hi)

    def estimate_between(self, lo: float, hi: float) -> float:
        """Number of values in ``[lo, hi]`` from the histogram (bins partly inside count pro rata); O(bins)."""
        e = np.asarray(self.edges, dtype=np.float64)
        width = np.diff(e)
        inside = np.clip(np.minimum(e[1:], hi) - np.maximum(e[:-1], lo), 0, None)
        frac = np.divide(inside, width, out=(inside > 0).astype(np.float64), where=width > 0)
        return float(np.sum(frac * self.counts))


def compute_view(req: TensorRequest, on_preview: Callable[[HistogramPreview], None] | None = None) -> TensorView:
    """Compute the :class:`TensorView` of ``req`` (any thread).

    When ``on_preview`` is given and the tensor is larger than
    :data:`SYNC_LIMIT`, it is first called with a :class:`HistogramPreview`.

    Raises
    ------
    WeightLabError
        When the tensor cannot be read from the file.
    """
    a = req.source.array(req.name)
    if on_preview is not None and a.size > SYNC_LIMIT:
        on_preview(histogram_preview(req, a))
    ghost = pruned = None
    if req.edited:
        # Same bins for both, spanning the values of either (a clip must not hide the original tails).
        orig = req.source.original(req.name)
        lo, hi = _finite_range(a)
        olo, ohi = _finite_range(orig)
        rng = (min(lo, olo), max(hi, ohi))
        counts, edges = histogram(a, bins=req.bins, range=rng)
        ghost, _ = histogram(orig, bins=req.bins, range=rng)
        pruned = pruned_mask(a, orig)
    else:
        counts, edges = histogram(a, bins=req.bins)
    layout = heatmap_layout(tuple(a.shape))
    image, lod = whole_image(layout, a)
    mask = whole_image(layout, pruned)[0] if pruned is not None else None
    norms = None
    if req.norms_of is not None:
        norms = neuron_norms(req.source.array(req.norms_of))
    stats = tensor_stats(a)
    vmax = max(abs(float(stats.min)), abs(float(stats.max))) if stats.count else 0.0
    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    return TensorView(
        request=req,
        array=a,
        stats=stats,
        counts=counts,
        edges=edges,
        ghost=ghost,
        layout=layout,
        image=image,
        norms=norms,
        pruned=pruned,
        lod=lod,
        mask=mask,
        pruned_count=count_nonzero(pruned) if pruned is not None else 0,
        vmax=vmax,
        rgba=colorize(image, vmax),
    )


def whole_image(layout: HeatmapLayout, a: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Heatmap image of all of ``a``: full resolution up to :data:`LOD_PIXELS` pixels, else reduced."""
    rows, cols = layout.image_shape
    if rows * cols <= LOD_PIXELS:
        return layout.image(a), (1, 1)
    return render_region(layout, a, (0, rows), (0, cols), TILE_PIXELS)


def histogram_preview(req: TensorRequest, a: np.ndarray) -> HistogramPreview:
    """Histogram of about :data:`PREVIEW_SAMPLES` evenly strided values of ``a`` (finite ones)."""
    flat = np.asarray(a).ravel()
    step = max(1, flat.size // PREVIEW_SAMPLES)
    sample = flat[::step]
    sample = sample[np.isfinite(sample)]
    counts, edges = np.histogram(sample, bins=req.bins) if sample.size else np.histogram([], req.bins, (0, 1))
    return HistogramPreview(req, counts.astype(np.int64), edges, step)


def compute_tile(generation: int, view: TensorView, rows: tuple[int, int], cols: tuple[int, int]) -> Tile:
    """The :class:`Tile` of ``view``'s heatmap for a full-resolution image region (any thread)."""
    image, lod = render_region(view.layout, view.array, rows, cols, TILE_PIXELS)
    return Tile(generation, view.request.name, rows, cols, image, lod, colorize(image, view.vmax))


def colorize(image: np.ndarray, vmax: float, lut: np.ndarray = HEATMAP_LUT) -> np.ndarray:
    """RGBA (uint8, shape ``image.shape + (4,)``) of a heatmap image with colour limits ``±vmax``.

    The same mapping as pyqtgraph's ``ImageItem`` with ``levels=(-vmax, vmax)``
    and lookup table ``lut``: ``index = clip(floor((v + vmax) * n / (2 vmax)), 0, n - 1)``
    for ``n = len(lut)``; values beyond the limits take the end colours and NaN
    (the gaps between kernel blocks) is transparent. Done off the GUI thread,
    so drawing the image is a copy, not a colour mapping of up to 4M pixels.
    """
    n = len(lut)
    scaled = np.asarray(image, dtype=np.float32) + np.float32(vmax)
    scaled *= np.float32(n / (2.0 * vmax))
    nan = np.isnan(scaled)
    np.clip(scaled, 0, n - 1, out=scaled)
    scaled[nan] = 0
    rgba = lut[scaled.astype(np.intp)]
    rgba[nan, 3] = 0
    return rgba


def _finite_range(a: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of the finite values of ``a`` (``(0, 1)`` when there are none).

    ``a.min()`` and ``a.max()`` first (reductions that let go of the
    interpreter lock and allocate nothing): when both are finite, every
    value is (NaN propagates, and an infinity would be the min or the max).
    Only otherwise are the finite values gathered.
    """
    flat = np.asarray(a).ravel()
    if flat.size == 0:
        return 0.0, 1.0
    lo, hi = flat.min(), flat.max()
    if np.isfinite(lo) and np.isfinite(hi):
        return float(lo), float(hi)
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def pruned_mask(a: np.ndarray, original: np.ndarray) -> np.ndarray:
    """``(a == 0) & (original != 0)``, shape of ``a``, filled in pieces of :data:`COUNT_CHUNK` values.

    The same booleans without the two full-size temporaries of the plain
    expression (200 MB for a 102.8M-value tensor, allocated and freed while
    the window's thread runs).

    Raises
    ------
    ValueError
        When the shapes differ.
    """
    a, original = np.asarray(a), np.asarray(original)
    if a.shape != original.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {original.shape}")
    out = np.empty(a.shape, dtype=bool)
    fo, fa, fb = out.reshape(-1), a.reshape(-1), original.reshape(-1)
    tmp = np.empty(min(COUNT_CHUNK, fo.size), dtype=bool)
    for i in range(0, fo.size, COUNT_CHUNK):
        o, t = fo[i : i + COUNT_CHUNK], tmp[: min(COUNT_CHUNK, fo.size - i)]
        np.equal(fa[i : i + COUNT_CHUNK], 0, out=o)
        np.not_equal(fb[i : i + COUNT_CHUNK], 0, out=t)
        o &= t
    return out


def lower_thread_priority() -> None:
    """Give the calling pool thread (and threads it starts) a lower CPU priority than the GUI thread.

    On Linux ``setpriority`` with a thread id changes only that thread; with
    few cores this keeps the event loop responsive while statistics run.
    Elsewhere, or when not permitted, nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
    except OSError:
        pass


class _Relay(QObject):
    """Carries one pool task's reports to its :class:`TensorComputer` on the GUI thread.

    A relay belongs to its task (it has no Qt parent) and is connected to the
    computer's slots when the task is made, on the GUI thread. If the computer
    (or its window) is deleted while the task runs, Qt drops those connections
    and a late report goes nowhere, instead of into a deleted object.
    """

    done = Signal(str, int, object)
    failed = Signal(str, int, str)
    progress = Signal(str, int, object)


class _Task(QRunnable):
    """Runs ``fn(report)`` in the pool and reports ``(kind, token, result)`` through its relay.

    ``report(obj)`` sends an intermediate result (a histogram preview, a
    comparison's progress) before the end.
    """

    def __init__(self, relay: _Relay, kind: str, token: int, fn: Callable[[Callable[[Any], None]], Any], what: str):
        super().__init__()
        self.relay, self.kind, self.token, self.fn, self.what = relay, kind, token, fn, what

    def _report(self, obj: Any) -> None:
        self.relay.progress.emit(self.kind, self.token, obj)

    def run(self) -> None:  # pool thread: touch no widget, only emit the relay's signals
        lower_thread_priority()
        try:
            out = self.fn(self._report)
        except WeightLabError as e:
            self.relay.failed.emit(self.kind, self.token, str(e))
        except Exception as e:  # noqa: BLE001 - a bad file must not kill the pool
            self.relay.failed.emit(self.kind, self.token, f"{self.what}: {type(e).__name__}: {e}")
        else:
            self.relay.done.emit(self.kind, self.token, out)


class TensorComputer(QObject):
    """Schedules work on tensors and reports only the latest request of each kind.

    Three kinds of work: a tensor's view (:meth:`submit`), a heatmap tile of
    a zoomed region (:meth:`render`) and the exact count of a brushed range
    (:meth:`count`). A newer request of a kind makes older ones stale; their
    results are dropped.

    Signals
    -------
    ready(TensorView):
        The latest request's view (GUI thread).
    preview(HistogramPreview):
        A quick histogram of the latest (large) request, before ``ready``.
    tile(Tile):
        The latest requested heatmap tile.
    counted(tuple):
        ``(lo, hi, count)`` of the latest brushed-range count.
    diffed(object):
        The result of the latest :meth:`diff` job (a ``DiffData``).
    diffFailed(str):
        The latest :meth:`diff` job failed.
    compareProgress(int, int, str), compared(object), compareFailed(str):
        Progress and result (a list of ``TensorDiff``, None when stopped) of
        the latest :meth:`compare`.
    failed(str):
        The latest view request failed; the message names the file or tensor.
    busy(bool):
        True while a pooled view request is being computed.
    """

    ready = Signal(object)
    preview = Signal(object)
    tile = Signal(object)
    counted = Signal(object)
    diffed = Signal(object)
    diffFailed = Signal(str)
    compareProgress = Signal(int, int, str)
    compared = Signal(object)
    compareFailed = Signal(str)
    failed = Signal(str)
    busy = Signal(bool)

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None):
        super().__init__(parent)
        self._pool = pool or QThreadPool.globalInstance()
        self._latest = {"view": 0, "tile": 0, "count": 0, "diff": 0, "compare": 0}

    @property
    def _generation(self) -> int:
        return self._latest["view"]

    def next_generation(self) -> int:
        """Reserve the number of a new view request (making older ones stale)."""
        self._latest["view"] += 1
        return self._latest["view"]

    def _start(
        self, kind: str, fn: Callable[[Callable[[Any], None]], Any], what: str, token: int | None = None
    ) -> int:
        """Run ``fn(report)`` in the pool as the latest request of ``kind``; return its token."""
        if token is None:
            token = self._latest[kind] + 1
        self._latest[kind] = token
        relay = _Relay()  # GUI thread: connected before the task can report
        relay.done.connect(self._on_done)
        relay.failed.connect(self._on_failed)
        relay.progress.connect(self._on_progress)
        self._pool.start(_Task(relay, kind, token, fn, what))
        return token

    def submit(self, req: TensorRequest) -> None:
        """Compute ``req`` (synchronously when small) and emit ``ready`` when it is still latest."""
        if req.size <= SYNC_LIMIT:
            try:
                view = compute_view(req)
            except WeightLabError as e:
                self._on_failed("view", req.generation, str(e))
                return
            except Exception as e:  # noqa: BLE001 - a damaged file gives an error dialog, not a traceback
                self._on_failed("view", req.generation, f"{req.name}: {type(e).__name__}: {e}")
                return
            self._on_done("view", req.generation, view)
            return
        self.busy.emit(True)
        self._start("view", lambda report: compute_view(req, report), req.name, token=req.generation)

    def render(self, view: TensorView, rows: tuple[int, int], cols: tuple[int, int]) -> int:
        """Compute the :class:`Tile` of ``view`` for an image region in the pool; emits ``tile``."""
        token = self._latest["tile"] + 1
        return self._start("tile", lambda _report: compute_tile(token, view, rows, cols), view.request.name, token)

    def count(self, view: TensorView, lo: float, hi: float) -> int:
        """Count ``view``'s values in ``[lo, hi]`` exactly in the pool; emits ``counted``."""
        return self._start("count", lambda _report: (lo, hi, view.count_between(lo, hi)), view.request.name)

    def diff(self, name: str, fn: Callable[[], Any]) -> int:
        """Run ``fn()`` (a diff of tensor ``name``) in the pool; emits ``diffed`` with its result."""
        return self._start("diff", lambda _report: fn(), name)

    def compare(self, a: Any, b: Any, read_a: Callable, read_b: Callable, stop: threading.Event) -> int:
        """:func:`weightlab.core.diff.compare_models` of models ``a`` and ``b`` in the pool.

        Emits ``compareProgress(done, total, name)`` before each tensor, then
        ``compared(diffs)`` (None when ``stop`` was set) or ``compareFailed``.
        """

        def run(report: Callable[[Any], None]):
            def progress(done: int, total: int, name: str) -> bool:
                report((done, total, name))
                return not stop.is_set()

            return compare_models(a, b, read_a, read_b, progress=progress)

        return self._start("compare", run, b.path.name)

    def cancel(self) -> None:
        """Make every pending request stale."""
        for kind in self._latest:
            self._latest[kind] += 1

    def _on_progress(self, kind: str, token: int, obj: Any) -> None:
        if token != self._latest[kind]:
            return
        if kind == "view":
            self.preview.emit(obj)
        elif kind == "compare":
            self.compareProgress.emit(*obj)

    def _on_done(self, kind: str, token: int, out: Any) -> None:
        if token != self._latest[kind]:
            return
        if kind == "view":
            self.busy.emit(False)
        {"view": self.ready, "tile": self.tile, "count": self.counted, "diff": self.diffed,
         "compare": self.compared}[kind].emit(out)

    def _on_failed(self, kind: str, token: int, message: str) -> None:
        if token != self._latest[kind]:
            return
        if kind == "view":
            self.busy.emit(False)
        signal = {"view": self.failed, "diff": self.diffFailed, "compare": self.compareFailed}.get(kind)
        if signal is not None:
            signal.emit(message)  # a failed tile or count leaves the last one shown
