"""Unexpected errors as one dialog: :func:`install_error_dialog`.

Expected failures (a damaged file, a bad recipe, a held-out set that does not
fit) are reported by the window itself with the project's own messages. This
module catches the rest, a bug or a library failing in an unforeseen way, so
that it too reaches the user as one dialog instead of a traceback on the
terminal, and the window keeps running.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Signal


class ErrorRelay(QObject):
    """Carries an unexpected error's text to the window's thread and shows it there, one dialog at a time.

    It is a child of the window: once the window is gone, reports are dropped.
    """

    raised = Signal(str)

    def __init__(self, window: Any):
        super().__init__(window)
        self._window = window
        self._showing = False
        self._more = 0
        self.raised.connect(self._show)

    def report(self, message: str) -> None:
        """Any thread: show ``message`` on the window's thread (dropped once the window is gone)."""
        if shiboken6.isValid(self):
            self.raised.emit(message)

    def _show(self, message: str) -> None:
        if self._showing:
            self._more += 1  # raised while the dialog is open (a failing repaint): counted, not stacked
            return
        self._showing = True
        try:
            self._window._error(
                "Unexpected error",
                f"{message}\n\nWeightLab keeps running; save your work and report this "
                "(run with --verbose for the details).",
            )
        finally:
            self._showing = False
        if self._more:
            more, self._more = self._more, 0
            self._window.statusBar().showMessage(f"{more} more unexpected error(s) while the dialog was open", 10000)


def install_error_dialog(window: Any) -> Callable[[], None]:
    """Show an exception nothing else handled as one error dialog of ``window``; the window keeps running.

    Covers exceptions escaping a Qt slot or event handler (``sys.excepthook``)
    and a Python thread (``threading.excepthook``). The dialog names the
    exception's type and message; the traceback reaches stderr only in
    verbose mode (``--verbose`` or ``WEIGHTLAB_DEBUG=1``).

    Parameters
    ----------
    window:
        The main window; its ``_error(title, message)`` shows the dialog.

    Returns
    -------
    callable
        Restores the previous hooks.
    """
    from weightlab.engine.quiet import is_verbose

    relay = ErrorRelay(window)
    previous = sys.excepthook, threading.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous[0](exc_type, exc, tb)
            return
        if is_verbose():
            traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        relay.report(f"{exc_type.__name__}: {exc}")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        hook(args.exc_type, args.exc_value if args.exc_value is not None else args.exc_type(), args.exc_traceback)

    sys.excepthook, threading.excepthook = hook, thread_hook

    def restore() -> None:
        sys.excepthook, threading.excepthook = previous

    return restore
