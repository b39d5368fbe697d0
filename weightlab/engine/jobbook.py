"""The one place that decides what is stale: :class:`JobBook`, the client's record of opens and jobs.

:class:`~weightlab.engine.client.EngineClient` keeps one (under its lock) and
passes every worker event through :meth:`JobBook.deliver`; the test doubles
of the window keep one too, so they drop exactly what the real client drops.
No processes, threads or TensorFlow here.

The rules:

* request ids of opens and job ids come from one increasing counter;
* only the :class:`~weightlab.engine.protocol.ModelReady` of the latest open
  is forwarded; a ``ModelReady(ok=False)`` cancels the jobs waiting for that
  model (the baseline), with its reason;
* a new *live* job cancels the live job of its kind still queued or running;
* a job's events are forwarded while it is queued or running; it ends with
  exactly one :class:`~weightlab.engine.protocol.JobResult`,
  :class:`~weightlab.engine.protocol.JobFailed` or
  :class:`~weightlab.engine.protocol.JobCancelled`, each followed by the
  job's final :class:`~weightlab.engine.protocol.JobInfo`; later events of it
  are dropped.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from ..core.jobs import JobSpec
from .protocol import (
    Event,
    JobCancelled,
    JobFailed,
    JobInfo,
    JobProgress,
    JobResult,
    JobStarted,
    ModelReady,
    Ready,
)

__all__ = ["JobBook"]


@dataclass
class _Job:
    job_id: int
    spec: JobSpec
    state: str = "queued"

    def info(self, state: str, message: str = "") -> JobInfo:
        self.state = state
        return JobInfo(self.job_id, self.spec.kind, self.spec.label, state, message)


class JobBook:
    """Ids, the latest open and the jobs not yet ended; forwards what is current to ``emit``.

    Parameters
    ----------
    emit:
        Called with each event to forward, in order, on the caller's thread.

    Notes
    -----
    Not thread-safe: the owner serialises calls (the client holds its lock,
    so that events are forwarded in the order the decisions were made).
    """

    def __init__(self, emit: Callable[[object], None]):
        self._emit = emit
        self._ids = itertools.count(1)
        self._jobs: dict[int, _Job] = {}  # queued or running, oldest first
        self._live: dict[str, int] = {}  # kind -> its live job
        self.open_id: int | None = None  # the latest open
        self.awaiting_open: int | None = None  # the latest open until its ModelReady arrives

    # -- state ---------------------------------------------------------------------------
    @property
    def active(self) -> list[int]:
        """Ids of the jobs queued or running, oldest first."""
        return list(self._jobs)

    def infos(self) -> list[JobInfo]:
        """The :class:`JobInfo` of the jobs queued or running, oldest first."""
        return [JobInfo(j.job_id, j.spec.kind, j.spec.label, j.state) for j in self._jobs.values()]

    def spec(self, job_id: int) -> JobSpec | None:
        """The spec of job ``job_id`` while it is queued or running, else None."""
        job = self._jobs.get(job_id)
        return job.spec if job is not None else None

    # -- decisions -----------------------------------------------------------------------
    def new_open(self) -> int:
        """A new open: its request id. (Cancel the jobs before it with :meth:`cancel_all`.)"""
        rid = next(self._ids)
        self.open_id = self.awaiting_open = rid
        return rid

    def add(self, spec: JobSpec) -> tuple[int, int | None]:
        """Record a new job, forwarding its ``queued`` :class:`JobInfo`.

        Returns
        -------
        (job id, superseded)
            ``superseded`` is the live job of the same kind that this one
            cancelled (the worker must be told), or None.
        """
        superseded = self._live.get(spec.kind) if spec.live else None
        if superseded is not None:
            self.cancel(superseded)
        job = _Job(next(self._ids), spec)
        self._jobs[job.job_id] = job
        if spec.live:
            self._live[spec.kind] = job.job_id
        self._emit(job.info("queued"))
        return job.job_id, superseded

    def cancel(self, job_id: int, message: str = "") -> bool:
        """End job ``job_id`` as cancelled now; False when it had already ended."""
        if job_id not in self._jobs:
            return False
        self._finish(job_id, JobCancelled(job_id), "cancelled", message)
        return True

    def cancel_all(self, message: str = "") -> list[int]:
        """Cancel every job queued or running; their ids."""
        ids = list(self._jobs)
        for job_id in ids:
            self.cancel(job_id, message)
        return ids

    def fail_all(self, message: str) -> list[int]:
        """End every job queued or running as failed with ``message``; their ids."""
        ids = list(self._jobs)
        for job_id in ids:
            self._finish(job_id, JobFailed(job_id, message), "failed", message)
        return ids

    def forget(self) -> None:
        """Drop every job without an event (the worker was shut down); ids keep increasing."""
        self._jobs.clear()
        self._live.clear()
        self.awaiting_open = None

    def deliver(self, event: object) -> None:
        """Forward the worker's ``event`` unless it is stale, keeping the jobs' states."""
        if isinstance(event, Ready):
            self._emit(event)
        elif isinstance(event, ModelReady):
            if event.request_id == self.awaiting_open:
                self.awaiting_open = None
            if event.request_id != self.open_id:
                return
            if not event.ok:  # nothing to evaluate: the jobs waiting for this model end quietly
                self.cancel_all(event.reason or "")
            self._emit(event)
        elif isinstance(event, JobStarted):
            job = self._jobs.get(event.job_id)
            if job is not None:
                self._emit(job.info("running"))
        elif isinstance(event, JobProgress):
            if event.job_id in self._jobs:
                self._emit(event)
        elif isinstance(event, JobResult):
            if event.job_id in self._jobs:
                self._finish(event.job_id, event, "done")
        elif isinstance(event, JobFailed):
            if event.job_id in self._jobs:
                self._finish(event.job_id, event, "failed", event.message)
        elif isinstance(event, JobCancelled):
            if event.job_id in self._jobs:  # the worker stopped it on its own (shutdown)
                self._finish(event.job_id, event, "cancelled")
        elif isinstance(event, Event):
            self._emit(event)
        else:
            raise TypeError(f"not an engine event: {event!r}")

    def _finish(self, job_id: int, event: Event, state: str, message: str = "") -> None:
        job = self._jobs.pop(job_id)
        if self._live.get(job.spec.kind) == job_id:
            del self._live[job.spec.kind]
        self._emit(event)
        self._emit(job.info(state, message))
