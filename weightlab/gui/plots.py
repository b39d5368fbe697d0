"""Plot widgets of the window: pyqtgraph ``PlotWidget`` with cached axes.

Drawing an axis (tick labels are text) is most of the cost of repainting a
plot: about 4 ms per axis with Qt's raster engine, so a window of seven plots
spent 40-100 ms per repaint, and each change of any plot repaints the window.
:func:`plot_widget` gives each axis Qt's ``DeviceCoordinateCache``: an axis
is drawn once into a pixmap and redrawn only when its range, size or labels
change (pyqtgraph calls ``update()`` then), so an unchanged axis costs a
pixmap copy. Exports draw without the cache (:func:`uncached_axes`) so that
scaled PNGs and SVGs get real text, not an enlarged pixmap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QGraphicsItem, QLabel

_AXES = ("left", "bottom", "right", "top")
_CACHED = QGraphicsItem.CacheMode.DeviceCoordinateCache
_UNCACHED = QGraphicsItem.CacheMode.NoCache


def plot_widget(**kwargs) -> pg.PlotWidget:
    """A white ``pg.PlotWidget(**kwargs)`` whose four axes are cached (see the module docstring)."""
    kwargs.setdefault("background", "w")
    w = pg.PlotWidget(**kwargs)
    for name in _AXES:
        w.getPlotItem().getAxis(name).setCacheMode(_CACHED)
    return w


@contextmanager
def uncached_axes(item: pg.PlotItem) -> Iterator[None]:
    """Draw ``item``'s axes without the pixmap cache inside the ``with`` block (for exports)."""
    axes = [item.getAxis(name) for name in _AXES]
    modes = [a.cacheMode() for a in axes]
    for a in axes:
        a.setCacheMode(_UNCACHED)
    try:
        yield
    finally:
        for a, m in zip(axes, modes, strict=True):
            a.setCacheMode(m)


def set_ticks(axis: pg.AxisItem, ticks: list | None) -> None:
    """``axis.setTicks(ticks)`` unless the axis already has exactly these ticks.

    pyqtgraph redraws an axis (tick layout and text, the bulk of a plot's
    repaint) on every ``setTicks``/``setLabel`` call, changed or not; views
    that re-apply the same ticks for each new result call these instead.
    """
    if getattr(axis, "_weightlab_ticks", object()) == ticks:
        return
    axis._weightlab_ticks = ticks
    axis.setTicks(ticks)


def set_label(plot: pg.PlotWidget, side: str, text: str) -> None:
    """``plot.setLabel(side, text)`` unless that axis already shows ``text`` (see :func:`set_ticks`)."""
    axis = plot.getAxis(side)
    if getattr(axis, "_weightlab_label", None) == text:
        return
    axis._weightlab_label = text
    plot.setLabel(side, text)


def reserve_axis_width(plot: pg.PlotWidget, widest: str, side: str = "left") -> None:
    """Give the ``side`` axis a fixed width that fits tick labels as wide as ``widest`` plus a label.

    An axis that sizes itself to its tick labels changes width whenever the
    data's scale does (counts of a preview vs the exact histogram), which
    resizes the plot and redraws everything in it; a fixed width does not.
    """
    axis = plot.getAxis(side)
    metrics = QFontMetrics(axis.style.get("tickFont") or axis.font())
    axis.setWidth(metrics.horizontalAdvance(widest) + metrics.height() + 20)


def reserve_lines(label: QLabel, lines: int) -> None:
    """Make ``label`` at least ``lines`` text lines high, so that shorter text does not resize its neighbours."""
    metrics = label.fontMetrics()
    margins = label.contentsMargins()
    label.setMinimumHeight(lines * metrics.lineSpacing() + margins.top() + margins.bottom())
