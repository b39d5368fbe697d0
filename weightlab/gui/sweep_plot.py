"""The plot of a sweep (metric vs value, one line per target) and headless plot files.

:class:`SweepPlot` draws a :class:`~weightlab.core.sweeps.SweepResult` that
grows point by point: one line per target (the spec's metric, accuracy or
agreement, in percent, against the parameter's value), a shaded 95 % Wilson
band around each line, the baseline as a horizontal line, the budget
(baseline minus ``budget_pp``) as a dashed line, a legend (coupled group
targets are marked), and a log value axis for ``spec.scale == "log"``.
Clicking a point emits :attr:`SweepPlot.pointClicked`.

:func:`save_plot` writes a sweep's plot, or a ranking's bar chart of the
accuracy drop per unit, as PNG or SVG, with or without a window (the command
line's ``--plot FILE.png``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

from ..core.sweeps import RankResult, SweepResult
from . import theme
from .plots import pen, plot_widget, style_legend

__all__ = ["SweepPlot", "RankBars", "save_plot", "target_colour", "EXPORT_SIZE"]

#: Okabe & Ito's colour-blind-safe palette (less its black and yellow, which read badly on white).
_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#332288", "#882255", "#117733")
#: Size in pixels of the widget :func:`save_plot` draws (the PNG is :data:`~weightlab.gui.export.PNG_WIDTH`
#: wide and keeps this aspect ratio).
EXPORT_SIZE = (800, 500)
#: Smallest plot (width, height in pixels) that shows its legend (the table's target colours stand in).
LEGEND_MIN = (420, 240)
#: Targets drawn with a legend entry; more get lines without one (a legend of 200 names hides the plot).
MAX_LEGEND = 12


def target_colour(i: int) -> QColor:
    """The colour of the ``i``-th target's line (cycling through a colour-blind-safe palette).

    On a dark theme the palette's darker colours are lightened so they stay readable on the dark plot.
    """
    c = QColor(_PALETTE[i % len(_PALETTE)])
    if theme.is_dark() and c.lightness() < 140:
        c = c.lighter(100 + 2 * (150 - c.lightness()))
    return c


def _percent(x: float | None) -> float:
    return math.nan if x is None else 100.0 * float(x)


def _is_coupled(result: SweepResult, target: str) -> bool:
    return target.startswith("group:") or result.notes.get(target, "").startswith("coupled group")


class SweepPlot(QWidget):
    """A sweep's curves, redrawn from a :class:`SweepResult` by :meth:`show_result`.

    Signals
    -------
    pointClicked(str, float)
        A measured point was clicked: its target and value.
    """

    pointClicked = Signal(str, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = plot_widget()
        self.plot.setMinimumSize(200, 150)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("left", "accuracy (%)")
        self.plot.setLabel("bottom", "value")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)  # "0.1", not "100 (x0.001)"
        self.legend = self.plot.addLegend(offset=(-10, -10), labelTextSize="9pt")
        style_legend(self.legend)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self.result: SweepResult | None = None
        #: ``{target: (line, band, scatter)}`` of the drawn result (tests and exports read them).
        self.curves: dict[str, tuple[pg.PlotDataItem, pg.FillBetweenItem | None, pg.ScatterPlotItem]] = {}
        self.baseline_line: pg.InfiniteLine | None = None
        self.budget_line: pg.InfiniteLine | None = None
        self._log: bool | None = None
        self._budget_pp: float | None = None
        theme.signals.changed.connect(self.apply_theme)

    def apply_theme(self) -> None:
        """Redraw the shown result in the theme's colours and line widths (the plot restyles itself)."""
        style_legend(self.legend)
        if self.result is not None:
            self.show_result(self.result, self._budget_pp)

    def resizeEvent(self, event: Any) -> None:
        """Hide the legend when the plot is too small for it to leave the curves visible."""
        super().resizeEvent(event)
        self.legend.setVisible(self.width() >= LEGEND_MIN[0] and self.height() >= LEGEND_MIN[1])

    def clear(self) -> None:
        """Remove every curve and line, and the axis labels of the last result."""
        self.plot.getPlotItem().clear()
        self.legend.clear()
        self.curves = {}
        self.baseline_line = self.budget_line = None
        self.result = None
        self._budget_pp = None
        self.plot.setLabel("left", "accuracy (%)")
        self.plot.setLabel("bottom", "value")

    def show_result(self, result: SweepResult | None, budget_pp: float | None = None) -> None:
        """Draw ``result`` (all of it: a few hundred points are cheap); None clears.

        ``budget_pp`` overrides the spec's budget for the dashed line (None: the spec's).
        """
        self.clear()
        if result is None:
            return
        self.result = result
        self._budget_pp = budget_pp
        spec = result.spec
        metric = spec.metric
        pi = self.plot.getPlotItem()
        log = spec.scale == "log"
        if log != self._log:
            pi.setLogMode(x=log, y=False)
            self._log = log
        self.plot.setLabel("left", f"{metric} (%)")
        self.plot.setLabel("bottom", f"{spec.op}.{spec.param}" + (" (log)" if log else ""))
        base = result.baseline.metric(metric)
        if base is not None:
            self.baseline_line = pg.InfiniteLine(pos=100.0 * base, angle=0, pen=pen("muted", 1.5), movable=False,
                                                 label=f"baseline {100.0 * base:.2f} %",
                                                 labelOpts={"position": 0.02, "color": theme.color("muted"),
                                                            "anchors": [(0, 1), (0, 1)]})
            pi.addItem(self.baseline_line, ignoreBounds=False)
            budget = spec.budget_pp if budget_pp is None else budget_pp
            if budget is not None:
                dash = pen("negative", 1.5, Qt.PenStyle.DashLine)
                self.budget_line = pg.InfiniteLine(pos=100.0 * base - budget, angle=0, pen=dash, movable=False,
                                                   label=f"budget −{budget:g} pp",
                                                   labelOpts={"position": 0.98, "color": theme.color("negative"),
                                                              "anchors": [(1, 0), (1, 0)]})
                pi.addItem(self.budget_line)
        targets = result.targets()
        self.legend.setColumnCount(2 if len(targets) > 4 else 1)
        for i, target in enumerate(targets):
            self._draw_target(result, target, target_colour(i), legend=i < MAX_LEGEND)
        self._fit_values(spec, pi, log)

    @staticmethod
    def _fit_values(spec: Any, pi: Any, log: bool) -> None:
        """The x axis spans the values the sweep asks for (not just those measured so far: a sweep
        stopped early at its first value would otherwise be centred on it, with negative fractions shown)."""
        planned = [float(v) for v in (spec.adaptive or spec.initial_values())]
        if log:
            planned = [math.log10(v) for v in planned if v > 0]
        if len(planned) >= 2 and max(planned) > min(planned):
            pi.setXRange(min(planned), max(planned), padding=0.05)
        else:
            pi.enableAutoRange(x=True)

    def _draw_target(self, result: SweepResult, target: str, colour: QColor, legend: bool) -> None:
        metric = result.spec.metric
        pts = {p.value: p for p in result.points if p.target == target and p.value is not None}
        values = np.asarray(result.spec.ordered(pts), np.float64)
        order = np.argsort(values)  # draw left to right (a "down" parameter is stored strongest last)
        values = values[order]
        ps = [pts[v] for v in values]
        ys = np.array([_percent(p.metric(metric)) for p in ps])
        ci_name = "accuracy_ci" if metric == "accuracy" else "agreement_ci"
        cis = [getattr(p, ci_name) for p in ps]
        pi = self.plot.getPlotItem()
        name = ("⛓ " if _is_coupled(result, target) else "") + target
        line = pg.PlotDataItem(values, ys, pen=pen(colour, 2), name=name if legend else None)
        band = None
        if len(values) >= 2 and all(c is not None for c in cis):
            lo = pg.PlotDataItem(values, [100.0 * c[0] for c in cis], pen=pg.mkPen(None))
            hi = pg.PlotDataItem(values, [100.0 * c[1] for c in cis], pen=pg.mkPen(None))
            fill = QColor(colour)
            fill.setAlpha(45)
            band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(fill))
            for item in (lo, hi):
                pi.addItem(item)
            pi.addItem(band)
        pi.addItem(line)
        scatter = pg.ScatterPlotItem(values, ys, size=8 * theme.line_width(1) ** 0.5, pen=pg.mkPen(colour), brush=pg.mkBrush(colour),
                                     data=[(target, float(v)) for v in values], hoverable=True,
                                     tip=lambda x, y, data: f"{data[0]}\nvalue {data[1]:g}\n{metric} {y:.2f} %")
        scatter.sigClicked.connect(self._clicked)
        pi.addItem(scatter)
        self.curves[target] = (line, band, scatter)

    def _clicked(self, _item: Any, points: Any, _ev: Any = None) -> None:
        if len(points):
            target, value = points[0].data()
            self.pointClicked.emit(str(target), float(value))


