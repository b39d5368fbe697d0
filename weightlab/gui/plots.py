"""Plot widgets of the window: pyqtgraph ``PlotWidget`` with cached axes.

Drawing an axis (tick labels are text) is most of the cost of repainting a
plot: about 4 ms per axis with Qt's raster engine, so a window of seven plots
spent 40-100 ms per repaint, and each change of any plot repaints the window.
:func:`plot_widget` gives each axis Qt's ``DeviceCoordinateCache``: an axis
is drawn once into a pixmap and redrawn only when its range, size or labels
change (pyqtgraph calls ``update()`` then), so an unchanged axis costs a
pixmap copy. Exports draw without the cache (:func:`uncached_axes`) so that
scaled PNGs and SVGs get real text, not an enlarged pixmap.

Colours come from :mod:`weightlab.gui.theme`: every plot made by
:func:`plot_widget` takes its background, axes, grid, title and legend
colours (and, in presentation mode, larger tick text) from the theme and
restyles itself on ``theme.signals.changed``; views restyle their own
curves (:func:`pen`, :func:`brush` give themed pens and brushes).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator
from contextlib import contextmanager

import pyqtgraph as pg
from PySide6 import QtGui
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QTextDocument
from PySide6.QtWidgets import QApplication, QGraphicsItem, QLabel, QSizePolicy

from . import theme

_AXES = ("left", "bottom", "right", "top")
_CACHED = QGraphicsItem.CacheMode.DeviceCoordinateCache
_UNCACHED = QGraphicsItem.CacheMode.NoCache


class _ThemeHook(QObject):
    """Child of a plot widget that restyles it on ``theme.signals.changed`` (gone with the widget)."""

    def __init__(self, plot: pg.PlotWidget):
        super().__init__(plot)
        self._plot = plot
        theme.signals.changed.connect(self.apply)

    def apply(self) -> None:
        # pyqtgraph's PlotWidget.close() drops its PlotItem while the widget lives on until deleted
        if getattr(self._plot, "plotItem", None) is None:
            theme.signals.changed.disconnect(self.apply)
            return
        style_plot(self._plot)


def _sync_config() -> None:
    """pyqtgraph's defaults (used by items made later: labels, legends, titles) follow the theme."""
    pg.setConfigOptions(background=theme.color("bg"), foreground=theme.color("fg"))


def tick_font() -> QFont:
    """Font of axis tick labels now: the application's (larger in presentation mode), a little smaller."""
    app = QApplication.instance()
    font = QFont(app.font()) if app is not None else QFont()
    if font.pointSizeF() > 0:
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.9))
    return font


def plot_widget(**kwargs) -> pg.PlotWidget:
    """A themed ``pg.PlotWidget(**kwargs)`` whose four axes are cached (see the module docstring).

    It follows the theme (:func:`style_plot` on every ``theme.signals.changed``).
    """
    _sync_config()
    kwargs.setdefault("background", theme.color("bg"))
    w = pg.PlotWidget(**kwargs)
    for name in _AXES:
        w.getPlotItem().getAxis(name).setCacheMode(_CACHED)
    style_plot(w)
    w._weightlab_theme_hook = _ThemeHook(w)
    return w


def style_plot(plot: pg.PlotWidget) -> None:
    """Give ``plot`` the theme's background, axis, text, title and legend colours and tick font."""
    _sync_config()
    fg, muted, bg = theme.color("fg"), theme.color("muted"), theme.color("bg")
    plot.setBackground(bg)
    item = plot.getPlotItem()
    font = tick_font()
    for name in _AXES:
        axis = item.getAxis(name)
        axis.setPen(pg.mkPen(muted, width=1))  # also the grid's colour (drawn with the grid's alpha)
        axis.setTextPen(pg.mkPen(fg))
        axis.setStyle(tickFont=font)
        widest = getattr(axis, "_weightlab_widest", None)
        if widest is not None:
            reserve_axis_width(plot, widest, name)
    title = item.titleLabel
    if title.text:
        title.setText(title.text, color=fg)
    else:
        title.opts["color"] = fg
    legend = item.legend
    if legend is not None:
        style_legend(legend)


