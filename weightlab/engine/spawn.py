"""The one door from a TensorFlow-free process into the wall: child processes named by string.

The engine worker and the TensorFlow reader run code of :mod:`weightlab._tf`,
which imports TensorFlow. Their clients (:class:`weightlab.engine.client.EngineClient`,
:class:`weightlab.engine.reader.TFReaderProcess`) live in the window's process,
which must never import TensorFlow, so they do not import those modules: they
start :func:`child_main` (this TensorFlow-free module, which the ``spawn``
start method pickles by reference) with an *entry point* string, and the child
imports the entry point's module. The process-spawn edges are therefore the
strings in :data:`ENTRY_POINTS`, not imports: import-linter sees none, and
``tests/test_tf_wall.py`` checks that every entry point resolves inside
:mod:`weightlab._tf` and that importing the clients imports nothing of it.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

from .quiet import ChildOutput

__all__ = ["ENTRY_POINTS", "READER", "WORKER", "child_main", "resolve", "start_child"]

#: The engine worker process (:func:`weightlab._tf.worker.main`).
WORKER = "weightlab._tf.worker:main"
#: The TensorFlow reader process (:func:`weightlab._tf.reader.serve`).
READER = "weightlab._tf.reader:serve"
#: Every child process entry point, ``"module:function"``; all inside the wall.
ENTRY_POINTS = (WORKER, READER)


def resolve(entry: str) -> Callable[..., Any]:
    """Import the module of ``entry`` (``"module:function"``) and return the function.

    Call it in a child process only: the module imports TensorFlow (at once or
    when called).

    Raises
    ------
    ValueError
        When ``entry`` is not one of :data:`ENTRY_POINTS`.
    """
    if entry not in ENTRY_POINTS:
        raise ValueError(f"unknown child process entry point {entry!r} (known: {', '.join(ENTRY_POINTS)})")
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


def child_main(entry: str, *args: Any) -> None:
    """Target of a ``spawn``-ed child process: run the entry point ``entry`` with ``args``.

    Parameters
    ----------
    entry:
        One of :data:`ENTRY_POINTS`.
    args:
        The entry point's arguments (picklable: pipe ends, ``ChildOutput`` handles, ints).
    """
    resolve(entry)(*args)



@contextlib.contextmanager
def _caller_main_hidden() -> Iterator[None]:
    """Keep a ``spawn``-ed child from importing the caller's ``__main__``.

    ``multiprocessing``'s spawn start method re-imports the parent's main
    script (or ``-m`` module) in the child, as ``__mp_main__``, when
    ``__main__`` has a ``__spec__`` name or a ``__file__``
    (``multiprocessing.spawn.get_preparation_data``). A plain script without an
    ``if __name__ == "__main__":`` guard would then run again in the child,
    and its first process start there fails with multiprocessing's
    "bootstrapping phase" RuntimeError. Our children need nothing from the
    caller's script, so both attributes are hidden while :meth:`Process.start`
    pickles the preparation data (synchronously), then put back.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    missing = object()
    saved = {key: main.__dict__.get(key, missing) for key in ("__file__", "__spec__")}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is missing:
                main.__dict__.pop(key, None)
            else:
                main.__dict__[key] = value


def start_child(
    ctx: SpawnContext, entry: str, *args: Any, name: str, label: str, duplex: bool = True
) -> tuple[SpawnProcess, Connection, ChildOutput]:
    """Start a daemon child process running ``entry``, with a pipe and captured output.

    The child is called as ``entry(child_end, *args, output_handle)``; its
    stdout and stderr go to a :class:`~weightlab.engine.quiet.ChildOutput`
    (kept off the user's terminal, quoted when the child dies).

    Parameters
    ----------
    ctx:
        A ``spawn`` multiprocessing context (the child must not inherit the
        caller's state, and must not re-import a script's ``__main__``).
    entry:
        One of :data:`ENTRY_POINTS`.
    args:
        Arguments between the pipe end and the output handle.
    name:
        The process name (``ps``, ``Process.name``).
    label:
        How the output capture names the child in errors.
    duplex:
        Whether the pipe carries messages both ways.

    Returns
    -------
    (process, parent end of the pipe, output capture)
        Nothing is left open when starting fails. The child does not import
        the caller's ``__main__`` (see :func:`_caller_main_hidden`), so plain
        scripts and notebooks need no ``if __name__ == "__main__":`` guard.
    """
    parent, child = ctx.Pipe(duplex=duplex)
    output = ChildOutput(label)
    proc = ctx.Process(target=child_main, args=(entry, child, *args, output.handle), name=name, daemon=True)
    try:
        with _caller_main_hidden():
            proc.start()
    except BaseException:
        output.discard()
        parent.close()
        raise
    finally:
        child.close()
    output.started()
    return proc, parent, output