class RankBars(QWidget):
    """A ranking's accuracy drop per unit in percentage points, largest first, as bars.

    Units whose ablation raises accuracy (negative drop) are drawn in a second colour.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = plot_widget()
        self.plot.showGrid(y=True, alpha=0.25)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self.bars: pg.BarGraphItem | None = None
        self.result: RankResult | None = None
        theme.signals.changed.connect(self.apply_theme)

    def apply_theme(self) -> None:
        """Redraw the shown ranking in the theme's colours (the plot restyles itself)."""
        if self.result is not None:
            self.show_result(self.result)

    def show_result(self, result: RankResult) -> None:
        """Draw ``result``'s units (those with a known drop), in its order."""
        self.result = result
        pi = self.plot.getPlotItem()
        pi.clear()
        units = [u for u in result.units if u.drop is not None]
        heights = np.array([100.0 * u.drop for u in units], np.float64)  # type: ignore[operator]
        x = np.arange(len(units), dtype=np.float64)
        up, down = target_colour(0), target_colour(1)
        brushes = [pg.mkBrush(down if h < 0 else up) for h in heights]
        self.bars = pg.BarGraphItem(x=x, height=heights, width=0.8, brushes=brushes, pen=pg.mkPen(None))
        pi.addItem(self.bars)
        pi.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=pen("muted")))
        by = "accuracy" if result.baseline.accuracy is not None else "agreement"
        self.plot.setLabel("left", f"{by} drop (pp)")
        self.plot.setLabel("bottom", f"unit of {result.spec.layer}, most important first ({result.spec.ablation} ablation)")
        step = max(1, math.ceil(len(units) / 32))
        self.plot.getAxis("bottom").setTicks([[(float(i), str(u.index)) for i, u in enumerate(units)][::step]])


