"""The engine worker's request loop, in-process with a fake pipe and a fake model session (no TensorFlow).

What is checked: requests are dispatched by type, the mirror of the edited
tensors follows UpdateTensors and a job sees the tensors as they were when it
was submitted, the versions a job asks for are checked, a CancelJob stops a
running job between batches and a queued one before it starts, progress is
throttled with the last batch always reported, and failures become JobFailed.
"""

from __future__ import annotations

import types
from collections import deque

import numpy as np
import pytest

from weightlab._tf import worker as worker_module
from weightlab.core.jobs import EvaluateSpec
from weightlab.engine.events import Metrics
from weightlab.engine.protocol import (
    CancelJob,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobResult,
    JobStarted,
    Shutdown,
    SubmitJob,
    TensorUpdate,
    UpdateTensors,
)


class Stopped(Exception):
    pass


class FakeConn:
    """The worker's end of the pipe: ``incoming`` is what the parent sent, ``sent`` what the worker answered."""

    def __init__(self):
        self.incoming: deque = deque()
        self.sent: list = []
        self.on_poll = None  # called on each poll: a test may make a message "arrive" mid-job

    def poll(self, timeout=0):
        if self.on_poll is not None:
            self.on_poll()
        return bool(self.incoming)

    def recv(self):
        if not self.incoming:
            raise EOFError
        return self.incoming.popleft()

    def send(self, event):
        self.sent.append(event)


class FakeSession:
    """Evaluates in ``batches`` steps; records the edited arrays each evaluation saw."""

    def __init__(self, batches: int = 4):
        self.batches = batches
        self.done = 0  # batches of the current evaluation begun
        self.seen: list[dict[str, np.ndarray]] = []
        self.versions: list[dict[str, int] | None] = []  # the versions each evaluation was given

    def evaluate(self, edited, progress, should_stop, versions=None):
        self.versions.append(versions)
        self.seen.append(dict(edited))
        for done in range(1, self.batches + 1):
            self.done = done
            if should_stop():
                raise Stopped
            progress(done, self.batches, 10 * done, 9 * done)
        return Metrics(0.9, 0.1, num_samples=10 * self.batches)


def _worker(batches: int = 4):
    conn = FakeConn()
    w = worker_module._Worker(conn)
    w.rt = types.SimpleNamespace(EvaluationCancelled=Stopped, run_error_message=lambda e: f"{type(e).__name__}: {e}")
    w.session, w.reason = FakeSession(batches), None
    return w, conn


def _run(w, conn, *requests):
    """Feed ``requests`` and serve them until the queue is empty."""
    conn.incoming.extend(requests)
    while w.pending or conn.incoming:
        msg = w.pending.popleft() if w.pending else w._note(conn.recv())
        w.requests[type(msg)](msg)


def _submit(job_id, **spec):
    return SubmitJob(job_id, EvaluateSpec(**spec).to_dict())


def _final(conn, job_id):
    finals = [e for e in conn.sent if isinstance(e, JobResult | JobFailed | JobCancelled) and e.job_id == job_id]
    assert len(finals) == 1, conn.sent
    return finals[0]


def test_a_job_sees_the_tensors_as_they_were_when_submitted():
    w, conn = _worker()
    a1, a2 = np.zeros(3, np.float32), np.ones(3, np.float32)
    _run(w, conn,
         UpdateTensors((TensorUpdate("d/kernel", 1, a1),)), _submit(1, versions={"d/kernel": 1}, tag="one"),
         UpdateTensors((TensorUpdate("d/kernel", 2, a2), TensorUpdate("d/bias", 3, a1))),
         _submit(2, versions={"d/kernel": 2, "d/bias": 3}),
         UpdateTensors((TensorUpdate("d/bias", 0, None),)), _submit(3, versions={"d/kernel": 2}))
    seen = w.session.seen
    assert [sorted(s) for s in seen] == [["d/kernel"], ["d/bias", "d/kernel"], ["d/kernel"]]
    assert seen[0]["d/kernel"] is a1 and seen[1]["d/kernel"] is a2 and seen[2]["d/kernel"] is a2
    # The evaluator is told the versions, so it need not compare values to find what changed.
    assert w.session.versions == [{"d/kernel": 1}, {"d/kernel": 2, "d/bias": 3}, {"d/kernel": 2}]
    first = _final(conn, 1)
    assert isinstance(first, JobResult) and first.result.tag == "one" and first.result.request_id == 1
    assert all(isinstance(_final(conn, j), JobResult) for j in (2, 3))
    assert [type(e).__name__ for e in conn.sent if getattr(e, "job_id", None) == 1][:2] == ["JobStarted", "JobProgress"]