def style_legend(legend: pg.LegendItem) -> None:
    """A legend box in the theme: the background colour, nearly opaque, a grid-coloured frame, fg text."""
    back = theme.color("bg")
    back.setAlpha(215)
    legend.setBrush(pg.mkBrush(back))
    legend.setPen(pg.mkPen(theme.color("grid")))
    legend.setLabelTextColor(theme.color("fg"))


def pen(role: str | QColor, width: float = 1.0, style: Qt.PenStyle = Qt.PenStyle.SolidLine, alpha: int = 255):
    """A cosmetic pen of theme colour ``role`` (or a colour), ``width`` thickened in presentation mode."""
    c = theme.color(role) if isinstance(role, str) else QColor(role)
    if alpha != 255:
        c.setAlpha(alpha)
    return pg.mkPen(c, width=theme.line_width(width), style=style)


def brush(role: str | QColor, alpha: int = 255):
    """A brush of theme colour ``role`` (or a colour) with opacity ``alpha`` (0-255)."""
    c = theme.color(role) if isinstance(role, str) else QColor(role)
    c.setAlpha(alpha)
    return pg.mkBrush(c)


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
    axis._weightlab_widest = widest  # re-reserved when the theme's font changes (style_plot)
    metrics = QFontMetrics(axis.style.get("tickFont") or axis.font())
    axis.setWidth(metrics.horizontalAdvance(widest) + metrics.height() + 20)


def reserve_lines(label: QLabel, lines: int) -> None:
    """Make ``label`` at least ``lines`` text lines high, so that shorter text does not resize its neighbours."""
    metrics = label.fontMetrics()
    margins = label.contentsMargins()
    label.setMinimumHeight(lines * metrics.lineSpacing() + margins.top() + margins.bottom())


class ElidedLabel(QLabel):
    """A one-line label that never widens its pane: text too long for it ends in "…", the full text in the tooltip.

    Rich text (``<b>name</b> ...``) is shown as written when it fits and as
    elided plain text when it does not. :meth:`text` returns the full text
    given to :meth:`setText`.
    """

    def __init__(self, text: str = "", parent=None):
        super().__init__(parent)
        self._full = ""
        self.setWordWrap(False)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(1)  # Ignored alone still honours minimumSizeHint
        self.setText(text)

    def text(self) -> str:
        return self._full

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Show ``text`` (elided to the label's width) and put it whole in the tooltip."""
        self._full = text or ""
        self._refit()

    def is_elided(self) -> bool:
        """Whether the text shown is cut short."""
        return super().text() != self._full

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._refit()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._refit()

    def minimumSizeHint(self):  # noqa: N802 - Qt's name
        hint = super().minimumSizeHint()
        hint.setWidth(1)
        return hint

    def _refit(self) -> None:
        full = self._full
        rich = QtGui.Qt.mightBeRichText(full)  # QtGui's Qt namespace has it, QtCore's not
        if rich:
            doc = QTextDocument()
            doc.setDefaultFont(self.font())
            doc.setHtml(full)
            doc.setDocumentMargin(0)
            plain = doc.toPlainText()
            needed = doc.idealWidth()
        else:
            plain = full
            needed = self.fontMetrics().horizontalAdvance(full)
        available = max(1, self.contentsRect().width() - 2 * self.margin())
        if needed <= available or not full:
            shown = full
        else:
            elided = self.fontMetrics().elidedText(plain, Qt.TextElideMode.ElideRight, available)
            shown = html.escape(elided) if rich else elided
        if super().text() != shown:
            super().setText(shown)
        self.setToolTip(plain if rich else full)


class IntegerAxis(pg.AxisItem):
    """An axis of whole-number positions (neurons, classes, steps): ticks only at integers.

    pyqtgraph's own ticks put labels at -0.5, 0.5 ... on a short axis (a
    4-neuron layer showed -0.5 to 3.5); here every tick level with a spacing
    below 1 is dropped and the remaining values are whole numbers, so zooming
    still thins the labels as pyqtgraph does.
    """

    def tickValues(self, min_val, max_val, size):  # noqa: N802 - pyqtgraph's name
        levels = [(spacing, [v for v in values if float(v).is_integer()])
                  for spacing, values in super().tickValues(min_val, max_val, size) if spacing >= 1]
        levels = [(spacing, values) for spacing, values in levels if values]
        if levels:
            return levels
        first, last = math.ceil(min_val), math.floor(max_val)
        return [(1.0, [float(v) for v in range(first, last + 1)])] if first <= last else []
