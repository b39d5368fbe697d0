"""The engine worker process: builds the model and evaluates edits.

Started by :class:`weightlab.engine.client.EngineClient` in a ``spawn``-ed
child process through :func:`weightlab.engine.spawn.child_main` (entry point
:data:`weightlab.engine.spawn.WORKER`); :func:`main` is its entry point.
TensorFlow is imported inside :func:`main` only, after the child's output is
captured and its priority lowered, so importing this module is cheap.

Protocol: the typed requests and events of :mod:`weightlab.engine.protocol`.

The worker handles requests in the order they arrive, through a registry of
request handlers (request type -> method). It keeps a mirror of the edited
tensors (name -> (version, array)) that :class:`~weightlab.engine.protocol.UpdateTensors`
requests change, and runs the jobs of :class:`~weightlab.engine.protocol.SubmitJob`
one at a time in submission order, through a registry of job handlers (spec
kind -> method). A job that is queued behind others sees the tensors as they
were when it was submitted (updates are requests in the same order). Between
the batches of a running job the worker reads the messages that arrived into
its own queue; a :class:`~weightlab.engine.protocol.CancelJob` for the running
job, or :class:`~weightlab.engine.protocol.Shutdown`, stops it
(:class:`~weightlab.engine.protocol.JobCancelled`). It never decides by itself
that a job is stale: the client cancels what it no longer wants.

The opened model lives in the session :func:`weightlab._tf.passes.open_session`
returns: an :class:`~weightlab._tf.session.EngineSession` for one-output
Keras models (incremental evaluation, activation cache; ``batch_size`` None
lets it choose), a :class:`~weightlab._tf.passes.PassSession` for
SavedModels, frozen graphs and several outputs;
``Progress`` events carry the running accuracy and its Wilson interval.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.dataset import load_heldout
from ..core.errors import EngineError, WeightLabError
from ..core.jobs import EvaluateSpec, JobSpec, spec_from_dict
from ..core.sweeps import RankSpec, SweepSpec
from ..core.training import FinetuneSpec, PruneRetrainSpec
from ..engine.events import Progress, Result
from ..engine.protocol import (
    CancelJob,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobResult,
    JobStarted,
    ModelReady,
    Open,
    Ready,
    Request,
    Shutdown,
    SubmitJob,
    UpdateTensors,
)
from ..engine.quiet import install_child_output

#: Least seconds between two JobProgress events of one job (at most ten a second).
PROGRESS_INTERVAL = 0.1


class JobStopped(Exception):
    """Raised inside a job handler (by :meth:`JobContext.check`) when the job was cancelled."""


class JobContext:
    """What a job handler gets besides its spec: progress reporting and cancel checks.

    Parameters
    ----------
    worker:
        The worker running the job.
    job_id:
        The running job.
    """

    def __init__(self, worker: _Worker, job_id: int):
        self._worker = worker
        self.job_id = job_id
        self._last = 0.0

    def should_stop(self) -> bool:
        """Read the messages that arrived; True when this job was cancelled or the worker is to end."""
        self._worker.drain()
        return self.job_id in self._worker.cancelled or self._worker.stopping

    def check(self) -> None:
        """Raise :class:`JobStopped` when :meth:`should_stop`."""
        if self.should_stop():
            raise JobStopped

    def progress(self, fraction: float | None, message: str, partial: object = None, *, final: bool = False) -> None:
        """Report progress; dropped when the last report is under :data:`PROGRESS_INTERVAL` old, unless ``final``."""
        now = time.monotonic()
        if final or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._worker.send(JobProgress(self.job_id, fraction, message, partial))


class _Worker:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pending: deque[Request] = deque()
        self.cancelled: set[int] = set()  # jobs a CancelJob named, read ahead of their turn
        self.stopping = False
        self.session: Any = None  # the EngineSession of the opened model, when evaluation is on
        self.reason: str | None = "no model is open"
        self.tensors: dict[str, tuple[int, np.ndarray]] = {}  # the mirror of the edited tensors
        self.requests: dict[type, Callable[[Any], None]] = {
            Open: self.open,
            UpdateTensors: self.update_tensors,
            SubmitJob: self.submit,
            CancelJob: self.cancel,
            Shutdown: self.shutdown,
        }
        self.jobs: dict[str, Callable[[Any, JobContext], object]] = {
            EvaluateSpec.kind: self.evaluate,
            SweepSpec.kind: self.sweep,
            RankSpec.kind: self.rank,
            FinetuneSpec.kind: self.finetune,
            PruneRetrainSpec.kind: self.prune_retrain,
        }
        self.model_path: str | None = None  # the opened model (sweeps and rankings resolve targets on it)
        self.trust = False  # the opened model's trust (training rebuilds the model from its file)

    # -- messaging ---------------------------------------------------------------
    def send(self, event: object) -> None:
        self.conn.send(event)

    def _note(self, msg: Request) -> Request:
        if isinstance(msg, CancelJob):
            self.cancelled.add(msg.job_id)
        elif isinstance(msg, Shutdown):
            self.stopping = True
        return msg

    def drain(self) -> None:
        """Move the messages that arrived into the worker's queue, noting cancels and shutdown."""
        while self.conn.poll():
            self.pending.append(self._note(self.conn.recv()))

    # -- main loop -----------------------------------------------------------------
    def run(self) -> None:
        import tensorflow as tf

        from . import runtime

        self.rt = runtime
        self.send(Ready(device=runtime.device_name(), tensorflow_version=tf.__version__))
        while not self.stopping:
            if self.pending:
                msg = self.pending.popleft()
            else:
                try:
                    msg = self._note(self.conn.recv())
                except (EOFError, OSError):
                    return  # parent went away
            handler = self.requests.get(type(msg))
            if handler is None:  # pragma: no cover - protocol error
                print(f"weightlab engine: unknown request {msg!r}", flush=True)
                continue
            handler(msg)

    # -- requests -----------------------------------------------------------------------
    def shutdown(self, msg: Shutdown) -> None:
        self.stopping = True

    def cancel(self, msg: CancelJob) -> None:
        # Its job came earlier in the queue and has been answered by now.
        self.cancelled.discard(msg.job_id)

    def update_tensors(self, msg: UpdateTensors) -> None:
        for name, version, array in msg.updates:
            if array is None:
                self.tensors.pop(name, None)
            else:
                self.tensors[name] = (version, array)

    def submit(self, msg: SubmitJob) -> None:
        job_id = msg.job_id
        self.drain()  # a CancelJob sent right after it is already here
        if job_id in self.cancelled:
            self.send(JobCancelled(job_id))
            return
        try:
            spec = spec_from_dict(msg.spec)
            handler = self.jobs[spec.kind]
        except (ValueError, KeyError, TypeError) as exc:
            self.send(JobFailed(job_id, f"the engine cannot run this job: {exc}"))
            return
        self.send(JobStarted(job_id))
        try:
            result = handler(spec, JobContext(self, job_id))
        except (JobStopped, self.rt.EvaluationCancelled):
            self.send(JobCancelled(job_id))
        except WeightLabError as exc:
            self.send(JobFailed(job_id, str(exc)))
        except Exception as exc:  # noqa: BLE001 - any TF error: report it, keep the worker alive
            traceback.print_exc()  # to the captured output (the terminal with --verbose)
            self.send(JobFailed(job_id, f"{spec.label} failed: {self.rt.run_error_message(exc)}"))
        else:
            self.send(JobResult(job_id, result))
        finally:
            self.cancelled.discard(job_id)

    def open(self, msg: Open) -> None:
        import keras

        from .passes import open_session

        self.session, self.reason = None, "no model is open"
        self.tensors.clear()
        keras.backend.clear_session()
        info: dict[str, Any] = {}
        rid = msg.request_id

        def refuse(reason: str) -> None:
            self.reason = reason
            self.send(ModelReady(rid, ok=False, reason=reason, **info))

        try:
            session = open_session(
                msg.model_path, trust=msg.trust, layout=msg.layout, batch_size=msg.batch_size, **msg.options
            )
        except WeightLabError as exc:
            return refuse(str(exc))
        except Exception as exc:  # noqa: BLE001 - any TF error while building: report it, keep the worker alive
            traceback.print_exc()
            return refuse(f"the model cannot be built: {type(exc).__name__}: {exc}")
        info.update(
            input_shape=tuple(session.input_shape),
            num_classes=session.num_classes,
            mapped=len(session.tmap.variables),
            unmapped=list(session.tmap.unmapped),
            outputs=list(session.output_names),
            signatures=list(session.signatures),
        )
        if msg.data_path is None:
            return refuse("no held-out set: open a data file (.npz with x, and y for accuracy) to evaluate edits")
        try:
            data = load_heldout(msg.data_path)
            session.set_heldout(data.x, data.y, msg.data_path)
        except WeightLabError as exc:
            return refuse(str(exc))
        info.update(num_samples=session.num_samples, labels=session.labelled)
        self.session, self.reason, self.model_path = session, None, msg.model_path
        self.trust = bool(msg.trust)
        self.send(ModelReady(rid, ok=True, reason=None, **info))

    # -- jobs ------------------------------------------------------------------------------
    def evaluate(self, spec: JobSpec, ctx: JobContext) -> Result:
        """The ``evaluate`` job: metrics of the model with the mirrored tensors at ``spec.versions``."""
        assert isinstance(spec, EvaluateSpec)
        if self.session is None:
            raise EngineError(f"evaluation is off: {self.reason}")
        held = {name: version for name, (version, _) in self.tensors.items()}
        if held != spec.versions:
            raise EngineError(
                "the engine holds other versions of the edited tensors than the evaluation asks for "
                f"({held} instead of {spec.versions})"
            )
        edited = {name: array for name, (_, array) in self.tensors.items()}
        job_id = ctx.job_id

        def progress(done: int, total: int, samples: int, correct: int) -> None:
            ctx.progress(
                done / total if total else None,
                f"batch {done} of {total}",
                Progress.running(job_id, done, total, samples, correct),
                final=done == total,
            )

        metrics = self.session.evaluate(
            edited, versions=spec.versions, progress=progress, should_stop=ctx.should_stop
        )
        return Result(job_id, spec.tag, spec.baseline, metrics)

    def sweep(self, spec: JobSpec, ctx: JobContext) -> object:
        """The ``sweep`` job: :func:`weightlab._tf.sweep.sweep_job` on the mirrored tensors."""
        from .sweep import sweep_job

        return sweep_job(self, spec, ctx)

    def rank(self, spec: JobSpec, ctx: JobContext) -> object:
        """The ``rank`` job: :func:`weightlab._tf.rank.rank_job` on the mirrored tensors."""
        from .rank import rank_job

        return rank_job(self, spec, ctx)

    def finetune(self, spec: JobSpec, ctx: JobContext) -> object:
        """The ``finetune`` job: :func:`weightlab._tf.train.finetune_job` on the mirrored tensors."""
        from .train import finetune_job

        return finetune_job(self, spec, ctx)

    def prune_retrain(self, spec: JobSpec, ctx: JobContext) -> object:
        """The ``prune_retrain`` job: :func:`weightlab._tf.train.prune_retrain_job` on the mirrored tensors."""
        from .train import prune_retrain_job

        return prune_retrain_job(self, spec, ctx)


def main(conn: Any, niceness: int = 0, output: Any = None) -> None:
    """Entry point of the worker process: serve requests from ``conn`` until shutdown.

    Parameters
    ----------
    conn:
        The worker's end of a duplex :func:`multiprocessing.Pipe`.
    niceness:
        Added to the process's scheduling niceness (``os.nice``) before
        TensorFlow is imported; a window passes a positive value so that
        evaluation yields the CPU to drawing. Ignored where unsupported.
    output:
        The :class:`~weightlab.engine.quiet.ChildOutput` handle that takes this
        process's stdout and stderr (TensorFlow's log lines); None keeps the
        parent's.
    """
    install_child_output(output)
    lower_priority(niceness)
    try:
        _Worker(conn).run()
    except (BrokenPipeError, EOFError):
        pass  # parent closed the pipe
    finally:
        try:
            conn.close()
        except OSError:
            pass


def lower_priority(niceness: int) -> None:
    """Raise this process's niceness by ``niceness`` (POSIX ``nice(2)``); no-op when 0 or unsupported."""
    if niceness > 0 and hasattr(os, "nice"):
        try:
            os.nice(niceness)
        except OSError:
            pass
