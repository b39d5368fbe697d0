"""Live held-out evaluation: baseline vs current accuracy, progress, charts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .formatting import fmt_count, fmt_delta_pp, fmt_num, fmt_pct, thinned_ticks
from .plots import plot_widget, set_ticks

#: Smallest height of the charts' tab page (title and plot), in pixels: a
#: small dock scrolls the panel rather than squeezing the chart to a strip.
CHART_MIN_HEIGHT = 170


def running_text(ev: Any, num_samples: int = 0) -> str:
    """``"≈ 91.2 % [88.0, 93.7] · 1 024 / 4 000 samples"`` for a ``Progress`` event.

    The interval is left out when the engine sent none (``nan``); the total is
    left out when ``num_samples`` is unknown (0).
    """
    acc = float(getattr(ev, "accuracy", float("nan")))
    low, high = float(getattr(ev, "ci_low", float("nan"))), float(getattr(ev, "ci_high", float("nan")))
    samples = int(getattr(ev, "samples", 0) or 0)
    text = f"≈ {fmt_pct(acc)}"
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{100 * low:.1f}, {100 * high:.1f}]"
    done = fmt_count(samples) + (f" / {fmt_count(num_samples)}" if num_samples else "")
    return f"{text} · {done} samples"


def timing_text(metrics: Any) -> str:
    """``"0.01 s, incremental from dense"`` / ``"0.33 s, full pass"`` from a metrics object."""
    seconds = metrics.seconds
    head = f"{seconds:.2f} s" if seconds is not None else "?"
    if metrics.mode == "incremental":
        cut = metrics.cut
        run, total = metrics.layers_run, metrics.layers_total
        how = f"incremental from {cut}" if cut else "incremental"
        if total:
            how += f" ({run}/{total} layers)"
        return f"{head}, {how}"
    return f"{head}, full pass"


def _delta_html(delta: float, text: str, higher_is_better: bool = True) -> str:
    """``(text)`` coloured by the theme: positive when the change is good, negative when bad, muted for none."""
    if abs(delta) < 1e-12:
        role = "muted"
    else:
        role = "positive" if (delta > 0) == higher_is_better else "negative"
    return f"<span style='color:{theme.css(role)}'>({text})</span>"


class EvalPanel(QGroupBox):
    """Shows what the engine reports about the held-out set.

    The window feeds it: :meth:`set_off` when evaluation is impossible (with
    the reason), :meth:`set_baseline` / :meth:`set_current` with metrics, and
    :meth:`set_history` after every session change so the accuracy-per-step
    chart keeps only results of steps still in the history.

    While a pass runs, :meth:`start_pass` and :meth:`set_running` show the
    running accuracy with its 95% interval, in words and as a provisional
    point with an error bar in the step chart.

    Signals
    -------
    architectureRequested():
        The user pressed "Choose architecture…" (checkpoints need a model file).
    optionChosen(str, str):
        ``("signature" | "output", value)``: the user chose a SavedModel
        signature or output to evaluate.
    """

    architectureRequested = Signal()
    optionChosen = Signal(str, str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Held-out evaluation", parent)
        self.baseline: Any = None
        self.current: Any = None
        self.off_reason: str | None = None
        # position -> (steps applied when measured, accuracy)
        self._by_step: dict[int, tuple[tuple[Any, ...], float]] = {}
        self._history: tuple[Any, ...] = ()
        self._position = 0
        self._num_samples = 0
        self._num_classes = 0
        # history position whose pass is running (its provisional point), or None
        self._pending: int | None = None
        self.running: Any = None

        self.data_label = QLabel("Held-out set: none")
        self.data_label.setWordWrap(True)
        self.device_label = QLabel("Device: –")
        self.device_label.setWordWrap(True)
        self.timing_label = QLabel("Last evaluation: –")
        self.timing_label.setWordWrap(True)
        self.running_label = QLabel("")
        self.running_label.setWordWrap(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self._message_role = "negative"
        self.base_acc = QLabel("–")
        self.base_loss = QLabel("–")
        self.cur_acc = QLabel("–")
        self.cur_loss = QLabel("–")
        # The change since the baseline, on its own row under the current values:
        # a row of its own is never squeezed under the progress bar.
        self.cur_acc_delta = QLabel("")
        self.cur_loss_delta = QLabel("")
        self._deltas: tuple[float, float] | None = None
        self.arch_button = QPushButton("Choose architecture…")
        self.arch_button.setToolTip(
            "A checkpoint holds weights only: pick the .keras/.h5 model file whose architecture they belong to"
        )
        self.arch_button.clicked.connect(self.architectureRequested)
        self.arch_label = QLabel("")
        self.arch_label.setWordWrap(True)
        self.choice_boxes: dict[str, QComboBox] = {}
        arch_row = QHBoxLayout()
        arch_row.addWidget(self.arch_button)
        arch_row.addWidget(self.arch_label, 1)
        # signature and output each on a row of their own: a narrow dock cannot hold both
        choices = QGridLayout()
        for row, key in enumerate(("signature", "output")):
            box = QComboBox()
            box.setToolTip(f"The SavedModel {key} to evaluate")
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
            box.textActivated.connect(lambda text, key=key: self.optionChosen.emit(key, text))
            self.choice_boxes[key] = box
            choices.addWidget(QLabel(f"{key}:"), row, 0)
            choices.addWidget(box, row, 1)
        choices.setColumnStretch(1, 1)
        self._choices = choices
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

        grid = QGridLayout()
        grid.setVerticalSpacing(2)
        grid.addWidget(QLabel(""), 0, 0)
        grid.addWidget(QLabel("<b>accuracy</b>"), 0, 1)
        grid.addWidget(QLabel("<b>loss</b>"), 0, 2)
        grid.addWidget(QLabel("Baseline"), 1, 0)
        grid.addWidget(self.base_acc, 1, 1)
        grid.addWidget(self.base_loss, 1, 2)
        grid.addWidget(QLabel("Current"), 2, 0)
        grid.addWidget(self.cur_acc, 2, 1)
        grid.addWidget(self.cur_loss, 2, 2)
        grid.addWidget(self.cur_acc_delta, 3, 1)
        grid.addWidget(self.cur_loss_delta, 3, 2)
        grid.setColumnStretch(1, 1)
        self._grid = grid

        self.step_plot = plot_widget()
        self.step_plot.setLabel("bottom", "history step")
        self.step_plot.setLabel("left", "%")
        self.step_plot.showGrid(y=True, alpha=0.2)
        self.step_plot.setMouseEnabled(x=False, y=False)
        for axis in ("bottom", "left"):
            self.step_plot.getAxis(axis).enableAutoSIPrefix(False)  # no "(x0.001)" on an empty chart
        self.step_plot.setXRange(-0.3, 1.3, padding=0)
        self.step_plot.setYRange(0, 100, padding=0.05)
        self.step_curve = self.step_plot.plot([], [], symbol="o", symbolSize=6)
        # The running estimate of the pass in progress: a hollow point with its 95% interval.
        self.provisional_bar = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), beam=0.15)
        self.provisional_point = pg.ScatterPlotItem(size=8, symbol="o")
        self.step_plot.addItem(self.provisional_bar)
        self.step_plot.addItem(self.provisional_point)
        self.base_line = pg.InfiniteLine(angle=0)
        self.step_plot.addItem(self.base_line)
        self.base_line.hide()

        self.class_plot = plot_widget()
        self.class_plot.setLabel("bottom", "class")
        self.class_plot.setLabel("left", "%")
        self.class_plot.setMouseEnabled(x=False, y=False)
        self.class_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.class_plot.setYRange(0, 100, padding=0.02)
        self.class_base = pg.BarGraphItem(x=[], height=[], width=0.38)
        self.class_cur = pg.BarGraphItem(x=[], height=[], width=0.38)
        self.class_plot.addItem(self.class_base)
        self.class_plot.addItem(self.class_cur)
        #: Number of classes the per-class chart shows (0: none).
        self.num_classes_shown = 0
        # Tick labels thinned to the axis' width: redone when the plot is resized.
        self.class_plot.getViewBox().sigResized.connect(self._update_class_ticks)
        self.step_plot.getViewBox().sigResized.connect(self._update_step_ticks)
        self.class_title = QLabel("")
        self.step_title = QLabel("")
        for lab in (self.class_title, self.step_title):
            lab.setWordWrap(True)

        # The two charts share one place (tabs): never one over the other, each as tall as the dock allows.
        self.charts = _ChartTabs()
        self.charts.setDocumentMode(True)
        for title, plot, name, tip in (
            (self.step_title, self.step_plot, "Per step", "Accuracy after each history step"),
            (self.class_title, self.class_plot, "Per class", "Accuracy of each class, baseline and current"),
        ):
            page = QWidget()
            page_lay = QVBoxLayout(page)
            page_lay.setContentsMargins(0, 2, 0, 0)
            page_lay.setSpacing(2)
            page_lay.addWidget(title)
            page_lay.addWidget(plot, 1)
            plot.setMinimumHeight(90)
            self.charts.addTab(page, name)
            self.charts.setTabToolTip(self.charts.count() - 1, tip)
        self.charts.setMinimumHeight(CHART_MIN_HEIGHT)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        lay.addWidget(self.data_label)
        lay.addWidget(self.device_label)
        lay.addWidget(self.timing_label)
        lay.addLayout(arch_row)
        lay.addLayout(choices)
        lay.addLayout(grid)
        lay.addWidget(self.progress)
        lay.addWidget(self.running_label)
        lay.addWidget(self.message)
        lay.addWidget(self.charts, 1)
        self.message.hide()
        self.offer_architecture(False)
        for key in self.choice_boxes:
            self.offer_choices(key, [])
        self.apply_theme()
        theme.signals.changed.connect(self.apply_theme)

    # -- theme ------------------------------------------------------------------------
    def apply_theme(self) -> None:
        """Take colours and sizes from :mod:`weightlab.gui.theme` (called again whenever it changes)."""
        muted, warning = theme.css("muted"), theme.css("warning")
        self.timing_label.setStyleSheet(f"color: {muted};")
        self.running_label.setStyleSheet(f"color: {warning}; font-weight: 600;")
        self.message.setStyleSheet(f"color: {theme.css(self._message_role)};")
        big = self.font()
        big.setPointSizeF(big.pointSizeF() * 1.5)
        big.setWeight(big.Weight.DemiBold)
        for lab in (self.base_acc, self.cur_acc):
            lab.setFont(big)
        accent = theme.color("accent")
        self.step_curve.setPen(pg.mkPen(accent, width=theme.line_width(2)))
        self.step_curve.setSymbolBrush(pg.mkBrush(accent))
        self.step_curve.setSymbolPen(pg.mkPen(accent))
        prov = pg.mkPen(theme.color("warning"), width=theme.line_width(1.5))
        self.provisional_bar.setData(pen=prov)
        self.provisional_point.setPen(prov)
        self.provisional_point.setBrush(pg.mkBrush(theme.color("bg")))
        self.base_line.setPen(pg.mkPen(theme.color("muted"), width=theme.line_width(1), style=Qt.PenStyle.DashLine))
        base = _baseline_colour()
        self.class_base.setOpts(brush=pg.mkBrush(base), pen=pg.mkPen(None))
        self.class_cur.setOpts(brush=pg.mkBrush(accent), pen=pg.mkPen(None))
        base_swatch = base.name()
        self.class_title.setText(
            f"<span style='color:{base_swatch}'>■</span> baseline "
            f"<span style='color:{accent.name()}'>■</span> current"
        )
        self.step_title.setText(
            f"<span style='color:{muted}'>- - -</span> baseline · "
            f"<span style='color:{warning}'>○</span> running estimate, 95 % interval"
        )
        self._show_deltas()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange and hasattr(self, "charts"):  # presentation mode: the big numbers follow the font
            self.apply_theme()

    # -- state --------------------------------------------------------------------
    @property
    def settled(self) -> bool:
        """True once the baseline is shown or evaluation is known to be off."""
        return self.baseline is not None or self.off_reason is not None

    def reset(self, data_name: str | None) -> None:
        """Forget all numbers (a new model or held-out set is being opened)."""
        self.baseline = self.current = None
        self.off_reason = None
        self._by_step.clear()
        self._num_samples = 0
        self._num_classes = 0
        self._deltas = None
        self.end_pass()
        self.timing_label.setText("Last evaluation: –")
        self.data_label.setText(f"Held-out set: <b>{data_name}</b>" if data_name else "Held-out set: none")
        for lab in (self.base_acc, self.base_loss, self.cur_acc, self.cur_loss):
            lab.setText("–")
        self._show_deltas()
        self.show_message("")
        self.set_busy("starting evaluation…" if data_name else "idle")
        self._redraw()

    def clear(self) -> None:
        """Forget everything model-specific: numbers, history, charts, choices, messages.

        For a new model (the window calls it before the new model's
        evaluation starts): nothing of the previous model stays on screen,
        the per-class chart included. The device stays (it is the worker's).
        """
        self._history = ()
        self._position = 0
        self.reset(None)
        self.offer_architecture(False)
        for key in self.choice_boxes:
            self.offer_choices(key, [])

    def set_off(self, reason: str) -> None:
        """Evaluation is off; say why (e.g. no held-out set, safe-mode refusal)."""
        self.off_reason = reason
        self._message_role = "warning"
        self.message.setStyleSheet(f"color: {theme.css('warning')};")
        _show_text(self.message, f"Evaluation off: {reason}")
        self.set_busy("off")

    def set_device(self, device: str) -> None:
        """Show the worker's device (``CPU`` or a GPU name)."""
        self.device_label.setText(f"Device: {device}" if device else "Device: –")

    def set_data_info(self, name: str, num_samples: int, num_classes: int) -> None:
        """Describe the held-out set once the engine has loaded it."""
        self._num_samples = int(num_samples)
        self._num_classes = int(num_classes)
        self.data_label.setText(f"Held-out set: <b>{name}</b> · {num_samples} samples · {num_classes} classes")

    def show_message(self, text: str, error: bool = True) -> None:
        """A non-modal note (a crash, a failed evaluation)."""
        self._message_role = "negative" if error else "muted"
        self.message.setStyleSheet(f"color: {theme.css(self._message_role)};")
        _show_text(self.message, text)

    def set_busy(self, text: str | None = None, done: int = 0, total: int = 0) -> None:
        """Progress bar: ``done`` of ``total`` batches, or a text when idle/off."""
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"evaluating: batch {done}/{total}")
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(1 if text == "done" else 0)
            self.progress.setFormat(text or "idle")

    # -- evaluation choices ----------------------------------------------------------
    def offer_architecture(self, show: bool, current: str | None = None) -> None:
        """Show or hide "Choose architecture…" and the architecture chosen so far."""
        self.arch_button.setVisible(show)
        self.arch_label.setVisible(show)
        self.arch_label.setText(f"architecture: <b>{current}</b>" if current else "no architecture chosen")

    def offer_choices(self, key: str, values: Sequence[str], current: str | None = None) -> None:
        """Offer a choice of ``key`` (``"signature"``/``"output"``) among ``values``; hidden for fewer than 2."""
        box = self.choice_boxes[key]
        box.clear()
        box.addItems(list(values))
        if current in values:
            box.setCurrentText(current)
        visible = len(values) > 1
        box.setVisible(visible)
        idx = self._choices.indexOf(box)
        self._choices.itemAt(idx - 1).widget().setVisible(visible)  # its "key:" label

    # -- a pass in progress ------------------------------------------------------------
    def start_pass(self, position: int) -> None:
        """A pass measuring history ``position`` started; its running estimate is drawn there."""
        self._pending = position
        self.running = None
        self.running_label.setText("")
        self._draw_provisional()

    def end_pass(self) -> None:
        """Forget the running estimate (the result arrived, or the pass was dropped)."""
        self._pending = None
        self.running = None
        self.running_label.setText("")
        self._draw_provisional()

    def set_running(self, ev: Any) -> None:
        """Show a ``Progress`` event: batches done, running accuracy and its 95% interval.

        The estimate is drawn in the step chart as a provisional point with an
        error bar at the position given to :meth:`start_pass`; the final
        result (:meth:`set_current`/:meth:`set_baseline`) replaces it.
        """
        self.set_busy(done=int(ev.done), total=int(ev.total))
        if int(getattr(ev, "samples", 0) or 0) <= 0 or math.isnan(float(getattr(ev, "accuracy", math.nan))):
            return
        self.running = ev
        self.running_label.setText(running_text(ev, self._num_samples))
        self._draw_provisional()

    def _draw_provisional(self) -> None:
        ev = self.running
        if ev is None or self._pending is None:
            self.provisional_bar.setData(x=np.zeros(0), y=np.zeros(0))
            self.provisional_point.setData([], [])
            return
        acc = 100 * float(ev.accuracy)
        low, high = float(ev.ci_low), float(ev.ci_high)
        x = np.array([float(self._pending)])
        if not (math.isnan(low) or math.isnan(high)):
            self.provisional_bar.setData(
                x=x, y=np.array([acc]), top=np.array([100 * high - acc]), bottom=np.array([acc - 100 * low])
            )
        self.provisional_point.setData(x, [acc])
        self._fit_y()

    def provisional(self) -> tuple[float, float, float, float] | None:
        """``(x, accuracy %, low %, high %)`` of the drawn running estimate, or None."""
        if self.running is None or self._pending is None:
            return None
        ev = self.running
        return float(self._pending), 100 * float(ev.accuracy), 100 * float(ev.ci_low), 100 * float(ev.ci_high)

    # -- results -------------------------------------------------------------------
    def set_baseline(self, metrics: Any) -> None:
        """Show the baseline metrics (the file as opened); current = baseline until an edit."""
        self.baseline = metrics
        self.base_acc.setText(fmt_pct(metrics.accuracy))
        self.base_loss.setText(fmt_num(metrics.loss))
        self.off_reason = None
        _show_text(self.message, "")
        self.set_current(metrics, 0, ())

    def set_current(self, metrics: Any, position: int, applied: Sequence[Any]) -> None:
        """Show metrics measured with ``applied`` steps (``position`` of them) in place."""
        self.current = metrics
        acc, loss = metrics.accuracy, metrics.loss
        self._by_step[position] = (tuple(applied), float(acc))
        if self.baseline is not None:
            b_acc, b_loss = self.baseline.accuracy, self.baseline.loss
            self._deltas = (acc - b_acc, loss - b_loss)
        else:
            self._deltas = None
        self.cur_acc.setText(fmt_pct(acc))
        self.cur_loss.setText(fmt_num(loss))
        self._show_deltas()
        seconds = metrics.seconds
        self.set_busy(f"done in {seconds:.2f} s" if seconds is not None else "done")
        device = metrics.device
        if device:
            self.set_device(str(device))
        self.timing_label.setText(f"Last evaluation: {timing_text(metrics)}" + (f" · {device}" if device else ""))
        self.end_pass()
        self._redraw()

    def set_history(self, steps: Sequence[Any], position: int) -> None:
        """The session's steps and position changed: redraw the step chart."""
        self._history = tuple(steps)
        self._position = position
        self._redraw()

    def _show_deltas(self) -> None:
        """The change of accuracy (pp) and loss since the baseline, coloured by the theme."""
        if self._deltas is None:
            self.cur_acc_delta.setText("")
            self.cur_loss_delta.setText("")
            return
        d_acc, d_loss = self._deltas
        self.cur_acc_delta.setText(_delta_html(d_acc, fmt_delta_pp(d_acc)))
        self.cur_loss_delta.setText(_delta_html(d_loss, f"{d_loss:+.3g}", higher_is_better=False))

    def step_accuracy(self) -> dict[int, float]:
        """Accuracy measured at each history position still valid (baseline at 0).

        A result stays valid while the steps before its position are the same
        edits, each switched on or off as when it was measured. Steps are
        compared by their edit and switch, not as objects: switching a step
        off and on again gives the session new step objects for the same
        state, and the points measured before must come back.
        """
        out: dict[int, float] = {}
        for pos, (applied, acc) in self._by_step.items():
            prefix = self._history[:pos]
            if len(applied) == pos and len(prefix) == pos and all(map(_same_step, applied, prefix)):
                out[pos] = acc
        return out

    def _redraw(self) -> None:
        pts = sorted(self.step_accuracy().items())
        if pts:
            xs, ys = zip(*pts)
            self.step_curve.setData(list(xs), [100 * y for y in ys])
        else:
            self.step_curve.setData([], [])
        self._fit_y()
        n = max(1, len(self._history))
        self.step_plot.setXRange(-0.3, n + 0.3, padding=0)  # room for a point and its error bar at either end
        self._update_step_ticks()
        if self.baseline is not None:
            self.base_line.setValue(100 * self.baseline.accuracy)
            self.base_line.show()
        else:
            self.base_line.hide()
        self._redraw_classes()

    def _fit_y(self) -> None:
        """Fit the step chart's y range to the points, the baseline and the running interval."""
        vals = [100 * y for y in self.step_accuracy().values()]
        if self.baseline is not None:
            vals.append(100 * self.baseline.accuracy)
        prov = self.provisional()
        if prov is not None:
            vals.extend(v for v in prov[1:] if not math.isnan(v))
        vals = [v for v in vals if not math.isnan(v)]
        if vals:
            # Whole percents: a new point inside the current range leaves the
            # axis (and its cached drawing) as it is.
            lo, hi = math.floor(min(vals) - 1), math.ceil(max(vals) + 1)
            self.step_plot.setYRange(max(0.0, lo), min(100.0, hi), padding=0.05)
        else:
            self.step_plot.setYRange(0, 100, padding=0.05)  # no numbers yet: the whole scale, not pyqtgraph's ±200

    def _redraw_classes(self) -> None:
        base = getattr(self.baseline, "per_class", None) if self.baseline is not None else None
        cur = getattr(self.current, "per_class", None) if self.current is not None else None
        if base is None:
            # No numbers for this model (yet): no bars and no classes of a previous model.
            self.class_base.setOpts(x=[], height=[])
            self.class_cur.setOpts(x=[], height=[])
            self.num_classes_shown = 0
            self.class_plot.setXRange(-0.7, 0.7, padding=0)
            self._update_class_ticks()
            return
        b = 100 * np.asarray(base, float).ravel()
        c = 100 * np.asarray(cur if cur is not None else base, float).ravel()
        n = max(len(b), len(c))
        self.class_base.setOpts(x=np.arange(len(b)) - 0.2, height=b)
        self.class_cur.setOpts(x=np.arange(len(c)) + 0.2, height=c)
        self.num_classes_shown = n
        self.class_plot.setXRange(-0.7, n - 0.3, padding=0)
        self._update_class_ticks()

    def _update_class_ticks(self, *_args: Any) -> None:
        """Class numbers under the bars, thinned so that no two labels overlap at the plot's width."""
        n = self.num_classes_shown
        axis = self.class_plot.getAxis("bottom")
        set_ticks(axis, [thinned_ticks(n, self._axis_pixels(self.class_plot), self._tick_metrics(axis).horizontalAdvance)])

    def _update_step_ticks(self, *_args: Any) -> None:
        """History positions 0..n under the points, thinned to the plot's width."""
        n = max(1, len(self._history))
        axis = self.step_plot.getAxis("bottom")
        set_ticks(axis, [thinned_ticks(n + 1, self._axis_pixels(self.step_plot), self._tick_metrics(axis).horizontalAdvance)])

    @staticmethod
    def _tick_metrics(axis: pg.AxisItem) -> QFontMetrics:
        return QFontMetrics(axis.style.get("tickFont") or axis.font())

    @staticmethod
    def _axis_pixels(plot: pg.PlotWidget) -> float:
        """Width in pixels of one unit of ``plot``'s x axis (0 before the plot has a size)."""
        box = plot.getViewBox()
        (x0, x1), width = box.viewRange()[0], box.width()
        return width / (x1 - x0) if x1 > x0 and width > 0 else 0.0


