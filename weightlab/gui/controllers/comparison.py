"""Comparison: File › Compare with… — the per-tensor change from the opened file to another.

:class:`ComparisonController` opens the other file off the window's thread,
compares it with the workspace's model (here for a small model, in the pool
behind a progress dialog for a large one) and shows the result. A comparison
whose model is no longer the one shown (the workspace's ``comparison_base``)
is dropped.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QProgressDialog

from weightlab.app.workspace import Workspace
from weightlab.core.diff import compare_models
from weightlab.core.errors import WeightLabError
from weightlab.core.session import EditSession

from ..diff_view import CompareDialog
from ..opener import ModelOpener, OpenRequest, close_session
from .host import WindowHost
from .paths import MODEL_FILTER

#: Models with at most this many parameters are compared on the GUI thread
#: (well under 100 ms); larger ones in the pool behind a progress dialog.
COMPARE_SYNC_PARAMS = 2_000_000


class ComparisonController(QObject):
    """Compares the shown model with another file.

    Parameters
    ----------
    window:
        The main window (its computer pool, progress widget, dialogs and ``compareShown``).
    workspace:
        Whose model is compared.

    Attributes
    ----------
    dialog:
        The comparison dialog shown last (None: none).
    running:
        ``(other session, stop event, progress dialog)`` while a large comparison runs.
    """

    def __init__(self, window: WindowHost, workspace: Workspace):
        super().__init__(window)
        self.w = window
        self.ws = workspace
        self.opener = ModelOpener(self)
        self.dialog: CompareDialog | None = None
        self.running: tuple[EditSession, threading.Event, QProgressDialog] | None = None
        self.opener.opened.connect(self._on_opened)
        self.opener.failed.connect(self._on_open_failed)
        window.compare_progress.cancel.clicked.connect(self.cancel_open)
        c = window.computer
        c.compareProgress.connect(self._on_progress)
        c.compared.connect(self._on_compared)
        c.compareFailed.connect(self._on_failed)

    def compare_dialog_open(self) -> None:
        """File › Compare with…"""
        if self.ws.session is None:
            return
        path = self.w._ask_open_path("Compare with", MODEL_FILTER)
        if path:
            self.compare_with(path)

    def compare_with(self, path: str | os.PathLike[str]) -> bool:
        """Open ``path`` and compare it with the shown model (see ``MainWindow.compare_with``)."""
        if self.ws.session is None:
            return False
        p = Path(path)
        self.ws.comparison_base = self.ws.session
        request = self.opener.open(p, None, self.w._load_session)
        self.w.compare_progress.start(p.name, request.started, "to compare")
        return True

    def _on_opened(self, request: OpenRequest, other: EditSession) -> None:
        """The file to compare with was read (GUI thread): compare it with the opened model."""
        self.w.compare_progress.stop()
        mine, p = self.ws.session, request.path
        if mine is None or mine is not self.ws.comparison_base:
            close_session(other)  # another model was opened meanwhile
            return

        def read_a(name: str):
            return mine.original(name, cache=False)

        def read_b(name: str):
            return other.original(name, cache=False)

        if mine.model.param_count <= COMPARE_SYNC_PARAMS:
            try:
                diffs = compare_models(mine.model, other.model, read_a, read_b)
            except WeightLabError as e:
                other.model.close()
                self.w._error("Cannot compare", str(e))
                return
            self._show(other, diffs)
            return
        self._cancel_running()
        stop = threading.Event()
        dialog = QProgressDialog(f"Comparing {mine.model.path.name} with {p.name}…", "Cancel", 0,
                                 len(mine.model.tensors), self.w)
        dialog.setWindowTitle("Compare")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(stop.set)
        self.running = (other, stop, dialog)
        self.w.computer.compare(mine.model, other.model, read_a, read_b, stop)

    def _on_open_failed(self, request: OpenRequest, message: str) -> None:
        self.w.compare_progress.stop()
        self.w._error("Cannot compare", message)

    def cancel_open(self) -> None:
        """Stop waiting for the file to compare with (it is closed when its thread ends)."""
        request = self.opener.cancel()
        self.w.compare_progress.stop()
        if request is not None:
            self.w.statusBar().showMessage(f"Comparing with {request.path.name} cancelled", 5000)

    def _cancel_running(self) -> None:
        if self.running is not None:
            other, stop, dialog = self.running
            self.running = None
            stop.set()
            dialog.reset()
            other.model.close()

    def _on_progress(self, done: int, total: int, name: str) -> None:
        if self.running is not None:
            dialog = self.running[2]
            dialog.setMaximum(total)
            dialog.setValue(done)
            dialog.setLabelText(f"Comparing {name} ({done + 1} of {total})…")

    def _on_compared(self, diffs) -> None:
        if self.running is None:
            return
        other, stop, dialog = self.running
        self.running = None
        dialog.reset()
        if diffs is None or stop.is_set():
            other.model.close()
            self.w.statusBar().showMessage("Comparison cancelled", 4000)
            return
        self._show(other, diffs)

    def _on_failed(self, message: str) -> None:
        if self.running is not None:
            self._cancel_running()
            self.w._error("Cannot compare", message)

    def _show(self, other: EditSession, diffs: list) -> CompareDialog:
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = CompareDialog(self.ws.session, other, diffs, self.w)
        self.dialog.show()
        self.w.compareShown.emit(self.dialog)
        return self.dialog

    def close(self) -> None:
        """The window closes: nothing keeps running, the dialog is closed."""
        self.opener.cancel()
        self.w.compare_progress.stop()
        self._cancel_running()
        if self.dialog is not None:
            self.dialog.close()
