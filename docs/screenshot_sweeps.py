"""Make ``docs/sweeps.png``: the Sweeps tab on the demo, a per-layer pruning sweep and its plan applied.

::

    QT_QPA_PLATFORM=offscreen python docs/screenshot_sweeps.py [OUT.png]

Opens the bundled demo with its held-out set in a 1400x900 window, waits for
the baseline, runs an ``each`` sweep of ``prune_magnitude`` sparsity
0.1:0.9:0.2 over ``*/kernel`` with a 1 pp budget in the Sweeps tab, makes the
plan, applies it, waits for its live evaluation (the plan's real joint drop)
and saves ``window.grab()``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(out: Path) -> None:
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from weightlab.demo import HELDOUT, MODEL_KERAS
    from weightlab.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    w = MainWindow()
    w.resize(1400, 900)
    w.show()

    def wait(done, timeout: float = 180.0) -> None:
        end = time.monotonic() + timeout
        while not done():
            if time.monotonic() > end:
                raise SystemExit(f"timed out waiting for the window ({out}), line {done.__code__.co_firstlineno}")
            app.processEvents()

    def pause(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()

    w.open_path(MODEL_KERAS, HELDOUT)
    wait(lambda: w.eval_panel.settled and w.eval_panel.baseline is not None)
    panel = w.sweeps.panel
    w.views.setCurrentWidget(panel)
    panel.op_combo.setCurrentIndex(panel.op_combo.findData("prune_magnitude"))
    panel.param_combo.setCurrentIndex(panel.param_combo.findData("sparsity"))
    panel.values_kind.setCurrentIndex(panel.values_kind.findData("range"))
    panel.values_edit.setText("0.1:0.9:0.2")
    panel.target_kind.setCurrentIndex(panel.target_kind.findData("glob"))
    panel.target_edit.setText("*/kernel")
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("each"))
    panel.budget_spin.setValue(1.0)
    if w.sweeps.run() is None:
        raise SystemExit(f"the sweep did not start: {panel.message.text()}")
    wait(lambda: not w.sweeps.running)
    w.sweeps.make_plan()
    w.sweeps.apply_plan()
    wait(lambda: not w.busy)
    wait(lambda: "real drop <b>" in panel.plan_label.text())
    w.tree.select("dense/kernel")
    wait(lambda: w.view_settled)
    w.views.setCurrentWidget(panel)
    pause(1.0)  # let the last repaints land
    w.grab().save(str(out))
    w.set_session(None)  # no unsaved-edits question
    w.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("sweeps.png"))