def test_versions_that_do_not_match_the_mirror_fail_the_job():
    w, conn = _worker()
    _run(w, conn, UpdateTensors((TensorUpdate("d/kernel", 4, np.zeros(2)),)), _submit(1, versions={"d/kernel": 5}))
    failed = _final(conn, 1)
    assert isinstance(failed, JobFailed) and "other versions" in failed.message and "'d/kernel': 4" in failed.message
    assert w.session.seen == []


def test_cancel_stops_a_running_job_between_batches_and_a_queued_one_before_it_starts():
    w, conn = _worker(batches=50)
    sent = []

    def arrive():
        if w.session.done == 3 and not sent:  # during job 1's third batch the parent cancels jobs 1 and 2
            sent.append(True)
            conn.incoming.extend([CancelJob(1), CancelJob(2)])

    conn.on_poll = arrive
    _run(w, conn, _submit(1), _submit(2, live=False), _submit(3))
    assert isinstance(_final(conn, 1), JobCancelled) and isinstance(_final(conn, 2), JobCancelled)
    assert JobStarted(2) not in conn.sent  # the queued job never started
    assert isinstance(_final(conn, 3), JobResult) and len(w.session.seen) == 2
    assert max(e.partial.done for e in conn.sent if isinstance(e, JobProgress) and e.job_id == 1) <= 3
    assert w.cancelled == set()  # nothing left over


def test_progress_is_throttled_and_the_last_batch_always_reported(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: clock[0])
    w, conn = _worker(batches=100)
    session = w.session

    original = session.evaluate

    def ticking(edited, progress, should_stop, versions=None):
        def tick(*args):
            clock[0] += 0.01  # each batch 10 ms: at most one report per 10 batches
            progress(*args)

        return original(edited, tick, should_stop)

    session.evaluate = ticking
    _run(w, conn, _submit(1))
    reports = [e for e in conn.sent if isinstance(e, JobProgress)]
    assert 9 <= len(reports) <= 11
    last = reports[-1]
    assert last.fraction == 1.0 and last.partial.done == last.partial.total == 100
    assert last.message == "batch 100 of 100" and last.partial.accuracy == pytest.approx(0.9)
    assert all(p.partial.ci_low <= p.partial.accuracy <= p.partial.ci_high for p in reports)


def test_failures_become_job_failed_and_the_worker_goes_on():
    w, conn = _worker()

    def boom(edited, progress, should_stop, versions=None):
        raise RuntimeError("native trouble")

    w.session.evaluate = boom
    _run(w, conn, SubmitJob(1, {"kind": "no_such_kind"}), _submit(2))
    assert "cannot run this job" in _final(conn, 1).message and "unknown job kind 'no_such_kind'" in _final(conn, 1).message
    assert _final(conn, 2).message == "Evaluation failed: RuntimeError: native trouble"
    w.session, w.reason = None, "no held-out set"
    conn.sent.clear()
    _run(w, conn, _submit(3))
    assert _final(conn, 3).message == "evaluation is off: no held-out set"


def test_shutdown_stops_the_running_job():
    w, conn = _worker(batches=50)
    conn.on_poll = lambda: conn.incoming.append(Shutdown()) if not w.stopping and not conn.incoming else None
    _run(w, conn, _submit(1))
    assert isinstance(_final(conn, 1), JobCancelled) and w.stopping
