"""Export of plots (PNG, SVG) with pyqtgraph's exporters.

Every plot also keeps pyqtgraph's own context menu (right-click › Export…),
which offers the same formats interactively.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters as pg_exporters

from .plots import uncached_axes

PLOT_FILTER = "PNG image (*.png);;SVG drawing (*.svg)"
TENSOR_FILTER = "NumPy array (*.npy);;CSV table (*.csv)"
#: Width in pixels of exported PNGs (the height keeps the plot's aspect ratio).
PNG_WIDTH = 1600


def export_plot(plot: pg.PlotWidget | pg.PlotItem, path: str | os.PathLike[str]) -> Path:
    """Write ``plot`` to ``path``: ``.png`` (raster, :data:`PNG_WIDTH` wide) or ``.svg`` (vector).

    A path without a suffix gets ``.png``.

    Raises
    ------
    ValueError
        For another suffix.
    OSError
        When the file cannot be written.
    """
    p = Path(path)
    if not p.suffix:
        p = p.with_suffix(".png")
    item = plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot
    suffix = p.suffix.lower()
    if suffix == ".png":
        exporter = pg_exporters.ImageExporter(item)
        exporter.parameters()["width"] = PNG_WIDTH
    elif suffix == ".svg":
        exporter = pg_exporters.SVGExporter(item)
    else:
        raise ValueError(f"export a plot as .png or .svg; got {p.suffix!r}")
    with uncached_axes(item):
        try:
            exporter.export(str(p))
        except ValueError:
            if suffix != ".svg":
                raise
            # pyqtgraph 0.14's SVGExporter cannot parse the closed paths ("... Z") that
            # Qt 6's QSvgGenerator writes (pyqtgraph issue #3495); let Qt write the SVG.
            _qt_svg(item, p)
    if not p.is_file():
        raise OSError(f"{p}: the exporter wrote nothing")
    return p


def _qt_svg(item: pg.PlotItem, path: Path) -> None:
    """Render ``item``'s area of its scene as vector SVG with Qt's QSvgGenerator."""
    from PySide6.QtCore import QRectF, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    rect = item.sceneBoundingRect()
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(QSize(int(rect.width()), int(rect.height())))
    gen.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
    gen.setTitle(path.stem)
    painter = QPainter(gen)
    try:
        item.scene().render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
    finally:
        painter.end()
