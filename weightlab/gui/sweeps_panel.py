"""The Sweeps tab: set up a sweep, watch its curves grow, apply a point, plan within a budget, export.

:class:`SweepsPanel` is the view; :class:`~weightlab.gui.controllers.sweeps.SweepsController`
submits the job, feeds the points in and applies edits. The panel's set-up row
builds the arguments of a :class:`~weightlab.core.sweeps.SweepSpec`
(:meth:`SweepsPanel.spec_fields`); points given to :meth:`SweepsPanel.set_result`
are drawn at most :data:`REDRAW_MS` apart (the panel's own timer), so a fast
stream of points never redraws the plot more than ten times a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.catalogue import CATALOGUE, sweepable_params
from weightlab.core.sweeps import METRICS, MODES, SweepResult, drop_pp, parse_range, parse_values

from . import theme
from .scroll_page import scroll_page
from .sweep_plot import SweepPlot, target_colour

__all__ = ["SweepsPanel", "REDRAW_MS", "TABLE_COLUMNS", "WIDE"]

#: Narrower than this (pixels), the table goes under the plot instead of beside it.
WIDE = 900
#: Rows the results table always has room for (more scroll).
TABLE_MIN_ROWS = 3
#: Shortest time between two redraws of the plot and table (ten per second at most).
REDRAW_MS = 100
TABLE_COLUMNS = ("target", "value", "acc. % [95 % CI]", "drop pp", "loss", "agree %")
#: Values offered for each op/param when the panel first shows it (list, range or adaptive text).
_DEFAULT_VALUES: dict[tuple[str, str], tuple[str, str]] = {
    ("clip", "threshold"): ("list", "0.02,0.05,0.1,0.2,0.3,0.5"),
    ("clip_percentile", "lower"): ("range", "0:20:5"),
    ("clip_percentile", "upper"): ("range", "80:100:5"),
    ("prune_magnitude", "sparsity"): ("range", "0.1:0.9:0.2"),
    ("prune_magnitude", "threshold"): ("list", "0.01,0.02,0.05,0.1"),
    ("prune_neurons", "fraction"): ("range", "0.1:0.9:0.2"),
    ("prune_neurons", "count"): ("list", "1,2,4,8"),
    ("scale", "factor"): ("list", "0.5,0.75,1.25,1.5"),
    ("scale_neurons", "factor"): ("list", "0.5,0.75,1.25,1.5"),
    ("add", "value"): ("list", "-0.05,-0.01,0.01,0.05"),
    ("add_noise", "std"): ("list", "0.01,0.02,0.05,0.1"),
}
_VALUE_KINDS = (("list", "values"), ("range", "range"), ("adaptive", "adaptive"))
_VALUE_HINTS = {
    "list": "values separated by commas, e.g. 0.1,0.2,0.5",
    "range": "START:STOP:STEP, stop included, e.g. 0.05:0.4:0.05",
    "adaptive": "LOW:HIGH: a coarse grid first, then refined where the metric falls fastest",
}


def _fmt(x: float | None, digits: int = 2, scale: float = 100.0) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{scale * x:.{digits}f}"


class SweepsPanel(QWidget):
    """Set-up row, live plot and table of points, plan and export buttons.

    Signals
    -------
    runRequested():
        *Run* was pressed (the controller reads :meth:`spec_fields`).
    cancelRequested():
        *Cancel* was pressed.
    pointChosen(str, float):
        A point was clicked on the plot or a table row was activated: apply it.
    planRequested(), applyPlanRequested():
        *Plan…* / *Apply plan*.
    exportRequested(str):
        ``"csv"``, ``"json"``, ``"png"`` or ``"svg"``.
    """

    runRequested = Signal()
    cancelRequested = Signal()
    pointChosen = Signal(str, float)
    planRequested = Signal()
    applyPlanRequested = Signal()
    exportRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._build_setup()
        self.plot = SweepPlot()
        self.plot.pointClicked.connect(self.pointChosen)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setToolTip("Double-click (or Enter on) a row to apply that point as an undoable edit")
        # rows scroll inside the table; it keeps room for its header and a few rows however small the tab
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setMinimumHeight(
            self.table.horizontalHeader().sizeHint().height()
            + TABLE_MIN_ROWS * self.table.verticalHeader().defaultSectionSize()
            + self.table.horizontalScrollBar().sizeHint().height()
            + 2 * self.table.frameWidth()
        )
        self.table.itemActivated.connect(self._on_row_activated)
        self.message = QLabel("")
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notes = QLabel("")
        self.notes.setTextFormat(Qt.TextFormat.RichText)
        self.legend = QLabel("")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.plan_label = QLabel("")
        self.plan_label.setTextFormat(Qt.TextFormat.RichText)
        for lab in (self.message, self.notes, self.legend, self.plan_label):
            lab.setWordWrap(True)
            lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.plan_button = QPushButton("Plan…")
        self.plan_button.setToolTip("For each target, the strongest value whose drop stays within the budget")
        self.apply_plan_button = QPushButton("Apply plan")
        self.apply_plan_button.setToolTip("Apply the plan's edits (one per target) as one transaction")
        self.plan_button.clicked.connect(self.planRequested)
        self.apply_plan_button.clicked.connect(self.applyPlanRequested)
        plan_row = QHBoxLayout()
        plan_row.addWidget(self.plan_button)
        plan_row.addWidget(self.apply_plan_button)
        self.export_buttons: dict[str, QPushButton] = {}
        export_row = QHBoxLayout()
        export_row.setSpacing(2)
        export_row.addWidget(QLabel("Export"))
        for kind in ("csv", "json", "png", "svg"):
            b = QPushButton(kind.upper())
            b.setToolTip(f"Write the sweep as {kind.upper()}")
            b.setMinimumWidth(10)
            b.clicked.connect(lambda _c=False, k=kind: self.exportRequested.emit(k))
            self.export_buttons[kind] = b
            export_row.addWidget(b, 1)

        controls = QWidget()
        col = QVBoxLayout(controls)
        col.setContentsMargins(2, 2, 6, 2)
        col.setSpacing(4)
        col.addLayout(self.setup)
        col.addWidget(self.message)
        col.addWidget(self.notes)
        col.addWidget(self.legend)
        col.addLayout(plan_row)
        col.addWidget(self.plan_label)
        col.addLayout(export_row)
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # as wide as the set-up needs beside its scroll bar (the bar never covers the combo boxes' arrows)
        scroll.setMinimumWidth(controls.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        self.controls = scroll

        # plot | table side by side when the tab is wide, the table under the plot when narrow (resizeEvent)
        self.results = QSplitter(Qt.Orientation.Horizontal)
        self.results.addWidget(self.plot)
        self.results.addWidget(self.table)
        self.results.setStretchFactor(0, 3)
        self.results.setStretchFactor(1, 2)
        self.results.setChildrenCollapsible(False)
        self.results.setSizes([540, 460])
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(scroll)
        body.addWidget(self.results)
        body.setStretchFactor(0, 0)
        body.setStretchFactor(1, 1)
        body.setSizes([290, 800])
        body.setChildrenCollapsible(False)
        body.setCollapsible(0, True)  # a narrow window can drag the set-up away and give the plot the room
        self.body = body
        # below the set-up's and charts' minimum the page scrolls inside the tab, not the whole centre
        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(body)
        self.page_scroll = scroll_page(self, inner)

        self.result: SweepResult | None = None
        self._rows = 0  # table rows filled (points are appended in order)
        self._table_result: SweepResult | None = None
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._draw)
        self.redraws = 0  # how many times the plot was drawn (tests count them)
        self.set_running(False)
        self.set_has_result(False)
        theme.signals.changed.connect(self.apply_theme)

    def apply_theme(self) -> None:
        """Redraw with the theme's colours (the table's target colours double as the plot's legend)."""
        if self.result is not None:
            self._table_result = None  # refill: every row's colour changes
            self._draw()

    def resizeEvent(self, event: Any) -> None:
        """Stack the table under the plot when the tab is narrower than :data:`WIDE`."""
        super().resizeEvent(event)
        want = Qt.Orientation.Horizontal if self.width() >= WIDE else Qt.Orientation.Vertical
        if self.results.orientation() != want:
            self.results.setOrientation(want)

    # -- set-up ---------------------------------------------------------------------------
    def _build_setup(self) -> None:
        g = QGridLayout()
        g.setContentsMargins(0, 0, 0, 0)
        g.setHorizontalSpacing(6)
        g.setVerticalSpacing(3)
        self.op_combo = QComboBox()
        ops = list(dict.fromkeys(p.op for p in sweepable_params()))
        for op in ops:
            self.op_combo.addItem(op, op)
        self.param_combo = QComboBox()
        self.values_kind = QComboBox()
        for key, label in _VALUE_KINDS:
            self.values_kind.addItem(label, key)
        self.values_edit = QLineEdit()
        self.values_edit.setMinimumWidth(120)
        self.log_check = QCheckBox("log")
        self.log_check.setToolTip("Log value axis (adaptive sweeps also refine on a log scale)")
        self.target_kind = QComboBox()
        for key, label in (("selection", "tree selection"), ("model", "whole model"), ("glob", "glob")):
            self.target_kind.addItem(label, key)
        self.target_edit = QLineEdit()
        self.target_edit.setPlaceholderText("*/kernel")
        self.target_edit.setToolTip("Targets: the tree's selected layers/tensors, every kernel, or a glob")
        self.mode_combo = QComboBox()
        for m in MODES:
            self.mode_combo.addItem(m, m)
        self.mode_combo.setToolTip("together: every target edited at once (one curve); "
                                   "each: every target edited alone (sensitivity, one curve per target)")
        self.coupled_check = QCheckBox("coupled")
        self.coupled_check.setToolTip("Neuron ops: sweep layers whose outputs are coupled (residual Add, "
                                      "Concatenate, a following BatchNorm) as one target")
        self.metric_combo = QComboBox()
        for m in METRICS:
            self.metric_combo.addItem(m, m)
        self.budget_spin = QDoubleSpinBox()
        self.budget_spin.setRange(0.0, 100.0)
        self.budget_spin.setDecimals(2)
        self.budget_spin.setSingleStep(0.5)
        self.budget_spin.setValue(1.0)
        self.budget_spin.setSuffix(" pp")
        self.budget_spin.setSpecialValueText("none")
        self.budget_spin.setToolTip("Largest allowed drop (percentage points): a target stops past it; "
                                    "plans and the tree's colours use it")
        self.run_button = QPushButton("Run sweep")
        self.run_button.setDefault(False)
        self.run_button.clicked.connect(self.runRequested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.op_combo.currentIndexChanged.connect(self._on_op)
        self.param_combo.currentIndexChanged.connect(self._on_param)
        self.values_kind.currentIndexChanged.connect(self._on_values_kind)
        self.target_kind.currentIndexChanged.connect(self._on_target_kind)

        def lab(text: str) -> QLabel:
            w = QLabel(text)
            w.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return w

        values_row = QHBoxLayout()
        values_row.setSpacing(4)
        values_row.addWidget(self.values_kind)
        values_row.addWidget(self.log_check)
        mode_row = QHBoxLayout()
        mode_row.setSpacing(4)
        mode_row.addWidget(self.mode_combo, 1)
        mode_row.addWidget(self.coupled_check)
        run_row = QHBoxLayout()
        run_row.setSpacing(4)
        run_row.addWidget(self.run_button, 1)
        run_row.addWidget(self.cancel_button)
        rows: list[tuple[str, Any]] = [
            ("op", self.op_combo), ("param", self.param_combo), ("values", values_row), ("", self.values_edit),
            ("targets", self.target_kind), ("", self.target_edit), ("mode", mode_row),
            ("metric", self.metric_combo), ("budget", self.budget_spin), ("", run_row),
        ]
        for r, (text, w) in enumerate(rows):
            if text:
                g.addWidget(lab(text), r, 0)
            if isinstance(w, QWidget):
                g.addWidget(w, r, 1)
            else:
                g.addLayout(w, r, 1)
        g.setColumnStretch(1, 1)
        self.setup = g
        self._on_op()
        self._on_target_kind()

    def _on_op(self) -> None:
        op = self.op_combo.currentData()
        self.param_combo.blockSignals(True)
        self.param_combo.clear()
        for p in sweepable_params(op):
            self.param_combo.addItem(p.name, p.name)
        self.param_combo.blockSignals(False)
        neuron = op is not None and CATALOGUE[op].target == "layer"
        self.coupled_check.setEnabled(neuron)
        if not neuron:
            self.coupled_check.setChecked(False)
        self._on_param()

    def _on_param(self) -> None:
        op, param = self.op_combo.currentData(), self.param_combo.currentData()
        kind, text = _DEFAULT_VALUES.get((op, param), ("list", ""))
        self.values_kind.setCurrentIndex(self.values_kind.findData(kind))
        self.values_edit.setText(text)
        sp = next((p for p in sweepable_params(op) if p.name == param), None)
        directed = sp is not None and bool(sp.stronger)
        self.budget_spin.setEnabled(directed)
        self.budget_spin.setToolTip(
            self.budget_spin.toolTip() if directed else f"{op}.{param} has no stronger direction: no budget"
        )
        self._on_values_kind()

    def _on_values_kind(self) -> None:
        self.values_edit.setToolTip(_VALUE_HINTS[self.values_kind.currentData()])
        self.values_edit.setPlaceholderText(_VALUE_HINTS[self.values_kind.currentData()].split(",")[0])

    def _on_target_kind(self) -> None:
        self.target_edit.setReadOnly(self.target_kind.currentData() != "glob")

    def set_targets_text(self, names: Sequence[str]) -> None:
        """Show the tree's selection in the targets field (when it targets the selection)."""
        self._selection = list(names)
        kind = self.target_kind.currentData()
        if kind == "selection":
            self.target_edit.setText(", ".join(names))
            self.target_edit.setPlaceholderText("select layers or tensors in the tree")
        elif kind == "model":
            self.target_edit.setText("*")

    def show_spec(self, spec: Any) -> None:
        """Fill the set-up row from ``spec`` (a :class:`~weightlab.core.sweeps.SweepSpec` started elsewhere,
        e.g. from a notebook's ``viewer.sweep(...)``), so the form describes the sweep that runs.

        Targets other than the whole model are shown as a glob list; run again, the form gives the same sweep.
        """
        def choose(combo: QComboBox, value: Any) -> None:
            i = combo.findData(value)
            if i >= 0:
                combo.setCurrentIndex(i)

        choose(self.op_combo, spec.op)  # refills the parameters and their default values
        choose(self.param_combo, spec.param)

        def num(v: float) -> str:
            return f"{float(v):g}"

        if spec.adaptive:
            kind, text = "adaptive", ":".join(num(v) for v in spec.adaptive)
        elif spec.value_range:
            kind, text = "range", ":".join(num(v) for v in spec.value_range)
        else:
            kind, text = "list", ",".join(num(v) for v in (spec.values or ()))
        choose(self.values_kind, kind)
        self.values_edit.setText(text)
        self.log_check.setChecked(getattr(spec, "scale", "linear") == "log")
        targets = tuple(spec.targets)
        choose(self.target_kind, "model" if targets == ("*",) else "glob")
        self.target_edit.setText("*" if targets == ("*",) else ", ".join(targets))
        choose(self.mode_combo, spec.mode)
        choose(self.metric_combo, spec.metric)
        if self.coupled_check.isEnabled():
            self.coupled_check.setChecked(bool(spec.coupled))
        self.budget_spin.setValue(float(spec.budget_pp) if spec.budget_pp else 0.0)

    def spec_fields(self, selection: Sequence[str]) -> dict[str, Any]:
        """The :class:`~weightlab.core.sweeps.SweepSpec` keyword arguments the set-up row describes.

        Parameters
        ----------
        selection:
            The tree's selected layer/tensor names (the targets when the
            panel targets the selection).

        Raises
        ------
        weightlab.core.sweeps.SpecError
            When the values text does not parse, or no target is given; the
            message says what to type.
        """
        from weightlab.core.sweeps import SpecError

        op, param = self.op_combo.currentData(), self.param_combo.currentData()
        kind = self.values_kind.currentData()
        text = self.values_edit.text().strip()
        out: dict[str, Any] = {"op": op, "param": param, "mode": self.mode_combo.currentData(),
                               "metric": self.metric_combo.currentData(),
                               "scale": "log" if self.log_check.isChecked() else "linear",
                               "coupled": self.coupled_check.isEnabled() and self.coupled_check.isChecked()}
        if kind == "list":
            out["values"] = parse_values(text)
        elif kind == "range":
            out["value_range"] = parse_range(text)
        else:
            parts = text.split(":")
            try:
                lo, hi = (float(p) for p in parts)
            except ValueError:
                raise SpecError(f"sweep spec: field 'adaptive': expected LOW:HIGH, e.g. 0.01:0.5; got {text!r}") \
                    from None
            out["adaptive"] = (lo, hi)
        target_kind = self.target_kind.currentData()
        if target_kind == "selection":
            targets = tuple(selection)
            if not targets:
                raise SpecError("sweep spec: field 'targets': select layers or tensors in the tree, "
                                "or target the whole model or a glob")
        elif target_kind == "model":
            targets = ("*",)
        else:
            targets = tuple(t.strip() for t in self.target_edit.text().split(",") if t.strip())
            if not targets:
                raise SpecError("sweep spec: field 'targets': type a glob, e.g. */kernel")
        out["targets"] = targets
        budget = self.budget_spin.value()
        out["budget_pp"] = budget if budget > 0 and self.budget_spin.isEnabled() else None
        return out

    @property
    def budget_pp(self) -> float | None:
        """The budget field (None: none, or the parameter has no direction)."""
        b = self.budget_spin.value()
        return b if b > 0 and self.budget_spin.isEnabled() else None

    # -- state ----------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        """Enable Cancel while a sweep runs, Run otherwise."""
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def set_has_result(self, has: bool, plannable: bool = False) -> None:
        """Enable the export buttons (a result) and Plan… (a result whose parameter has a direction)."""
        for b in self.export_buttons.values():
            b.setEnabled(has)
        self.plan_button.setEnabled(has and plannable)
        if not has:
            self.apply_plan_button.setEnabled(False)

    def show_message(self, text: str) -> None:
        """One status line under the plot (what runs, what failed, what to do)."""
        self.message.setText(text)

    def set_notes(self, notes: Mapping[str, str]) -> None:
        """What each curve means (``result.notes``): edited alone, coupled with…"""
        if not notes:
            self.notes.setText("")
            return
        by_note: dict[str, list[str]] = {}
        for target, note in notes.items():
            by_note.setdefault(note, []).append(target)
        lines = []
        for note, targets in list(by_note.items())[:6]:
            who = (f"{len(targets)} targets" if len(targets) > 3 else ", ".join(targets))
            lines.append(f"<b>{_esc(who)}</b>: {_esc(note)}")
        if len(by_note) > 6:
            lines.append(f"… and {len(by_note) - 6} more notes")
        html = "<br>".join(lines)
        self.notes.setToolTip("\n".join(f"{t}: {n}" for t, n in notes.items()))
        self.notes.setText(html)

    def set_legend(self, html: str) -> None:
        """The explanation of the tree's sensitivity colours (rich text; empty hides it)."""
        self.legend.setText(html)
        self.legend.setVisible(bool(html))

    def set_plan_text(self, html: str, can_apply: bool) -> None:
        """The plan's choices and drops; enables *Apply plan*."""
        self.plan_label.setText(html)
        self.apply_plan_button.setEnabled(can_apply)
        if html:  # the plan sits low in the set-up column: scroll it into view once laid out
            QTimer.singleShot(0, self, lambda: self.controls.ensureWidgetVisible(self.plan_label))

    # -- result ---------------------------------------------------------------------------
    def set_result(self, result: SweepResult | None, *, now: bool = False) -> None:
        """Show ``result`` (None clears); drawn within :data:`REDRAW_MS` (``now``: at once)."""
        self.result = result
        if result is None:
            self._redraw.stop()
            self.plot.clear()
            self.table.setRowCount(0)
            self._rows = 0
            return
        if now:
            self._redraw.stop()
            self._draw()
        elif not self._redraw.isActive():
            self._redraw.start()

    @property
    def pending(self) -> bool:
        """True while a redraw is scheduled."""
        return self._redraw.isActive()

    def _draw(self) -> None:
        result = self.result
        if result is None:
            return
        self.redraws += 1
        self.plot.show_result(result, self.budget_pp)
        points = result.points
        if result is not self._table_result or self._rows > len(points):
            self.table.setRowCount(0)  # another result (the final one replaces the live one): refill
            self._rows = 0
            self._table_result = result
        base = result.baseline.metric(result.spec.metric)
        colours = {t: target_colour(i) for i, t in enumerate(result.targets())}
        self.table.setUpdatesEnabled(False)
        try:
            self.table.setRowCount(len(points))
            for i in range(self._rows, len(points)):
                p = points[i]
                ci = p.accuracy_ci
                acc = _fmt(p.accuracy) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "")
                d = drop_pp(base, p.metric(result.spec.metric))
                cells = (p.target, f"{p.value:g}" if p.value is not None else "", acc,
                         "–" if d is None else f"{d:.2f}", _fmt(p.loss, 4, 1.0), _fmt(p.agreement))
                for c, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    if c:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    else:  # the target in its line's colour: the table doubles as the plot's legend
                        item.setForeground(colours[p.target])
                    item.setData(Qt.ItemDataRole.UserRole, (p.target, p.value))
                    self.table.setItem(i, c, item)
        finally:
            self.table.setUpdatesEnabled(True)
        self._rows = len(points)

    def _on_row_activated(self, item: QTableWidgetItem) -> None:
        target, value = item.data(Qt.ItemDataRole.UserRole)
        if value is not None:
            self.pointChosen.emit(str(target), float(value))


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
