"""The window from a notebook or a script, Qt side: the application, IPython's event loop, waiting, jobs.

:mod:`weightlab.viewer` (``weightlab.show``/``weightlab.run``) builds the
session (it may import TensorFlow: it is outside the window's package) and
hands it here; this module never imports TensorFlow.

- :func:`get_app` reuses the running ``QApplication`` or makes one.
- :func:`enable_ipython_loop` turns on IPython's Qt event-loop integration
  (``%gui qt6``) when the caller runs under IPython/Jupyter, as napari does
  since 0.4.7: the notebook stays usable while the window runs between cells.
- :func:`open_window` shows a :class:`~weightlab.gui.main_window.MainWindow`
  on a given session, without the journal's restore question.
- :func:`pump_until` processes Qt events until a condition holds (for
  ``Viewer.wait`` and job results; no fixed sleeps).
- :class:`WindowJob` is the future-like handle of a job started in a window
  from the notebook (a sweep, a ranking, a fine-tuning).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

from weightlab.app.workspace import Saved, SessionReplaced, TensorsChanged
from weightlab.core.errors import EngineError
from weightlab.core.session import EditSession

from .controllers.paths import guess_heldout
from .main_window import MainWindow

__all__ = [
    "IPYTHON_QT_LOOPS",
    "WindowHost",
    "WindowJob",
    "enable_ipython_loop",
    "evaluation_settled",
    "get_app",
    "ipython_loop_active",
    "open_window",
    "pump_until",
]

#: IPython's names of a running Qt event-loop integration.
IPYTHON_QT_LOOPS = frozenset({"qt", "qt5", "qt6"})
#: How often a wait re-checks its condition while Qt processes events (ms).
POLL_MS = 20


# -- the application and IPython ----------------------------------------------------------------
def get_app() -> QApplication:
    """The running ``QApplication``, or a new one named WeightLab (pyqtgraph set up as the window expects)."""
    import pyqtgraph as pg

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv and sys.argv[0] else "weightlab"])
        app.setApplicationName("WeightLab")
        app.setOrganizationName("WeightLab")
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    assert isinstance(app, QApplication)
    return app


def _shell() -> Any:
    """The running IPython shell, or None (IPython is never imported here: only looked up)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if get is not None else None


def ipython_loop_active() -> bool:
    """True when IPython runs Qt's event loop between cells (``%gui qt``)."""
    shell = _shell()
    return shell is not None and getattr(shell, "active_eventloop", None) in IPYTHON_QT_LOOPS


def enable_ipython_loop() -> bool:
    """Turn on IPython's Qt event-loop integration when running under IPython; True when it is on.

    Sets ``QT_API=pyside6`` first (unless set) and asks for ``qt6``, so
    IPython drives the same Qt binding as the window (ipykernel drops
    ``QT_API`` for a generic ``"qt"`` request and picks a binding itself, which
    could be PyQt6 when it is installed too). Outside IPython nothing happens (False).
    """
    shell = _shell()
    if shell is None:
        return False
    if ipython_loop_active():
        _hand_back_turns(shell)
        return True
    os.environ.setdefault("QT_API", "pyside6")
    shell.enable_gui("qt6")
    on = ipython_loop_active()
    if on:
        _hand_back_turns(shell)
    return on


#: How often the Qt loop hands the kernel a turn while the notebook is idle (ms).
KERNEL_TURN_MS = 200


def _hand_back_turns(shell: Any) -> None:
    """Make ipykernel's Qt loop give its own event loop a turn every :data:`KERNEL_TURN_MS`.

    ipykernel runs Qt's loop between cells and leaves it only when a message
    arrives on the shell socket (an edge-triggered ZeroMQ notifier). A reply
    the kernel queued on its own event loop just before entering Qt's (the
    cell that turned the integration on) then waits for the next message, and
    the frontend waits for the reply: the cell looks busy for ever (seen once
    in a few runs on a loaded machine; ipykernel's Tk integration returns every
    few milliseconds for the same reason). Quitting ipykernel's
    ``qt_event_loop`` now and then lets the kernel flush and re-enter it 1 ms
    later (``Kernel.enter_eventloop``); the window keeps running. One timer per
    application, owned by it; nothing happens outside the kernel's Qt loop.
    """
    app = QApplication.instance()
    kernel = getattr(shell, "kernel", None)
    if app is None or kernel is None or app.findChild(QTimer, "weightlab-kernel-turns") is not None:
        return

    def turn() -> None:
        kapp = getattr(kernel, "app", None)
        loop = getattr(kapp, "qt_event_loop", None)
        if loop is not None and getattr(kapp, "_in_event_loop", False):
            loop.quit()

    timer = QTimer(app)
    timer.setObjectName("weightlab-kernel-turns")
    timer.setInterval(KERNEL_TURN_MS)
    timer.timeout.connect(turn)
    timer.start()


