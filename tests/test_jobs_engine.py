"""The engine client's rules, with a thread playing the worker (no process, no TensorFlow).

:class:`ThreadSupervisor` stands in for the worker's
:class:`~weightlab.engine.supervisor.ChildSupervisor`: the client talks to it
over a real :func:`multiprocessing.Pipe` (requests are pickled as with a
process), and the test reads the requests and answers as the worker would.
What is checked: only changed tensors cross (counted), the client alone drops
stale events (a newer open, a newer live evaluation, cancel), queued jobs and
the cancel of one of them, and a crash: jobs fail, the model is re-opened
and the mirrored tensors re-sent, up to the restart policy.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from weightlab.core.jobs import EvaluateSpec, JobSpec
from weightlab.engine.client import EngineClient
from weightlab.engine.events import Metrics, Progress, Result
from weightlab.engine.protocol import (
    CancelJob,
    Crashed,
    JobCancelled,
    JobFailed,
    JobInfo,
    JobProgress,
    JobResult,
    JobStarted,
    ModelReady,
    Open,
    Ready,
    SubmitJob,
    UpdateTensors,
)
from weightlab.engine.supervisor import Death

TIMEOUT = 10.0  # seconds to wait for one message between threads of this process


class ThreadSupervisor:
    """The ChildSupervisor interface over an in-process pipe; the test plays the worker at ``worker``."""

    def __init__(self, max_restarts: int = 3):
        self.max_restarts, self.restart_window = max_restarts, 60.0
        self.conn = self.worker = None
        self.crash_count = 0
        self.starts = self.stopped = 0
        self._send_lock = threading.Lock()

    alive = property(lambda self: self.conn is not None)
    pid = property(lambda self: 1000 + self.starts if self.conn is not None else None)
    crashes = property(lambda self: self.crash_count)

    def start(self):
        self.conn, self.worker = multiprocessing.Pipe()
        self.starts += 1
        self.worker.send(Ready("CPU", "fake"))
        return self.conn

    def send(self, message):
        if self.conn is None:
            raise OSError("not running")
        with self._send_lock:
            self.conn.send(message)

    def stop(self, timeout=5.0):
        self.stopped += 1
        conn, worker = self.conn, self.worker
        self.conn = self.worker = None
        for c in (conn, worker):
            if c is not None:
                c.close()

    def kill(self):
        """The worker dies: the client's reader sees the pipe end."""
        self.worker.close()

    def reap(self):
        conn, self.conn, self.worker = self.conn, None, None
        if conn is not None:
            conn.close()
        return Death(-9, "Fatal Python error: Segmentation fault")

    def crashed(self, now=None):
        self.crash_count += 1
        return self.crash_count <= self.max_restarts

    def forgive(self):
        self.crash_count = 0


