"""Diffs of one tensor (edited vs original, or two files) and the compare dialog.

Numbers come from :mod:`weightlab.core.diff`: ``tensor_diff`` (changed count,
fraction, relative L2 change, max |Δ|), ``difference`` (edited − original, the
histogram) and ``changed_mask`` (the map, in the tensor's heatmap layout).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.diff import TensorDiff, changed_mask, difference, tensor_diff
from weightlab.core.layout import heatmap_layout
from weightlab.core.session import EditSession

from .formatting import fmt_count, fmt_num, fmt_shape
from .heatmap_view import GAP_COLOR, mask_rgba, set_layout_ticks
from .plots import plot_widget

DIFF_PEN = pg.mkPen("#7048e8", width=1.5)
DIFF_BRUSH = pg.mkBrush(112, 72, 232, 90)
#: Changed positions (orange) on unchanged (white).
CHANGED_RGBA = (232, 89, 12, 255)
UNCHANGED_RGBA = (255, 255, 255, 255)
DIFF_BINS = 100


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
        self.title = QLabel("")
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setMinimumWidth(1)
        self.numbers = QLabel("")
        self.numbers.setStyleSheet("font-family: monospace;")
        self.numbers.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.numbers.setWordWrap(True)
        self.hist = plot_widget()
        self.hist.setMinimumHeight(110)
        self.hist.setLabel("bottom", "edited − original")
        self.hist.setLabel("left", "count")
        for axis in ("bottom", "left"):
            self.hist.getAxis(axis).enableAutoSIPrefix(False)
        self.hist.showGrid(x=True, y=True, alpha=0.15)
        self.hist.setTitle("difference of the changed entries", size="9pt")
        self.curve = pg.PlotDataItem(stepMode="center", fillLevel=0, pen=DIFF_PEN, brush=DIFF_BRUSH)
        self.hist.addItem(self.curve)
        self.map = plot_widget()
        self.map.setMinimumHeight(110)
        self.map_vb = self.map.getViewBox()
        self.map_vb.invertY(True)
        self.map_vb.setBackgroundColor(GAP_COLOR)
        self.map.setTitle("changed positions (orange)", size="9pt")
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

    @property
    def plots(self) -> dict[str, pg.PlotWidget]:
        """The exportable plots: ``{"diff histogram": ..., "diff map": ...}``."""
        return {"diff histogram": self.hist, "diff map": self.map}

    def clear(self, message: str = "") -> None:
        """Show nothing but ``message``."""
        self.diff = None
        self.title.setText(message)
        self.numbers.setText("")
        self.curve.setData([], [])
        self.map_image.clear()

    def show_diff(
        self, name: str, a: np.ndarray, b: np.ndarray, label_a: str = "original", label_b: str = "edited"
    ) -> TensorDiff:
        """Show how tensor ``name`` changed from ``a`` to ``b`` (same shape); returns the numbers."""
        d = tensor_diff(name, a, b)
        self.diff = d
        mask = changed_mask(a, b)
        self.title.setText(f"<b>{name}</b> {fmt_shape(a.shape)} · {label_b} − {label_a}")
        self.title.setToolTip(self.title.text())
        self.numbers.setText(format_diff(d))
        self.hist.setLabel("bottom", f"{label_b} − {label_a}")
        delta = difference(a, b)[mask]
        delta = delta[np.isfinite(delta)]
        if delta.size:
            counts, edges = np.histogram(delta, bins=DIFF_BINS)
            self.curve.setData(edges, counts.astype(np.float64))
            self.hist.enableAutoRange()
        else:
            self.curve.setData([], [])
        layout = heatmap_layout(tuple(a.shape))
        img = layout.image(mask)
        self.map_image.setImage(mask_rgba(img, CHANGED_RGBA, UNCHANGED_RGBA), autoLevels=False, levels=(0, 255))
        self.map_image.setRect(QRectF(0, 0, img.shape[1], img.shape[0]))
        set_layout_ticks(self.map, layout, max_ticks=10)
        self.map_vb.autoRange(padding=0.02)
        return d


class CompareDialog(QDialog):
    """Per-tensor change from the current file to another one of the same architecture.

    The table lists :func:`weightlab.core.diff.compare_models` rows (largest
    relative change first); selecting a row shows that tensor's diff (the
    opened file's stored values as the original, the compared file's as edited;
    edits not yet saved are not part of the comparison).

    Parameters
    ----------
    session:
        The window's session (side ``a``: the stored values of its file).
    other:
        The compared file, opened as a session (side ``b``); closed with the dialog.
    diffs:
        ``compare_models(session.model, other.model, session.original, other.array)``.
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
        self.table.currentCellChanged.connect(lambda row, *_: self.show_row(row))
        if diffs:
            self.table.selectRow(0)

    def row_names(self) -> list[str]:
        """Tensor names in table order."""
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())]

    def show_row(self, row: int) -> None:
        """Show the diff of the tensor in ``row``."""
        if not 0 <= row < len(self.diffs):
            return
        name = self.diffs[row].name
        self.diff_view.show_diff(
            name,
            self.session.original(name),
            self.other.array(name),
            label_a=self.session.model.path.name,
            label_b=self.other.model.path.name,
        )

    def done(self, result: int) -> None:  # noqa: D401 - Qt override
        """Close the dialog and the compared file."""
        self.other.model.close()
        super().done(result)
