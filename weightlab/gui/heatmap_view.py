"""Heatmap of a tensor (diverging colours centred on zero) with neuron selection."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.layout import HeatmapLayout, lod_factors

from . import theme
from .formatting import fmt_num, fmt_shape
from .plots import ElidedLabel, brush, pen, plot_widget, reserve_axis_width, set_label, set_ticks
from .selection import NeuronSelection
from .tensor_worker import COLORMAP_NAME, TILE_PIXELS, TensorView, Tile

#: Diverging colour map: negative blue, zero white, positive red.
#: Shown where the image has NaN (gaps between conv blocks); distinct from white = 0 (light theme:
#: the view asks :func:`gap_color`).
GAP_COLOR = "#c8c8c8"
#: Light-theme selection overlay (the view uses :func:`select_pen` / :func:`select_brush`).
SELECT_PEN = pg.mkPen("#f08c00", width=2)
SELECT_BRUSH = pg.mkBrush(255, 212, 59, 70)


def gap_color():
    """Colour of the gaps between conv blocks in the theme shown now (never white: white is zero)."""
    return theme.color("bg").lighter(170) if theme.is_dark() else QColor(GAP_COLOR)


def select_pen():
    """Outline of selected neurons' columns."""
    return pen("highlight", 2)


def select_brush():
    """Fill of selected neurons' columns."""
    return brush("highlight", 70)

HOVER_HINT = "click a column to select neurons · double-click a cell to set its value"
#: RGBA of pruned/zeroed positions in the mask overlay.
MASK_RGBA = (20, 20, 20, 190)
#: Quiet time after the last zoom/pan before a full-resolution tile is asked for (ms).
ZOOM_DEBOUNCE_MS = 150
LOD_NOTE = "block max-|w|, sign kept"
#: Axes longer than this (Dense/vector layouts) use pyqtgraph's automatic ticks.
AUTO_TICKS = 240


def mask_rgba(image: np.ndarray, on: tuple[int, ...], off: tuple[int, ...] = (0, 0, 0, 0)) -> np.ndarray:
    """RGBA (uint8, rows x cols x 4) of a 0/1 heatmap image: 1 -> ``on``, 0 -> ``off``, NaN gaps transparent."""
    out = np.zeros((*image.shape, 4), dtype=np.uint8)
    out[image == 1] = on
    out[image == 0] = off
    return out


def contiguous_runs(values: list[int]) -> list[tuple[int, int]]:
    """Sorted integers as inclusive runs: ``[0, 1, 2, 5] -> [(0, 2), (5, 5)]``."""
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def _ticks(count: int, center_of, max_ticks: int = 24) -> list[tuple[float, str]]:
    step = max(1, math.ceil(count / max_ticks))
    return [(center_of(i), str(i)) for i in range(0, count, step)]


def set_layout_ticks(plot: pg.PlotWidget, lay: HeatmapLayout, max_ticks: int = 24) -> None:
    """Axis ticks and labels of a heatmap image in layout ``lay`` (filters/neurons along x; at most ``max_ticks``)."""
    shape = lay.shape
    bottom, left = plot.getAxis("bottom"), plot.getAxis("left")
    n = lay.neuron_count
    if len(shape) in (3, 4):
        kh = shape[0]
        cin = shape[-2]
        set_ticks(bottom, [_ticks(n, lambda i: sum(lay.neuron_columns(i)) / 2, max_ticks)])
        set_ticks(left, [_ticks(cin, lambda i: i * (kh + 1) + kh / 2, max_ticks)])
        set_label(plot, "bottom", "output filter")
        set_label(plot, "left", "input channel")
    else:
        rows = lay.image_shape[0]
        # Large images: pyqtgraph's own ticks follow the zoom (a fixed list would leave none in view).
        set_ticks(bottom, None if n > AUTO_TICKS else [_ticks(n, lambda i: i + 0.5, max_ticks)])
        if rows > AUTO_TICKS:
            set_ticks(left, None)
        else:
            set_ticks(left, [_ticks(rows, lambda i: i + 0.5, max_ticks)] if rows > 1 else [[]])
        set_label(plot, "bottom", "output neuron")
        set_label(plot, "left", "input" if len(shape) >= 2 else "")


