"""One supervisor for the child processes behind the TensorFlow wall.

:class:`ChildSupervisor` starts a child (:func:`weightlab.engine.spawn.start_child`:
a ``spawn``-ed daemon with a pipe and its output captured by a
:class:`~weightlab.engine.quiet.ChildOutput`), sends to it under one lock,
notices and describes its death (exit code, last lines of output), applies
the restart policy (at most ``max_restarts`` crashes within
``restart_window`` seconds) and stops it: ask, then terminate, then kill,
then join. Both the engine worker's client
(:class:`weightlab.engine.client.EngineClient`) and the TensorFlow reader's
(:class:`weightlab.engine.reader.TFReaderProcess`) use it; a child that is
still running when its supervisor is garbage-collected is stopped too.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any

from . import spawn
from .quiet import ChildOutput

__all__ = ["ChildSupervisor", "Death"]


@dataclass(frozen=True)
class Death:
    """How a child ended: its exit code and the last lines it wrote.

    Attributes
    ----------
    exitcode:
        As :attr:`multiprocessing.Process.exitcode` reports it (negative: the
        signal that killed it); None when it could not be joined.
    last_words:
        The last lines of its captured output (``""`` when none or verbose).
    """

    exitcode: int | None
    last_words: str = ""

    @property
    def how(self) -> str:
        """``"killed by signal 9"`` or ``"exit code 1"``."""
        code = self.exitcode
        return f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"

    @property
    def tail(self) -> str:
        """``"; last output: ..."`` to end an error message with, or ``""``."""
        return f"; last output: {self.last_words}" if self.last_words else ""


def _stop(proc: Any, conn: Any, output: ChildOutput | None, goodbye: object, timeout: float,
          lock: threading.Lock | None) -> None:
    """Ask ``proc`` to exit (``goodbye`` on ``conn``), then terminate, then kill; join it and its output."""
    if lock is None or lock.acquire(timeout=timeout):  # a child stuck in a large receive may hold the lock
        try:
            conn.send(goodbye)
        except (OSError, ValueError):
            pass
        finally:
            if lock is not None:
                lock.release()
    proc.join(timeout)
    if proc.is_alive():
        proc.terminate()
        proc.join(2.0)
    if proc.is_alive():
        proc.kill()
        proc.join(2.0)
    try:
        conn.close()
    except OSError:
        pass
    if output is not None:
        output.join()


class ChildSupervisor:
    """Starts, watches, restarts and stops one child process at a time.

    Parameters
    ----------
    entry:
        One of :data:`weightlab.engine.spawn.ENTRY_POINTS`.
    args:
        The entry point's arguments between the pipe end and the output handle.
    name, label:
        The process name, and how errors name the child.
    goodbye:
        The message that asks the child to exit.
    max_restarts, restart_window:
        :meth:`crashed` allows a restart until more than ``max_restarts``
        crashes happened within ``restart_window`` seconds.

    Notes
    -----
    :meth:`start`, :meth:`stop` and :meth:`reap` are meant to be called by
    one owner at a time (the clients hold their own lock); :meth:`send` may
    be called from any thread.
    """

    def __init__(
        self,
        entry: str,
        args: tuple[Any, ...] = (),
        *,
        name: str,
        label: str,
        goodbye: object = None,
        max_restarts: int = 3,
        restart_window: float = 60.0,
    ):
        self.entry, self.args, self.name, self.label, self.goodbye = entry, tuple(args), name, label, goodbye
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self._ctx = multiprocessing.get_context("spawn")
        self._send_lock = threading.Lock()
        self._crash_times: deque[float] = deque()
        self.proc: SpawnProcess | None = None
        self.conn: Connection | None = None
        self.output: ChildOutput | None = None
        self._finalizer: weakref.finalize | None = None

    # -- state ------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """True while a child is running."""
        proc = self.proc
        return proc is not None and proc.is_alive()

    @property
    def pid(self) -> int | None:
        """Process id of the current child (also when it has just died), or None."""
        proc = self.proc
        return proc.pid if proc is not None else None

    @property
    def crashes(self) -> int:
        """Crashes counted within the restart window (as of the last :meth:`crashed`)."""
        return len(self._crash_times)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> Connection:
        """Start a child (the previous one must be stopped or reaped); returns the parent's pipe end."""
        if self.proc is not None:
            raise RuntimeError(f"the {self.label} process is already started")
        proc, conn, output = spawn.start_child(self._ctx, self.entry, *self.args, name=self.name, label=self.label)
        self.proc, self.conn, self.output = proc, conn, output
        self._finalizer = weakref.finalize(self, _stop, proc, conn, output, self.goodbye, 5.0, None)
        return conn

    def send(self, message: object) -> None:
        """Send ``message`` to the child (one sender at a time).

        Raises
        ------
        OSError, ValueError
            When the child is gone (the pipe is closed or broken).
        """
        conn = self.conn
        if conn is None:
            raise OSError(f"the {self.label} process is not running")
        with self._send_lock:
            conn.send(message)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the child to exit, then terminate, then kill it; join it and its output (idempotent)."""
        proc, conn, output = self.proc, self.conn, self.output
        self._forget()
        if proc is not None:
            _stop(proc, conn, output, self.goodbye, timeout, self._send_lock)

    def reap(self) -> Death:
        """Collect a child that died (or whose pipe broke): join it, close the pipe, keep its last words.

        Returns
        -------
        Death
            Its exit code and last output; the supervisor then has no child.
        """
        proc, conn, output = self.proc, self.conn, self.output
        self._forget()
        if proc is None:
            return Death(None)
        proc.join(5.0)
        if proc.is_alive():  # the pipe broke but the process lingers: end it
            proc.kill()
            proc.join(2.0)
        last = output.last_words() if output is not None else ""
        try:
            if conn is not None:
                conn.close()
        except OSError:
            pass
        if output is not None:
            output.join()
        return Death(proc.exitcode, last)

    def crashed(self, now: float | None = None) -> bool:
        """Count a crash; True when a restart is still allowed by the policy."""
        now = time.monotonic() if now is None else now
        self._crash_times.append(now)
        while self._crash_times and now - self._crash_times[0] > self.restart_window:
            self._crash_times.popleft()
        return len(self._crash_times) <= self.max_restarts

    def forgive(self) -> None:
        """Forget the crashes counted so far (a user asked for a restart)."""
        self._crash_times.clear()

    def _forget(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
        self.proc = self.conn = self.output = None
        self._finalizer = None
