"""Bar plot of the L2 norm of each output neuron; clicking bars selects neurons."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from .selection import NeuronSelection

BAR_BRUSH = pg.mkBrush("#74a9cf")
SELECTED_BRUSH = pg.mkBrush("#f08c00")


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
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(110)
        self.plot.setLabel("bottom", "output neuron")
        self.plot.setLabel("left", "L2 norm")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.showGrid(y=True, alpha=0.15)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=BAR_BRUSH)
        self.plot.addItem(self.bars)
        self.title = QLabel("")
        # long text must not widen the pane and squeeze the model tree
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setMinimumWidth(1)  # Ignored alone still honours minimumSizeHint
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.plot, 1)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        selection.changed.connect(self._recolor)

    def set_norms(self, norms: np.ndarray | None, of: str = "") -> None:
        """Plot ``norms`` (one per neuron) of tensor ``of``; None clears."""
        self.norms = norms
        if norms is None or len(norms) == 0:
            self.bars.setOpts(x=[], height=[])
            self.title.setText("No output neurons")
            return
        self.title.setText(f"L2 norm per output neuron of <b>{of}</b> · click bars to select")
        x = np.arange(len(norms))
        self.bars.setOpts(x=x, height=norms, width=0.8)
        self._recolor()
        self.plot.setXRange(-0.6, len(norms) - 0.4, padding=0)
        self.plot.setYRange(0, float(np.max(norms)) * 1.05 or 1.0, padding=0)

    def _recolor(self) -> None:
        if self.norms is None:
            return
        sel = set(self.selection.neurons) if self.selection.count == len(self.norms) else set()
        brushes = [SELECTED_BRUSH if i in sel else BAR_BRUSH for i in range(len(self.norms))]
        self.bars.setOpts(brushes=brushes)

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
