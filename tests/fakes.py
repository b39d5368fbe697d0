"""Test doubles shared by the window's tests: one fake engine client, in-memory sessions.

The fake engine stands in for :class:`weightlab.engine.client.EngineClient` behind
:class:`weightlab.gui.engine_adapter.EngineAdapter`: it records what the window
asks for and numbers opens and jobs as the real client does, and sends nothing
by itself. A test plays the worker with :meth:`FakeEngineClient.worker_sends`
(or the shortcuts :meth:`~FakeEngineClient.progress`, :meth:`~FakeEngineClient.finish`,
:meth:`~FakeEngineClient.fail`): the events pass through the same
:class:`~weightlab.engine.jobbook.JobBook` as the real client's, so stale ones
are dropped exactly as they would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from weightlab.core.jobs import EvaluateSpec, JobSpec
from weightlab.core.model import ModelFile
from weightlab.core.session import ApplyEdit, ApplyEdits, Change, EditSession, Goto
from weightlab.engine.events import Metrics, Progress, Result
from weightlab.engine.jobbook import JobBook
from weightlab.engine.protocol import JobFailed, JobProgress, JobResult, JobStarted, ModelReady


class FakeEngineClient:
    """Stands in for ``EngineClient``: records calls, numbers opens and jobs (1, 2, ...), sends nothing.

    Attributes
    ----------
    on_event:
        The adapter's callback (events given to it directly skip the staleness rules).
    opened:
        ``((model_path, data_path), {"architecture", "signature", "output"})`` per ``open``.
    evaluated:
        ``(job id, tag)`` per ``evaluate``.
    sent:
        Per ``evaluate``, ``{name: version}`` of the tensors that would cross to
        the worker (changed since the previous call; version 0: back to stored values).
    baseline_job:
        Job id of the latest open's baseline evaluation.
    """

    def __init__(self, on_event):
        self.on_event = on_event
        self.book = JobBook(on_event)
        self.opened: list[tuple[tuple, dict]] = []
        self.evaluated: list[tuple[int, object]] = []
        self.sent: list[dict[str, int]] = []
        self.submitted: list[tuple[int, JobSpec]] = []
        self.cancelled_jobs: list[int] = []
        self.stopped_jobs: list[int] = []  # stop_job: asked to stop early, its result still comes
        self.cancelled = 0
        self.shut_down = False
        self.baseline_job: int | None = None
        self._mirror: dict[str, int] = {}

    def start(self):
        pass

    # -- the client's interface ------------------------------------------------------------
    def open(self, model_path, data_path=None, *, trust=False, architecture=None, signature=None, output=None):
        self.opened.append(((model_path, data_path), {"architecture": architecture, "signature": signature,
                                                       "output": output}))
        self.cancelled_jobs += self.book.cancel_all()
        rid = self.book.new_open()
        self._mirror = {}
        self.baseline_job = self.book.add(EvaluateSpec(baseline=True, live=False))[0]
        return rid

    def evaluate(self, tensors, tag=None, *, live=True):
        changed = {name: 0 for name in self._mirror if name not in tensors}
        changed |= {name: v for name, (v, _) in tensors.items() if self._mirror.get(name) != v}
        self._mirror = {name: v for name, (v, _) in tensors.items()}
        self.sent.append(changed)
        spec = EvaluateSpec(versions=dict(self._mirror), tag=tag, live=live)
        job_id = self._add(spec)
        self.evaluated.append((job_id, tag))
        return job_id

    def sync(self, tensors):
        changed = {name: 0 for name in self._mirror if name not in tensors}
        changed |= {name: v for name, (v, _) in tensors.items() if self._mirror.get(name) != v}
        self._mirror = {name: v for name, (v, _) in tensors.items()}
        if changed:
            self.sent.append(changed)

    def submit(self, spec: JobSpec) -> int:
        job_id = self._add(spec)
        self.submitted.append((job_id, spec))
        return job_id

    def _add(self, spec: JobSpec) -> int:
        job_id, superseded = self.book.add(spec)
        if superseded is not None:
            self.cancelled_jobs.append(superseded)
        return job_id

    def cancel_job(self, job_id):
        if self.book.cancel(job_id):
            self.cancelled_jobs.append(job_id)
            return True
        return False

    def stop_job(self, job_id):
        if self.book.spec(job_id) is None:
            return False
        self.stopped_jobs.append(job_id)
        return True

    def cancel(self):
        self.cancelled += 1
        self.cancelled_jobs += self.book.cancel_all()

    def shutdown(self, timeout=5):
        self.shut_down = True
        self.book.forget()

    # -- playing the worker ------------------------------------------------------------------
    def worker_sends(self, event) -> None:
        """Deliver ``event`` as if the worker sent it (stale events are dropped)."""
        self.book.deliver(event)

    def model_ready(self, ok: bool = True, **fields) -> None:
        """The latest open's ``ModelReady``."""
        self.worker_sends(ModelReady(self.book.open_id, ok, **fields))

    def progress(self, job_id: int, done: int, total: int, samples: int = 0, correct: int = 0) -> None:
        """An evaluation job's progress (it starts running first if it was queued)."""
        if self.book.spec(job_id) is not None and job_id not in {i.job_id for i in self.book.infos()
                                                                  if i.state == "running"}:
            self.worker_sends(JobStarted(job_id))
        partial = Progress.running(job_id, done, total, samples, correct)
        self.worker_sends(JobProgress(job_id, done / total if total else None, f"batch {done} of {total}", partial))

    def finish(self, job_id: int, metrics: Metrics) -> None:
        """An evaluation job's result, with the tag and baseline flag of its spec (dropped when stale)."""
        spec = self.book.spec(job_id)
        tag, baseline = (spec.tag, spec.baseline) if isinstance(spec, EvaluateSpec) else (None, False)
        self.worker_sends(JobResult(job_id, Result(job_id, tag, baseline, metrics)))

    def fail(self, job_id: int, message: str) -> None:
        """Job ``job_id`` failed (dropped when stale)."""
        self.worker_sends(JobFailed(job_id, message))


class FakeEngine:
    """A client factory for ``EngineAdapter(client_factory=...)``: ``factory(on_event) -> FakeEngineClient``.

    ``clients`` lists the clients made, oldest first (the adapter makes a new
    one when it restarts the engine).
    """

    def __init__(self):
        self.clients: list[FakeEngineClient] = []

    def __call__(self, on_event) -> FakeEngineClient:
        self.clients.append(FakeEngineClient(on_event))
        return self.clients[-1]


def memory_session(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    fmt: str = "memory",
    *,
    classes: Mapping[str, str] | None = None,
    attrs: Mapping[str, object] | None = None,
) -> EditSession:
    """A session over an in-memory model ``{"layer/weight": array}`` (layers are ``Dense`` unless named)."""
    layers = {name.rpartition("/")[0] for name in arrays}
    kinds = {layer: "Dense" for layer in layers} | dict(classes or {})
    return EditSession(ModelFile.from_arrays(arrays, path, format=fmt, classes=kinds, attrs=attrs))


def apply_synchronously(session: EditSession, change: Change) -> set[str]:
    """Make ``change`` with the session's synchronous methods (the CLI's and API's way); the changed names."""
    if isinstance(change, ApplyEdit):
        return session.apply(change.edit)
    if isinstance(change, ApplyEdits):
        return session.apply_all(change.edits, change.source)
    if isinstance(change, Goto):
        return session.goto(change.position)
    return session.set_step_enabled(change.index, change.enabled)
