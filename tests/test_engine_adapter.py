"""The window's adapter re-emits the engine's typed events as Qt signals, deciding nothing itself.

The fake engine client (tests/fakes.py) shares the real client's JobBook, so
what reaches the adapter is what the real client would forward.
"""

from __future__ import annotations

from fakes import FakeEngine
from PySide6.QtCore import QCoreApplication

from weightlab.core.jobs import EvaluateSpec
from weightlab.engine.events import Crashed, Metrics, Ready
from weightlab.engine.protocol import JobInfo, JobProgress, JobStarted
from weightlab.gui.engine_adapter import EngineAdapter


def _adapter():
    factory = FakeEngine()
    adapter = EngineAdapter(client_factory=factory)
    assert adapter.open("m.keras", "d.npz", architecture=None, output="probs")
    return adapter, factory.clients[0]


def _record(adapter):
    got: list[tuple[str, object]] = []
    for name in ("jobQueued", "jobStarted", "jobProgress", "jobFinished", "result", "failed", "estimate"):
        getattr(adapter, name).connect(lambda ev, name=name: got.append((name, ev)))
    adapter.progress.connect(lambda d, t: got.append(("progress", (d, t))))
    return got


def test_job_signals_follow_a_job_from_queued_to_done(qtbot):
    adapter, client = _adapter()
    got = _record(adapter)
    assert client.opened == [(("m.keras", "d.npz"), {"architecture": None, "signature": None, "output": "probs"})]
    job = adapter.evaluate({"d/kernel": (4, None)}, tag=3)
    assert client.sent == [{"d/kernel": 4}]
    client.progress(job, 1, 2, samples=10, correct=9)
    with qtbot.waitSignal(adapter.jobFinished, timeout=5000):
        client.finish(job, Metrics(0.9, 0.1))
    names = [(n, getattr(ev, "state", None)) for n, ev in got if getattr(ev, "job_id", job) == job
             or n in ("progress", "estimate", "result")]
    assert names == [("jobQueued", "queued"), ("jobStarted", "running"), ("jobProgress", None),
                     ("progress", None), ("estimate", None), ("result", None), ("jobFinished", "done")]
    result = next(ev for n, ev in got if n == "result")
    assert (result.request_id, result.tag, result.metrics.accuracy) == (job, 3, 0.9)
    progress = next(ev for n, ev in got if n == "jobProgress")
    assert isinstance(progress, JobProgress) and progress.fraction == 0.5 and progress.partial.samples == 10
    adapter.shutdown()


def test_cancel_job_ends_it_and_its_late_events_are_dropped(qtbot):
    adapter, client = _adapter()
    got = _record(adapter)
    queued = adapter.submit(EvaluateSpec(tag="a", live=False))
    other = adapter.submit(EvaluateSpec(tag="b", live=False))
    with qtbot.waitSignal(adapter.jobFinished, timeout=5000) as blocker:
        adapter.cancel_job(queued)
    assert blocker.args[0] == JobInfo(queued, "evaluate", "Evaluation", "cancelled")
    assert client.cancelled_jobs == [queued]
    client.worker_sends(JobStarted(queued))  # too late: dropped by the client's book
    client.finish(queued, Metrics(0.1, 1.0))
    with qtbot.waitSignal(adapter.result, timeout=5000):
        client.finish(other, Metrics(0.5, 1.0))
    assert [ev.tag for n, ev in got if n == "result"] == ["b"]
    assert not [ev for n, ev in got if n == "jobStarted" and ev.job_id == queued]
    adapter.shutdown()


def test_failed_only_for_evaluations_and_crash_message(qtbot):
    adapter, client = _adapter()
    got = _record(adapter)
    crashes: list[str] = []
    adapter.crashed.connect(crashes.append)
    job = adapter.evaluate({}, tag=1)
    with qtbot.waitSignal(adapter.failed, timeout=5000) as blocker:
        client.fail(job, "evaluation failed: boom")
    assert blocker.args == ["evaluation failed: boom"]
    finished = [ev for n, ev in got if n == "jobFinished"]
    assert [(f.job_id, f.state, f.message) for f in finished] == [(job, "failed", "evaluation failed: boom")]
    with qtbot.waitSignal(adapter.ready, timeout=5000):
        client.on_event(Crashed(-9, "restarting it"))
        client.on_event(Ready("GPU 0", "2.x"))
    assert crashes == ["Evaluation worker crashed (exit -9): restarting it"] and adapter.device == "GPU 0"
    adapter.shutdown()


def test_no_hedging_left():
    assert not hasattr(EngineAdapter, "supports")
    import weightlab.gui.engine_adapter as module

    assert not hasattr(module, "metric")


def test_events_after_shutdown_go_nowhere(qtbot):
    adapter, client = _adapter()
    got = _record(adapter)
    job = adapter.evaluate({}, tag=1)
    adapter.shutdown()
    assert client.shut_down
    client.finish(job, Metrics(0.5, 1.0))  # the client forgot its jobs: nothing is forwarded
    client.on_event(JobInfo(job, "evaluate", "Evaluation", "done"))  # a late callback: the adapter ignores it
    QCoreApplication.processEvents()  # deliver what was posted
    assert [n for n, _ in got if n != "jobQueued"] == []
