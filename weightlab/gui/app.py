"""Application entry point: :func:`run_app`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

#: Longest wait for the baseline evaluation before a screenshot is taken anyway (s).
SCREENSHOT_TIMEOUT = 240.0


def run_app(
    path: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    screenshot: str | os.PathLike[str] | None = None,
) -> int:
    """Run the WeightLab window; return the exit code.

    Parameters
    ----------
    path:
        Model file to open at start.
    data:
        Held-out ``.npz`` to evaluate on (default: one named like the model beside it).
    screenshot:
        When given, wait until the model is open and the baseline evaluation
        (or a clear "evaluation off" state) is shown, save ``window.grab()``
        to this PNG and quit.
    """
    import pyqtgraph as pg
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from weightlab.resources import ICON_NAME, icon_path

    from .error_dialog import install_error_dialog
    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("WeightLab")
    app.setOrganizationName("WeightLab")
    # the desktop entry's name: Wayland compositors and docks match the window to it (and its icon)
    app.setDesktopFileName(ICON_NAME)
    try:
        app.setWindowIcon(QIcon(str(icon_path())))
    except FileNotFoundError:
        pass  # a broken installation still runs, with the platform's default icon
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

    window = MainWindow()  # its remembered size and layout, or 1400x900 (shrunk to the screen) on a first run
    if screenshot is not None:
        window.resize(1400, 900)  # screenshots have one size, whatever the user's remembered window
        window.remember_layout = False
    window.show()
    restore_hooks = install_error_dialog(window)
    # Edits a crash or kill left unsaved are offered first (not in screenshot runs: no dialogs there).
    restoring = screenshot is None and window.journal.offer()
    if path is not None and restoring:
        window.statusBar().showMessage(f"Restoring unsaved edits; {path} was not opened", 8000)
    elif path is not None:
        window.open_path(path, data)
    elif data is not None:
        window.statusBar().showMessage("Open a model first, then its held-out set", 8000)

    code = {"rc": 0}
    if screenshot is not None:
        out = Path(screenshot)
        deadline = time.monotonic() + SCREENSHOT_TIMEOUT
        timer = QTimer(window)

        def poll() -> None:
            ready = not window.opening and (window.session is None or window.eval_panel.settled)
            if ready or time.monotonic() > deadline:
                timer.stop()
                out.parent.mkdir(parents=True, exist_ok=True)
                if not window.grab().save(str(out)):
                    print(f"weightlab: cannot write screenshot {out}", file=sys.stderr)
                    code["rc"] = 1
                window.close()
                app.quit()

        timer.timeout.connect(poll)
        timer.start(200)
    try:
        rc = app.exec()
    finally:
        restore_hooks()
    window.engine.shutdown()
    return code["rc"] or rc
