"""Quiet by default: the libraries' log lines stay off the user's terminal.

TensorFlow, absl, oneDNN and CUDA write their start-up lines (``WARNING: All
log messages before absl::InitializeLog() ...``, ``I0000 ... oneDNN custom
operations are on``, ``E0000 ... failed call to cuInit``) from native code
straight to file descriptor 2, before Python's logging exists and whatever
``TF_CPP_MIN_LOG_LEVEL`` says. Environment variables cannot silence them;
giving the process another descriptor 2 does. This module is the one place
that does so:

* :class:`ChildOutput` captures a child process's stdout and stderr (the
  engine worker and the TensorFlow reader): the parent keeps the child's last
  lines in a bounded buffer, and error messages about a dead child quote them
  (:meth:`ChildOutput.last_words`). The child calls :func:`install_child_output`
  first thing.
* :func:`quiet_process` does the same for the calling process itself (the
  ``weightlab`` command, which evaluates in-process): descriptor 2 goes to the
  null device, and the command writes its own messages to the stream it
  yields.
* :func:`quiet_libraries` turns off Python warnings and the ``tensorflow``
  and ``absl`` loggers below ERROR.

Nothing here changes numerics: ``TF_ENABLE_ONEDNN_OPTS`` is left as it is.

With ``--verbose`` (which sets ``WEIGHTLAB_DEBUG=1``, inherited by the child
processes) nothing is captured or filtered: every library line reaches the
terminal as it is written.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import logging
import os
import re
import sys
import threading
import warnings
from collections import deque
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = [
    "DEBUG_ENV",
    "ChildOutput",
    "install_child_output",
    "is_verbose",
    "quiet_libraries",
    "quiet_process",
    "set_verbose",
]

#: Environment variable that turns verbose mode on ("1", "true", "yes", "on").
DEBUG_ENV = "WEIGHTLAB_DEBUG"

#: Lines of a child's output kept for error messages.
MAX_LINES = 200
#: Longest line kept (characters); longer lines are cut.
MAX_LINE = 2000
#: Lines of a dead child's output quoted in an error message.
QUOTED_LINES = 3

# Start-up chatter that says nothing about why a child died: glog/absl INFO
# lines ("I0000 00:00:... port.cc:153] oneDNN custom operations are on") and
# absl's notice that logging is not initialised yet.
_NOISE = re.compile(r"^(I\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog)")


def is_verbose(environ: dict[str, str] | None = None) -> bool:
    """True when ``WEIGHTLAB_DEBUG`` asks for the libraries' logging and full tracebacks."""
    env = os.environ if environ is None else environ
    return env.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def set_verbose(on: bool) -> None:
    """Turn verbose mode on or off for this process and the child processes it starts later.

    TensorFlow's own log level follows from it where TensorFlow is imported
    (:func:`weightlab._tf.configure_environment`).
    """
    if on:
        os.environ[DEBUG_ENV] = "1"
    else:
        os.environ.pop(DEBUG_ENV, None)