class Harness:
    """A started client over a ThreadSupervisor, its events on a queue."""

    def __init__(self, max_restarts: int = 3):
        self.sup = ThreadSupervisor(max_restarts)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[object] = []
        self.client = EngineClient(self.events.put, supervisor=self.sup)
        self.client.start()
        self.event(lambda e: isinstance(e, Ready))

    def request(self, kind=object, timeout: float = TIMEOUT):
        """The next request the client sent (skipping others until one of ``kind``)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.sup.worker.poll(max(0.0, deadline - time.monotonic())), f"no {kind.__name__} request"
            msg = self.sup.worker.recv()
            if isinstance(msg, kind):
                return msg

    def requests_now(self) -> list[object]:
        """Every request already sent, once the client's queue is empty (sender caught up)."""
        deadline = time.monotonic() + TIMEOUT
        while self.client._queue and time.monotonic() < deadline:  # the sender pops, then sends
            time.sleep(0.001)
        out = []
        while self.sup.worker.poll(0.2):
            out.append(self.sup.worker.recv())
        return out

    def event(self, match, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching event within {timeout} s; seen {self.seen[-8:]}") from None
            self.seen.append(ev)
            if match(ev):
                return ev

    def drain_events(self) -> list[object]:
        out = []
        while True:
            try:
                out.append(self.events.get(timeout=0.2))
            except queue.Empty:
                self.seen += out
                return out

    def reply(self, event) -> None:
        self.sup.worker.send(event)

    def open(self, **kw) -> tuple[int, int]:
        """Open a model; the worker answers ok and the baseline. Returns (open id, baseline job id)."""
        rid = self.client.open("m.keras", "d.npz", **kw)
        base = self.client.baseline_job
        assert self.request(Open).request_id == rid
        sub = self.request(SubmitJob)
        assert sub.job_id == base and sub.spec["baseline"] and not sub.spec["live"]
        self.reply(ModelReady(rid, ok=True))
        self.finish(base, baseline=True)
        self.event(lambda e: isinstance(e, JobInfo) and e.job_id == base and e.final)
        return rid, base

    def finish(self, job_id: int, *, tag=None, baseline=False, accuracy=0.5) -> None:
        self.reply(JobStarted(job_id))
        self.reply(JobResult(job_id, Result(job_id, tag, baseline, Metrics(accuracy, 1.0))))

    def close(self) -> None:
        self.client.shutdown()


@pytest.fixture
def harness():
    h = Harness()
    yield h
    h.close()
    assert not h.client.alive


def test_evaluation_sends_only_changed_tensors_with_versions(harness):
    h = harness
    h.open()
    a, b = np.ones((64, 32), np.float32), np.zeros(32, np.float32)
    job = h.client.evaluate({"d/kernel": (1, a), "d/bias": (2, b)}, tag=1)
    sent = h.requests_now()
    updates = [m for m in sent if isinstance(m, UpdateTensors)]
    assert [[(u.name, u.version) for u in m.updates] for m in updates] == [[("d/kernel", 1), ("d/bias", 2)]]
    assert [m.job_id for m in sent if isinstance(m, SubmitJob)] == [job]
    # an edit of one of the two tensors: only that one crosses, by version
    a2 = a * 0.5
    job2 = h.client.evaluate({"d/kernel": (3, a2), "d/bias": (2, b)}, tag=2)
    sent = h.requests_now()
    updates = [u for m in sent if isinstance(m, UpdateTensors) for u in m.updates]
    assert [(u.name, u.version) for u in updates] == [("d/kernel", 3)] and updates[0].array is not None
    np.testing.assert_array_equal(updates[0].array, a2)
    spec = next(m.spec for m in sent if isinstance(m, SubmitJob))
    assert spec["versions"] == {"d/kernel": 3, "d/bias": 2} and spec["tag"] == 2
    assert CancelJob(job) in sent  # the newer live evaluation replaced the first
    # undo: the bias is back to its stored values
    h.client.evaluate({"d/kernel": (3, a2)}, tag=1)
    updates = [u for m in h.requests_now() if isinstance(m, UpdateTensors) for u in m.updates]
    assert [(u.name, u.version, u.array) for u in updates] == [("d/bias", 0, None)]
    # nothing changed: no tensor crosses at all
    h.client.evaluate({"d/kernel": (3, a2)}, tag=1)
    assert not [m for m in h.requests_now() if isinstance(m, UpdateTensors)]
    assert job2 not in [i.job_id for i in h.client.jobs]


def test_sync_resets_the_workers_tensors_without_a_job(harness):
    """``sync({})``: every mirrored tensor back to its stored values, and no evaluation is queued."""
    h = harness
    h.open()
    a = np.ones((64, 32), np.float32)
    h.client.evaluate({"d/kernel": (1, a)}, tag=1)
    h.requests_now()
    h.client.sync({})
    sent = h.requests_now()
    assert [[(u.name, u.version, u.array) for u in m.updates] for m in sent if isinstance(m, UpdateTensors)] == [
        [("d/kernel", 0, None)]
    ]
    assert not [m for m in sent if isinstance(m, SubmitJob)]
    h.client.sync({})  # already in step: nothing crosses
    assert not [m for m in h.requests_now() if isinstance(m, UpdateTensors)]


def test_a_newer_live_evaluation_drops_the_older_ones_events(harness):
    h = harness
    h.open()
    first = h.client.evaluate({}, tag=1)
    cancelled = h.event(lambda e: isinstance(e, JobInfo) and e.job_id == first and e.state == "queued")
    second = h.client.evaluate({}, tag=2)
    assert h.event(lambda e: isinstance(e, JobCancelled)).job_id == first
    cancelled = h.event(lambda e: isinstance(e, JobInfo) and e.job_id == first and e.final)
    assert cancelled.state == "cancelled"
    # the worker had started the first before the cancel reached it: its events are dropped
    h.reply(JobStarted(first))
    h.reply(JobProgress(first, 0.5, "batch 1 of 2", Progress.running(first, 1, 2, 10, 9)))
    h.finish(first, tag=1)
    h.reply(JobCancelled(first))
    h.reply(JobProgress(second, 0.5, "batch 1 of 2", Progress.running(second, 1, 2, 10, 5)))
    h.finish(second, tag=2)
    h.event(lambda e: isinstance(e, JobInfo) and e.job_id == second and e.final)
    late = [e for e in h.drain_events() + h.seen if getattr(e, "job_id", None) == first]
    kinds = [type(e).__name__ + ":" + getattr(e, "state", "") for e in late]
    assert kinds == ["JobInfo:queued", "JobCancelled:", "JobInfo:cancelled"]
    results = [e for e in h.seen if isinstance(e, JobResult)]
    assert [r.result.tag for r in results if not r.result.baseline] == [2]


def test_a_new_open_cancels_every_job_and_old_model_events(harness):
    h = harness
    rid, _ = h.open()
    live = h.client.evaluate({}, tag=1)
    queued = h.client.submit(EvaluateSpec(tag="sweep", live=False))
    rid2 = h.client.open("other.keras", "d.npz")
    sent = h.requests_now()
    assert CancelJob(live) in sent and CancelJob(queued) in sent
    assert sent.index(CancelJob(queued)) < next(i for i, m in enumerate(sent) if isinstance(m, Open))
    h.reply(ModelReady(rid, ok=True))  # of the older open: dropped
    h.finish(live, tag=1)  # of a cancelled job: dropped
    h.reply(ModelReady(rid2, ok=False, reason="no"))
    ready = h.event(lambda e: isinstance(e, ModelReady))
    assert ready.request_id == rid2 and not ready.ok
    # the baseline waiting for the refused model ends cancelled with the reason, quietly
    info = [e for e in h.seen if isinstance(e, JobInfo) and e.job_id == h.client.baseline_job and e.final]
    assert [(i.state, i.message) for i in info] == [("cancelled", "no")]
    assert not [e for e in h.drain_events() if isinstance(e, ModelReady | JobResult)]


def test_queued_jobs_run_in_order_and_one_can_be_cancelled(harness):
    h = harness
    h.open()
    ids = [h.client.submit(EvaluateSpec(tag=i, live=False)) for i in range(3)]
    assert [i.job_id for i in h.client.jobs] == ids and {i.state for i in h.client.jobs} == {"queued"}
    assert h.client.cancel_job(ids[1]) and not h.client.cancel_job(ids[1])
    sent = h.requests_now()
    assert [m.job_id for m in sent if isinstance(m, SubmitJob)] == ids
    assert [m for m in sent if isinstance(m, CancelJob)] == [CancelJob(ids[1])]
    h.reply(JobStarted(ids[0]))
    running = h.event(lambda e: isinstance(e, JobInfo) and e.state == "running")
    assert running.job_id == ids[0] and running.label == "Evaluation"
    h.finish(ids[0], tag=0)
    h.reply(JobCancelled(ids[1]))  # the worker's answer to the cancel: already told, dropped
    h.finish(ids[2], tag=2)
    h.event(lambda e: isinstance(e, JobInfo) and e.job_id == ids[2] and e.final)
    finals = [(e.job_id, e.state) for e in h.seen + h.drain_events() if isinstance(e, JobInfo) and e.final]
    assert finals[-3:] == [(ids[1], "cancelled"), (ids[0], "done"), (ids[2], "done")]
    assert h.client.jobs == []


def test_failed_job_is_reported_once(harness):
    h = harness
    h.open()
    job = h.client.evaluate({}, tag=1)
    h.reply(JobStarted(job))
    h.reply(JobFailed(job, "evaluation failed: boom"))
    h.reply(JobFailed(job, "again"))  # nothing after the final answer
    info = h.event(lambda e: isinstance(e, JobInfo) and e.job_id == job and e.final)
    assert (info.state, info.message) == ("failed", "evaluation failed: boom")
    assert [e.message for e in h.seen + h.drain_events() if isinstance(e, JobFailed)] == ["evaluation failed: boom"]


def test_crash_fails_jobs_reopens_and_resends_the_mirrored_tensors(harness):
    h = harness
    rid, _ = h.open()
    kernel = np.full((4, 4), 2.0, np.float32)
    job = h.client.evaluate({"d/kernel": (5, kernel)}, tag=1)
    h.requests_now()
    h.sup.kill()
    crashed = h.event(lambda e: isinstance(e, Crashed))
    assert crashed.exitcode == -9 and "restarting" in crashed.message and "Segmentation fault" in crashed.message
    failed = h.event(lambda e: isinstance(e, JobFailed))
    assert failed.job_id == job and "stopped unexpectedly (killed by signal 9)" in failed.message
    h.event(lambda e: isinstance(e, Ready))  # the new worker
    reopen = h.request(Open)
    assert reopen.request_id != rid and reopen.request_id == h.client.open_request_id
    assert reopen.model_path == "m.keras"
    sent = h.requests_now()
    baseline = next(m for m in sent if isinstance(m, SubmitJob))
    assert baseline.job_id == h.client.baseline_job and baseline.spec["baseline"]
    updates = [u for m in sent if isinstance(m, UpdateTensors) for u in m.updates]
    assert [(u.name, u.version) for u in updates] == [("d/kernel", 5)]
    # the window evaluates again after the new baseline: the worker has the tensor already
    h.client.evaluate({"d/kernel": (5, kernel)}, tag=1)
    assert not [m for m in h.requests_now() if isinstance(m, UpdateTensors)]


def test_crashes_beyond_the_policy_stop_the_engine():
    h = Harness(max_restarts=0)
    try:
        h.open()
        h.sup.kill()
        crashed = h.event(lambda e: isinstance(e, Crashed))
        assert "not restarted" in crashed.message
        with pytest.raises(RuntimeError, match="not running"):
            h.client.evaluate({}, tag=1)
        assert h.sup.starts == 1
    finally:
        h.close()


@dataclass(frozen=True)
class _CountSpec(JobSpec):
    """A second job kind, as a later issue adds one: a spec class here, a handler in the worker."""

    kind: ClassVar[str] = "test-count"
    upto: int = 3


def test_a_new_job_kind_crosses_as_its_spec(harness):
    h = harness
    h.open()
    job = h.client.submit(_CountSpec(upto=5))
    sub = h.request(SubmitJob)
    assert sub.job_id == job and sub.spec == {"kind": "test-count", "live": False, "upto": 5}
    h.reply(JobStarted(job))
    h.reply(JobProgress(job, 0.2, "1 of 5", [1]))
    h.reply(JobResult(job, [1, 2, 3, 4, 5]))
    result = h.event(lambda e: isinstance(e, JobResult) and e.job_id == job)
    assert result.result == [1, 2, 3, 4, 5]
    assert [e.partial for e in h.seen if isinstance(e, JobProgress) and e.job_id == job] == [[1]]
    done = h.event(lambda e: isinstance(e, JobInfo) and e.job_id == job and e.final)
    assert (done.kind, done.label, done.state) == ("test-count", "test-count", "done")


def test_shutdown_stops_the_worker_and_ends_the_jobs_silently():
    h = Harness()
    h.open()
    job = h.client.evaluate({}, tag=1)
    h.requests_now()
    h.client.shutdown()
    assert h.sup.stopped == 1 and not h.client.alive and h.client.jobs == []
    assert not [e for e in h.drain_events() if getattr(e, "job_id", None) == job and not isinstance(e, JobInfo)]
    with pytest.raises(RuntimeError, match="not running"):
        h.client.evaluate({}, tag=2)