class HeatmapView(QWidget):
    """Image of ``heatmap_layout(shape).image(a)``: output neurons along columns.

    Colour limits are symmetric, ``±max|w|``, so white is exactly zero; NaN
    separators between conv blocks show the background. Hover reports the
    tensor index and value; a click selects the output neuron under the mouse
    (shift extends, ctrl toggles) in the shared :class:`NeuronSelection`.

    Signals
    -------
    hovered(str):
        ``"conv2d/kernel[1, 2, 0, 5] = -0.0312"`` or ``""`` when off the image.
    cellDoubleClicked(tuple, float):
        Tensor index and current value of the double-clicked cell (the window
        asks for a new value: a ``set`` edit).
    regionWanted(tuple, tuple):
        ``(rows, cols)``, half-open full-resolution image ranges: the visible
        region of a level-of-detail image after zooming, to be rendered finer
        (the window computes it off the GUI thread and calls :meth:`set_tile`).

    Level of detail: a view whose ``lod`` is not ``(1, 1)`` shows a reduced
    image stretched over the full image's extent, so view coordinates are
    always full-resolution pixels and hover, clicks and double-clicks map to
    the true tensor index at any zoom. Zooming in (debounced) asks for the
    visible region, which is drawn on top as a tile.

    A mask overlay (toggle :attr:`mask_check`) darkens the entries that are
    zero now but were non-zero in the file: what pruning and zeroing removed.
    """

    hovered = Signal(str)
    cellDoubleClicked = Signal(tuple, float)
    regionWanted = Signal(tuple, tuple)

    def __init__(self, selection: NeuronSelection, parent: QWidget | None = None):
        super().__init__(parent)
        self.selection = selection
        self.view: TensorView | None = None
        self.layout_: HeatmapLayout | None = None
        self.plot = plot_widget()
        self.plot.setMinimumSize(180, 100)  # the centre fits a 800x560 window (tests/test_centre_fits.py)
        self.vb = self.plot.getViewBox()
        self.vb.invertY(True)
        reserve_axis_width(self.plot, "88888")
        self.vb.setAspectLocked(False)
        # GAP_COLOR shows through the NaN gaps between kernel blocks while a tensor is shown
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.tile_image = pg.ImageItem(axisOrder="row-major")
        self.tile_image.setZValue(1)
        self.plot.addItem(self.tile_image)
        self.tile: Tile | None = None
        self._wanted: tuple[tuple[int, int], tuple[int, int]] | None = None
        self.colorbar = pg.ColorBarItem(
            values=(-1, 1), colorMap=pg.colormap.get(COLORMAP_NAME), interactive=False, width=14
        )
        # The images arrive coloured (TensorView.rgba, computed off the GUI
        # thread with the same map and limits): the bar is the legend only.
        self.colorbar.setImageItem([], insert_in=self.plot.getPlotItem())
        self._zoom_timer = QTimer(self)
        self._zoom_timer.setSingleShot(True)
        self._zoom_timer.setInterval(ZOOM_DEBOUNCE_MS)
        self._zoom_timer.timeout.connect(self._request_region)
        self.vb.sigRangeChanged.connect(lambda *_: self._zoom_timer.start())
        # long text must not widen the pane and squeeze the model tree: one line, elided, whole in the tooltip
        self.title = ElidedLabel("")
        self.hover_label = ElidedLabel(HOVER_HINT)
        theme.use_monospace(self.hover_label)
        self.hover_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._overlays: list[QGraphicsRectItem] = []
        self.mask = pg.ImageItem(axisOrder="row-major")
        self.mask.setZValue(3)
        self.plot.addItem(self.mask)
        self.mask_check = QCheckBox("pruned mask")
        self.mask_check.setChecked(True)
        self.mask_check.setToolTip(
            "Darken the entries that are zero now and were non-zero in the file (pruned or zeroed; Ctrl+M)"
        )
        self.mask_label = QLabel("")
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.mask_label)
        head.addWidget(self.mask_check)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)  # rows close together: the centre fits a 800x560 window
        lay.addLayout(head)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.hover_label)
        self.plot.scene().sigMouseMoved.connect(self._on_move)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        selection.changed.connect(self._draw_selection)
        self.mask_check.toggled.connect(self._draw_mask)
        self.plot.viewport().installEventFilter(self)
        self.apply_theme()
        theme.signals.changed.connect(self.apply_theme)

    def apply_theme(self) -> None:
        """Recolour the gaps, the colour bar's axis, the selection and the title in the theme shown now."""
        if self.view is not None:
            self.vb.setBackgroundColor(gap_color())
        axis = self.colorbar.axis
        axis.setPen(pen("muted"))
        axis.setTextPen(pen("fg"))
        self._draw_selection()
        if self.view is not None:
            self._update_title()

    def clear(self) -> None:
        """Forget everything about the shown model: image, tile, mask, selection overlay, axes, hover text."""
        self.set_view(None)
        self.hover_label.setText(HOVER_HINT)
        self.hover_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.colorbar.setLevels((-1, 1))
        for side in ("bottom", "left"):
            set_ticks(self.plot.getAxis(side), None)
            set_label(self.plot, side, "")
        self.vb.setRange(QRectF(0, 0, 1, 1), padding=0)

    def set_view(self, view: TensorView | None) -> None:
        """Show the heatmap of ``view`` (None clears); keep zoom when the tensor is the same."""
        same = self.view is not None and view is not None and self.view.request.name == view.request.name
        self.view = view
        self._clear_tile()
        self.vb.setBackgroundColor(gap_color() if view is not None else None)
        if view is None:
            self.layout_ = None
            self.image.clear()
            self.title.setText("")
            self._draw_selection()
            self._draw_mask()
            return
        self.layout_ = view.layout
        rows, cols = view.layout.image_shape
        m = view.vmax
        self.image.setImage(view.rgba, autoLevels=False, levels=None)
        self.colorbar.setLevels((-m, m))
        self.image.setRect(QRectF(0, 0, cols, rows))
        self._update_title()
        self._fit_ticks()
        if not same:
            # The new image's own rectangle: autoRange would also count the
            # previous tensor's overlays, which are redrawn only below.
            self.vb.setRange(QRectF(0, 0, cols, rows), padding=0.02)
        self._draw_selection()
        self._draw_mask()
        if view.lod != (1, 1):
            self._zoom_timer.start()  # a kept zoom wants its tile again

    def _max_ticks(self) -> int:
        """How many column labels fit along the plot's width without running into each other (at most 24)."""
        if self.layout_ is None:
            return 24
        widest = self.fontMetrics().horizontalAdvance(str(max(0, self.layout_.neuron_count - 1))) + 10
        return int(max(2, min(24, self.vb.width() // widest))) if self.vb.width() > 0 else 10

    def _fit_ticks(self) -> None:
        if self.layout_ is not None:
            set_layout_ticks(self.plot, self.layout_, self._max_ticks())

    def resizeEvent(self, event) -> None:
        """A narrower plot labels fewer columns (at 288 px, 16 filters' labels ran together)."""
        super().resizeEvent(event)
        self._fit_ticks()

    def _update_title(self) -> None:
        view = self.view
        rows, cols = view.layout.image_shape
        shape = view.request.source.model.tensors[view.request.name].shape
        text = f"<b>{view.request.name}</b> {fmt_shape(shape)} · image {rows}×{cols}"
        if view.lod != (1, 1):
            fy, fx = view.lod
            text += f" · <span style='color:{theme.css('warning')}'>level of detail: {fy}×{fx} blocks, {LOD_NOTE}</span>"
            tile = self.tile
            if tile is not None:
                (r0, r1), (c0, c1) = tile.rows, tile.cols
                res = "full resolution" if tile.lod == (1, 1) else f"{tile.lod[0]}×{tile.lod[1]} blocks"
                text += f" · zoomed rows {r0}–{r1 - 1}, cols {c0}–{c1 - 1} at {res}"
        text += f" · colour ±{fmt_num(view.vmax, 3)}"
        self.title.setText(text)  # elided to the width; whole in the tooltip

    # -- level of detail ---------------------------------------------------------
    def visible_region(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """Full-resolution image ``(rows, cols)`` ranges inside the view, or None when none is visible."""
        if self.layout_ is None:
            return None
        (x0, x1), (y0, y1) = self.vb.viewRange()
        rows, cols = self.layout_.image_shape
        r0, r1 = max(0, math.floor(y0)), min(rows, math.ceil(y1))
        c0, c1 = max(0, math.floor(x0)), min(cols, math.ceil(x1))
        if r1 <= r0 or c1 <= c0:
            return None
        return (r0, r1), (c0, c1)

    def _request_region(self) -> None:
        """After zooming a level-of-detail image: ask for the visible region when it can be drawn finer."""
        view = self.view
        region = self.visible_region() if view is not None and view.lod != (1, 1) else None
        if region is not None:
            (r0, r1), (c0, c1) = region
            fy, fx = lod_factors(r1 - r0, c1 - c0, TILE_PIXELS)
            if fy >= view.lod[0] and fx >= view.lod[1]:
                region = None  # no finer than what is shown
        if region is None:
            self._clear_tile()
            if view is not None:
                self._update_title()
            return
        if region == self._wanted or (self.tile is not None and (self.tile.rows, self.tile.cols) == region):
            return
        self._wanted = region
        self.regionWanted.emit(*region)

    def set_tile(self, tile: Tile) -> None:
        """Draw ``tile`` over the level-of-detail image (ignored unless it is the region last asked for)."""
        if self.view is None or tile.name != self.view.request.name or (tile.rows, tile.cols) != self._wanted:
            return
        self.tile = tile
        (r0, r1), (c0, c1) = tile.rows, tile.cols
        self.tile_image.setImage(tile.rgba, autoLevels=False, levels=None)
        self.tile_image.setRect(QRectF(c0, r0, c1 - c0, r1 - r0))
        self.tile_image.show()
        self._update_title()

    def _clear_tile(self) -> None:
        self.tile = None
        self._wanted = None
        self.tile_image.clear()
        self.tile_image.hide()

    @property
    def mask_shown(self) -> bool:
        """True when the mask overlay is drawn (toggle on and something pruned)."""
        return self.mask.isVisible() and self.mask.image is not None

    def _draw_mask(self) -> None:
        img = self.view.mask_image if self.view is not None else None
        count = self.view.pruned_count if img is not None else 0
        self.mask_label.setText(f"{count} pruned" if count else "")
        self.mask_label.setToolTip("entries zero now that were non-zero in the file")
        if img is None or not count or not self.mask_check.isChecked():
            self.mask.clear()
            self.mask.hide()
            return
        self.mask.setImage(mask_rgba(img, MASK_RGBA), autoLevels=False, levels=(0, 255))
        rows, cols = self.layout_.image_shape
        self.mask.setRect(QRectF(0, 0, cols, rows))
        self.mask.show()

    # -- mouse ------------------------------------------------------------------
    def _pixel_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        if self.layout_ is None or not self.vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.vb.mapSceneToView(scene_pos)
        return int(math.floor(p.y())), int(math.floor(p.x()))

    def _on_move(self, scene_pos: QPointF) -> None:
        text = ""
        px = self._pixel_at(scene_pos)
        if px is not None and self.view is not None:
            idx = self.layout_.index_at(*px)
            if idx is not None:
                value = self.view.array[idx]
                text = f"{self.view.request.name}[{', '.join(str(i) for i in idx)}] = {fmt_num(float(value), 6)}"
        self.hover_label.setText(text or HOVER_HINT)
        self.hover_label.setForegroundRole(
            QPalette.ColorRole.WindowText if text else QPalette.ColorRole.PlaceholderText
        )
        self.hovered.emit(text)

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        px = self._pixel_at(ev.scenePos())
        if px is None:
            return
        if ev.double():
            return  # handled by eventFilter (Qt's own double-click event)
        neuron = self.layout_.neuron_at(px[1])
        if neuron is not None and 0 <= px[0] < self.layout_.image_shape[0]:
            self.selection.click(neuron, ev.modifiers())

    def eventFilter(self, obj, event) -> bool:
        """Double-click on a cell: emit ``cellDoubleClicked`` (Qt's event, reliable under Qt 6)."""
        if (
            obj is self.plot.viewport()
            and event.type() == QEvent.Type.MouseButtonDblClick
            and event.button() == Qt.MouseButton.LeftButton
        ):
            px = self._pixel_at(self.plot.mapToScene(event.position().toPoint()))
            idx = self.layout_.index_at(*px) if px is not None else None
            if idx is not None and self.view is not None:
                self.cellDoubleClicked.emit(tuple(int(i) for i in idx), float(self.view.array[idx]))
        return super().eventFilter(obj, event)

    def cell_center(self, index: tuple[int, ...]) -> QPointF:
        """View coordinates of the middle of the cell showing tensor ``index`` (for tests and tools)."""
        rows, cols = self.layout_.image_shape
        for r in range(rows):
            for c in range(cols):
                if self.layout_.index_at(r, c) == tuple(index):
                    return QPointF(c + 0.5, r + 0.5)
        raise ValueError(f"index {index} is not shown")

    def neuron_center(self, neuron: int) -> QPointF:
        """View coordinates of the middle of ``neuron``'s columns (for tests and tools)."""
        c0, c1 = self.layout_.neuron_columns(neuron)
        return QPointF((c0 + c1) / 2, self.layout_.image_shape[0] / 2)

    # -- selection overlay ---------------------------------------------------------
    def _draw_selection(self) -> None:
        for item in self._overlays:
            self.vb.removeItem(item)
        self._overlays.clear()
        lay = self.layout_
        if lay is None or self.selection.count != lay.neuron_count:
            return
        rows = lay.image_shape[0]
        for first, last in contiguous_runs(self.selection.neurons):
            c0 = lay.neuron_columns(first)[0]
            c1 = lay.neuron_columns(last)[1]
            rect = QGraphicsRectItem(QRectF(c0, 0, c1 - c0, rows))
            rect.setPen(select_pen())
            rect.setBrush(select_brush())
            rect.setZValue(5)
            self.vb.addItem(rect, ignoreBounds=True)
            self._overlays.append(rect)