def quiet_libraries() -> None:
    """Silence Python-level noise of TensorFlow, Keras and absl in this process (unless verbose).

    Ignores Python warnings (WeightLab itself reports through return values and
    exceptions, never warnings) and raises the ``tensorflow`` and ``absl``
    loggers to ERROR. Call before importing TensorFlow; cheap, imports nothing.
    TensorFlow's environment variables are set in one place, inside the wall
    (:func:`weightlab._tf.configure_environment`).
    """
    if is_verbose():
        return
    warnings.simplefilter("ignore")
    for name in ("tensorflow", "absl", "keras", "tf_keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


class ChildOutput:
    """The captured stdout and stderr of one child process.

    Create it before starting the child, pass :attr:`handle` to the child
    (among the ``multiprocessing.Process`` arguments; ``spawn`` hands the
    descriptor over) and call :meth:`started` once the child runs. A daemon
    thread reads the child's output into a buffer of the last
    :data:`MAX_LINES` lines; it ends when the child (and every copy of its
    descriptor) is gone.

    In verbose mode (:func:`is_verbose`), or where descriptors cannot be
    handed over (not POSIX), nothing is captured: :attr:`handle` is None and
    the child writes to the parent's terminal.

    Parameters
    ----------
    name:
        Names the reading thread (``weightlab-<name>-output``).
    """

    def __init__(self, name: str):
        self.name = name
        self._lines: deque[str] = deque(maxlen=MAX_LINES)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._read_fd: int | None = None
        self.handle: Any = None
        if is_verbose() or os.name != "posix":
            return
        from multiprocessing.connection import Connection

        self._read_fd, write_fd = os.pipe()
        # A Connection pickles its descriptor through multiprocessing's
        # DupFd: the spawned child receives its own copy.
        self.handle = Connection(write_fd, readable=False)

    def started(self) -> None:
        """Close the parent's copy of the child's end and start reading (call after ``Process.start``)."""
        if self.handle is None:
            return
        self.handle.close()
        self.handle = None
        self._thread = threading.Thread(target=self._read, name=f"weightlab-{self.name}-output", daemon=True)
        self._thread.start()

    def discard(self) -> None:
        """Release the descriptors when the child could not be started."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self._thread is None and self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None

    def _read(self) -> None:
        fd = self._read_fd
        assert fd is not None
        partial = b""
        try:
            while chunk := os.read(fd, 65536):
                *complete, partial = (partial + chunk).split(b"\n")
                if len(partial) > MAX_LINE * 4:  # a runaway line without newline
                    complete.append(partial)
                    partial = b""
                self._keep(complete)
        except OSError:
            pass
        finally:
            if partial:
                self._keep([partial])
            os.close(fd)

    def _keep(self, lines: list[bytes]) -> None:
        with self._lock:
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    self._lines.append(line[:MAX_LINE])

    def join(self, timeout: float = 2.0) -> None:
        """Wait (at most ``timeout`` s) until the child's output is read to its end."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def lines(self) -> list[str]:
        """The last lines the child wrote (at most :data:`MAX_LINES`), oldest first."""
        with self._lock:
            return list(self._lines)

    def last_words(self, wait: float = 2.0, count: int = QUOTED_LINES) -> str:
        """A dead child's last meaningful lines, for an error message (``""`` when none).

        Waits up to ``wait`` seconds for the rest of the output and drops
        start-up INFO lines. When the child reported a fatal signal
        (``Fatal Python error: Segmentation fault``, from :mod:`faulthandler`),
        returns that line and the ones after it (the innermost frames);
        otherwise the last ``count`` lines. Lines are joined with ``" | "``.
        """
        self.join(wait)
        useful = [line.strip() for line in self.lines() if not _NOISE.match(line)]
        fatal = [i for i, line in enumerate(useful) if line.startswith("Fatal Python error")]
        if fatal:
            return " | ".join(useful[fatal[-1] : fatal[-1] + count])
        return " | ".join(useful[-count:])


def install_child_output(handle: Any) -> None:
    """In a child process: send stdout and stderr to the parent's :class:`ChildOutput`.

    Call first thing in the child's entry point, before TensorFlow is
    imported; with ``handle`` None (verbose, or no capture) the child keeps
    the parent's terminal. Also applies :func:`quiet_libraries`.
    """
    quiet_libraries()
    if handle is None:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    fd = handle.fileno()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    handle.close()
    # A native crash (TensorFlow on a damaged file) then leaves the Python
    # stack in the captured output, and the parent's error message quotes it.
    faulthandler.enable(file=sys.stderr)


@contextlib.contextmanager
def quiet_process() -> Iterator[TextIO]:
    """Send this process's descriptor 2 to the null device; yield a stream on the real stderr.

    While the context is open, whatever native libraries and Python's own
    ``sys.stderr`` write is dropped (``--verbose`` is the way to see it), and
    the caller writes the messages meant for the user to the yielded stream. In verbose mode nothing is redirected and the yielded stream is
    ``sys.stderr``. Meant for a command-line process; a library must not
    call it (it changes process-wide state).

    Yields
    ------
    TextIO
        Where the caller's own messages go.
    """
    if is_verbose() or os.name != "posix":
        yield sys.stderr
        return
    quiet_libraries()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep clean
        saved = -1
    if saved < 0:
        yield sys.stderr
        return
    real = io.TextIOWrapper(
        io.FileIO(saved, "w", closefd=True), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
    with open(os.devnull, "wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield real
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            with contextlib.suppress(Exception):
                real.flush()
            os.dup2(real.fileno(), 2)
            real.close()
