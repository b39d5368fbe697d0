"""Session changes off the owner's thread (Qt-free).

An :class:`EditRunner` has one background thread that runs the heavy half of
a change, :meth:`EditSession.prepare <weightlab.core.session.EditSession.prepare>`
(an edit of 100 million values, a replay of the history), one at a time. The
cheap half, :meth:`~weightlab.core.session.EditSession.commit`, runs on the
thread that owns the session: the runner hands it back through ``post``, a
function the owner supplies (a Qt queued signal in the window,
:class:`weightlab.gui.edit_runner.QtEditRunner`; a queue drained by the
caller in tests). While a change runs the runner is :attr:`~EditRunner.busy`
and refuses another one, so a second click cannot queue a duplicate step.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable

from weightlab.core.session import Change, EditSession, Prepared

#: Hands a function to the owner's thread, to be called there soon (never inline).
Post = Callable[[Callable[[], None]], None]
#: Called on the owner's thread with the names whose values changed.
OnDone = Callable[[set[str]], None]
#: Called on the owner's thread with what went wrong (nothing was applied).
OnError = Callable[[BaseException], None]

_Job = tuple[EditSession, Change, OnDone, OnError]


class EditRunner:
    """Prepares session changes on one background thread and commits them on the owner's.

    Parameters
    ----------
    post:
        ``post(fn)`` must arrange for ``fn()`` to be called on the thread
        that owns the sessions (it is called from the runner's thread).
    thread_init:
        Called first on the runner's thread (e.g. to lower its priority).
    name:
        The thread's name.

    Notes
    -----
    The thread starts with the first :meth:`submit` and runs until
    :meth:`shutdown`. Every method is for the owner's thread.
    """

    def __init__(self, post: Post, *, thread_init: Callable[[], None] | None = None, name: str = "weightlab-edits"):
        self._post = post
        self._thread_init = thread_init
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._closed = False

    @property
    def busy(self) -> bool:
        """True from an accepted :meth:`submit` until its result has landed on the owner's thread."""
        return self._busy

    @property
    def closed(self) -> bool:
        """True after :meth:`shutdown`: nothing is accepted any more."""
        return self._closed

    def submit(self, session: EditSession, change: Change, on_done: OnDone, on_error: OnError) -> bool:
        """Prepare ``change`` of ``session`` on the runner's thread, then commit it on the owner's.

        Exactly one of the callbacks is called later, on the owner's thread
        (through ``post``), unless the runner is shut down first:
        ``on_done(changed_names)`` after the commit (the session's listeners
        have run by then), or ``on_error(exc)`` when the prepare or the
        commit raised (a :class:`~weightlab.core.errors.WeightLabError` for
        an edit that does not fit, :class:`~weightlab.core.session.StaleChange`
        when the session changed meanwhile); the session is unchanged then.
        :attr:`busy` is already False when a callback runs.

        Returns
        -------
        bool
            False, and nothing happens, while another change is running or
            after :meth:`shutdown`; True when the change was accepted.
        """
        if self._busy or self._closed:
            return False
        self._busy = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()
        self._jobs.put((session, change, on_done, on_error))
        return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop accepting changes and join the thread; return True when it has ended.

        A change being prepared is finished (NumPy cannot be interrupted) but
        not committed: its callbacks are never called. ``timeout`` bounds the
        wait in seconds (None: until it ends).
        """
        self._closed = True
        thread = self._thread
        if thread is None:
            return True
        self._jobs.put(None)
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._thread = None
        return True

    # -- the runner's thread ------------------------------------------------------
    def _loop(self) -> None:
        if self._thread_init is not None:
            self._thread_init()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._hand_back(self._prepare(*job))
            del job  # hold no session between changes

    def _prepare(self, session: EditSession, change: Change, on_done: OnDone, on_error: OnError) -> Callable[[], None]:
        """Run the prepare; return what the owner's thread does with its outcome."""
        try:
            prepared = session.prepare(change)
        except BaseException as e:  # noqa: BLE001 - reported to the owner, who shows it
            return functools.partial(self._land_error, e, on_error)
        return functools.partial(self._land, session, prepared, on_done, on_error)

    def _hand_back(self, fn: Callable[[], None]) -> None:
        if self._closed:
            return  # the owner is going away: nothing more lands
        try:
            self._post(fn)
        except RuntimeError:  # the owner's receiver is gone (a deleted Qt object)
            pass

    # -- the owner's thread ----------------------------------------------------------
    def _land(self, session: EditSession, prepared: Prepared, on_done: OnDone, on_error: OnError) -> None:
        if self._closed:
            return
        try:
            changed = session.commit(prepared)
        except BaseException as e:  # noqa: BLE001 - reported to the owner, who shows it
            self._land_error(e, on_error)
            return
        self._busy = False
        on_done(changed)

    def _land_error(self, error: BaseException, on_error: OnError) -> None:
        if self._closed:
            return
        self._busy = False
        on_error(error)