def _application() -> QApplication:
    """The running QApplication, or a new offscreen one (kept for the process's life)."""
    app = QApplication.instance()
    if app is None:
        global _APP
        _APP = QApplication(["weightlab", "-platform", "offscreen"])
        app = _APP
    return app  # type: ignore[return-value]


_APP: QApplication | None = None


def save_plot(result: SweepResult | RankResult, path: str | os.PathLike[str]) -> Path:
    """Write a sweep's curves or a ranking's bars to ``path``: PNG or SVG by its suffix.

    Works with or without a window: without a running QApplication one is
    created on Qt's offscreen platform (no display needed). The plot is drawn
    at :data:`EXPORT_SIZE`; a PNG is :data:`~weightlab.gui.export.PNG_WIDTH`
    pixels wide with the same aspect ratio (1600 x 1000).

    Parameters
    ----------
    result:
        A :class:`~weightlab.core.sweeps.SweepResult` (one line per target)
        or a :class:`~weightlab.core.sweeps.RankResult` (bars of the drop per
        unit, largest first).
    path:
        The file; ``.png`` or ``.svg`` (no suffix: ``.png``).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        For another suffix (checked before drawing).
    TypeError
        When ``result`` is neither result type.
    OSError
        When the file cannot be written.
    """
    from .export import export_plot

    p = Path(path)
    if p.suffix.lower() not in ("", ".png", ".svg"):
        raise ValueError(f"{p}: save a plot as .png or .svg; got {p.suffix!r}")
    if not isinstance(result, (SweepResult, RankResult)):
        raise TypeError(f"save_plot: expected a SweepResult or a RankResult; got {type(result).__name__}")
    _application()
    widget: SweepPlot | RankBars = SweepPlot() if isinstance(result, SweepResult) else RankBars()
    try:
        widget.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        widget.resize(*EXPORT_SIZE)
        widget.show()  # lays the plot out at its size (never on screen)
        widget.show_result(result)  # type: ignore[arg-type]
        QApplication.processEvents()
        return export_plot(widget.plot, p)
    finally:
        widget.close()
        widget.deleteLater()
