"""The GUI-side handle on the engine worker process (no TensorFlow, no Qt).

:class:`EngineClient` starts :func:`weightlab._tf.worker.main` in a
``spawn``-ed child process (named by string: :mod:`weightlab.engine.spawn`), sends it requests over a pipe and delivers the
worker's events (:mod:`weightlab.engine.events`) to a callback. The callback
runs on one of the client's daemon threads (mostly the reader thread), never on
the caller's thread: a GUI wraps it into a queued Qt signal.

If the worker dies (a native crash, killed), the client emits
:class:`~weightlab.engine.events.Crashed`, fails the requests that were in
flight, starts a new worker and re-sends the last ``open`` so that a new
:class:`~weightlab.engine.events.ModelReady` and baseline arrive. The current
edits are not re-sent: the receiver calls :meth:`EngineClient.evaluate` again
when it sees the new baseline.

The worker's stdout and stderr (TensorFlow's log lines) do not reach the
terminal: a :class:`~weightlab.engine.quiet.ChildOutput` keeps its last lines,
and the messages of :class:`~weightlab.engine.events.Crashed` and of the
requests it fails quote them (``"...; last output: Fatal Python error:
Segmentation fault | ..."``). With ``WEIGHTLAB_DEBUG=1`` the worker writes to
the terminal instead.

Programs that use the client must guard their entry point with
``if __name__ == "__main__":`` (the ``spawn`` start method re-imports the main
module in the child).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import spawn
from .events import Cancelled, Crashed, Failed, ModelReady, Ready, Result
from .quiet import ChildOutput

__all__ = ["EngineClient"]

EventCallback = Callable[[object], None]


class EngineClient:
    """Runs the evaluation engine in a child process and streams its events.

    Parameters
    ----------
    on_event:
        Called with every event (a dataclass from :mod:`weightlab.engine.events`),
        from a client thread. It must not block for long and must not call
        :meth:`shutdown` or :meth:`restart` (they join that thread).
    max_restarts:
        Crash restarts allowed within ``restart_window`` seconds; after that the
        worker stays down (a :class:`Crashed` says so) until :meth:`restart`.
    restart_window:
        See ``max_restarts``.

    Notes
    -----
    Request ids are increasing ints, unique per client. Every request gets
    exactly one final answer: ``open`` gets a :class:`ModelReady` (plus, when
    ok, a baseline :class:`Result` or :class:`Cancelled`/:class:`Failed` for
    it); ``evaluate`` gets a :class:`Result`, :class:`Cancelled` or
    :class:`Failed`.
    """

    def __init__(
        self,
        on_event: EventCallback,
        *,
        max_restarts: int = 3,
        restart_window: float = 60.0,
        niceness: int = 0,
    ):
        self._on_event = on_event
        self._niceness = niceness
        self._max_restarts = max_restarts
        self._restart_window = restart_window
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._queue: deque[tuple] = deque()
        self._queue_cv = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._proc: Any = None
        self._conn: Any = None
        self._output: ChildOutput | None = None  # the current worker's stdout and stderr
        self._reader: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._closing = False
        self._running = False
        self._last_open: tuple | None = None  # the open message, request id excluded
        self._open_rid: int | None = None  # id of the current open (None once answered)
        self._open_crashes = 0
        self._latest_open_rid: int | None = None
        self._outstanding: set[int] = set()
        self._crash_times: deque[float] = deque()
        self.device: str | None = None
        self.tensorflow_version: str | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker process (returns at once; :class:`Ready` follows in seconds).

        Does nothing when already running.
        """
        with self._lock:
            if self._running:
                return
            self._closing = False
            self._running = True
            self._spawn()
            self._sender = threading.Thread(
                target=self._send_loop, name="weightlab-engine-sender", daemon=True
            )
            self._reader = threading.Thread(
                target=self._read_loop, name="weightlab-engine-reader", daemon=True
            )
            self._sender.start()
            self._reader.start()

    def _spawn(self) -> None:
        self._proc, self._conn, self._output = spawn.start_child(
            self._ctx, spawn.WORKER, self._niceness, name="weightlab-engine", label="engine"
        )

    @property
    def alive(self) -> bool:
        """True while a worker process is running."""
        proc = self._proc
        return proc is not None and proc.is_alive()

    @property
    def worker_pid(self) -> int | None:
        """Process id of the current worker, or None."""
        proc = self._proc
        return proc.pid if proc is not None else None

    @property
    def open_request_id(self) -> int | None:
        """Request id of the latest ``open`` sent, including re-sends after a crash or :meth:`restart`.

        Events of the current model carry this id; events with an older open's id are stale.
        """
        return self._latest_open_rid

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the worker: ask it to exit, then terminate/kill it; join everything.

        Safe to call several times and when not started. Requests in flight get
        no further events.
        """
        with self._lock:
            if not self._running:
                return
            self._closing = True
            proc, conn = self._proc, self._conn
            self._queue.clear()
            self._queue_cv.notify_all()
        # A worker stuck in a large receive may hold the send lock: do not wait for ever.
        if self._send_lock.acquire(timeout=timeout):
            try:
                conn.send(("shutdown",))
            except (OSError, ValueError):
                pass
            finally:
                self._send_lock.release()
        proc.join(timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)
        current = threading.current_thread()
        for t in (self._sender, self._reader):
            if t is not None and t is not current:
                t.join(timeout)
        try:
            conn.close()
        except OSError:
            pass
        output = self._output
        if output is not None:
            output.join()
        with self._lock:
            self._running = False
            self._proc = self._conn = self._output = None
            self._reader = self._sender = None
            self._outstanding.clear()
            self._open_rid = None

    def restart(self) -> None:
        """Shut the worker down, start a new one and re-send the last :meth:`open`."""
        last = self._last_open
        self.shutdown()
        self._crash_times.clear()
        self.start()
        if last is not None:
            self._send_open(last)

    def __enter__(self) -> EngineClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- requests -------------------------------------------------------------------
    def open(
        self,
        model_path: str | os.PathLike[str],
        data_path: str | os.PathLike[str] | None = None,
        *,
        trust: bool = False,
        layout: list[tuple[str, list[tuple[str, tuple[int, ...]]]]] | None = None,
        batch_size: int | None = None,
        architecture: str | os.PathLike[str] | None = None,
        signature: str | None = None,
        output: str | None = None,
        input: str | None = None,  # noqa: A002 - as the CLI's --input
    ) -> int:
        """Open a model (and held-out set) for evaluation; returns the request id.

        The worker builds the model, maps the file's tensors to its variables,
        loads and checks the held-out set, answers :class:`ModelReady` and,
        when evaluation is on, evaluates the unedited model (a :class:`Result`
        with ``baseline=True``).

        Parameters
        ----------
        model_path:
            ``.keras`` or ``.h5`` model file.
        data_path:
            Held-out ``.npz``; without it evaluation is off
            (``ModelReady(ok=False)``).
        trust:
            Allow code inside the file (Lambda layers) to run.
        layout:
            The file's tensor listing, ``[(layer name, [(canonical name,
            shape), ...]), ...]`` (from ``ModelFile.layers``); by default the
            worker reads it with :mod:`weightlab.formats`, or derives names
            from the model.
        batch_size:
            Samples per forward pass; None (default) lets the engine choose it
            from memory (see :mod:`weightlab._tf.session`).
        architecture:
            For a checkpoint: the Keras model file giving its architecture
            (without one, ``ModelReady(ok=False)`` says so).
        signature, output:
            For a SavedModel: the signature (default ``serving_default``) and
            the output key to score; ``output`` also picks a Keras model's
            output or a frozen graph's output tensor. With several outputs and
            none chosen, only the agreement with the unedited model is
            reported.
        input:
            For a frozen graph: the input tensor (default: its placeholder).
        """
        msg = (
            "open",
            os.fspath(model_path),
            os.fspath(data_path) if data_path is not None else None,
            bool(trust),
            layout,
            None if batch_size is None else int(batch_size),
            {
                k: v
                for k, v in {
                    "architecture": None if architecture is None else os.fspath(architecture),
                    "signature": signature,
                    "output": output,
                    "input": input,
                }.items()
                if v is not None
            },
        )
        with self._lock:
            self._last_open = msg
            self._open_crashes = 0
        return self._send_open(msg)

    def _send_open(self, msg: tuple, *, front: bool = False) -> int:
        rid = next(self._ids)
        with self._lock:
            self._open_rid = self._latest_open_rid = rid
            self._outstanding.add(rid)
            self._enqueue((msg[0], rid, *msg[1:]), front=front)
        return rid

    def evaluate(self, edited: Mapping[str, np.ndarray], tag: object = None) -> int:
        """Evaluate the model with ``edited`` tensors; returns the request id.

        Parameters
        ----------
        edited:
            Canonical name -> values for *every* currently edited tensor;
            every other tensor is evaluated with its original values. Arrays
            are pickled to the worker later, from a client thread: do not
            mutate them after the call.
        tag:
            Any picklable object, echoed in the :class:`Result`.

        A newer ``evaluate`` cancels this one (:class:`Cancelled`) if it is
        still queued or running.
        """
        rid = next(self._ids)
        with self._lock:
            self._outstanding.add(rid)
            self._enqueue(("evaluate", rid, dict(edited), tag))
        return rid

    def cancel(self) -> None:
        """Cancel the running and queued evaluations (each answers :class:`Cancelled`)."""
        with self._lock:
            self._enqueue(("cancel",))

    def _enqueue(self, msg: tuple, *, front: bool = False) -> None:
        if not self._running or self._closing:
            raise RuntimeError("the engine is not running; call start() first")
        if front:
            self._queue.appendleft(msg)
        else:
            self._queue.append(msg)
        self._queue_cv.notify_all()

    # -- threads ----------------------------------------------------------------------
    def _emit(self, event: object) -> None:
        try:
            self._on_event(event)
        except Exception:  # noqa: BLE001 - a faulty callback must not kill the client (printed)
            import traceback

            traceback.print_exc()

    def _send_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._queue_cv.wait()
                if self._closing or self._sender is not threading.current_thread():
                    return
                msg = self._queue.popleft()
                conn = self._conn
            try:
                with self._send_lock:
                    conn.send(msg)
            except (OSError, ValueError):
                # The worker died; the reader notices and fails in-flight requests.
                pass

    def _read_loop(self) -> None:
        while True:
            with self._lock:
                conn, proc = self._conn, self._proc
                if conn is None or self._reader is not threading.current_thread():
                    return
            try:
                event = conn.recv()
            except (EOFError, OSError):
                if self._closing:
                    return
                if not self._handle_crash(proc):
                    return
                continue
            self._track(event)
            self._emit(event)

    def _track(self, event: object) -> None:
        with self._lock:
            if isinstance(event, Ready):
                self.device, self.tensorflow_version = event.device, event.tensorflow_version
            elif isinstance(event, ModelReady):
                if event.request_id == self._open_rid:
                    self._open_rid = None
                    self._open_crashes = 0
                if not event.ok:
                    self._outstanding.discard(event.request_id)
            elif isinstance(event, Result | Cancelled | Failed):
                self._outstanding.discard(event.request_id)

    def _handle_crash(self, proc: Any) -> bool:
        """Report a dead worker and start a new one; False when giving up."""
        proc.join(5.0)
        code = proc.exitcode
        output = self._output
        last = output.last_words() if output is not None else ""
        now = time.monotonic()
        with self._lock:
            if self._closing:
                return False
            crashed_open = self._open_rid
            if crashed_open is not None:
                self._open_crashes += 1
            lost = sorted(self._outstanding)
            self._outstanding.clear()
            self._open_rid = None
            self._crash_times.append(now)
            while self._crash_times and now - self._crash_times[0] > self._restart_window:
                self._crash_times.popleft()
            give_up = len(self._crash_times) > self._max_restarts
            reopen = self._last_open is not None and self._open_crashes < 2
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        tail = f"; last output: {last}" if last else ""
        if give_up:
            message = (
                f"the evaluation engine stopped unexpectedly ({how}) {len(self._crash_times)} times "
                f"within {self._restart_window:.0f} s; it is not restarted (restart it to try again){tail}"
            )
        else:
            message = f"the evaluation engine stopped unexpectedly ({how}); restarting it{tail}"
        self._emit(Crashed(code, message))
        for rid in lost:
            self._emit(Failed(rid, f"the evaluation engine stopped unexpectedly ({how}){tail}"))
        if crashed_open is not None and not reopen:
            self._emit(
                ModelReady(
                    crashed_open,
                    ok=False,
                    reason="the evaluation engine crashed twice while building this model; evaluation is off",
                )
            )
        try:
            self._conn.close()
        except OSError:
            pass
        if give_up:
            with self._lock:
                self._proc = self._conn = self._output = None
                self._running = False
                self._closing = True
                self._queue.clear()
                self._queue_cv.notify_all()
            return False
        with self._lock:
            if self._closing:  # shutdown() began meanwhile: start nothing
                return False
            self._spawn()
            if reopen:
                self._send_open(self._last_open, front=True)
        return True