# -- waiting -----------------------------------------------------------------------------------------
def pump_until(condition: Callable[[], bool], timeout: float | None = None) -> bool:
    """Process Qt events until ``condition()`` is true; False when ``timeout`` seconds passed first.

    The condition is checked every :data:`POLL_MS` ms of a local event loop
    (the window keeps working meanwhile), so it may read any state the
    window's events change. ``timeout`` None waits as long as it takes.
    """
    if condition():
        return True
    get_app()
    deadline = None if timeout is None else time.monotonic() + timeout
    loop = QEventLoop()
    timer = QTimer()
    outcome = {"ok": False}

    def check() -> None:
        if condition():
            outcome["ok"] = True
            loop.quit()
        elif deadline is not None and time.monotonic() >= deadline:
            loop.quit()

    timer.timeout.connect(check)
    timer.start(POLL_MS)
    try:
        loop.exec()
    finally:
        timer.stop()
    return outcome["ok"]


def evaluation_settled(window: MainWindow) -> bool:
    """True when ``window`` shows the held-out evaluation of its session's current state (or evaluation is off).

    No file is opening, no edit is running, and either the evaluation is off
    (with its reason shown) or the baseline is known and the accuracy of the
    current history position is measured, with no pass running.
    """
    if window.opening or window.busy:
        return False
    s, panel = window.session, window.eval_panel
    if s is None or panel.off_reason is not None:
        return True
    if panel.baseline is None or panel.running is not None or panel._pending is not None:
        return False
    return s.position in panel.step_accuracy()


# -- the window ------------------------------------------------------------------------------------
class WindowHost(QObject):
    """Watches a window shown from Python: its title, and when it has closed.

    Signals
    -------
    closed():
        The window was closed (by the user or :meth:`close`), once.
    """

    closed = Signal()

    def __init__(self, window: MainWindow, session: EditSession, title: str | None):
        super().__init__(window)
        self.window = window
        self.session = session  # the session given; the window may show another later
        self.last_session: EditSession | None = session
        self.title = title
        self.is_closed = False
        ws = window.workspace
        ws.subscribe(self._retitle, SessionReplaced, TensorsChanged, Saved)
        ws.subscribe(self._remember, SessionReplaced)
        window.installEventFilter(self)

    def _remember(self, ev: SessionReplaced) -> None:
        if ev.session is not None:
            self.last_session = ev.session

    def _retitle(self, _ev: object = None) -> None:
        s = self.window.session
        if self.title and s is not None and s is self.session:
            self.window.setWindowTitle(f"{self.title}{'*' if s.is_modified else ''} — WeightLab")

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.window and event.type() == QEvent.Type.Close:
            # closeEvent runs after this filter and may refuse: look once it has.
            QTimer.singleShot(0, self, self._check_closed)  # receiver: not after the host is gone
        return False

    def _check_closed(self) -> None:
        if not self.is_closed and not self.window.isVisible():
            self.is_closed = True
            self.closed.emit()

    def close(self) -> bool:
        """Close the window without asking about unsaved edits (they stay in the session object); True when closed."""
        if self.is_closed:
            return True
        w = self.window
        ask = w._ask_unsaved
        w._ask_unsaved = lambda: "discard"  # type: ignore[method-assign]
        try:
            ok = w.close()
        finally:
            w._ask_unsaved = ask  # type: ignore[method-assign]
        if ok:
            self.is_closed = True
            self.closed.emit()
        return ok


def open_window(session: EditSession, data_path: Path | None, *, title: str | None = None,
                trust: bool = False, borrowed: bool = False, size: tuple[int, int] = (1400, 900)) -> WindowHost:
    """Show a new window on ``session``, evaluated on ``data_path`` (default: a held-out set beside a file).

    The journal's restore question is not asked (a notebook is not a fresh
    start after a crash); the window journals a file-backed session's edits as
    usual and an in-memory one's not at all. ``trust`` lets the evaluation run
    the model's own code. The session's model must already be executable by
    another process (``session.model.exec_path``): in-memory models are
    materialised by the caller. ``borrowed``: the session is the caller's,
    its model is not closed when the window closes or shows another.
    """
    app = get_app()
    window = MainWindow()
    if trust:  # as Evaluation › Trust model code, without its question: the caller asked for it
        window.workspace.set_trust(True)
        window.act_trust.blockSignals(True)
        window.act_trust.setChecked(True)
        window.act_trust.blockSignals(False)
    if borrowed:
        window.documents.borrowed = session
    host = WindowHost(window, session, title)
    if data_path is None and not getattr(session.model, "in_memory", False):
        data_path = guess_heldout(session.model.path)
    window.resize(*_fit_screen(app, size))
    window.show()
    window.set_session(session, data_path)
    host._retitle()
    if app.platformName() != "offscreen":
        window.raise_()
    app.processEvents()
    return host


