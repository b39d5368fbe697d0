"""Qt face of the evaluation engine: :class:`EngineAdapter`.

:class:`weightlab.engine.EngineClient` calls its ``on_event`` callback on a
background reader thread. The adapter forwards each event through a Qt signal,
which Qt queues to the GUI thread, and only there re-emits it as a typed signal.
Widgets are never touched from the reader thread.

The adapter decides nothing about staleness: the client forwards only the
events of the current open and of the jobs it has not cancelled, and the
adapter re-emits them as typed signals.

When the engine package is missing (or fails to import) the adapter still
works: :attr:`available` is False and :attr:`unavailable_reason` says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal, Slot

from ..core.jobs import JobSpec
from ..engine.events import Progress, Result
from ..engine.protocol import Crashed, JobFailed, JobInfo, JobProgress, JobResult, ModelReady, Ready

#: Niceness added to the engine worker process started by the window: its
#: TensorFlow start-up and evaluation passes yield the CPU to drawing, so the
#: window keeps answering on a machine with few cores (benchmarks/bench_gui.py).
ENGINE_NICENESS = 10
#: Job kinds whose Cancel stops them early but keeps their result (a training job returns the
#: weights of its best or last epoch, as its spec's ``on_cancel`` says).
KEEP_ON_CANCEL = frozenset({"finetune", "prune_retrain"})


def _load_engine() -> tuple[Any, str]:
    """Return ``(EngineClient subclass or None, reason when None)``; its workers run at lower priority."""
    try:
        from weightlab.engine import EngineClient
    except Exception as e:  # noqa: BLE001 - any import failure means "no engine"
        return None, f"evaluation engine unavailable ({type(e).__name__}: {e})"

    class BackgroundEngineClient(EngineClient):
        def __init__(self, on_event: Any, **kwargs: Any):
            super().__init__(on_event, niceness=ENGINE_NICENESS, **kwargs)

    return BackgroundEngineClient, ""


class _EventRelay(QObject):
    """Carries engine events from the client's reader thread to the adapter on the GUI thread.

    It has no Qt parent: the client holds its ``emit`` for as long as it may
    call back. When the adapter (or the window owning it) is deleted first,
    Qt drops the connection and late events go nowhere, instead of into a
    deleted object.
    """

    event = Signal(object)


class EngineAdapter(QObject):
    """Wraps an ``EngineClient``; re-emits its events as Qt signals on the GUI thread.

    Parameters
    ----------
    client_factory:
        ``factory(on_event) -> client`` with the ``EngineClient`` interface;
        defaults to :class:`weightlab.engine.EngineClient` (tests pass fakes).
    enabled:
        False gives an adapter that never starts a worker (evaluation off).

    Signals
    -------
    ready(event):
        ``Ready(device, tensorflow_version)``: the worker started.
    modelReady(event):
        ``ModelReady`` of the current open: the model was built (``ok``), which
        outputs and signatures it offers, or why evaluation is off (``reason``).
    progress(done, total):
        Batches evaluated by the running evaluation job.
    estimate(event):
        That job's :class:`~weightlab.engine.events.Progress` with its running
        estimate: ``samples``, ``accuracy`` and the 95% Wilson interval
        ``ci_low``/``ci_high``.
    result(event):
        :class:`~weightlab.engine.events.Result` ``(request_id, tag, baseline, metrics)``
        of an evaluation job (the baseline, or the edits).
    failed(message):
        An evaluation job failed.
    crashed(message):
        The worker died; the client restarts it and re-opens the model.
    jobQueued(info), jobStarted(info), jobFinished(info):
        A job's :class:`~weightlab.engine.protocol.JobInfo` when it is queued,
        starts running, and ends (``done``, ``failed`` or ``cancelled``).
    jobProgress(progress):
        A running job's :class:`~weightlab.engine.protocol.JobProgress`.
    jobResult(event):
        A job's :class:`~weightlab.engine.protocol.JobResult` (any kind: a
        sweep's ``SweepResult``, a ranking's ``RankResult``), just before its
        ``jobFinished``.
    """

    ready = Signal(object)
    modelReady = Signal(object)
    progress = Signal(int, int)
    estimate = Signal(object)
    result = Signal(object)
    failed = Signal(str)
    crashed = Signal(str)
    jobQueued = Signal(object)
    jobStarted = Signal(object)
    jobProgress = Signal(object)
    jobFinished = Signal(object)
    jobResult = Signal(object)

    def __init__(self, parent: QObject | None = None, client_factory: Any = None, *, enabled: bool = True):
        super().__init__(parent)
        if not enabled:
            client_factory, reason = None, "evaluation is disabled"
        elif client_factory is None:
            client_factory, reason = _load_engine()
        else:
            reason = ""
        self._factory = client_factory
        self.unavailable_reason = reason
        self._client: Any = None
        self._device = ""
        self._kinds: dict[int, str] = {}  # job id -> kind, while the job is queued or running
        self._handlers: dict[type, Callable[[Any], None]] = {
            Ready: self._on_ready,
            ModelReady: self.modelReady.emit,
            Crashed: self._on_crashed,
            JobInfo: self._on_job_info,
            JobProgress: self._on_job_progress,
            JobResult: self._on_job_result,
            JobFailed: self._on_job_failed,
        }
        self._relay = _EventRelay()
        self._relay.event.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)

    # -- state --------------------------------------------------------------
    @property
    def available(self) -> bool:
        """True when the engine package could be imported."""
        return self._factory is not None

    @property
    def running(self) -> bool:
        """True when a worker client has been started and not shut down."""
        return self._client is not None

    # -- commands (GUI thread) ----------------------------------------------
    def open(
        self,
        model_path: str | Path,
        data_path: str | Path | None = None,
        *,
        trust: bool = False,
        **options: Any,
    ) -> bool:
        """Start the worker if needed and ask it to build the model and evaluate the baseline.

        ``options`` (``architecture=``, ``signature=``, ``output=``) are passed
        on when set. Returns False (and does nothing) when the engine is
        unavailable or fails to start.
        """
        if not self.available:
            return False
        if self._client is None:
            try:
                self._client = self._factory(self._post)
                self._client.start()
            except Exception as e:  # noqa: BLE001 - report, keep the window alive
                self._client = None
                self.unavailable_reason = f"evaluation engine failed to start: {e}"
                return False
        extra = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items() if v is not None}
        self._client.open(str(model_path), str(data_path) if data_path is not None else None, trust=trust, **extra)
        return True

    def evaluate(self, tensors: Mapping[str, tuple[int, np.ndarray]], tag: Any = None) -> int | None:
        """Evaluate the model with the edited ``tensors`` (``session.edited_versions()``); latest wins.

        Only the tensors whose version changed since the last call cross to
        the worker. Returns the job id (None when the engine is not running).
        """
        if self._client is None:
            return None
        return int(self._client.evaluate(tensors, tag=tag))

    def sync(self, tensors: Mapping[str, tuple[int, np.ndarray]]) -> None:
        """Give the worker the edited ``tensors`` without evaluating (see :meth:`EngineClient.sync`).

        Jobs (sweeps, rankings, training) start from the worker's tensors; an
        empty mapping puts them all back to their stored values.
        """
        if self._client is not None:
            self._client.sync(tensors)

    def submit(self, spec: JobSpec) -> int | None:
        """Queue the job ``spec`` (:mod:`weightlab.core.jobs`); returns its id (None when not running)."""
        if self._client is None:
            return None
        job_id = int(self._client.submit(spec))
        self._kinds.setdefault(job_id, spec.kind)  # known at once (its queued JobInfo comes a turn later)
        return job_id

    def cancel_job(self, job_id: int) -> None:
        """Cancel job ``job_id`` if it is still queued or running (``jobFinished`` follows).

        A job of a kind in :data:`KEEP_ON_CANCEL` (training) is asked to stop instead
        (:meth:`stop_job`): its result, the best or last epoch's weights, still arrives,
        whichever Cancel the user pressed (the Training tab's or the jobs area's).
        """
        if self._client is not None:
            if self._kinds.get(job_id) in KEEP_ON_CANCEL:
                self._client.stop_job(job_id)
            else:
                self._client.cancel_job(job_id)

    def stop_job(self, job_id: int) -> None:
        """Ask job ``job_id`` to stop early and still answer (a training job's result arrives)."""
        if self._client is not None:
            self._client.stop_job(job_id)

    def cancel(self) -> None:
        """Cancel every queued and running job; their results never arrive."""
        if self._client is not None:
            self._client.cancel()

    def shutdown(self, timeout: float = 5) -> None:
        """Stop the worker process (idempotent)."""
        client, self._client = self._client, None
        self._kinds.clear()
        if client is not None:
            client.shutdown(timeout=timeout)

    @property
    def device(self) -> str:
        """Worker device description once known (``""`` before)."""
        return self._device

    # -- events ---------------------------------------------------------------
    def _post(self, ev: Any) -> None:
        """Engine callback (reader thread): queue ``ev`` to the GUI thread."""
        self._relay.event.emit(ev)

    @Slot(object)
    def _dispatch(self, ev: Any) -> None:
        if self._client is None:
            return  # shut down: late events are ignored
        handler = self._handlers.get(type(ev))
        if handler is not None:  # JobStarted and JobCancelled come with a JobInfo
            handler(ev)

    def _on_ready(self, ev: Ready) -> None:
        self._device = ev.device
        self.ready.emit(ev)

    def _on_crashed(self, ev: Crashed) -> None:
        self.crashed.emit(f"Evaluation worker crashed (exit {ev.exitcode}): {ev.message or 'restarting it'}")

    def _on_job_info(self, info: JobInfo) -> None:
        if info.state == "queued":
            self._kinds[info.job_id] = info.kind
            self.jobQueued.emit(info)
        elif info.state == "running":
            self.jobStarted.emit(info)
        else:
            self._kinds.pop(info.job_id, None)
            self.jobFinished.emit(info)

    def _on_job_progress(self, ev: JobProgress) -> None:
        self.jobProgress.emit(ev)
        if isinstance(ev.partial, Progress):
            self.progress.emit(int(ev.partial.done), int(ev.partial.total))
            self.estimate.emit(ev.partial)

    def _on_job_result(self, ev: JobResult) -> None:
        self.jobResult.emit(ev)
        if isinstance(ev.result, Result):
            self.result.emit(ev.result)

    def _on_job_failed(self, ev: JobFailed) -> None:
        if self._kinds.get(ev.job_id) == "evaluate":
            self.failed.emit(ev.message)
