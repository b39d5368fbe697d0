"""The TensorFlow reader process: lists, reads and saves TensorFlow weight files for another process.

Started by :class:`weightlab.engine.reader.TFReaderProcess` through
:func:`weightlab.engine.spawn.child_main` (entry point
:data:`weightlab.engine.spawn.READER`); :func:`serve` is its entry point. This
module imports TensorFlow only inside :func:`serve`, after the child's output
is captured, so that TensorFlow's start-up lines reach the capture.

Protocol (tuples over a :class:`multiprocessing.connection.Connection`)::

    child -> parent   ("ready",) once TensorFlow is imported, or
                      ("failed", message) when it cannot be (then the child exits)
    parent -> child   (function name, args)   or None to stop
    child -> parent   ("ok", result) | ("error", message, path)
"""

from __future__ import annotations

from typing import Any

from ..core.errors import WeightLabError
from ..engine.quiet import install_child_output

__all__ = ["FUNCTIONS", "serve"]

#: The functions of :mod:`weightlab._tf.tfio` a parent may call.
FUNCTIONS = ("list_location", "read_tensor", "save")


def serve(conn: Any, output: Any = None) -> None:
    """Child process entry point: answer calls until None or a closed pipe.

    Parameters
    ----------
    conn:
        The child's end of a :func:`multiprocessing.Pipe`.
    output:
        The :class:`~weightlab.engine.quiet.ChildOutput` handle that takes
        this process's stdout and stderr (None: keep the parent's).
    """
    install_child_output(output)
    try:
        from . import tfio
    except Exception as exc:  # noqa: BLE001 - a broken TensorFlow install is reported, not a crash
        text = str(exc).strip().splitlines()
        conn.send(("failed", f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")))
        return
    conn.send(("ready",))

    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        fn, args = request
        try:
            if fn not in FUNCTIONS:
                raise ValueError(f"unknown call {fn!r}")
            conn.send(("ok", getattr(tfio, fn)(*args)))
        except WeightLabError as exc:
            conn.send(("error", exc.message, exc.path))
        except MemoryError:
            conn.send(("error", "not enough memory", None))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message
            text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            conn.send(("error", text.strip().splitlines()[0], None))
