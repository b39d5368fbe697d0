"""The *Ranking* tab: which output neurons of a layer the model relies on.

:class:`RankingView` shows a neuron ablation ranking
(:class:`~weightlab.core.sweeps.RankResult`): one bar per unit, the accuracy
drop (percentage points) its ablation costs, largest first, with the 95 %
Wilson interval of the ablated accuracy as error bars; units whose removal
*raises* accuracy in their own colour; the cumulative curves (the ``k`` most
and the ``k`` least important units ablated together) in a second plot; and a
table. It is a view: it asks for rankings, cancels, exports and picks units
through its signals, and :class:`~weightlab.gui.controllers.ranking.RankingController`
answers them (the job, the window's neuron selection, the files).

Picking follows list views, in the order of the bars: a click picks one
unit, shift extends from the last clicked bar over the bars between, ctrl
toggles one. The units picked become the window's neuron selection (the
heatmap columns and the norm plot show the same units); the selection is
drawn back here (:meth:`RankingView.set_highlight`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPointF,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QBrush, QColor, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.sweeps import ABLATIONS, RankResult, RankSpec, UnitAblation

from . import theme
from .norms_view import BAR_WIDTH, SELECTED_BRUSH, bar_outline
from .plots import plot_widget, reserve_lines, set_label, set_ticks
from .scroll_page import scroll_page

__all__ = ["NARROW", "RankingView", "RankTableModel", "drop_interval_pp", "raising_color"]

# Colours come from the theme (weightlab.gui.theme), looked up when drawn:
#: Theme role of the bars of units whose ablation costs accuracy.
DROP_ROLE = "brush"
#: Theme role of the bars (and table cells) of units whose removal raises accuracy.
RAISING_ROLE = "positive"
#: Theme role of the bars of units with no measured drop yet (live, before the baseline is known).
PENDING_ROLE = "grid"
#: Alpha of the error bars (the 95 % interval, in the theme's muted colour): light, so that the bars stay readable.
ERROR_ALPHA = 110
#: Width below which the bar chart is stacked over the cumulative chart and the table.
NARROW = 720


def raising_color() -> QColor:
    """The colour of units whose removal raises accuracy, in the theme shown now."""
    return theme.color(RAISING_ROLE)
#: Most bars that get their unit index as a tick label (more: the tooltip says).
MAX_TICK_LABELS = 40


def tick_step(n: int, axis_px: float, label_px: float) -> int:
    """Label every ``step``-th of ``n`` evenly spaced bars so labels ``label_px`` wide fit in ``axis_px``.

    Returns 1 (every bar) when they all fit; at least 1; unknown widths (<= 0) count as fitting.
    """
    if n <= 1 or axis_px <= 0 or label_px <= 0:
        return 1
    fit = max(1, int(axis_px // label_px))
    return max(1, math.ceil(n / fit))
#: Redraws of a ranking that grows point by point, at most one per this many ms.
REDRAW_MS = 100


def drop_interval_pp(baseline: float | None, ci: tuple[float, float] | None) -> tuple[float, float] | None:
    """The drop's interval in pp from the ablated accuracy's 95 % interval ``ci`` (fractions).

    ``(100 * (baseline - hi), 100 * (baseline - lo))``; None when either is unknown.
    The baseline is measured on the same samples, so this is the interval of
    the ablated accuracy moved by a constant, not an interval of a difference
    of two independent estimates.
    """
    if baseline is None or ci is None:
        return None
    return 100.0 * (baseline - ci[1]), 100.0 * (baseline - ci[0])


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "–" if x is None else format(x, fmt)


class RankTableModel(QAbstractTableModel):
    """The units of a ranking, one row each in rank order: rank, unit, accuracy [lo, hi], drop, loss."""

    HEADERS = ("rank", "unit", "accuracy % [95 % CI]", "drop (pp)", "loss")

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.units: list[UnitAblation] = []

    def set_units(self, units: Sequence[UnitAblation]) -> None:
        """Show ``units`` (already in rank order)."""
        self.beginResetModel()
        self.units = list(units)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802 - Qt API
        return 0 if parent.isValid() else len(self.units)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802 - Qt API
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        u = self.units[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            p = u.point
            if col == 0:
                return str(index.row() + 1)
            if col == 1:
                return str(u.index)
            if col == 2:
                ci = p.accuracy_ci
                interval = "" if ci is None else f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
                return _pct(p.accuracy) + interval
            if col == 3:
                return "–" if u.drop is None else f"{100 * u.drop:+.2f}"
            if col == 4:
                return _num(p.loss)
        elif role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif role == Qt.ItemDataRole.ForegroundRole and col == 3 and u.raises_accuracy:
            return QBrush(raising_color())
        elif role == Qt.ItemDataRole.ToolTipRole and u.raises_accuracy:
            return "Removing this unit raised the held-out accuracy"
        return None


class RankingView(QWidget):
    """Set-up, bar chart, cumulative curves and table of a neuron ablation ranking.

    Signals
    -------
    rankRequested(RankSpec):
        The user pressed *Rank* with this set-up.
    cancelRequested():
        The user pressed *Cancel*.
    exportRequested(str):
        ``"csv"``, ``"json"``, ``"png"`` or ``"svg"``.
    unitsPicked(list):
        The units (indices on the layer's output axis) the user picked on the
        bars, in the table or with *Select top k*, ascending.
    """

    rankRequested = Signal(object)
    cancelRequested = Signal()
    exportRequested = Signal(str)
    unitsPicked = Signal(list)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.result: RankResult | None = None
        self.provisional = False
        self._total: int | None = None
        self._note = ""
        self._highlight: set[int] = set()
        self._anchor: int | None = None  # rank position of the last plain/ctrl click
        self._syncing_table = False
        self._build()

    # -- construction -------------------------------------------------------------------
    def _build(self) -> None:
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("The layer whose output neurons (filters) are ranked")
        self.layer_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.ablation_combo = QComboBox()
        for key in ABLATIONS:
            self.ablation_combo.addItem(f"{key} ablation", key)
        self.ablation_combo.setToolTip(
            "zero: the unit's kernel slice and bias set to 0 (a weight edit)\n"
            "mean: the unit's output replaced by its mean over the held-out set"
        )
        self.bn_check = QCheckBox("BatchNorm-aware")
        self.bn_check.setTristate(True)
        self.bn_check.setCheckState(Qt.CheckState.PartiallyChecked)
        self.bn_check.setToolTip(
            "Zero ablation: also zero the following BatchNormalization's gamma and beta for the channel.\n"
            "Partly checked (default): when one follows the layer; checked: always; unchecked: never."
        )
        self.cumulative_check = QCheckBox("Cumulative")
        self.cumulative_check.setChecked(True)
        self.cumulative_check.setToolTip(
            "Also ablate the k most and the k least important units together, k = 1..n"
        )
        self.rank_button = QPushButton("Rank")
        self.rank_button.setToolTip(
            "Ablate each output unit of the layer alone and sort by the accuracy it costs"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.setMinimumWidth(1)

        self.ablation_combo.currentIndexChanged.connect(self._on_ablation)
        self.rank_button.clicked.connect(self._on_rank)
        self.cancel_button.clicked.connect(self.cancelRequested.emit)

        # Two short rows (the centre pane is ~420 px wide in a 1024 px window):
        # what to rank and the job; then the options, picking and the status.
        setup = QHBoxLayout()
        setup.setContentsMargins(0, 0, 0, 0)
        setup.addWidget(self.rank_button)
        setup.addWidget(self.layer_combo)
        setup.addWidget(self.ablation_combo)
        setup.addWidget(self.cancel_button)
        setup.addStretch(1)
        options = QHBoxLayout()
        options.setContentsMargins(0, 0, 0, 0)
        options.addWidget(self.bn_check)
        options.addWidget(self.cumulative_check)

        self.summary = QLabel("Pick a layer and press Rank: each output unit is ablated alone and measured.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary.setMinimumWidth(1)
        reserve_lines(self.summary, 2)

        # bars: x = rank position, height = drop in pp
        self.plot = plot_widget()
        self._tick_labels: list[str] = []
        self.plot.getViewBox().sigResized.connect(self._apply_ticks)
        self.plot.getViewBox().sigXRangeChanged.connect(self._apply_ticks)
        self.plot.setMinimumHeight(90)
        self.plot.setLabel("left", "accuracy drop (pp)")
        self.plot.setLabel("bottom", "rank")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.showGrid(y=True, alpha=0.15)
        self.bars = pg.PlotCurveItem(pen=None, fillLevel=0)
        self.raising_bars = pg.PlotCurveItem(pen=None, fillLevel=0)
        self.pending_bars = pg.PlotCurveItem(pen=None, fillLevel=0)
        self.selected_bars = pg.PlotCurveItem(pen=None, brush=SELECTED_BRUSH, fillLevel=0)
        self.errors = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), beam=BAR_WIDTH * 0.3)
        self.zero_line = pg.InfiniteLine(angle=0, pos=0)
        for item in (
            self.zero_line,
            self.bars,
            self.raising_bars,
            self.pending_bars,
            self.selected_bars,
            self.errors,
        ):
            self.plot.addItem(item)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self.plot.scene().sigMouseMoved.connect(self._on_hover)

        # the cumulative curves: accuracy with the k most / least important units ablated
        self.cum_plot = plot_widget()
        self.cum_plot.setMinimumHeight(70)
        self.cum_plot.setLabel("left", "accuracy (%)")
        self.cum_plot.setLabel("bottom", "k units ablated together")
        self.cum_plot.getAxis("left").enableAutoSIPrefix(False)
        self.cum_plot.showGrid(y=True, alpha=0.15)
        # no legend box (it covered the curves in a small plot): the title names the colours
        self.cum_plot.setToolTip("Held-out accuracy with the k most important units (red) or the k least "
                                 "important units (blue) ablated together; dashed: the baseline")
        self.cum_top = self.cum_plot.plot([], [], name="most important first")
        self.cum_bottom = self.cum_plot.plot([], [], name="least important first")
        self.cum_base = pg.InfiniteLine(angle=0)
        self.cum_base.setVisible(False)
        self.cum_plot.addItem(self.cum_base)

        self.table_model = RankTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.table_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 4)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # sized from the first rows only: every row's text for 4,096 units made each redraw ~150 ms
        header.setResizeContentsPrecision(64)
        header.setStretchLastSection(True)
        self.table.setMinimumHeight(50)
        self.table.selectionModel().selectionChanged.connect(self._on_table_selection)

        self.top_k = QSpinBox()
        self.top_k.setRange(1, 1)
        self.top_k.setValue(3)
        self.top_k.setPrefix("top ")
        self.top_k.setToolTip("How many of the most important units to select")
        self.select_top_button = QPushButton("Select")
        self.select_top_button.setToolTip(
            "Select the k units whose ablation costs the most accuracy, in the heatmap and norm plot too "
            "(then Delete zeroes them)"
        )
        self.select_top_button.clicked.connect(
            lambda: self.unitsPicked.emit(self.top_units(self.top_k.value()))
        )
        self.export_menu = QMenu(self)
        self.export_menu.setToolTipsVisible(True)
        self.export_actions: dict[str, QAction] = {}
        for kind, tip in (
            ("csv", "The units as a CSV table (largest drop first)"),
            ("json", "The whole ranking as JSON (units, cumulative curves, method)"),
            ("png", "The bar chart as PNG"),
            ("svg", "The bar chart as SVG"),
        ):
            act = self.export_menu.addAction(f"{kind.upper()}…")
            act.setToolTip(tip)
            act.triggered.connect(lambda _c=False, kind=kind: self.exportRequested.emit(kind))
            self.export_actions[kind] = act
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setToolTip("Write the ranking as CSV or JSON, or the bar chart as PNG or SVG")
        self.export_button.setMenu(self.export_menu)
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        setup.addWidget(self.export_button)
        options.addWidget(self.select_top_button)
        options.addWidget(self.top_k)
        options.addWidget(self.status, 1)

        # wide: bars | (cumulative over table); narrow (resizeEvent): bars over (cumulative | table)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.cum_plot)
        right.addWidget(self.table)
        right.setSizes([120, 160])
        self.side = right
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.plot)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        for s in (right, self.splitter):
            s.setChildrenCollapsible(False)

        # below the set-up's and charts' minimum the page scrolls inside the tab, not the whole centre
        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)
        lay.addLayout(setup)
        lay.addLayout(options)
        lay.addWidget(self.summary)
        lay.addWidget(self.splitter, 1)
        self.page_scroll = scroll_page(self, inner)
        self._enable_result_tools()
        self.apply_theme()
        theme.signals.changed.connect(self.apply_theme)

    # -- theme and size ------------------------------------------------------------------------
    def apply_theme(self) -> None:
        """Take the charts' colours from :mod:`weightlab.gui.theme` (called again whenever it changes)."""
        self.bars.setBrush(pg.mkBrush(theme.color(DROP_ROLE)))
        self.raising_bars.setBrush(pg.mkBrush(theme.color(RAISING_ROLE)))
        self.pending_bars.setBrush(pg.mkBrush(theme.color(PENDING_ROLE)))
        err = theme.color("muted")
        err.setAlpha(ERROR_ALPHA)
        self.errors.setData(pen=pg.mkPen(err, width=theme.line_width(1)))
        self.zero_line.setPen(pg.mkPen(theme.color("muted"), width=theme.line_width(1)))
        top, bottom = theme.color("negative"), theme.color("accent")
        self.cum_top.setPen(pg.mkPen(top, width=theme.line_width(2)))
        self.cum_bottom.setPen(pg.mkPen(bottom, width=theme.line_width(2)))
        self.cum_base.setPen(pg.mkPen(theme.color("muted"), width=theme.line_width(1), style=Qt.PenStyle.DashLine))
        self.cum_plot.setTitle(
            f"<span style='color:{top.name()}'>━</span> most, "
            f"<span style='color:{bottom.name()}'>━</span> least important first",
            size="8pt",
        )
        self.table_model.layoutChanged.emit()  # the raising units' colour
        if self.result is not None:
            text = self._summary(self.result, self.provisional, self._total, self._note)
            self.summary.setText(text)
            self.summary.setToolTip(text)

    def resizeEvent(self, event: Any) -> None:
        """Stack the bar chart over the cumulative chart and the table when narrower than :data:`NARROW`."""
        super().resizeEvent(event)
        narrow = self.width() < NARROW
        want = Qt.Orientation.Vertical if narrow else Qt.Orientation.Horizontal
        if self.splitter.orientation() != want:
            self.splitter.setOrientation(want)
            self.side.setOrientation(Qt.Orientation.Horizontal if narrow else Qt.Orientation.Vertical)

    # -- set-up ----------------------------------------------------------------------------
    def set_layers(self, layers: Iterable[str], current: str | None = None) -> None:
        """Offer ``layers`` (names of layers with a kernel); choose ``current`` when given."""
        keep = current or self.layer_combo.currentText()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(list(layers))
        self.layer_combo.blockSignals(False)
        self.choose_layer(keep)
        self._enable_setup()

    def choose_layer(self, layer: str | None) -> None:
        """Make ``layer`` the layer the next *Rank* ranks (when it is offered)."""
        i = self.layer_combo.findText(layer) if layer else -1
        if i >= 0:
            self.layer_combo.setCurrentIndex(i)

    def spec(self) -> RankSpec | None:
        """The :class:`RankSpec` of the set-up (None when no layer is offered)."""
        layer = self.layer_combo.currentText()
        if not layer:
            return None
        ablation = self.ablation_combo.currentData()
        state = self.bn_check.checkState()
        bn = (
            None
            if ablation == "mean" or state == Qt.CheckState.PartiallyChecked
            else state == Qt.CheckState.Checked
        )
        return RankSpec(
            layer=layer, ablation=ablation, batchnorm=bn, cumulative=self.cumulative_check.isChecked()
        )

    def _on_ablation(self) -> None:
        self.bn_check.setEnabled(self.ablation_combo.currentData() == "zero")

    def _on_rank(self) -> None:
        spec = self.spec()
        if spec is not None:
            self.rankRequested.emit(spec)

    def set_running(self, running: bool, message: str = "") -> None:
        """A ranking runs (Cancel on, Rank off) or not; ``message`` in the status text."""
        self._running = running
        self.cancel_button.setEnabled(running)
        self._enable_setup()
        self.set_status(message)

    def set_status(self, message: str) -> None:
        """Show ``message`` beside the set-up (progress, why nothing runs); the tooltip holds it whole."""
        self.status.setText(message)
        self.status.setToolTip(message)

    def _enable_setup(self) -> None:
        running = getattr(self, "_running", False)
        self.rank_button.setEnabled(not running and self.layer_combo.count() > 0)

    def _enable_result_tools(self) -> None:
        has = self.result is not None and bool(self.result.units)
        self.export_button.setEnabled(has)
        for act in self.export_actions.values():
            act.setEnabled(has)
        self.select_top_button.setEnabled(has)
        self.top_k.setEnabled(has)

    # -- the ranking -----------------------------------------------------------------------
    def clear(self, message: str = "") -> None:
        """Show no ranking."""
        self.result = None
        self._anchor = None
        self.bars.setData([], [])
        self.raising_bars.setData([], [])
        self.pending_bars.setData([], [])
        self.selected_bars.setData([], [])
        self.errors.setData(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0))
        self.cum_top.setData([], [])
        self.cum_bottom.setData([], [])
        self.cum_base.setVisible(False)
        self.table_model.set_units([])
        self._tick_labels = []
        set_ticks(self.plot.getAxis("bottom"), None)
        self.summary.setText(
            message or "Pick a layer and press Rank: each output unit is ablated alone and measured."
        )
        self._enable_result_tools()

    def _apply_ticks(self) -> None:
        """Label every bar whose unit number fits beside its neighbours' (many bars: every k-th, the rest unlabelled)."""
        labels = getattr(self, "_tick_labels", [])
        if not labels:
            return
        axis = self.plot.getAxis("bottom")
        metrics = QFontMetrics(axis.style.get("tickFont") or axis.font())
        label_px = max(metrics.horizontalAdvance(t) for t in labels) + metrics.horizontalAdvance("  ")
        view = self.plot.getViewBox()
        x_range = view.viewRange()[0]
        span = x_range[1] - x_range[0]
        # pixels per bar, over the bars' share of the visible x range
        axis_px = view.width() * (len(labels) / span) if span > 0 else 0.0
        step = tick_step(len(labels), axis_px, label_px)
        major = [(float(i), t) for i, t in enumerate(labels) if i % step == 0]
        minor = [(float(i), "") for i in range(len(labels)) if i % step] if step > 1 else []
        set_ticks(axis, [major, minor])

    def set_result(
        self, result: RankResult, *, provisional: bool = False, total: int | None = None, note: str = ""
    ) -> None:
        """Draw ``result`` (a finished, cancelled or growing ranking).

        Parameters
        ----------
        result:
            The ranking; ``result.units`` in rank order.
        provisional:
            The drops are measured against an estimate of the baseline (the
            window's last evaluation) while the ranking's own baseline is not
            known yet; said in the summary.
        total:
            Units the layer has (``"12 of 64 units"`` while running).
        note:
            Appended to the summary (the weights changed since...).
        """
        self.result = result
        self.provisional = provisional
        self._total, self._note = total, note
        units = result.units
        n = len(units)
        base = result.baseline.accuracy
        set_label(
            self.plot, "left", "accuracy drop (pp)" if base is not None or not units else "1 − agreement (pp)"
        )
        x = np.arange(n, dtype=np.float64)
        drops = np.array([np.nan if u.drop is None else 100.0 * u.drop for u in units], dtype=np.float64)
        known = ~np.isnan(drops)
        raising = known & (drops < 0)
        plain = known & ~raising
        self.bars.setData(*bar_outline(x[plain], drops[plain]))
        self.raising_bars.setData(*bar_outline(x[raising], drops[raising]))
        # a unit measured before its drop is known: a small grey stub, so the count shows
        pending = ~known
        self.pending_bars.setData(*bar_outline(x[pending], np.zeros(int(pending.sum()))))
        lo_hi = [drop_interval_pp(base, u.point.accuracy_ci) for u in units]
        has_ci = np.array([iv is not None and k for iv, k in zip(lo_hi, known, strict=True)], dtype=bool)
        if has_ci.any():
            ex = x[has_ci]
            ey = drops[has_ci]
            lo = np.array([iv[0] for iv, h in zip(lo_hi, has_ci, strict=True) if h])
            hi = np.array([iv[1] for iv, h in zip(lo_hi, has_ci, strict=True) if h])
            self.errors.setData(x=ex, y=ey, top=np.maximum(hi - ey, 0), bottom=np.maximum(ey - lo, 0))
        else:
            self.errors.setData(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0))
        if n <= MAX_TICK_LABELS:
            self._tick_labels = [str(u.index) for u in units]
            self._apply_ticks()
            set_label(self.plot, "bottom", "unit, by rank (most important left)")
        else:
            self._tick_labels = []
            set_ticks(self.plot.getAxis("bottom"), None)
            set_label(self.plot, "bottom", "rank (hover a bar for its unit)")
        if n:
            lows = [iv[0] for iv in lo_hi if iv is not None] + list(drops[known]) + [0.0]
            highs = [iv[1] for iv in lo_hi if iv is not None] + list(drops[known]) + [0.0]
            y0, y1 = float(np.nanmin(lows)), float(np.nanmax(highs))
            pad = 0.05 * (y1 - y0) or 0.5
            self.plot.setXRange(-0.6, max(n, 1) - 0.4, padding=0)
            self.plot.setYRange(y0 - pad, y1 + pad, padding=0)
        self._draw_cumulative(result)
        self.table_model.set_units(units)
        self.top_k.setRange(1, max(1, n))
        self._draw_highlight()
        text = self._summary(result, provisional, total, note)
        self.summary.setText(text)
        self.summary.setToolTip(text)  # whole, where a narrow pane cuts the label
        self._enable_result_tools()

    def _draw_cumulative(self, result: RankResult) -> None:
        def curve(points):
            ks = [k for k, p in enumerate(points, 1) if p.accuracy is not None]
            acc = [100 * p.accuracy for p in points if p.accuracy is not None]
            return ks, acc

        self.cum_top.setData(*curve(result.cumulative_top))
        self.cum_bottom.setData(*curve(result.cumulative_bottom))
        base = result.baseline.accuracy
        self.cum_base.setVisible(base is not None and bool(result.cumulative_top or result.cumulative_bottom))
        if base is not None:
            self.cum_base.setValue(100 * base)

    def _summary(self, result: RankResult, provisional: bool, total: int | None, note: str) -> str:
        spec = result.spec
        n = len(result.units)
        raising = result.raising()
        parts = [f"<b>{html.escape(spec.layer, quote=False)}</b> · {spec.ablation} ablation"]
        if total is not None and n < total:
            parts.append(f"{n} of {total} units measured")
        else:
            parts.append(f"{n} units")
        base = result.baseline.accuracy
        if base is not None:
            word = "estimated baseline" if provisional else "baseline"
            parts.append(f"{word} {100 * base:.2f} %")
        elif result.baseline.agreement is not None or any(
            u.point.agreement is not None for u in result.units
        ):
            parts.append("no labels: drop = 1 − agreement with the unedited model")
        if raising:
            word = "unit raises" if len(raising) == 1 else "units raise"
            parts.append(
                f"<span style='color:{theme.css(RAISING_ROLE)}'>{len(raising)} {word} accuracy when removed</span>"
            )
        still = sum(1 for u in result.units if u.drop == 0)
        if still:
            parts.append(f"{still} change nothing")
        if result.units and result.units[0].drop is not None:
            top = result.units[0]
            parts.append(f"top: unit {top.index} ({100 * top.drop:+.2f} pp)")
        text = " · ".join(parts)
        if result.method:
            text += f"<br><i>method: {html.escape(result.method, quote=False)}</i>"
        elif provisional:
            text += (
                "<br><i>running: drops against the window's last evaluation; exact when the ranking ends</i>"
            )
        if not result.complete and total is None:
            text += " · <b>partial</b> (cancelled)"
        if note:
            text += f" · <i>{html.escape(note, quote=False)}</i>"
        return text

    # -- picking units ---------------------------------------------------------------------
    def top_units(self, k: int) -> list[int]:
        """The ``k`` most important units (largest drop), ascending; [] without a ranking."""
        if self.result is None:
            return []
        return sorted(self.result.order(most_important_first=True)[: max(0, k)])

    def rank_at(self, view_pos: QPointF) -> int | None:
        """Rank position of the bar under ``view_pos`` (view coordinates), None off the bars."""
        if self.result is None:
            return None
        i = int(math.floor(view_pos.x() + 0.5))
        return i if 0 <= i < len(self.result.units) else None

    def bar_center(self, rank: int) -> QPointF:
        """Scene position of bar ``rank``'s middle (for tests and tooltips)."""
        u = self.result.units[rank] if self.result is not None else None
        h = 0.0 if u is None or u.drop is None else 50.0 * u.drop
        vb = self.plot.getViewBox()
        return vb.mapViewToScene(QPointF(float(rank), h))

    def pick(self, rank: int, modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
        """A click on bar ``rank`` with ``modifiers``: emits ``unitsPicked`` (list-view semantics, bar order)."""
        if self.result is None or not 0 <= rank < len(self.result.units):
            return
        units = [u.index for u in self.result.units]
        unit = units[rank]
        if modifiers & Qt.KeyboardModifier.ShiftModifier and self._anchor is not None:
            lo, hi = sorted((self._anchor, rank))
            picked = self._highlight | set(units[lo : hi + 1])
        elif modifiers & Qt.KeyboardModifier.ControlModifier:
            picked = self._highlight ^ {unit}
            self._anchor = rank
        else:
            picked = {unit}
            self._anchor = rank
        self.unitsPicked.emit(sorted(picked))

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        rank = self.rank_at(vb.mapSceneToView(ev.scenePos()))
        if rank is not None:
            self.pick(rank, ev.modifiers())

    def _on_hover(self, scene_pos: QPointF) -> None:
        vb = self.plot.getViewBox()
        rank = (
            self.rank_at(vb.mapSceneToView(scene_pos)) if vb.sceneBoundingRect().contains(scene_pos) else None
        )
        self.plot.setToolTip("" if rank is None else self.describe(rank))

    def describe(self, rank: int) -> str:
        """``"rank 1: unit 17 · drop +2.40 pp [1.90, 2.90] · accuracy 95.10 % · loss 0.21"``."""
        assert self.result is not None
        u = self.result.units[rank]
        iv = drop_interval_pp(self.result.baseline.accuracy, u.point.accuracy_ci)
        drop = "drop –" if u.drop is None else f"drop {100 * u.drop:+.2f} pp"
        if iv is not None and u.drop is not None:
            drop += f" [{iv[0]:.2f}, {iv[1]:.2f}]"
        text = f"rank {rank + 1}: unit {u.index} · {drop} · accuracy {_pct(u.point.accuracy)} % · loss {_num(u.point.loss)}"
        if u.raises_accuracy:
            text += " · removing it raises accuracy"
        return text

    def set_highlight(self, units: Iterable[int]) -> None:
        """Draw ``units`` (the window's neuron selection, when it is of the ranked layer) as selected."""
        self._highlight = {int(u) for u in units}
        self._draw_highlight()

    @property
    def highlighted(self) -> list[int]:
        """The units drawn as selected, ascending."""
        return sorted(self._highlight)

    def highlighted_ranks(self) -> list[int]:
        """Rank positions of the selected bars, ascending."""
        if self.result is None:
            return []
        return [i for i, u in enumerate(self.result.units) if u.index in self._highlight]

    def _draw_highlight(self) -> None:
        ranks = self.highlighted_ranks()
        if self.result is None or not ranks:
            self.selected_bars.setData([], [])
        else:
            units = self.result.units
            heights = np.array([0.0 if units[i].drop is None else 100 * units[i].drop for i in ranks])
            self.selected_bars.setData(*bar_outline(np.array(ranks), heights))
        self._sync_table(ranks)

    def _sync_table(self, ranks: list[int]) -> None:
        model, sel = self.table_model, self.table.selectionModel()
        if sorted(i.row() for i in sel.selectedRows()) == ranks:
            return
        selection = QItemSelection()
        last = model.columnCount() - 1
        for r in ranks:
            selection.select(model.index(r, 0), model.index(r, last))
        self._syncing_table = True
        try:
            sel.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            if ranks:
                self.table.scrollTo(model.index(ranks[0], 0))
        finally:
            self._syncing_table = False

    def _on_table_selection(self, *_args) -> None:
        if self._syncing_table or self.result is None:
            return
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        units = [self.result.units[r].index for r in rows if r < len(self.result.units)]
        self.unitsPicked.emit(sorted(units))
