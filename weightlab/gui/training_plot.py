"""The Training tab's plots: live curves of a fine-tune, prune-and-retrain rounds, the schedule preview.

:class:`TrainingPlot` draws what a training job streams (the job's progress
partials, see :mod:`weightlab.core.training`): the loss of every batch and
the training/validation loss per epoch; training, validation and held-out
accuracy per epoch; the watched tensor's histogram after each epoch over its
pre-training distribution (the grey ghost, as the histogram view draws the
original); and either the sparsity applied at each step (gradual pruning) or
sparsity and held-out accuracy per round (prune-and-retrain). A status line
says the elapsed time, the estimated time left and the device.

:class:`SchedulePlot` is the small rate-vs-step preview of a learning-rate
schedule, drawn before training starts from
:meth:`weightlab.core.schedules.LRSchedule.values` (a NumPy mirror of Keras'
schedule formulas).

Nothing here computes more than appending a point or drawing arrays it is
given; histograms are counted by the controller off the window's thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from . import theme
from .histogram_view import current_brush, current_pen, ghost_brush, ghost_pen
from .plots import pen, plot_widget

__all__ = ["TrainingPlot", "SchedulePlot", "histogram_pair", "format_duration"]

#: Light-theme colours of the curves (Okabe & Ito); :func:`colours` gives those of the theme shown now.
TRAIN_COLOUR = "#0072B2"
VAL_COLOUR = "#D55E00"
HELDOUT_COLOUR = "#009E73"
BATCH_PEN = pg.mkPen(0, 114, 178, 90, width=1)
SPARSITY_COLOUR = "#CC79A7"


def colours() -> dict[str, str]:
    """``{"train", "val", "heldout", "sparsity", "batch", "before", "now"}``: ``#rrggbb`` in the theme shown now.

    The light theme keeps the colour-blind-safe palette above; the dark one lightens its dark colours.
    """
    from .sweep_plot import target_colour  # the same lightening of the same palette

    train, val, heldout, sparsity = (target_colour(i).name() for i in (0, 1, 2, 3))
    batch = QColor(train)
    batch = batch.lighter(140) if not theme.is_dark() else batch.darker(130)
    return {"train": train, "val": val, "heldout": heldout, "sparsity": sparsity, "batch": batch.name(),
            "before": theme.css("muted"), "now": theme.css("accent")}
#: Bins of the watched tensor's histogram.
HIST_BINS = 80


def format_duration(seconds: float | None) -> str:
    """``"1 h 02 min"``, ``"3 min 05 s"``, ``"12 s"``; ``"–"`` for None or not finite."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def histogram_pair(before: np.ndarray, after: np.ndarray, bins: int = HIST_BINS, *,
                   drop_zeros: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(edges, ghost counts, current counts)``: both tensors counted on the same equal-width bins.

    The bins span the finite values of both arrays, so the pre-training
    ghost and the current histogram line up; this is ``np.histogram`` of
    each with those edges (NaN and infinities are not counted).
    ``drop_zeros``: exact zeros are not counted in either (masked weights
    kept at zero would otherwise be one bin that flattens the rest).

    Parameters
    ----------
    before, after:
        The tensor before training and now (any shape; float).
    bins:
        Number of bins.
    drop_zeros:
        Leave exact zeros out of both histograms (and out of the bins' span).

    Returns
    -------
    edges : ndarray, float64, shape (bins + 1,)
    ghost, counts : ndarray, int64, shape (bins,)
    """
    a = np.asarray(before).ravel()
    b = np.asarray(after).ravel()
    fa, fb = a[np.isfinite(a)], b[np.isfinite(b)]
    if drop_zeros:
        fa, fb = fa[fa != 0], fb[fb != 0]
    both = [x for x in (fa, fb) if x.size]
    if both:
        lo = float(min(x.min() for x in both))
        hi = float(max(x.max() for x in both))
    else:
        lo, hi = 0.0, 1.0
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    ghost = np.histogram(fa, edges)[0].astype(np.int64)
    counts = np.histogram(fb, edges)[0].astype(np.int64)
    return edges, ghost, counts


class _Series:
    """x and y values appended one at a time (a plot item's data)."""

    def __init__(self) -> None:
        self.x: list[float] = []
        self.y: list[float] = []

    def add(self, x: float, y: float | None) -> None:
        self.x.append(float(x))
        self.y.append(math.nan if y is None else float(y))

    def clear(self) -> None:
        self.x.clear()
        self.y.clear()

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.x, dtype=np.float64), np.asarray(self.y, dtype=np.float64)


def _small_plot(bottom: str, left: str) -> pg.PlotWidget:
    p = plot_widget()
    p.setLabel("bottom", bottom)
    p.setLabel("left", left)
    p.showGrid(x=True, y=True, alpha=0.15)
    p.setMinimumSize(150, 120)
    p.setMouseEnabled(x=True, y=False)
    for axis in ("bottom", "left"):
        p.getAxis(axis).enableAutoSIPrefix(False)
    if bottom in ("epoch", "step"):
        integer_ticks(p.getAxis("bottom"))
    return p


def integer_ticks(axis: pg.AxisItem) -> None:
    """Ticks of ``axis`` at whole numbers only (epochs, rounds, steps): never 1.5 or 2.5."""
    auto = axis.tickValues

    def tick_values(lo: float, hi: float, size: float) -> list[tuple[float, list[float]]]:
        out: list[tuple[float, list[float]]] = []
        for spacing, values in auto(lo, hi, size):
            if spacing < 1:
                if any(sp == 1 for sp, _v in out):
                    continue
                spacing, values = 1.0, list(np.arange(math.ceil(lo), math.floor(hi) + 1, dtype=np.float64))
            else:
                values = [v for v in values if float(v).is_integer()]
            out.append((spacing, values))
        return out

    axis.tickValues = tick_values  # type: ignore[method-assign]


def _pen(colour: str, *, dash: bool = False, width: float = 2.0) -> Any:
    return pen(QColor(colour), width, Qt.PenStyle.DashLine if dash else Qt.PenStyle.SolidLine)


#: What the histogram shows (its tooltip, under the whole title).
HISTOGRAM_TIP = "the watched tensor's histogram: before training (grey) and now"


class TrainingPlot(QWidget):
    """Four live plots of a training job and a status line.

    Attributes
    ----------
    loss, accuracy, histogram, sparsity:
        The four ``pg.PlotWidget`` s (top left to bottom right).
    curves:
        The plot items by name: ``batch_loss``, ``loss``, ``val_loss``,
        ``accuracy``, ``val_accuracy``, ``heldout_accuracy``, ``ghost``,
        ``current``, ``sparsity``, ``round_sparsity``, ``round_accuracy``.
    status:
        Elapsed time, ETA and device.
    tensor_name, histogram_epoch:
        The tensor whose histogram is drawn, and after which epoch (None: before training).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss = _small_plot("epoch", "loss")
        self.accuracy = _small_plot("epoch", "%")
        self.histogram = _small_plot("value", "count")
        self.histogram.getViewBox().sigResized.connect(self._refit_hist_title)
        self.sparsity = _small_plot("step", "%")
        self.curves: dict[str, pg.PlotDataItem] = {}
        c = self.curves
        # no legend boxes (they cover the curves in a small plot): the titles name the colours
        for p, text in ((self.accuracy, "accuracy (%) per epoch: training, validation and held-out data"),
                        (self.histogram, HISTOGRAM_TIP),
                        (self.sparsity, "gradual pruning: sparsity at each step where masks change; "
                                        "prune and retrain: sparsity and held-out accuracy per round")):
            p.setToolTip(text)
        c["batch_loss"] = self.loss.plot([], [], pen=BATCH_PEN, name="batch")
        c["loss"] = self.loss.plot([], [], pen=_pen(TRAIN_COLOUR), symbol="o", symbolSize=5,
                                   symbolBrush=TRAIN_COLOUR, symbolPen=None, name="train")
        c["val_loss"] = self.loss.plot([], [], pen=_pen(VAL_COLOUR), symbol="o", symbolSize=5,
                                       symbolBrush=VAL_COLOUR, symbolPen=None, name="validation")
        c["accuracy"] = self.accuracy.plot([], [], pen=_pen(TRAIN_COLOUR), symbol="o", symbolSize=5,
                                           symbolBrush=TRAIN_COLOUR, symbolPen=None, name="train")
        c["val_accuracy"] = self.accuracy.plot([], [], pen=_pen(VAL_COLOUR), symbol="o", symbolSize=5,
                                               symbolBrush=VAL_COLOUR, symbolPen=None, name="validation")
        c["heldout_accuracy"] = self.accuracy.plot([], [], pen=_pen(HELDOUT_COLOUR), symbol="s", symbolSize=6,
                                                   symbolBrush=HELDOUT_COLOUR, symbolPen=None, name="held-out")
        c["ghost"] = pg.PlotDataItem(stepMode="center", fillLevel=0, pen=ghost_pen(), brush=ghost_brush())
        c["ghost"].setZValue(-1)
        c["current"] = pg.PlotDataItem(stepMode="center", fillLevel=0, pen=current_pen(), brush=current_brush())
        self.histogram.addItem(c["ghost"])
        self.histogram.addItem(c["current"])
        self.histogram.setMouseEnabled(x=True, y=False)
        c["sparsity"] = self.sparsity.plot([], [], pen=_pen(SPARSITY_COLOUR), stepMode=None)
        c["round_sparsity"] = self.sparsity.plot([], [], pen=_pen(SPARSITY_COLOUR), symbol="o", symbolSize=7,
                                                 symbolBrush=SPARSITY_COLOUR, symbolPen=None, name="sparsity")
        c["round_accuracy"] = self.sparsity.plot([], [], pen=_pen(HELDOUT_COLOUR), symbol="s", symbolSize=7,
                                                 symbolBrush=HELDOUT_COLOUR, symbolPen=None, name="held-out acc.")
        self._series: dict[str, _Series] = {k: _Series() for k in c if k not in ("ghost", "current")}
        self.status = QLabel("")
        # one line, no word wrap: a wrapping label gives the layout a height-for-width, and the scroll
        # area around the plots then sizes them to their (tall) size hints instead of its viewport
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(4)
        grid.addWidget(self.loss, 0, 0)
        grid.addWidget(self.accuracy, 0, 1)
        grid.addWidget(self.histogram, 1, 0)
        grid.addWidget(self.sparsity, 1, 1)
        for i in (0, 1):  # the rows share the height equally (also when the histogram spans the second)
            grid.setRowStretch(i, 1)
            grid.setColumnStretch(i, 1)
        self._grid = grid
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        #: The status line's row (a panel may add buttons to it).
        self.top = QHBoxLayout()
        self.top.setSpacing(4)
        self.top.addWidget(self.status, 1)
        lay.addLayout(self.top)
        lay.addLayout(grid, 1)
        self.steps_per_epoch: int | None = None
        self.tensor_name: str | None = None
        self._rounds = False
        self.clear()
        self.apply_theme()
        theme.signals.changed.connect(self.apply_theme)

    #: Curve name -> (colour key of :func:`colours`, symbol or None, symbol size, line width).
    _STYLE = {
        "batch_loss": ("batch", None, 0, 1.0),
        "loss": ("train", "o", 5, 2.0),
        "val_loss": ("val", "o", 5, 2.0),
        "accuracy": ("train", "o", 5, 2.0),
        "val_accuracy": ("val", "o", 5, 2.0),
        "heldout_accuracy": ("heldout", "s", 6, 2.0),
        "sparsity": ("sparsity", None, 0, 2.0),
        "round_sparsity": ("sparsity", "o", 7, 2.0),
        "round_accuracy": ("heldout", "s", 7, 2.0),
    }

    def apply_theme(self) -> None:
        """Recolour every curve and title in the theme shown now (the plots restyle themselves)."""
        k = colours()
        for name, (key, symbol, size, width) in self._STYLE.items():
            item = self.curves[name]
            item.setPen(_pen(k[key], width=width))
            if symbol is not None:
                item.setSymbolBrush(k[key])
                item.setSymbolSize(size * theme.line_width(1.0) ** 0.5)
        self.curves["ghost"].setPen(ghost_pen())
        self.curves["ghost"].setBrush(ghost_brush())
        self.curves["current"].setPen(current_pen())
        self.curves["current"].setBrush(current_brush())
        self._titles()

    def _titles(self) -> None:
        k = colours()
        self.accuracy.setTitle(_title(("acc.", None), ("train", k["train"]), ("val", k["val"]),
                                      ("held-out", k["heldout"])))
        self.loss.setTitle(_title(("loss", None), ("batch", k["batch"]), ("train", k["train"]), ("val", k["val"]))
                           + (" " + _title(("(incl. L1/L2 penalty)", None)) if self.penalty else ""))
        self.sparsity.setTitle(_title(("rounds", None), ("sparsity", k["sparsity"]),
                                      ("held-out acc.", k["heldout"])) if self._rounds
                               else _title(("pruning", None), ("sparsity of the pruned tensors", k["sparsity"])))
        self._hist_title(self.tensor_name or "weights", self.histogram_epoch, self.histogram_note)

    # -- state ----------------------------------------------------------------------------
    def clear(self, *, rounds: bool = False, pruning: bool = True, penalty: bool = False) -> None:
        """Forget every curve (a new job starts).

        ``rounds``: the sparsity plot shows rounds; neither ``rounds`` nor
        ``pruning``: the job prunes nothing, the sparsity plot is hidden and
        the histogram takes its place. ``penalty``: the job has L1/L2
        regularizers, whose penalty Keras adds to the training and validation
        loss (the loss plot's title says so).
        """
        self.loss.setToolTip("loss: per batch (thin), per epoch on the training and validation data"
                             + ("; both include the L1/L2 penalty Keras adds (the held-out evaluation does not)"
                                if penalty else ""))
        self.penalty = penalty
        shown = rounds or pruning
        self.sparsity.setVisible(shown)
        self._grid.removeWidget(self.histogram)
        self._grid.addWidget(self.histogram, 1, 0, 1, 1 if shown else 2)
        for s in self._series.values():
            s.clear()
        for item in self.curves.values():
            item.setData([], [])
        self.steps_per_epoch = None
        self.tensor_name = None
        self.histogram_epoch: int | None = None
        self.histogram_note = ""
        self._rounds = rounds
        self.sparsity.setLabel("bottom", "round" if rounds else "step")
        self._titles()
        self.status.setText("")

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The ``(x, y)`` values of curve ``name`` (y in the plot's units: percent for accuracies)."""
        return self._series[name].arrays()

    def _add(self, name: str, x: float, y: float | None) -> None:
        s = self._series[name]
        s.add(x, y)
        x_arr, y_arr = s.arrays()
        self.curves[name].setData(x_arr, y_arr, connect="finite")

    # -- partials -------------------------------------------------------------------------
    def add_batch(self, partial: Mapping[str, Any], offset: int = 0) -> None:
        """A ``{"type": "batch", "epoch", "batch", "batches", "step", "loss", ...}`` partial.

        The batch's loss is drawn at fractional epoch ``offset + epoch - 1 + batch / batches``
        (1-based epochs, so the per-epoch points at whole epochs end each stretch; ``offset``:
        the epochs of earlier prune-and-retrain rounds).
        """
        batches = int(partial.get("batches") or 0)
        if batches > 0:
            self.steps_per_epoch = batches
            x = offset + int(partial["epoch"]) - 1 + int(partial["batch"]) / batches
        else:
            x = float(partial.get("step", 0))
        self._add("batch_loss", x, _num(partial.get("loss")))

    def add_epoch(self, partial: Mapping[str, Any], offset: int = 0) -> None:
        """An ``{"type": "epoch", **EpochRecord fields, ...}`` partial: the per-epoch points (accuracies in %)
        at epoch ``offset + epoch``."""
        e = offset + int(partial["epoch"])
        self._add("loss", e, _num(partial.get("loss")))
        self._add("val_loss", e, _num(partial.get("val_loss")))
        for key in ("accuracy", "val_accuracy", "heldout_accuracy"):
            v = _num(partial.get(key))
            self._add(key, e, None if v is None else 100.0 * v)

    def add_start(self, heldout_accuracy: float | None) -> None:
        """The held-out accuracy before training (0..1), drawn at epoch 0 (None: not known, nothing drawn)."""
        v = _num(heldout_accuracy)
        if v is not None and not self._series["heldout_accuracy"].x:
            self._add("heldout_accuracy", 0, 100.0 * v)

    def add_sparsity(self, step: int, sparsity: float) -> None:
        """Gradual pruning set its masks at ``step`` to ``sparsity`` (0..1; drawn in %)."""
        self._add("sparsity", step, 100.0 * float(sparsity))

    def add_round(self, partial: Mapping[str, Any]) -> None:
        """A ``{"type": "round", "round", "sparsity", "accuracy", ...}`` partial (percent)."""
        r = int(partial["round"])
        s, a = _num(partial.get("sparsity")), _num(partial.get("accuracy"))
        self._add("round_sparsity", r, None if s is None else 100.0 * s)
        self._add("round_accuracy", r, None if a is None else 100.0 * a)

    def set_histogram(self, name: str, edges: np.ndarray, ghost: np.ndarray, counts: np.ndarray,
                      epoch: int | None = None, note: str = "") -> None:
        """Draw tensor ``name``'s histogram now (``counts``) over its pre-training one (``ghost``);
        ``note`` (e.g. ``"32,768 weights, 26,214 zeros not drawn"``) is added to the title."""
        self.tensor_name = name
        self.histogram_epoch = epoch
        self.histogram_note = note
        self.curves["ghost"].setData(edges, ghost.astype(np.float64))
        self.curves["current"].setData(edges, counts.astype(np.float64))
        self._hist_title(name, epoch, note)

    def _hist_title(self, name: str, epoch: int | None, note: str = "") -> None:
        """The histogram's title, elided to the plot's width (the note first, then the name's middle).

        The whole title is in the plot's tooltip; the title is redone when the plot is resized.
        """
        when = "now" if epoch is None else f"epoch {epoch}"
        k = colours()
        full = f"{name} ■ before ■ {when}" + (f" ({note})" if note else "")
        self.histogram.setToolTip(f"{full}\n{HISTOGRAM_TIP}")
        # 9pt as _title draws it, over the plotting area (the title's column: the axis takes the left)
        metrics = QFontMetrics(QFont(self.font().family(), 9))
        room = int(self.histogram.getViewBox().width()) - 8
        sized = room > 8
        if sized and note and metrics.horizontalAdvance(full) > room:
            note = ""  # the note goes first (it stays in the tooltip)
        tail = f" ■ before ■ {when}" + (f" ({note})" if note else "")
        if sized:
            name = metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, max(room - metrics.horizontalAdvance(tail),
                                                                                metrics.horizontalAdvance("a…z")))
        parts = [(_esc(name), None), ("before", k["before"]), (when, k["now"])]
        if note:
            parts.append((f"({_esc(note)})", None))
        self.histogram.setTitle(_title(*parts))
        # pyqtgraph makes a title's width the plot's minimum: a long one widened the plot past its widget
        self.histogram.getPlotItem().titleLabel.setMinimumWidth(0)

    def _refit_hist_title(self, *_args: Any) -> None:
        if getattr(self, "histogram_note", None) is not None:
            self._hist_title(self.tensor_name or "weights", self.histogram_epoch, self.histogram_note)

    def set_status(self, *, elapsed: float | None, eta: float | None, device: str, text: str = "") -> None:
        """The status line: ``text · elapsed 12 s · ETA 40 s · device``."""
        parts = [text] if text else []
        parts.append(f"elapsed {format_duration(elapsed)}")
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        if device:
            parts.append(device)
        self.status.setText(" · ".join(parts))
        self.status.setToolTip(self.status.text())


class SchedulePlot(QWidget):
    """The learning rate against the training step, drawn before training starts.

    :meth:`show_values` draws ``rates[i]`` at step ``i``; :meth:`show_message`
    replaces the curve with a short reason (no schedule, a field that does not parse).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = plot_widget()
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "learning rate")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setMinimumHeight(110)
        self.plot.setMaximumHeight(150)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)  # rates read as written (0.001), not in units of 1e-3
        self.curve = self.plot.plot([], [], pen=_pen(colours()["train"]))
        self.epochs = pg.InfiniteLine(angle=90, pen=pen("muted", 1, Qt.PenStyle.DotLine))
        self.epochs.hide()
        self.plot.addItem(self.epochs)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        lay.addWidget(self.plot)
        lay.addWidget(self.message)
        theme.signals.changed.connect(self.apply_theme)

    def apply_theme(self) -> None:
        """Recolour the curve and the epoch line in the theme shown now (the plot restyles itself)."""
        self.curve.setPen(_pen(colours()["train"]))
        self.epochs.setPen(pen("muted", 1, Qt.PenStyle.DotLine))

    def show_values(self, rates: np.ndarray, caption: str = "") -> None:
        """Draw ``rates`` (float, one per step from step 0) and a caption under the plot."""
        r = np.asarray(rates, dtype=np.float64)
        self.show_curve(np.arange(r.size, dtype=np.float64), r, caption)

    def show_curve(self, steps: np.ndarray, rates: np.ndarray, caption: str = "") -> None:
        """Draw ``rates[i]`` at step ``steps[i]``, the rate axis from 0 to just above the largest rate.

        A fixed range from 0 keeps a constant rate a flat line at its height
        (auto-ranging a flat curve zoomed into round-off around it).
        """
        r = np.asarray(rates, dtype=np.float64)
        self.curve.setData(np.asarray(steps, dtype=np.float64), r)
        finite = r[np.isfinite(r)]
        top = float(finite.max()) if finite.size else 0.0
        self.plot.setYRange(0.0, top * 1.1 if top > 0 else 1.0, padding=0)
        self.message.setText(caption)

    def show_message(self, text: str) -> None:
        """No curve: say why."""
        self.curve.setData([], [])
        self.message.setText(text)

    def values(self) -> np.ndarray:
        """The rates drawn (empty when none)."""
        _x, y = self.curve.getData()
        return np.asarray([] if y is None else y, dtype=np.float64)


def _title(*parts: tuple[str, str | None]) -> str:
    """A small plot title whose words are coloured like the curves they name (``(text, colour or None)``)."""
    spans = [f"<span style='color:{c}'>■ {t}</span>" if c else t for t, c in parts]
    return "<span style='font-size:9pt'>" + " ".join(spans) + "</span>"


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