def _fit_screen(app: QApplication, size: tuple[int, int]) -> tuple[int, int]:
    """``size`` made to fit the primary screen's free area (a laptop's 1366x768), not below the window's minimum.

    Off screen (``offscreen``/``minimal`` platforms, whose screen is a nominal 800x600) ``size`` is kept.
    """
    screen = app.primaryScreen()
    if screen is None or app.platformName() in ("offscreen", "minimal"):
        return size
    free = screen.availableGeometry()
    return max(1000, min(size[0], free.width() - 40)), max(640, min(size[1], free.height() - 60))


# -- jobs ------------------------------------------------------------------------------------------
class WindowJob(QObject):
    """A job started in a window from Python: its progress shows in the window, its result comes back as data.

    Like a :class:`concurrent.futures.Future`: :meth:`done`, :meth:`result`
    (which processes the window's events while it waits), :meth:`cancel`.

    Parameters
    ----------
    window:
        The window whose engine runs the job.
    job_id:
        The engine's job id.
    kind:
        ``"sweep"``, ``"rank"``, ``"finetune"``...
    landed:
        Optional condition that must also hold before :meth:`done` (a
        fine-tuning's weights applied to the session as a history step).
    """

    def __init__(self, window: MainWindow, job_id: int, kind: str, landed: Callable[[], bool] | None = None):
        super().__init__(window)
        self.window = window
        self.job_id = job_id
        self.kind = kind
        self.state = "queued"
        self.message = ""
        self._result: Any = None
        self._finished = False
        self._landed = landed
        window.engine.jobResult.connect(self._on_result)
        window.engine.jobFinished.connect(self._on_finished)
        window.engine.jobStarted.connect(self._on_started)

    def __repr__(self) -> str:
        return f"<WindowJob {self.kind} #{self.job_id}: {self.state}>"

    def _on_started(self, info: Any) -> None:
        if getattr(info, "job_id", None) == self.job_id and not self._finished:
            self.state = "running"

    def _on_result(self, ev: Any) -> None:
        if ev.job_id == self.job_id:
            self._result = ev.result

    def _on_finished(self, info: Any) -> None:
        if info.job_id != self.job_id:
            return
        self._finished = True
        self.state = info.state
        self.message = info.message or ""

    def done(self) -> bool:
        """True when the job has ended (done, cancelled or failed) and its outcome has reached the window."""
        if not self._finished:
            return False
        return self.state != "done" or self._landed is None or self._landed()

    def cancel(self) -> None:
        """Ask the engine to stop the job (a sweep or ranking keeps its points so far, training its best epoch)."""
        if not self._finished:
            self.window.engine.cancel_job(self.job_id)

    def result(self, timeout: float | None = None) -> Any:
        """The job's result (the API's data class), processing the window's events while waiting.

        Parameters
        ----------
        timeout:
            Seconds to wait at most (None: as long as it takes).

        Returns
        -------
        SweepResult, RankResult, FinetuneResult or PruneRetrainResult
            For a cancelled sweep or ranking, its partial result
            (``complete`` False) when it measured anything.

        Raises
        ------
        TimeoutError
            The job did not end within ``timeout`` seconds (it keeps running).
        concurrent.futures.CancelledError
            It was cancelled before producing anything.
        EngineError
            It failed; the message is the engine's.
        """
        if not pump_until(self.done, timeout):
            raise TimeoutError(f"{self.kind} job {self.job_id} still {self.state} after {timeout} s")
        if self.state == "failed":
            raise EngineError(f"{self.kind} failed: {self.message or 'unknown error'}")
        result = self._result if self._result is not None else self._partial()
        if result is None:
            raise CancelledError(f"{self.kind} {self.state}" + (f": {self.message}" if self.message else ""))
        return result

    def _partial(self) -> Any:
        """What the window kept of a job that ended without a final result (a cancelled sweep's points)."""
        ctl = {"sweep": getattr(self.window, "sweeps", None), "rank": getattr(self.window, "ranking", None)}.get(self.kind)
        r = getattr(ctl, "result", None)
        return r if r is not None and getattr(r, "complete", True) is False else None
