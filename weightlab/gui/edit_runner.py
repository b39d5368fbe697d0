"""Session changes off the GUI thread, for the window: :class:`QtEditRunner`.

The window hands each edit, undo, redo, step switch or recipe to
:meth:`QtEditRunner.submit`; the heavy part runs on the runner's thread
(:class:`weightlab.app.runner.EditRunner`) and the commit lands on the GUI
thread through a queued signal, where the session notifies its listeners as
a synchronous change would. While a change runs, :attr:`QtEditRunner.busy` is
True and ``submit`` refuses another, so the window disables the actions that
would queue a duplicate step and shows its busy state from ``busyChanged``.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal

from weightlab.app.runner import EditRunner
from weightlab.core.errors import WeightLabError
from weightlab.core.session import Change, EditSession, StaleChange
from weightlab.gui.tensor_worker import lower_thread_priority

#: Seconds :meth:`QtEditRunner.shutdown` waits for a running change by default.
SHUTDOWN_TIMEOUT_S = 30.0


class QtEditRunner(QObject):
    """Runs session changes off the GUI thread, one at a time; results land on the GUI thread.

    Signals
    -------
    started(str)
        A change was accepted; its label ("Prune fc1/kernel", "Undo").
    finished(object)
        The change was committed: the set of canonical names whose values
        changed (the session's listeners have run already).
    failed(str)
        The change failed; the message says why. The session is unchanged.
    busyChanged(bool)
        True when a change is accepted, False when it has landed (before
        ``finished`` or ``failed``).
    """

    started = Signal(str)
    finished = Signal(object)
    failed = Signal(str)
    busyChanged = Signal(bool)
    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._posted.connect(self._run_posted, Qt.ConnectionType.QueuedConnection)
        runner = self._runner = EditRunner(self._posted.emit, thread_init=lower_thread_priority, name="weightlab-edits")
        # Deleted with its parent before shutdown(): the thread still ends (after a running prepare).
        self.destroyed.connect(lambda *_: runner.shutdown(0))
        self._label = ""

    @property
    def busy(self) -> bool:
        """True from an accepted :meth:`submit` until its result has landed."""
        return self._runner.busy

    def submit(self, session: EditSession, change: Change, label: str) -> bool:
        """Prepare ``change`` off the GUI thread and commit it on the GUI thread.

        Parameters
        ----------
        session:
            The session to change (owned by the GUI thread).
        change:
            An ``ApplyEdit``, ``ApplyEdits``, ``Goto`` or ``SetStepEnabled``
            from :mod:`weightlab.core.session`.
        label:
            What the change is, for ``started`` and failure messages.

        Returns
        -------
        bool
            False while another change runs (or after :meth:`shutdown`):
            nothing happens then. True when accepted: ``started`` and
            ``busyChanged(True)`` are emitted at once, ``finished`` or
            ``failed`` later.
        """
        if not self._runner.submit(session, change, self._done, self._error):
            return False
        self._label = label
        self.busyChanged.emit(True)
        self.started.emit(label)
        return True

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT_S) -> bool:
        """Refuse further changes and join the runner's thread (a running change is not committed).

        Call it before the session's model is closed. Returns True when the
        thread has ended within ``timeout`` seconds. (Deleting the runner
        also stops its thread, without waiting.)
        """
        return self._runner.shutdown(timeout)

    # -- GUI thread ---------------------------------------------------------------
    def _run_posted(self, fn: Callable[[], None]) -> None:
        fn()

    def _done(self, changed: set[str]) -> None:
        self.busyChanged.emit(False)
        self.finished.emit(changed)

    def _error(self, error: BaseException) -> None:
        if isinstance(error, WeightLabError | StaleChange):
            message = str(error)
        else:
            message = f"{self._label}: {type(error).__name__}: {error}"
        self.busyChanged.emit(False)
        self.failed.emit(message)
