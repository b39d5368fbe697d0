"""Make ``docs/screenshot.png``: the demo after an ablation and a clip, with a brushed range.

::

    QT_QPA_PLATFORM=offscreen python docs/screenshot.py [OUT.png]

Opens the bundled demo with its held-out set in a 1400x900 window (default
layout, light theme: settings in a temporary folder), waits for
the baseline, zeroes 8 units of ``dense``, clips ``conv2d_1/kernel`` to
±0.12, brushes [-0.05, 0.05] on its histogram and saves ``window.grab()``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(out: Path) -> None:
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from weightlab.core.edits import Clip, ZeroNeurons
    from weightlab.demo import HELDOUT, MODEL_KERAS
    from weightlab.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    w = MainWindow()
    w.resize(1400, 900)
    w.show()

    def wait(done, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            app.processEvents()

    w.open_path(MODEL_KERAS, HELDOUT)
    wait(lambda: w.eval_panel.settled)
    w.apply_edit(ZeroNeurons(target="dense", neurons=(3, 5, 8, 12, 20, 31, 40, 50)))
    wait(lambda: not w.busy)  # edits run off the window's thread; one at a time
    w.tree.select("conv2d_1/kernel")
    w.apply_edit(Clip(target="conv2d_1/kernel", min=-0.12, max=0.12))
    wait(lambda: not w.busy)
    wait(lambda: w.view_settled and w.session.position in w.eval_panel.step_accuracy())
    w.histogram.set_range(-0.05, 0.05)
    wait(lambda: False, 1.0)  # let the last repaints land
    w.grab().save(str(out))
    w.set_session(None)  # no unsaved-edits question
    w.close()


if __name__ == "__main__":
    import os
    import tempfile

    # the default layout and light theme, never the settings of whoever runs it (nor written to them)
    with tempfile.TemporaryDirectory(prefix="weightlab-shot-") as config:
        os.environ["WEIGHTLAB_CONFIG_DIR"] = config
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("screenshot.png"))
