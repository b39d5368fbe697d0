"""Diffs of one tensor (edited vs original, or two files) and the compare dialog.

Numbers come from :mod:`weightlab.core.diff`: ``tensor_diff`` (changed count,
fraction, relative L2 change, max |Δ|), ``diff_histogram`` (edited − original
over the changed entries) and ``changed_mask`` (the map, in the tensor's
heatmap layout, block-reduced beyond :data:`MAP_PIXELS`). :func:`compute_diff`
does all of it off the GUI thread; :meth:`DiffView.show_data` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.diff import TensorDiff, changed_mask, diff_histogram, tensor_diff
from weightlab.core.layout import HeatmapLayout, heatmap_layout, render_region
from weightlab.core.session import EditSession

from . import theme
from .formatting import fmt_count, fmt_num, fmt_shape
from .heatmap_view import gap_color, mask_rgba, set_layout_ticks
from .plots import ElidedLabel, brush, pen, plot_widget, set_label, set_ticks
from .tensor_worker import SYNC_LIMIT, TensorComputer

#: Light-theme colours of the difference histogram (the view asks the theme: series 4, purple).
DIFF_PEN = pg.mkPen("#7048e8", width=1.5)
DIFF_BRUSH = pg.mkBrush(112, 72, 232, 90)
_DIFF_ROLE = "series:4"
#: The histogram's x label until a diff names its sides.
DEFAULT_X_LABEL = "edited − original"
#: Changed positions (orange) on unchanged (white).
CHANGED_RGBA = (232, 89, 12, 255)
UNCHANGED_RGBA = (255, 255, 255, 255)
DIFF_BINS = 100
#: Largest changed-positions map drawn at full resolution; larger ones are block-reduced.
MAP_PIXELS = 1 << 20


@dataclass(frozen=True)
class DiffData:
    """Everything the diff view draws for one tensor, computed by :func:`compute_diff` (any thread).

    ``counts``/``edges`` are :func:`weightlab.core.diff.diff_histogram` (None
    when nothing changed by a finite amount); ``map_rgba`` is the changed-
    positions map in the tensor's heatmap layout, reduced by blocks of
    ``lod = (fy, fx)`` pixels (a block is orange when any entry in it changed)
    when the full map has more than :data:`MAP_PIXELS` pixels.
    """

    diff: TensorDiff
    shape: tuple[int, ...]
    counts: np.ndarray | None
    edges: np.ndarray | None
    layout: HeatmapLayout
    map_rgba: np.ndarray
    lod: tuple[int, int]


def compute_diff(name: str, a: np.ndarray, b: np.ndarray, bins: int = DIFF_BINS) -> DiffData:
    """The :class:`DiffData` of tensor ``name`` changing from ``a`` to ``b`` (same shape).

    Blocked passes (no full-size float64 copy) and a level-of-detail map, so
    it suits a 100M-entry tensor in a pool thread.

    Raises
    ------
    ValueError
        When the shapes differ.
    """
    diff = tensor_diff(name, a, b)
    hist = diff_histogram(a, b, bins)
    layout = heatmap_layout(tuple(a.shape))
    rows, cols = layout.image_shape
    image, lod = render_region(layout, changed_mask(a, b), (0, rows), (0, cols), MAP_PIXELS)
    return DiffData(
        diff=diff,
        shape=tuple(a.shape),
        counts=hist[0] if hist else None,
        edges=hist[1] if hist else None,
        layout=layout,
        map_rgba=mask_rgba(image, CHANGED_RGBA, UNCHANGED_RGBA),
        lod=lod,
    )


def format_diff(d: TensorDiff) -> str:
    """``"changed 1 234 of 4 608 (26.8 %) · relative L2 change 0.1234 · max |Δ| 0.05"``."""
    return (
        f"changed {fmt_count(d.changed)} of {fmt_count(d.size)} ({100 * d.fraction_changed:.1f} %) · "
        f"relative L2 change {fmt_num(d.relative_l2)} · max |Δ| {fmt_num(d.max_abs)}"
    )


class DiffView(QWidget):
    """Histogram of ``b − a`` over the changed entries, map of changed positions, and the numbers.

    Attributes
    ----------
    diff:
        The :class:`TensorDiff` shown (None when cleared).
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.diff: TensorDiff | None = None
        self.title = ElidedLabel("")  # one line, elided, whole in the tooltip
        self.numbers = QLabel("")
        theme.use_monospace(self.numbers)
        self.numbers.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.numbers.setWordWrap(True)
        self.hist = plot_widget()
        self.hist.setMinimumHeight(110)
        set_label(self.hist, "bottom", DEFAULT_X_LABEL)
        self.hist.setLabel("left", "count")
        for axis in ("bottom", "left"):
            self.hist.getAxis(axis).enableAutoSIPrefix(False)
        self.hist.showGrid(x=True, y=True, alpha=0.15)
        self.curve = pg.PlotDataItem(stepMode="center", fillLevel=0, pen=pen(_DIFF_ROLE, 1.5), brush=brush(_DIFF_ROLE, 90))
        self.hist.addItem(self.curve)
        self.map = plot_widget()
        self.map.setMinimumHeight(110)
        self.map_vb = self.map.getViewBox()
        self.map_vb.invertY(True)
        self.map_vb.setBackgroundColor(gap_color())
        # each plot's titles, longest first: the longest that is not cut (a narrow centre takes a short one)
        self._titles = [(self.hist, ("difference of the changed entries", "changed entries", "changes")),
                        (self.map, ("changed positions (orange)", "changed (orange)", "where"))]
        self._fit_titles()
        self.hist.installEventFilter(self)
        self.map.installEventFilter(self)
        self.map_image = pg.ImageItem(axisOrder="row-major")
        self.map.addItem(self.map_image)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.hist)
        split.addWidget(self.map)
        split.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.numbers)
        lay.addWidget(split, 1)
        self.clear("Edit a tensor to see how it changed")
        theme.signals.changed.connect(self.apply_theme)

    def _fit_titles(self) -> None:
        font = QFont(self.font())
        font.setPointSizeF(9)  # the titles' size
        metrics = QFontMetrics(font)
        for plot, texts in self._titles:
            room = plot.width() - 16
            fitting = [t for t in texts if metrics.horizontalAdvance(t) <= room]
            text = texts[0] if plot.width() <= 0 else (fitting[0] if fitting else texts[-1])
            if getattr(plot, "_title_text", None) != text:
                plot._title_text = text
                plot.setTitle(text, size="9pt")

    def eventFilter(self, watched, event) -> bool:
        """A plot resized (the window or the splitter between them) takes the title that fits."""
        if event.type() == QEvent.Type.Resize:
            self._fit_titles()
        return False

    def apply_theme(self) -> None:
        """Recolour the histogram and the map's gaps in the theme shown now (the plots restyle themselves)."""
        self.curve.setPen(pen(_DIFF_ROLE, 1.5))
        self.curve.setBrush(brush(_DIFF_ROLE, 90))
        self.map_vb.setBackgroundColor(gap_color())

    @property
    def plots(self) -> dict[str, pg.PlotWidget]:
        """The exportable plots: ``{"diff histogram": ..., "diff map": ...}``."""
        return {"diff histogram": self.hist, "diff map": self.map}

    def clear(self, message: str = "") -> None:
        """Show nothing but ``message``: no numbers, curve or map, and the axes of no tensor."""
        self.diff = None
        self.title.setText(message)
        self.numbers.setText("")
        self.curve.setData([], [])
        self.map_image.clear()
        set_label(self.hist, "bottom", DEFAULT_X_LABEL)
        for side in ("bottom", "left"):
            set_ticks(self.map.getAxis(side), None)
            set_label(self.map, side, "")
        self.hist.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.map_vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)

    def show_diff(
        self, name: str, a: np.ndarray, b: np.ndarray, label_a: str = "original", label_b: str = "edited"
    ) -> TensorDiff:
        """Show how tensor ``name`` changed from ``a`` to ``b`` (same shape); returns the numbers.

        Computes on this thread: for large tensors compute :func:`compute_diff`
        in a pool and call :meth:`show_data`.
        """
        return self.show_data(compute_diff(name, a, b), label_a, label_b)

    def show_data(self, data: DiffData, label_a: str = "original", label_b: str = "edited") -> TensorDiff:
        """Draw ``data`` (from :func:`compute_diff`); returns its numbers."""
        d = data.diff
        self.diff = d
        title = f"<b>{d.name}</b> {fmt_shape(data.shape)} · {label_b} − {label_a}"
        if data.lod != (1, 1):
            title += f" · map in {data.lod[0]}×{data.lod[1]} blocks (orange: any entry changed)"
        self.title.setText(title)  # elided to the width; whole in the tooltip
        self.numbers.setText(format_diff(d))
        set_label(self.hist, "bottom", f"{label_b} − {label_a}")
        if data.counts is not None:
            self.curve.setData(data.edges, data.counts.astype(np.float64))
            self.hist.enableAutoRange()
        else:
            self.curve.setData([], [])
        rows, cols = data.layout.image_shape
        self.map_image.setImage(data.map_rgba, autoLevels=False, levels=(0, 255))
        self.map_image.setRect(QRectF(0, 0, cols, rows))
        set_layout_ticks(self.map, data.layout, max_ticks=10)
        self.map_vb.autoRange(padding=0.02)
        return d


