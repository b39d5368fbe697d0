"""Histogram of a tensor with a brushable value range and a statistics line."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.stats import TensorStats

from . import theme
from .formatting import fmt_count, fmt_num
from .plots import ElidedLabel, brush, pen, plot_widget, reserve_axis_width, reserve_lines
from .tensor_worker import HistogramPreview, TensorView

#: Shown where the brushed range's count goes while there is none.
RANGE_HINT = "Drag on the histogram to select a value range"
#: QSettings key of the bin count (an int in the spin box's range; anything else means the default).
BINS_KEY = "views/histogram_bins"
DEFAULT_BINS = 100
#: Light-theme pens and brushes (the view itself asks the theme: :func:`current_pen` and friends).
CURRENT_PEN = pg.mkPen("#1c7ed6", width=1.5)
CURRENT_BRUSH = pg.mkBrush(28, 126, 214, 110)
GHOST_PEN = pg.mkPen("#9a9a9a", width=1)
GHOST_BRUSH = pg.mkBrush(150, 150, 150, 70)
PREVIEW_PEN = pg.mkPen(28, 126, 214, 110, width=1, style=Qt.PenStyle.DashLine)
PREVIEW_BRUSH = pg.mkBrush(28, 126, 214, 40)
RANGE_BRUSH = pg.mkBrush(250, 176, 5, 60)


def current_pen():
    """Pen of the current values' histogram in the theme shown now."""
    return pen("accent", 1.5)


def current_brush():
    """Fill of the current values' histogram."""
    return brush("accent", 110)


def ghost_pen():
    """Pen of the original values' (grey) histogram."""
    return pen("muted", 1.0)


def ghost_brush():
    """Fill of the original values' histogram."""
    return brush("muted", 70)


def _range_brush():
    return brush("highlight", 60)


def _saved_bins(default: int = DEFAULT_BINS, lo: int = 5, hi: int = 2000) -> int:
    """The saved bin count, or ``default`` when none is saved or it is not a whole number in ``[lo, hi]``."""
    from .settings import qsettings

    value = qsettings().value(BINS_KEY, default)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return default
    try:
        n = int(value)  # the INI file gives back "120"
    except ValueError:
        return default
    return n if lo <= n <= hi else default


def _save_bins(n: int) -> None:
    from .settings import qsettings

    qsettings().setValue(BINS_KEY, int(n))
#: Where empty bins sit on the log scale (log10 of half a count).
_LOG_FLOOR = float(np.log10(0.5))


def format_stats(s: TensorStats) -> str:
    """One compact line: count, min, max, mean, std, L1, L2, zeros %, p1, p99.

    Each ``key value`` pair is joined by a no-break space so a wrapped line
    never separates a value from its name.
    """
    pairs = [
        ("n", fmt_count(s.count)),
        ("min", fmt_num(s.min)),
        ("max", fmt_num(s.max)),
        ("mean", fmt_num(s.mean)),
        ("std", fmt_num(s.std)),
        ("L1", fmt_num(s.l1)),
        ("L2", fmt_num(s.l2)),
        ("zeros", f"{100 * s.zeros:.1f}\u00a0%"),
        ("p1", fmt_num(s.p1)),
        ("p99", fmt_num(s.p99)),
    ]
    return "  ".join(f"{k}\u00a0{v}" for k, v in pairs)


