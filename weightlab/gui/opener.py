"""Opening model files off the window's thread: :class:`ModelOpener` and :class:`OpenProgress`.

Opening reads a file's structure (h5py for Keras files, a reader process for
TensorFlow formats). A damaged or hostile file can make that slow, so the
window never waits for it: :class:`ModelOpener` runs each open on its own
thread and hands the result back on the GUI thread. The latest request wins: a
newer open or a cancel makes older ones stale, and a stale result is closed
(its file handle or reader process released) instead of shown.

:class:`OpenProgress` is the status-bar indicator (busy bar, elapsed time,
Cancel) the window shows while an open takes longer than
:data:`PROGRESS_DELAY_MS`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from weightlab.core.errors import WeightLabError

#: An open that takes longer than this shows the progress indicator (ms).
PROGRESS_DELAY_MS = 300

_thread_numbers = itertools.count(1)


def open_error_message(path: Path, exc: BaseException) -> str:
    """The one-line message shown for a failed open of ``path``.

    A :class:`~weightlab.core.errors.WeightLabError` already names the file
    and what is wrong; anything else (a bug, or a library failing in a way
    the formats did not foresee) is named with its type, never a traceback.
    """
    if isinstance(exc, WeightLabError):
        return str(exc)
    return f"{path}: unexpected error while opening: {type(exc).__name__}: {exc}"


def close_session(session: Any) -> None:
    """Close the model of an opened session that is not going to be shown (any thread)."""
    try:
        session.model.close()
    except Exception:  # noqa: BLE001, S110 - releasing a discarded file; nothing to report
        pass


@dataclass(eq=False)
class OpenRequest:
    """One open: its number, what it opens, and how it ends.

    Attributes
    ----------
    token:
        Increasing number; only the latest request's result is shown.
    path:
        The file or folder to open.
    data:
        The held-out set chosen with it (None: guessed from the model's name).
    stale:
        Set when a newer request, a cancel or the window's close replaced it;
        the thread then closes its result itself.
    thread:
        The thread running the open (None before it starts).
    started:
        ``time.monotonic()`` when it was requested.
    """

    token: int
    path: Path
    data: Path | None
    stale: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.monotonic)


class _Relay(QObject):
    """Carries one open's outcome from its thread to the opener on the GUI thread.

    Owned by the thread's closure (no Qt parent) and connected to the opener
    on the GUI thread before the thread starts: if the opener (or its window)
    is deleted first, Qt drops the connections and the outcome goes nowhere.
    """

    done = Signal(object, object)  # (request, session)
    failed = Signal(object, str)  # (request, message)


class ModelOpener(QObject):
    """Runs ``load(path)`` on a background thread per request; reports the latest one.

    Parameters
    ----------
    parent:
        The owning window.

    Signals
    -------
    opened(OpenRequest, object):
        The latest request's session (GUI thread). The receiver owns it.
    failed(OpenRequest, str):
        The latest request failed; the message names the file and what is wrong.
    """

    opened = Signal(object, object)
    failed = Signal(object, str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._tokens = itertools.count(1)
        self._pending: OpenRequest | None = None
        self._requests: list[OpenRequest] = []  # every request whose thread may still run

    @property
    def pending(self) -> OpenRequest | None:
        """The request being opened, or None."""
        return self._pending

    def threads(self) -> list[threading.Thread]:
        """Threads of requests still running (the latest and stale ones); for tests and shutdown."""
        self._requests = [r for r in self._requests if r.thread is not None and r.thread.is_alive()]
        return [r.thread for r in self._requests if r.thread is not None]

    def open(self, path: Path, data: Path | None, load: Callable[[Path], Any]) -> OpenRequest:
        """Start opening ``path`` with ``load`` on a new thread; any earlier request becomes stale.

        ``load(path)`` returns an edit session (its ``model`` has ``close()``)
        or raises; it runs on the new thread and must not touch widgets.
        """
        self.cancel()
        self.threads()  # forget requests whose threads ended
        request = OpenRequest(next(self._tokens), Path(path), Path(data) if data is not None else None)
        relay = _Relay()
        relay.done.connect(self._on_done)
        relay.failed.connect(self._on_failed)

        def run() -> None:  # the open's thread: touches no widget, only emits the relay's signals
            try:
                session = load(request.path)
            except BaseException as exc:  # noqa: BLE001 - every failure becomes one message
                if not request.stale.is_set():
                    relay.failed.emit(request, open_error_message(request.path, exc))
                return
            if request.stale.is_set():
                close_session(session)  # cancelled or superseded while opening
                return
            relay.done.emit(request, session)

        request.thread = threading.Thread(target=run, name=f"weightlab-open-{next(_thread_numbers)}", daemon=True)
        self._pending = request
        self._requests.append(request)
        request.thread.start()
        return request

    def cancel(self) -> OpenRequest | None:
        """Make the pending request stale (its result is closed, not shown); return it, or None."""
        request, self._pending = self._pending, None
        if request is not None:
            request.stale.set()
        return request

    def _on_done(self, request: OpenRequest, session: Any) -> None:
        if request is not self._pending or request.stale.is_set():
            close_session(session)  # it arrived after a cancel or a newer open
            return
        self._pending = None
        self.opened.emit(request, session)

    def _on_failed(self, request: OpenRequest, message: str) -> None:
        if request is not self._pending or request.stale.is_set():
            return
        self._pending = None
        self.failed.emit(request, message)


class OpenProgress(QWidget):
    """Status-bar indicator of a running open: "Opening <name>… 3 s", a busy bar and Cancel.

    Hidden until the open has taken :data:`PROGRESS_DELAY_MS`; the elapsed
    time is updated every second. ``cancel`` is the Cancel button.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy: how long an open takes is not known in advance
        self.bar.setMaximumWidth(140)
        self.bar.setMaximumHeight(14)
        self.bar.setTextVisible(False)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop waiting for this file; the window keeps what it shows now")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel)
        self._name = ""
        self._started = 0.0
        self._timer = QTimer(self)  # owned: stops with the widget
        self._timer.timeout.connect(self._tick)
        self.hide()

    def start(self, name: str, started: float, purpose: str = "") -> None:
        """Show progress for opening ``name`` (requested at monotonic time ``started``) after the delay.

        ``purpose`` follows the name ("Opening other.keras to compare…").
        """
        self._name, self._started = f"{name} {purpose}".strip(), started
        self.hide()
        self._timer.start(PROGRESS_DELAY_MS)

    def stop(self) -> None:
        """Hide the indicator (the open ended)."""
        self._timer.stop()
        self.hide()

    @property
    def active(self) -> bool:
        """True while an open is shown or about to be."""
        return self._timer.isActive()

    def _tick(self) -> None:
        elapsed = time.monotonic() - self._started
        self.label.setText(f"Opening {self._name}…" + (f" {elapsed:.0f} s" if elapsed >= 1 else ""))
        if not self.isVisible():
            self.show()
            self._timer.start(1000)
