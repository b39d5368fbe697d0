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

Protocol (tuples over a :class:`multiprocessing.connection.Connection`)::

    parent -> child   (function name, args)   or None to stop
    child -> parent   ("ok", result) | ("error", message, path)
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import weakref
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from ..core.errors import FormatError
from . import spawn
from .quiet import ChildOutput

__all__ = ["TFReaderProcess"]

def _stop(proc: Any, conn: Any, output: ChildOutput | None = None) -> None:
    """End the child: ask politely, then terminate, then kill; then finish reading its output."""
    if proc is None:
        return
    try:
        conn.send(None)
    except (OSError, ValueError):
        pass
    proc.join(5)
    if proc.is_alive():
        proc.terminate()
        proc.join(2)
    if proc.is_alive():
        proc.kill()
        proc.join(2)
    conn.close()
    if output is not None:
        output.join()


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
    """

    def __init__(self, shown: str | os.PathLike[str]):
        self.shown = os.fspath(shown)
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self._finalizer: Any = None
        self._output: ChildOutput | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the running child, or None."""
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def _start(self) -> None:
        proc, parent, output = spawn.start_child(self._ctx, spawn.READER, name="weightlab-tf-reader", label="tf-reader")
        self._proc, self._conn, self._output = proc, parent, output
        self._finalizer = weakref.finalize(self, _stop, proc, parent, output)

    def _call(self, fn: str, *args: Any, action: str) -> Any:
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                if self._proc is not None:
                    self._reset()
                self._start()
            try:
                self._conn.send((fn, args))
                while True:
                    ready = wait([self._conn, self._proc.sentinel])
                    if self._conn in ready:
                        answer = self._conn.recv()
                        break
                    if self._conn.poll():
                        continue
                    raise EOFError
            except (EOFError, OSError, BrokenPipeError):
                self._proc.join(5)
                code = self._proc.exitcode
                output = self._output
                self._reset()
                last = output.last_words() if output is not None else ""
                raise FormatError(
                    f"the TensorFlow reader crashed while {action} (exit {code}); the file may be damaged"
                    + (f"; last output: {last}" if last else ""),
                    self.shown,
                ) from None
        if answer[0] == "ok":
            return answer[1]
        _, message, path = answer
        raise FormatError(message, path or self.shown)

    def _reset(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._proc = self._conn = self._finalizer = self._output = None

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
            self._reset()