def _same_step(a: Any, b: Any) -> bool:
    """Whether history steps ``a`` and ``b`` stand for the same state change (same edit, same switch)."""
    if a is b:
        return True
    edit_a, edit_b = getattr(a, "edit", None), getattr(b, "edit", None)
    if edit_a is None or edit_b is None:
        return False
    return edit_a is edit_b and getattr(a, "enabled", True) == getattr(b, "enabled", True)


class _ChartTabs(QTabWidget):
    """The charts' tabs, preferring their smallest height: they take the room the dock has left.

    A plot's own size hint is its scene's size (hundreds of pixels); a scroll
    area holding the panel would make the panel that tall and scroll it
    even in a dock with room for everything.
    """

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        hint = super().sizeHint()
        return QSize(hint.width(), max(self.minimumHeight(), self.minimumSizeHint().height()))

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt's name)
        # the wrapped titles' preferred heights would bring the plots' back
        return max(self.sizeHint().height(), self.minimumSizeHint().height())


def _baseline_colour() -> QColor:
    """The baseline bars' colour: the theme's muted colour at 60 % over its background (opaque)."""
    muted, bg = theme.color("muted"), theme.color("bg")
    mix = [round(0.6 * a + 0.4 * b) for a, b in zip(muted.getRgb()[:3], bg.getRgb()[:3])]
    return QColor(*mix)


def _show_text(label: QLabel, text: str) -> None:
    """Set ``label``'s text; an empty label is hidden so it takes no room in a small dock."""
    label.setText(text)
    label.setVisible(bool(text))
