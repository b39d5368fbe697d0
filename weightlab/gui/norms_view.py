"""Bar plot of the L2 norm of each output neuron; clicking bars selects neurons."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from . import theme
from .plots import ElidedLabel, IntegerAxis, brush, plot_widget, reserve_axis_width
from .selection import NeuronSelection

#: Light-theme bar colours (the view asks the theme: :func:`bar_brush`, :func:`selected_brush`).
BAR_BRUSH = pg.mkBrush("#74a9cf")
SELECTED_BRUSH = pg.mkBrush("#f08c00")


def bar_brush():
    """Fill of a neuron's bar in the theme shown now."""
    return brush("brush", 200)


def selected_brush():
    """Fill of a selected neuron's bar."""
    return brush("highlight")

#: Width of a bar in neuron units (the gap between bars is the rest).
BAR_WIDTH = 0.8


def bar_outline(index: np.ndarray, heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of one polyline tracing a bar ``[i - w/2, i + w/2] x [0, h]`` per neuron.

    Four points per bar (up, across, down, and along zero to the next), for a
    curve filled down to 0: one path for any number of bars instead of one
    rectangle object each (``pg.BarGraphItem`` took ~230 ms to draw VGG16's
    4,096 fc1 neurons; this path a few ms).
    """
    half = BAR_WIDTH / 2
    x = (np.asarray(index, dtype=np.float64)[:, None] + np.array([-half, -half, half, half])).ravel()
    h = np.asarray(heights, dtype=np.float64)
    y = np.stack([np.zeros_like(h), h, h, np.zeros_like(h)], axis=1).ravel()
    return x, y


class NormsView(QWidget):
    """One bar per output neuron: ``neuron_norms(kernel)`` of the shown tensor's layer.

    Shares the :class:`NeuronSelection` with the heatmap: clicking a bar
    selects that neuron (shift extends, ctrl toggles), selected bars are
    orange.
    """

    def __init__(self, selection: NeuronSelection, parent: QWidget | None = None):
        super().__init__(parent)
        self.selection = selection
        self.norms: np.ndarray | None = None
        self.plot = plot_widget(axisItems={"bottom": IntegerAxis(orientation="bottom")})  # neuron indices
        self.plot.setMinimumHeight(70)  # the centre fits a 800x560 window (tests/test_centre_fits.py)
        self.plot.setLabel("bottom", "output neuron")
        self.plot.setLabel("left", "L2 norm")
        reserve_axis_width(self.plot, "88.888")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.showGrid(y=True, alpha=0.15)
        self.bars = pg.PlotCurveItem(pen=None, brush=bar_brush(), fillLevel=0)
        self.selected_bars = pg.PlotCurveItem(pen=None, brush=selected_brush(), fillLevel=0)
        self.plot.addItem(self.bars)
        self.plot.addItem(self.selected_bars)
        # long text must not widen the pane and squeeze the model tree: elided, whole in the tooltip
        self.title = ElidedLabel("")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)  # rows close together: the centre fits a 800x560 window
        lay.addWidget(self.title)
        lay.addWidget(self.plot, 1)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        selection.changed.connect(self._recolor)
        theme.signals.changed.connect(self.apply_theme)

    def apply_theme(self) -> None:
        """Recolour the bars in the theme shown now (the plot restyles itself)."""
        self.bars.setBrush(bar_brush())
        self.selected_bars.setBrush(selected_brush())
        self.bars.update()
        self.selected_bars.update()

    def clear(self) -> None:
        """Forget the shown model's norms: no bars, no title, the axes back to their default range."""
        self.norms = None
        self.bars.setData([], [])
        self.selected_bars.setData([], [])
        self.title.setText("")
        self.plot.setXRange(0, 1, padding=0)
        self.plot.setYRange(0, 1, padding=0)

    def set_norms(self, norms: np.ndarray | None, of: str = "") -> None:
        """Plot ``norms`` (one per neuron) of tensor ``of``; None clears."""
        self.norms = norms
        if norms is None or len(norms) == 0:
            self.bars.setData([], [])
            self.selected_bars.setData([], [])
            self.title.setText("No output neurons")
            return
        self.title.setText(f"L2 norm per output neuron of <b>{of}</b> · click bars to select")
        self.bars.setData(*bar_outline(np.arange(len(norms)), norms))
        self._recolor()
        self.plot.setXRange(-0.6, len(norms) - 0.4, padding=0)
        self.plot.setYRange(0, float(np.max(norms)) * 1.05 or 1.0, padding=0)

    def _recolor(self) -> None:
        if self.norms is None:
            return
        sel = np.asarray(
            self.selection.neurons if self.selection.count == len(self.norms) else [], dtype=np.int64
        )
        sel = sel[(sel >= 0) & (sel < len(self.norms))]
        self.selected_bars.setData(*bar_outline(sel, self.norms[sel]))

    def neuron_at(self, view_pos: QPointF) -> int | None:
        """Neuron whose bar column contains ``view_pos`` (view coordinates)."""
        if self.norms is None:
            return None
        i = int(math.floor(view_pos.x() + 0.5))
        return i if 0 <= i < len(self.norms) else None

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        neuron = self.neuron_at(vb.mapSceneToView(ev.scenePos()))
        if neuron is not None:
            self.selection.click(neuron, ev.modifiers())