class StatsLabel(QLabel):
    """The statistics in at most :attr:`LINES` lines, wrapped between pairs; the rest elided, whole in the tooltip.

    A word-wrapped QLabel needs more lines the narrower it is, and a splitter
    does not grow for that (it knows no height-for-width): at 288 px the
    stats took four lines in a space for two and covered the plot. This label
    keeps its height; :meth:`text` returns the full text given to :meth:`setText`.
    """

    LINES = 2
    #: What separates two ``key value`` pairs in :func:`format_stats`'s text.
    SEP = "  "

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self._full = ""
        self.setWordWrap(False)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(1)
        self.setText(text)

    def text(self) -> str:
        return self._full

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Show ``text`` in at most :attr:`LINES` lines as wide as the label; the whole text in the tooltip when cut."""
        self._full = text or ""
        self._refit()

    def is_elided(self) -> bool:
        """Whether some of the text is left out of what is shown."""
        return super().text().replace("\n", self.SEP) != self._full

    def _refit(self) -> None:
        metrics = self.fontMetrics()
        width = max(1, self.contentsRect().width())
        lines: list[str] = []
        for pair in self._full.split(self.SEP) if self._full else []:
            joined = f"{lines[-1]}{self.SEP}{pair}" if lines else pair
            if lines and metrics.horizontalAdvance(joined) <= width:
                lines[-1] = joined
            else:
                lines.append(pair)
        if len(lines) > self.LINES:
            rest = self.SEP.join(lines[self.LINES - 1:])
            lines = lines[: self.LINES - 1] + [metrics.elidedText(rest, Qt.TextElideMode.ElideRight, width)]
        shown = "\n".join(lines)
        super().setText(shown)
        self.setToolTip(self._full if shown.replace("\n", self.SEP) != self._full else "")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._refit()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._refit()
            reserve_lines(self, self.LINES)


class _BrushViewBox(pg.ViewBox):
    """ViewBox where a plain left-drag brushes an x range (other drags pan/zoom as usual)."""

    def __init__(self, on_brush, **kw):
        super().__init__(**kw)
        self._on_brush = on_brush

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() == Qt.MouseButton.LeftButton and ev.modifiers() == Qt.KeyboardModifier.NoModifier:
            ev.accept()
            x0 = self.mapSceneToView(ev.buttonDownScenePos()).x()
            x1 = self.mapSceneToView(ev.scenePos()).x()
            self._on_brush(min(x0, x1), max(x0, x1), ev.isFinish())
            return
        super().mouseDragEvent(ev, axis)


class HistogramView(QWidget):
    """Exact histogram (steps) of the shown tensor, its original as a grey ghost, a range brush.

    Dragging on the plot (or the region's edges) previews a range: the label
    shows it and how many values lie inside. Releasing commits the range
    (``rangeChanged``) but never edits; the edit panel does.

    Signals
    -------
    rangeChanged(object):
        ``(lo, hi)`` of the committed brush, or None when cleared.
    binsChanged(int):
        The user changed the bin count.
    countWanted(float, float):
        A range was committed on a large tensor: count its values exactly off
        the GUI thread and call :meth:`set_count` (while dragging, the label
        shows an estimate from the exact histogram, marked ``≈``).

    A large tensor first shows a :class:`HistogramPreview` (:meth:`set_preview`,
    drawn lighter and labelled "preview"); the exact view replaces it.
    """

    rangeChanged = Signal(object)
    binsChanged = Signal(int)
    countWanted = Signal(float, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.view: TensorView | None = None
        self.preview: HistogramPreview | None = None
        self.committed_range: tuple[float, float] | None = None
        #: ``(lo, hi, count)`` of the last exact count of a range, or None.
        self.range_count: tuple[float, float, int] | None = None

        self.bins = QSpinBox()
        self.bins.setRange(5, 2000)
        self.bins.setValue(_saved_bins(DEFAULT_BINS, self.bins.minimum(), self.bins.maximum()))
        self.bins.setPrefix("bins ")
        self.bins.setKeyboardTracking(False)
        self.bins.setToolTip("Number of equal-width histogram bins")
        self.log = QCheckBox("log counts")
        self.clear_btn = QPushButton("Clear range")
        self.clear_btn.setEnabled(False)
        # long text must not widen the pane and squeeze the model tree: it is elided, whole in the tooltip
        self.range_label = ElidedLabel(RANGE_HINT)
        self.title = ElidedLabel("")

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.log)
        top.addWidget(self.bins)
        # The brushed range and its count get a row of their own under the plot.
        brush_row = QHBoxLayout()
        brush_row.addWidget(self.range_label, 1)
        brush_row.addWidget(self.clear_btn)

        self.vb = _BrushViewBox(self._brush_drag)
        self.plot = plot_widget(viewBox=self.vb)
        self.plot.setMinimumHeight(80)  # the centre fits a 800x560 window (tests/test_centre_fits.py)
        self.plot.setLabel("bottom", "weight value")
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plot.setLabel("left", "count")
        reserve_axis_width(self.plot, "88888888")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setMouseEnabled(x=True, y=False)
        self.ghost = pg.PlotDataItem(stepMode="center", fillLevel=0, pen=ghost_pen(), brush=ghost_brush())
        self.curve = pg.PlotDataItem(stepMode="center", fillLevel=0, pen=current_pen(), brush=current_brush())
        self.ghost.setZValue(-1)
        self.plot.addItem(self.ghost)
        self.plot.addItem(self.curve)
        self.region = pg.LinearRegionItem(values=(0, 1), orientation="vertical", brush=_range_brush())
        self.region.setZValue(10)
        self.region.hide()
        self.plot.addItem(self.region, ignoreBounds=True)
        self.legend = self.plot.addLegend(offset=(-10, 10))

        self.stats_label = StatsLabel("")
        self.stats_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        theme.use_monospace(self.stats_label)
        reserve_lines(self.stats_label, StatsLabel.LINES)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)  # rows close together: the centre fits a 800x560 window
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)
        lay.addLayout(brush_row)
        lay.addWidget(self.stats_label)

        self.region.sigRegionChanged.connect(self._preview)
        self.region.sigRegionChangeFinished.connect(self._commit)
        self.log.toggled.connect(self._redraw)
        self.bins.valueChanged.connect(_save_bins)
        self.bins.valueChanged.connect(self.binsChanged)
        self.clear_btn.clicked.connect(self.clear_range)
        self._show_hint(True)
        theme.signals.changed.connect(self.apply_theme)

    def apply_theme(self) -> None:
        """Recolour the curves, the brush and the title in the theme shown now (the plot restyles itself)."""
        self._style_curves()
        self.region.setBrush(_range_brush())
        self.region.update()
        self._refresh_title()

    def _style_curves(self) -> None:
        if self.preview is not None:  # set_view ends the preview
            self.curve.setPen(pen("accent", 1.0, Qt.PenStyle.DashLine, alpha=140))
            self.curve.setBrush(brush("accent", 40))
        else:
            self.curve.setPen(current_pen())
            self.curve.setBrush(current_brush())
        self.ghost.setPen(ghost_pen())
        self.ghost.setBrush(ghost_brush())

    def _show_hint(self, hint: bool) -> None:
        """The range row in the muted hint colour (palette's placeholder text) or normal text."""
        role = QPalette.ColorRole.PlaceholderText if hint else QPalette.ColorRole.WindowText
        self.range_label.setForegroundRole(role)

    def clear(self) -> None:
        """Forget everything about the shown model: tensor, preview, range, legend, axes (bins and log stay)."""
        self.set_view(None)
        self.legend.clear()
        self.ghost.hide()
        self.plot.getAxis("left").setLogMode(False, self.log.isChecked())
        self.plot.setXRange(0, 1, padding=0)
        self.plot.enableAutoRange(axis="y")

    # -- data -----------------------------------------------------------------
    def set_view(self, view: TensorView | None, keep_range: bool = False) -> None:
        """Show ``view`` (None clears); keep the brushed range when the tensor is the same."""
        same = self.view is not None and view is not None and view.request.name == self.view.request.name
        self.view = view
        self.preview = None
        self.range_count = None
        self._style_curves()
        if not (keep_range and same):
            self.clear_range()
        if view is None:
            self.curve.setData([], [])
            self.ghost.setData([], [])
            self.stats_label.setText("")
            self._set_title("")
            return
        self._refresh_title()
        self.stats_label.setText(format_stats(view.stats))
        self._redraw()
        if self.committed_range is not None:
            self._preview()

    def _set_title(self, html: str) -> None:
        self.title.setText(html)  # elided to the width; whole in the tooltip

    def _refresh_title(self) -> None:
        """The title of the shown view or preview, in the theme's colours."""
        if self.preview is not None:
            self._set_title(
                f"<b>{self.preview.request.name}</b> <span style='color:{theme.css('muted')}'>(preview: every "
                f"{fmt_count(self.preview.step)}th value; computing exact counts…)</span>"
            )
        elif self.view is not None:
            view = self.view
            edited = f" <span style='color:{theme.css('warning')}'>(edited)</span>" if view.ghost is not None else ""
            self._set_title(f"<b>{view.request.name}</b>{edited}")

    def set_preview(self, preview: HistogramPreview) -> None:
        """Draw the quick histogram of a strided sample, lighter and labelled, until the exact view arrives."""
        self.preview = preview
        self.legend.clear()
        self.ghost.setData([], [])
        self.ghost.hide()
        self._style_curves()
        self.curve.setData(preview.edges, self._y(preview.counts))
        self._refresh_title()
        self.stats_label.setText("computing exact statistics…")
        lo, hi = float(preview.edges[0]), float(preview.edges[-1])
        pad = (hi - lo) * 0.02 or 0.5
        self.plot.setXRange(lo - pad, hi + pad, padding=0)
        self.plot.enableAutoRange(axis="y")

    @property
    def stats(self) -> TensorStats | None:
        """Statistics of the shown tensor."""
        return self.view.stats if self.view is not None else None

    def _y(self, counts: np.ndarray) -> np.ndarray:
        if not self.log.isChecked():
            return counts.astype(np.float64)
        with np.errstate(divide="ignore"):
            return np.where(counts > 0, np.log10(np.maximum(counts, 1)), _LOG_FLOOR)

    def _redraw(self) -> None:
        view = self.view
        if view is None:
            return
        log = self.log.isChecked()
        floor = _LOG_FLOOR if log else 0.0
        self.plot.getAxis("left").setLogMode(False, log)
        self.curve.setFillLevel(floor)
        self.ghost.setFillLevel(floor)
        self.legend.clear()
        if view.ghost is not None:
            self.ghost.setData(view.edges, self._y(view.ghost))
            self.ghost.show()
            self.legend.addItem(self.ghost, "original")
            self.legend.addItem(self.curve, "current")
        else:
            self.ghost.setData([], [])
            self.ghost.hide()
        self.curve.setData(view.edges, self._y(view.counts))
        lo, hi = float(view.edges[0]), float(view.edges[-1])
        pad = (hi - lo) * 0.02 or 0.5
        self.plot.setXRange(lo - pad, hi + pad, padding=0)
        self.plot.enableAutoRange(axis="y")

    # -- range brush ------------------------------------------------------------
    def set_range(self, lo: float, hi: float, finished: bool = True) -> None:
        """Show the brush at ``[lo, hi]``; with ``finished`` also commit it."""
        self.region.blockSignals(True)
        self.region.setRegion((lo, hi))
        self.region.blockSignals(False)
        self.region.show()
        self._preview()
        if finished:
            self._commit()

    def clear_range(self) -> None:
        """Remove the brush (emits rangeChanged(None) when one was committed)."""
        self.region.hide()
        self.clear_btn.setEnabled(False)
        self.range_label.setText(RANGE_HINT)
        self._show_hint(True)
        if self.committed_range is not None:
            self.committed_range = None
            self.rangeChanged.emit(None)

    def _brush_drag(self, lo: float, hi: float, finished: bool) -> None:
        if self.view is None:
            return
        self.set_range(lo, hi, finished)

    def _preview(self) -> None:
        """Label the brushed range: exact count for small tensors, histogram estimate (≈) for large ones."""
        lo, hi = (float(v) for v in self.region.getRegion())
        if self.view is None or not self.region.isVisible():
            return
        rc = self.range_count
        if rc is not None and rc[:2] == (lo, hi):
            self._show_count(lo, hi, rc[2], exact=True)
        elif self.view.large:
            self._show_count(lo, hi, self.view.estimate_between(lo, hi), exact=False)
        else:
            self._show_count(lo, hi, self.view.count_between(lo, hi), exact=True)

    def _show_count(self, lo: float, hi: float, n: float, exact: bool) -> None:
        total = max(self.view.stats.count, 1)
        what = f"{fmt_count(int(n))} values" if exact else f"≈ {fmt_count(round(n))} values (counting…)"
        self._show_hint(False)
        self.range_label.setText(f"range [{fmt_num(lo)}, {fmt_num(hi)}]: {what} ({100 * n / total:.1f} %)")

    def set_count(self, result: tuple[float, float, int]) -> None:
        """The exact ``(lo, hi, count)`` of a committed range, counted off the GUI thread."""
        self.range_count = result
        self._preview()

    def _commit(self) -> None:
        if not self.region.isVisible():
            return
        lo, hi = (float(v) for v in self.region.getRegion())
        self.committed_range = (lo, hi)
        self.clear_btn.setEnabled(True)
        if self.view is not None and self.view.large and (self.range_count or (None, None))[:2] != (lo, hi):
            self.countWanted.emit(lo, hi)
        self._preview()
        self.rangeChanged.emit(self.committed_range)