class CompareDialog(QDialog):
    """Per-tensor change from the current file to another one of the same architecture.

    The table lists :func:`weightlab.core.diff.compare_models` rows (largest
    relative change first); selecting a row shows that tensor's diff (the
    opened file's stored values as the original, the compared file's as edited;
    edits not yet saved are not part of the comparison). Tensors are read for
    the row shown and not kept; a large one's diff is computed in the pool.

    Parameters
    ----------
    session:
        The window's session (side ``a``: the stored values of its file).
    other:
        The compared file, opened as a session (side ``b``); closed with the dialog.
    diffs:
        :func:`weightlab.core.diff.compare_models` of the two files.
    """

    COLUMNS = ("Tensor", "Shape", "Changed", "Relative L2 change", "Max |Δ|")

    def __init__(self, session: EditSession, other: EditSession, diffs: list[TensorDiff], parent=None):
        super().__init__(parent)
        self.session, self.other, self.diffs = session, other, diffs
        a, b = session.model.path.name, other.model.path.name
        self.setWindowTitle(f"Compare {a} with {b}")
        self.summary = QLabel(
            f"<b>{a}</b> → <b>{b}</b>: {sum(d.changed > 0 for d in diffs)} of {len(diffs)} tensors differ; "
            "sorted by relative L2 change ||b − a|| / ||a||. Select a row for its diff."
        )
        self.summary.setWordWrap(True)
        self.table = QTableWidget(len(diffs), len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for row, d in enumerate(diffs):
            cells = (
                d.name,
                fmt_shape(session.model.tensors[d.name].shape),
                f"{100 * d.fraction_changed:.1f} %",
                fmt_num(d.relative_l2),
                fmt_num(d.max_abs),
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self.diff_view = DiffView()
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.diff_view)
        split.setSizes([260, 360])
        split.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(split, 1)
        self.resize(900, 680)
        self._labels = (session.model.path.name, other.model.path.name)
        self._shown: str | None = None
        self.computer = TensorComputer(self)
        self.computer.diffed.connect(self._on_diffed)
        self.computer.diffFailed.connect(lambda msg: self.diff_view.clear(f"Cannot compute the diff: {msg}"))
        self.table.currentCellChanged.connect(lambda row, *_: self.show_row(row))
        if diffs:
            self.table.selectRow(0)

    def row_names(self) -> list[str]:
        """Tensor names in table order."""
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())]

    def show_row(self, row: int) -> None:
        """Show the diff of the tensor in ``row`` (a large tensor's is computed in the pool)."""
        if not 0 <= row < len(self.diffs):
            return
        name = self.diffs[row].name
        self._shown = name
        session, other = self.session, self.other

        def compute() -> DiffData:
            return compute_diff(name, session.original(name, cache=False), other.original(name, cache=False))

        if session.model.tensors[name].size <= SYNC_LIMIT:
            self.diff_view.show_data(compute(), *self._labels)
        else:
            self.diff_view.clear(f"<b>{name}</b>: computing the diff…")
            self.computer.diff(name, compute)

    def _on_diffed(self, data: DiffData) -> None:
        if data.diff.name == self._shown:
            self.diff_view.show_data(data, *self._labels)

    def done(self, result: int) -> None:
        """Close the dialog and the compared file."""
        self.other.model.close()
        super().done(result)
