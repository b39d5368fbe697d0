"""The GUI-side handle on the engine worker process (no TensorFlow, no Qt).

:class:`EngineClient` starts :func:`weightlab._tf.worker.main` in a
``spawn``-ed child process (named by string: :mod:`weightlab.engine.spawn`;
started, watched and stopped by a
:class:`~weightlab.engine.supervisor.ChildSupervisor`), sends it the typed
requests of :mod:`weightlab.engine.protocol` over a pipe and delivers the
worker's events to a callback. The callback runs on one of the client's
threads (mostly the reader thread; the caller's for the events a request
makes at once), one event at a time: a GUI wraps it into a queued Qt signal.

The client is the one place that decides what is stale:

* a new :meth:`~EngineClient.open` cancels every job before it;
* a new *live* job (the evaluation of the current edits) cancels the previous
  live job of its kind that is still queued or running;
* a cancelled job's later events are dropped; it ends with exactly one
  :class:`~weightlab.engine.protocol.JobCancelled` (and its
  :class:`~weightlab.engine.protocol.JobInfo`);
* events of an older open are dropped.

Edited tensors cross the process boundary only when their version changed:
the client remembers the ``name -> (version, array)`` it has sent (the
worker's mirror) and sends :class:`~weightlab.engine.protocol.UpdateTensors`
with the changed ones (a name that left the mapping goes back to its stored
values).

If the worker dies (a native crash, killed), the client emits
:class:`~weightlab.engine.protocol.Crashed`, fails the jobs that were queued
or running, starts a new worker, re-sends the last ``open`` (so that a new
:class:`~weightlab.engine.protocol.ModelReady` and baseline arrive) and the
mirrored tensors, unless the restart policy says no.

The worker's stdout and stderr (TensorFlow's log lines) do not reach the
terminal: a :class:`~weightlab.engine.quiet.ChildOutput` keeps its last lines,
and the messages of :class:`~weightlab.engine.protocol.Crashed` and of the
jobs it fails quote them (``"...; last output: Fatal Python error:
Segmentation fault | ..."``). With ``WEIGHTLAB_DEBUG=1`` the worker writes to
the terminal instead.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import traceback
from collections import deque
from collections.abc import Callable, Mapping

import numpy as np

from ..core.jobs import EvaluateSpec, JobSpec
from . import spawn
from .jobbook import JobBook
from .protocol import (
    CancelJob,
    Crashed,
    JobInfo,
    ModelReady,
    Open,
    Ready,
    Request,
    Shutdown,
    SubmitJob,
    TensorUpdate,
    UpdateTensors,
)
from .supervisor import ChildSupervisor

__all__ = ["EngineClient"]

EventCallback = Callable[[object], None]


class EngineClient:
    """Runs the evaluation engine in a child process and streams its events.

    Parameters
    ----------
    on_event:
        Called with every event (:mod:`weightlab.engine.protocol`), one at a
        time, from a client thread or the caller's. It must not block for
        long and must not call :meth:`shutdown` or :meth:`restart` (they join
        the reader thread).
    max_restarts:
        Crash restarts allowed within ``restart_window`` seconds; after that the
        worker stays down (a :class:`Crashed` says so) until :meth:`restart`.
    restart_window:
        See ``max_restarts``.
    niceness:
        Added to the worker's niceness (a window lowers its priority).
    supervisor:
        The :class:`~weightlab.engine.supervisor.ChildSupervisor` of the
        worker; by default one for :data:`weightlab.engine.spawn.WORKER` with
        the arguments above (tests pass one whose "worker" is a thread).

    Notes
    -----
    Open request ids and job ids are increasing ints from one counter, unique
    per client. ``open`` gets one :class:`ModelReady` (unless a newer open
    came first), and submits the baseline evaluation job. Every job gets a
    :class:`JobInfo` ``queued`` at once, ``running`` when it starts, any
    number of :class:`JobProgress`, and then exactly one of
    :class:`JobResult` (then :class:`JobInfo` ``done``), :class:`JobFailed`
    (then ``failed``) or :class:`JobCancelled` (then ``cancelled``).
    """

    def __init__(
        self,
        on_event: EventCallback,
        *,
        max_restarts: int = 3,
        restart_window: float = 60.0,
        niceness: int = 0,
        supervisor: ChildSupervisor | None = None,
    ):
        self._on_event = on_event
        self._child = supervisor or ChildSupervisor(
            spawn.WORKER,
            (niceness,),
            name="weightlab-engine",
            label="engine",
            goodbye=Shutdown(),
            max_restarts=max_restarts,
            restart_window=restart_window,
        )
        self._lock = threading.RLock()  # guards the state below and serialises the events
        self._queue: deque[Request] = deque()
        self._queue_cv = threading.Condition(self._lock)
        self._book = JobBook(self._emit)  # what is current, what is stale
        self._reader: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._closing = False
        self._running = False
        self._last_open: Open | None = None
        self._open_crashes = 0  # crashes while building the latest open's model
        self._sent: dict[str, tuple[int, np.ndarray]] = {}  # the worker's mirror of the edited tensors
        self.device: str | None = None
        self.tensorflow_version: str | None = None
        #: Job id of the baseline evaluation of the latest open (None before the first).
        self.baseline_job: int | None = None

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
            self._child.start()
            self._sender = threading.Thread(
                target=self._send_loop, name="weightlab-engine-sender", daemon=True
            )
            self._reader = threading.Thread(
                target=self._read_loop, name="weightlab-engine-reader", daemon=True
            )
            self._sender.start()
            self._reader.start()

    @property
    def alive(self) -> bool:
        """True while a worker process is running."""
        return self._child.alive

    @property
    def worker_pid(self) -> int | None:
        """Process id of the current worker, or None."""
        return self._child.pid

    @property
    def open_request_id(self) -> int | None:
        """Request id of the latest ``open`` sent, including re-sends after a crash or :meth:`restart`."""
        return self._book.open_id

    @property
    def jobs(self) -> list[JobInfo]:
        """The jobs queued or running, oldest first."""
        with self._lock:
            return self._book.infos()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the worker: ask it to exit, then terminate/kill it; join everything.

        Safe to call several times and when not started. Jobs in flight get
        no further events.
        """
        with self._lock:
            if not self._running:
                return
            self._closing = True
            self._queue.clear()
            self._queue_cv.notify_all()
        self._child.stop(timeout)
        current = threading.current_thread()
        for t in (self._sender, self._reader):
            if t is not None and t is not current:
                t.join(timeout)
        with self._lock:
            self._running = False
            self._reader = self._sender = None
            self._book.forget()  # jobs in flight get no further events
            self._sent.clear()

    def restart(self) -> None:
        """Shut the worker down, start a new one and re-send the last :meth:`open`."""
        last = self._last_open
        self.shutdown()
        self._child.forgive()
        self.start()
        if last is not None:
            with self._lock:
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

        Every queued or running job is cancelled first. The worker builds the
        model, maps the file's tensors to its variables, loads and checks the
        held-out set and answers :class:`ModelReady`; the baseline evaluation
        job submitted with it then gives a :class:`JobResult` whose result is
        a :class:`~weightlab.engine.events.Result` with ``baseline=True`` (or,
        when evaluation is off, ends cancelled with the reason).

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
        options = {
            k: v
            for k, v in {
                "architecture": None if architecture is None else os.fspath(architecture),
                "signature": signature,
                "output": output,
                "input": input,
            }.items()
            if v is not None
        }
        msg = Open(
            0,
            os.fspath(model_path),
            os.fspath(data_path) if data_path is not None else None,
            bool(trust),
            layout,
            None if batch_size is None else int(batch_size),
            options,
        )
        with self._lock:
            self._check_running()
            self._last_open = msg
            self._open_crashes = 0
            self._tell_cancelled(self._book.cancel_all())
            return self._send_open(msg)

    def _send_open(self, msg: Open) -> int:
        """Enqueue ``msg`` under a new id, then the baseline evaluation job (lock held)."""
        rid = self._book.new_open()
        self._sent = {}  # opening forgets the worker's mirror
        self._queue.append(dataclasses.replace(msg, request_id=rid))
        spec = EvaluateSpec(baseline=True, live=False)
        self.baseline_job = self._book.add(spec)[0]
        self._queue.append(SubmitJob(self.baseline_job, spec.to_dict()))
        self._queue_cv.notify_all()
        return rid

    def evaluate(self, tensors: Mapping[str, tuple[int, np.ndarray]], tag: object = None, *, live: bool = True) -> int:
        """Evaluate the model with the edited ``tensors``; returns the job id.

        Parameters
        ----------
        tensors:
            Canonical name -> ``(version, values)`` for *every* currently
            edited tensor (:meth:`weightlab.core.session.EditSession.edited_versions`);
            every other tensor is evaluated with its stored values. Only the
            tensors whose version differs from the one last sent cross to the
            worker (pickled later, from a client thread: do not mutate the
            arrays after the call).
        tag:
            A JSON value, echoed in the :class:`~weightlab.engine.events.Result`.
        live:
            True (default): a newer live evaluation cancels this one if it is
            still queued or running. False: it is queued and runs.

        Raises
        ------
        RuntimeError
            When the client is not running.
        TypeError
            When ``tag`` is not a JSON value.
        """
        spec = EvaluateSpec(versions={n: int(v) for n, (v, _) in tensors.items()}, tag=tag, live=live)
        payload = spec.to_dict()
        with self._lock:
            self._check_running()
            self._queue_updates(tensors)
            return self._submit(spec, payload)

    def sync(self, tensors: Mapping[str, tuple[int, np.ndarray]]) -> None:
        """Bring the worker's tensors to ``tensors`` without evaluating (the base of later jobs).

        Sweeps, rankings and training jobs start from the tensors the worker
        holds. A caller that knows the answer of an evaluation without asking
        (nothing edited: the baseline) must still tell the worker, or a later
        job would run on the tensors of an undone edit. Same arguments and
        transfer rules as :meth:`evaluate`; an empty mapping puts every tensor
        back to its stored values.

        Raises
        ------
        RuntimeError
            When the client is not running.
        """
        with self._lock:
            self._check_running()
            if self._queue_updates(tensors):
                self._queue_cv.notify_all()

    def _queue_updates(self, tensors: Mapping[str, tuple[int, np.ndarray]]) -> bool:
        """Queue the :class:`UpdateTensors` that make the worker's mirror ``tensors``; True if any (lock held)."""
        updates = [TensorUpdate(n, 0, None) for n in self._sent if n not in tensors]
        for name, (version, array) in tensors.items():
            if self._sent.get(name, (None,))[0] != version:
                updates.append(TensorUpdate(name, int(version), array))
        for update in updates:
            if update.array is None:
                self._sent.pop(update.name, None)
            else:
                self._sent[update.name] = (update.version, update.array)
        if updates:
            self._queue.append(UpdateTensors(tuple(updates)))
        return bool(updates)

    def submit(self, spec: JobSpec) -> int:
        """Queue the job ``spec`` (a live one cancels the previous live job of its kind); returns its id.

        Raises
        ------
        RuntimeError
            When the client is not running.
        TypeError, ValueError
            When the spec is not JSON-serialisable.
        """
        payload = spec.to_dict()
        with self._lock:
            self._check_running()
            return self._submit(spec, payload)

    def _submit(self, spec: JobSpec, payload: dict[str, object]) -> int:
        job_id, superseded = self._book.add(spec)
        if superseded is not None:
            self._tell_cancelled([superseded])
        self._queue.append(SubmitJob(job_id, payload))
        self._queue_cv.notify_all()
        return job_id

    def cancel_job(self, job_id: int) -> bool:
        """Cancel job ``job_id`` if it is queued or running; False when it has already ended."""
        with self._lock:
            if not self._book.cancel(job_id):
                return False
            self._tell_cancelled([job_id])
            return True

    def stop_job(self, job_id: int) -> bool:
        """Ask job ``job_id`` to stop early but still answer: unlike :meth:`cancel_job`, its
        ``JobResult`` (a training job returns the weights it kept), ``JobFailed`` or
        ``JobCancelled`` still arrives. False when it has already ended."""
        with self._lock:
            if self._book.spec(job_id) is None:
                return False
            self._tell_cancelled([job_id])
            return True

    def cancel(self) -> None:
        """Cancel every queued and running job (each answers :class:`JobCancelled`)."""
        with self._lock:
            self._tell_cancelled(self._book.cancel_all())

    def _tell_cancelled(self, job_ids: list[int]) -> None:
        """Ask the worker to stop ``job_ids`` (lock held); their events are dropped from now on."""
        if self._running and not self._closing and job_ids:
            self._queue.extend(CancelJob(job_id) for job_id in job_ids)
            self._queue_cv.notify_all()

    def _check_running(self) -> None:
        if not self._running or self._closing:
            raise RuntimeError("the engine is not running; call start() first")

    # -- threads ----------------------------------------------------------------------
    def _emit(self, event: object) -> None:
        try:
            self._on_event(event)
        except Exception:  # noqa: BLE001 - a faulty callback must not kill the client (printed)
            traceback.print_exc()

    def _send_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._queue_cv.wait()
                if self._closing or self._sender is not threading.current_thread():
                    return
                msg = self._queue.popleft()
            try:
                self._child.send(msg)
            except (OSError, ValueError):
                # The worker died; the reader notices and fails the jobs in flight.
                pass

    def _read_loop(self) -> None:
        while True:
            with self._lock:
                conn = self._child.conn
                if conn is None or self._reader is not threading.current_thread():
                    return
            try:
                event = conn.recv()
            except (EOFError, OSError):
                if self._closing:
                    return
                if not self._handle_crash():
                    return
                continue
            with self._lock:
                if not self._closing:
                    self._deliver(event)

    def _deliver(self, event: object) -> None:
        """Forward ``event`` unless it is stale (lock held)."""
        if isinstance(event, Ready):
            self.device, self.tensorflow_version = event.device, event.tensorflow_version
        elif isinstance(event, ModelReady) and event.request_id == self._book.awaiting_open:
            self._open_crashes = 0
        self._book.deliver(event)

    def _handle_crash(self) -> bool:
        """Report a dead worker and start a new one; False when giving up."""
        death = self._child.reap()
        with self._lock:
            if self._closing:
                return False
            allowed = self._child.crashed()
            crashed_open = self._book.awaiting_open
            if crashed_open is not None:
                self._open_crashes += 1
            self._book.awaiting_open = None
            reopen = allowed and self._last_open is not None and self._open_crashes < 2
            self._queue.clear()  # meant for the dead worker; its jobs fail below
            if allowed:
                message = f"the evaluation engine stopped unexpectedly ({death.how}); restarting it{death.tail}"
            else:
                message = (
                    f"the evaluation engine stopped unexpectedly ({death.how}) {self._child.crashes} times "
                    f"within {self._child.restart_window:.0f} s; it is not restarted (restart it to try again)"
                    f"{death.tail}"
                )
            self._emit(Crashed(death.exitcode, message))
            self._book.fail_all(f"the evaluation engine stopped unexpectedly ({death.how}){death.tail}")
            if crashed_open is not None and not reopen:
                self._emit(
                    ModelReady(
                        crashed_open,
                        ok=False,
                        reason="the evaluation engine crashed twice while building this model; evaluation is off",
                    )
                )
            if not allowed:
                self._running = False
                self._closing = True
                self._sent = {}
                self._queue_cv.notify_all()
                return False
            self._child.start()
            mirror = self._sent
            if reopen and self._last_open is not None:
                self._send_open(self._last_open)
                if mirror:
                    self._sent = dict(mirror)
                    self._queue.append(
                        UpdateTensors(tuple(TensorUpdate(n, v, a) for n, (v, a) in mirror.items()))
                    )
            else:
                self._sent = {}
            self._queue_cv.notify_all()
        return True
