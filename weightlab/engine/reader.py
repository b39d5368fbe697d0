"""The client of the TensorFlow reader process (no TensorFlow in this process).

:class:`TFReaderProcess` runs :func:`weightlab._tf.reader.serve` (named by
string, see :mod:`weightlab.engine.spawn`) in a ``spawn``-ed child and calls
the functions of :mod:`weightlab._tf.tfio` there over a pipe. The child is started on the first
call and ended by :meth:`TFReaderProcess.close`; a later call starts a new one.
Errors in the child come back as :class:`~weightlab.core.errors.FormatError`
naming the file; a native crash of the child (TensorFlow segfaulting on a
damaged file) becomes a FormatError too (``"the TensorFlow reader crashed while
reading <file> (exit -11); the file may be damaged; last output:
...``, quoting the last lines the child wrote), never a dead application.

A child that cannot start (TensorFlow fails to import, the process cannot
be spawned) is reported as such: ``"the TensorFlow reader process could not
start (...)"``, with the reason, never as a damaged file.

Protocol (tuples over a :class:`multiprocessing.connection.Connection`)::

    child -> parent   ("ready",) once TensorFlow is imported, or
                      ("failed", message) when it cannot be
    parent -> child   (function name, args)   or None to stop
    child -> parent   ("ok", result) | ("error", message, path)
"""

from __future__ import annotations

import os
import threading
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from ..core.errors import FormatError
from . import spawn
from .supervisor import ChildSupervisor

__all__ = ["TFReaderProcess"]


class TFReaderProcess:
    """Calls :mod:`weightlab._tf.tfio` in a child process.

    Parameters
    ----------
    shown:
        The file or folder the user opened; named in error messages.

    Notes
    -----
    Thread-safe (one call at a time). The child is a daemon, so it never
    outlives this process; :meth:`close` (or garbage collection) ends it.
    Its start, death and stop are a :class:`~weightlab.engine.supervisor.ChildSupervisor`'s.
    """

    def __init__(self, shown: str | os.PathLike[str]):
        self.shown = os.fspath(shown)
        self._lock = threading.Lock()
        self._child = ChildSupervisor(spawn.READER, name="weightlab-tf-reader", label="tf-reader", goodbye=None)

    @property
    def pid(self) -> int | None:
        """Process id of the running child, or None."""
        return self._child.pid if self._child.alive else None

    def _start(self) -> None:
        """Start the child and wait for its ``("ready",)``; caller holds the lock.

        Raises
        ------
        FormatError
            ``"the TensorFlow reader process could not start ..."`` with the
            reason: the spawn failed, TensorFlow did not import, or the child
            died before it was ready (its exit and last output quoted).
        """
        child = self._child
        if child.proc is not None:
            child.reap()
        try:
            child.start()
        except (OSError, RuntimeError, ValueError) as exc:  # cannot spawn: no resources, bootstrapping...
            raise FormatError(f"the TensorFlow reader process could not start: {exc}", self.shown) from None
        conn, proc = child.conn, child.proc
        assert conn is not None and proc is not None
        first: Any = None
        try:
            while first is None:
                ready = wait([conn, proc.sentinel])
                if conn in ready or conn.poll():
                    first = conn.recv()
                elif proc.sentinel in ready:
                    raise EOFError
        except (EOFError, OSError):
            death = child.reap()
            raise FormatError(
                f"the TensorFlow reader process could not start ({death.how})" + death.tail, self.shown
            ) from None
        if first != ("ready",):
            child.stop()
            reason = first[1] if isinstance(first, tuple) and len(first) == 2 and first[0] == "failed" else first
            raise FormatError(
                f"the TensorFlow reader process could not start: TensorFlow did not import ({reason})", self.shown
            )

    def _call(self, fn: str, *args: Any, action: str) -> Any:
        child = self._child
        with self._lock:
            if not child.alive:
                self._start()
            conn, proc = child.conn, child.proc
            assert conn is not None and proc is not None
            try:
                child.send((fn, args))
                while True:
                    ready = wait([conn, proc.sentinel])
                    if conn in ready:
                        answer = conn.recv()
                        break
                    if conn.poll():
                        continue
                    raise EOFError
            except (EOFError, OSError):
                death = child.reap()
                raise FormatError(
                    f"the TensorFlow reader crashed while {action} (exit {death.exitcode}); the file may be damaged"
                    + death.tail,
                    self.shown,
                ) from None
        if answer[0] == "ok":
            return answer[1]
        _, message, path = answer
        raise FormatError(message, path or self.shown)

    def list(self, kind: str, location: str) -> dict[str, Any]:
        """Describe the tensors at ``location`` (see :func:`weightlab._tf.tfio.list_location`).

        Raises
        ------
        FormatError
            When the file cannot be read, or the reader crashed.
        """
        return self._call("list_location", kind, location, action=f"reading {self.shown}")

    def read(self, kind: str, location: str, key: str) -> np.ndarray:
        """Return the tensor stored under ``key`` (stored shape and dtype).

        Raises
        ------
        FormatError
            When the tensor cannot be read, or the reader crashed.
        """
        return self._call("read_tensor", kind, location, key, action=f"reading {key!r} from {self.shown}")

    def save(self, kind: str, location: str, changed_by_key: dict[str, np.ndarray], out: str) -> None:
        """Write ``location`` to ``out`` with ``changed_by_key`` replaced (see :func:`weightlab._tf.tfio.save`).

        Raises
        ------
        FormatError
            When writing fails, or the reader crashed (``out`` is then left as it was,
            apart from a temporary file or folder beside it).
        """
        self._call("save", kind, location, changed_by_key, out, action=f"saving to {out}")

    def close(self) -> None:
        """End the child process (idempotent); a later call starts a new one."""
        with self._lock:
            self._child.stop()
