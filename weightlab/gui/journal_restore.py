"""The window's edit journal and the restore offer at start-up.

:class:`JournalController` keeps a :class:`~weightlab.core.journal.SessionJournal`
for the window's session and offers to restore the journals of sessions that
ended without saving (a crash, a kill): *"WeightLab closed with N unsaved
edits to X. Restore them?"* with Restore / Discard / Later. A restore reopens
the file, checks that its content is unchanged and replays the edits in a
thread; the session lands in the window through :attr:`JournalController.restored`.

The question sits behind :meth:`JournalController.ask` so tests can answer it
without a modal dialog.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from weightlab.core.errors import WeightLabError
from weightlab.core.journal import Candidate, SessionJournal, find_stale, journal_dir, restore
from weightlab.core.session import EditSession
from weightlab.formats import open_session


class JournalController(QObject):
    """Journals the window's session; finds, offers and restores journals left by killed sessions.

    Parameters
    ----------
    parent:
        The window (dialogs are parented to it).
    folder:
        Where journals live; :func:`~weightlab.core.journal.journal_dir` when omitted.

    Signals
    -------
    restored(object, object):
        ``(session, candidate)``: a restored session, on the window's thread.
        The receiver shows it and then calls ``candidate.discard()``.
    restoreFailed(str, object):
        ``(message, candidate)``: the restore was refused or failed; the
        journal is kept for a later start.
    """

    restored = Signal(object, object)
    restoreFailed = Signal(str, object)
    _finished = Signal(object, object)  # from the restore thread: (session, candidate)

    def __init__(self, parent: QWidget, folder: Path | None = None):
        super().__init__(parent)
        self._window = parent
        self.folder = folder if folder is not None else journal_dir()
        self.journal = SessionJournal(self.folder)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._finished.connect(self._deliver)
        self.restoreFailed.connect(self._on_failed)

    # -- the window's own session ---------------------------------------------------------
    def attach(self, session: EditSession | None) -> None:
        """Journal ``session`` (the window now shows it); the previous journal is removed.

        An in-memory model (``weightlab.show(model)``) has no file to replay
        edits onto after a crash: it is not journaled, and :attr:`journal`'s
        ``error`` says so.
        """
        if session is not None and session.model.in_memory:
            self.journal.attach(None)
            self.journal.error = (f"{session.model.path.name}: edits to an in-memory model are not journaled "
                                  "(there is no file to restore them onto after a crash)")
            return
        self.journal.attach(session)

    def sync(self) -> None:
        """Record the session's history now (after a save, or a change the session did not announce)."""
        self.journal.sync()

    def close(self) -> None:
        """The window closes with its edits saved or discarded: remove the journal, stop any restore."""
        self._closed = True
        self._stop.set()
        self._join()
        self.journal.close()

    # -- restoring --------------------------------------------------------------------------
    def pending(self) -> list[Candidate]:
        """Journals of sessions that ended with unsaved edits, newest first (each locked until answered)."""
        return find_stale(self.folder)

    def ask(self, candidate: Candidate) -> str:
        """Ask what to do with ``candidate``: ``"restore"``, ``"discard"`` or ``"later"``."""
        box = QMessageBox(self._window)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Restore unsaved edits?")
        box.setText(candidate.describe())
        restore_btn = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        discard_btn = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(restore_btn)
        box.exec()
        clicked = box.clickedButton()
        return "restore" if clicked is restore_btn else "discard" if clicked is discard_btn else "later"

    def offer(self) -> bool:
        """Offer each pending journal in turn; True when a restore was started.

        "Discard" deletes a journal, "Later" keeps it for the next start;
        after a "Restore" the remaining ones are kept for the next start.
        """
        started = False
        for cand in self.pending():
            if started:
                cand.release()
                continue
            answer = self.ask(cand)
            if answer == "restore":
                started = self.restore(cand)
            elif answer == "discard":
                cand.discard()
            else:
                cand.release()
        return started

    @property
    def restoring(self) -> bool:
        """True while a restore runs."""
        return self._thread is not None

    def restore(self, candidate: Candidate) -> bool:
        """Reopen, check and replay ``candidate`` in a thread; the result arrives as a signal.

        False (and the journal kept) when a restore is already running.
        """
        if self._thread is not None:
            candidate.release()
            return False
        self._stop = stop = threading.Event()
        status = getattr(self._window, "statusBar", None)
        if status is not None:
            n = candidate.edit_count
            status().showMessage(f"Restoring {n} unsaved edit{'s' if n != 1 else ''} to {candidate.model_path}…", 0)

        def run() -> None:
            try:
                session = restore(candidate, open_session, stop=stop)
            except WeightLabError as e:
                self.restoreFailed.emit(str(e), candidate)
                return
            except Exception as e:  # noqa: BLE001 - a restore must never take the window down
                self.restoreFailed.emit(f"{candidate.model_path}: unexpected error: {type(e).__name__}: {e}", candidate)
                return
            if stop.is_set():
                session.model.close()
                candidate.release()
                return
            self._finished.emit(session, candidate)

        self._thread = threading.Thread(target=run, name="weightlab-journal-restore", daemon=True)
        self._thread.start()
        return True

    def _deliver(self, session: EditSession, candidate: Candidate) -> None:
        """The restore thread's result, on the window's thread: handed on unless the window closed meanwhile."""
        self._join()
        if self._closed:
            session.model.close()
            candidate.release()
            return
        self.restored.emit(session, candidate)

    def _on_failed(self, message: str, candidate: Candidate) -> None:
        self._join()
        candidate.release()
        if not self._closed:
            self._window._error("Cannot restore unsaved edits", message)

    def _join(self, *_args: object) -> None:
        t, self._thread = self._thread, None
        if t is not None:
            t.join()
