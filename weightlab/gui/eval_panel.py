"""Live held-out evaluation: baseline vs current accuracy, progress, charts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QProgressBar, QVBoxLayout, QWidget

from .engine_adapter import metric
from .formatting import fmt_delta_pp, fmt_num, fmt_pct

WORSE = "#c92a2a"
BETTER = "#2b8a3e"
BASELINE_BRUSH = pg.mkBrush(170, 170, 170)
CURRENT_BRUSH = pg.mkBrush("#1c7ed6")


def _delta_html(delta: float, text: str, higher_is_better: bool = True) -> str:
    if abs(delta) < 1e-12:
        return f"<span style='color:#666; font-size:10pt'>({text})</span>"
    good = (delta > 0) == higher_is_better
    return f"<span style='color:{BETTER if good else WORSE}; font-size:10pt'>({text})</span>"


class EvalPanel(QGroupBox):
    """Shows what the engine reports about the held-out set.

    The window feeds it: :meth:`set_off` when evaluation is impossible (with
    the reason), :meth:`set_baseline` / :meth:`set_current` with metrics, and
    :meth:`set_history` after every session change so the accuracy-per-step
    chart keeps only results of steps still in the history.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Held-out evaluation", parent)
        self.baseline: Any = None
        self.current: Any = None
        self.off_reason: str | None = None
        # position -> (steps applied when measured, accuracy)
        self._by_step: dict[int, tuple[tuple[Any, ...], float]] = {}
        self._history: tuple[Any, ...] = ()
        self._position = 0

        self.data_label = QLabel("Held-out set: none")
        self.data_label.setWordWrap(True)
        self.device_label = QLabel("Device: –")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color: {WORSE};")
        self.base_acc = QLabel("–")
        self.base_loss = QLabel("–")
        self.cur_acc = QLabel("–")
        self.cur_loss = QLabel("–")
        for lab in (self.base_acc, self.cur_acc):
            lab.setStyleSheet("font-size: 15pt; font-weight: 600;")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setMaximumHeight(16)

        grid = QGridLayout()
        grid.addWidget(QLabel(""), 0, 0)
        grid.addWidget(QLabel("<b>accuracy</b>"), 0, 1)
        grid.addWidget(QLabel("<b>loss</b>"), 0, 2)
        grid.addWidget(QLabel("Baseline"), 1, 0)
        grid.addWidget(self.base_acc, 1, 1)
        grid.addWidget(self.base_loss, 1, 2)
        grid.addWidget(QLabel("Current"), 2, 0)
        grid.addWidget(self.cur_acc, 2, 1)
        grid.addWidget(self.cur_loss, 2, 2)
        grid.setColumnStretch(1, 1)

        self.step_plot = pg.PlotWidget(background="w")
        self.step_plot.setMinimumHeight(90)
        self.step_plot.setLabel("bottom", "history step")
        self.step_plot.setLabel("left", "accuracy %")
        self.step_plot.showGrid(y=True, alpha=0.2)
        self.step_plot.setMouseEnabled(x=False, y=False)
        self.step_curve = self.step_plot.plot([], [], pen=pg.mkPen("#1c7ed6", width=2), symbol="o",
                                              symbolSize=6, symbolBrush="#1c7ed6")
        self.base_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#999", style=Qt.PenStyle.DashLine))
        self.step_plot.addItem(self.base_line)
        self.base_line.hide()

        self.class_plot = pg.PlotWidget(background="w")
        self.class_plot.setMinimumHeight(90)
        self.class_plot.setLabel("bottom", "class")
        self.class_plot.setLabel("left", "accuracy %")
        self.class_plot.setMouseEnabled(x=False, y=False)
        self.class_plot.setYRange(0, 100, padding=0.02)
        self.class_base = pg.BarGraphItem(x=[], height=[], width=0.38, brush=BASELINE_BRUSH)
        self.class_cur = pg.BarGraphItem(x=[], height=[], width=0.38, brush=CURRENT_BRUSH)
        self.class_plot.addItem(self.class_base)
        self.class_plot.addItem(self.class_cur)
        self.class_title = QLabel(
            "Per-class accuracy: <span style='color:#888'>■ baseline</span> "
            "<span style='color:#1c7ed6'>■ current</span>"
        )
        self.step_title = QLabel("Accuracy after each history step (dashed: baseline)")

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.data_label)
        lay.addWidget(self.device_label)
        lay.addLayout(grid)
        lay.addWidget(self.progress)
        lay.addWidget(self.message)
        lay.addWidget(self.step_title)
        lay.addWidget(self.step_plot, 1)
        lay.addWidget(self.class_title)
        lay.addWidget(self.class_plot, 1)

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
        self.data_label.setText(f"Held-out set: <b>{data_name}</b>" if data_name else "Held-out set: none")
        for lab in (self.base_acc, self.base_loss, self.cur_acc, self.cur_loss):
            lab.setText("–")
        self.message.setText("")
        self.set_busy("starting evaluation…" if data_name else "idle")
        self._redraw()

    def set_off(self, reason: str) -> None:
        """Evaluation is off; say why (e.g. no held-out set, safe-mode refusal)."""
        self.off_reason = reason
        self.message.setStyleSheet("color: #8a5a00;")
        self.message.setText(f"Evaluation off: {reason}")
        self.set_busy("off")

    def set_device(self, device: str) -> None:
        """Show the worker's device (``CPU`` or a GPU name)."""
        self.device_label.setText(f"Device: {device}" if device else "Device: –")

    def set_data_info(self, name: str, num_samples: int, num_classes: int) -> None:
        """Describe the held-out set once the engine has loaded it."""
        self.data_label.setText(f"Held-out set: <b>{name}</b> · {num_samples} samples · {num_classes} classes")

    def show_message(self, text: str, error: bool = True) -> None:
        """A non-modal note (a crash, a failed evaluation)."""
        self.message.setStyleSheet(f"color: {WORSE if error else '#555'};")
        self.message.setText(text)

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

    # -- results -------------------------------------------------------------------
    def set_baseline(self, metrics: Any) -> None:
        """Show the baseline metrics (the file as opened); current = baseline until an edit."""
        self.baseline = metrics
        self.base_acc.setText(fmt_pct(metric(metrics, "accuracy")))
        self.base_loss.setText(fmt_num(metric(metrics, "loss")))
        self.off_reason = None
        self.message.setText("")
        self.set_current(metrics, 0, ())

    def set_current(self, metrics: Any, position: int, applied: Sequence[Any]) -> None:
        """Show metrics measured with ``applied`` steps (``position`` of them) in place."""
        self.current = metrics
        acc, loss = metric(metrics, "accuracy"), metric(metrics, "loss")
        self._by_step[position] = (tuple(applied), float(acc))
        if self.baseline is not None:
            b_acc, b_loss = metric(self.baseline, "accuracy"), metric(self.baseline, "loss")
            d_acc, d_loss = acc - b_acc, loss - b_loss
            self.cur_acc.setText(f"{fmt_pct(acc)}<br>{_delta_html(d_acc, fmt_delta_pp(d_acc))}")
            self.cur_loss.setText(
                f"{fmt_num(loss)}<br>{_delta_html(d_loss, f'{d_loss:+.3g}', higher_is_better=False)}"
            )
        else:
            self.cur_acc.setText(fmt_pct(acc))
            self.cur_loss.setText(fmt_num(loss))
        seconds = metric(metrics, "seconds")
        self.set_busy(f"done in {seconds:.2f} s" if seconds is not None else "done")
        device = metric(metrics, "device")
        if device:
            self.set_device(str(device))
        self._redraw()

    def set_history(self, steps: Sequence[Any], position: int) -> None:
        """The session's steps and position changed: redraw the step chart."""
        self._history = tuple(steps)
        self._position = position
        self._redraw()

    def step_accuracy(self) -> dict[int, float]:
        """Accuracy measured at each history position still valid (baseline at 0)."""
        out: dict[int, float] = {}
        for pos, (applied, acc) in self._by_step.items():
            prefix = self._history[:pos]
            if len(applied) == pos and len(prefix) == pos and all(a is b for a, b in zip(applied, prefix)):
                out[pos] = acc
        return out

    def _redraw(self) -> None:
        pts = sorted(self.step_accuracy().items())
        if pts:
            xs, ys = zip(*pts)
            self.step_curve.setData(list(xs), [100 * y for y in ys])
            vals = [100 * y for y in ys]
            if self.baseline is not None:
                vals.append(100 * metric(self.baseline, "accuracy"))
            self.step_plot.setYRange(max(0.0, min(vals) - 1), min(100.0, max(vals) + 1), padding=0.05)
        else:
            self.step_curve.setData([], [])
        n = max(1, len(self._history))
        self.step_plot.setXRange(0, n, padding=0.05)
        step = max(1, n // 10)
        self.step_plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(0, n + 1, step)]])
        if self.baseline is not None:
            self.base_line.setValue(100 * metric(self.baseline, "accuracy"))
            self.base_line.show()
        else:
            self.base_line.hide()
        self._redraw_classes()

    def _redraw_classes(self) -> None:
        base = metric(self.baseline, "per_class") if self.baseline is not None else None
        cur = metric(self.current, "per_class") if self.current is not None else None
        if base is None:
            self.class_base.setOpts(x=[], height=[])
            self.class_cur.setOpts(x=[], height=[])
            return
        n = len(base)
        x = np.arange(n)
        self.class_base.setOpts(x=x - 0.2, height=100 * np.asarray(base, float))
        c = cur if cur is not None else base
        self.class_cur.setOpts(x=x + 0.2, height=100 * np.asarray(c, float))
        self.class_plot.setXRange(-0.7, n - 0.3, padding=0)
        self.class_plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(n)]])
