"""Edits off the owner's thread: weightlab.app.runner.EditRunner (Qt-free) and gui.edit_runner.QtEditRunner."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from fakes import apply_synchronously, memory_session

from weightlab.app.runner import EditRunner
from weightlab.core.errors import RecipeError
from weightlab.core.session import ApplyEdit, ApplyEdits, Goto, SetStepEnabled, StaleChange
from weightlab.edits import Clip, PruneMagnitude, Scale, ZeroRange

#: Seconds a test waits for something that should happen at once (never slept on).
WAIT_S = 30


@dataclass(frozen=True, kw_only=True)
class GatedScale(Scale):
    """Scale that records the thread it runs on and waits for :attr:`gate` before computing."""

    gate: ClassVar[threading.Event] = threading.Event()
    entered: ClassVar[threading.Event] = threading.Event()
    threads: ClassVar[list[int]] = []

    def compute(self, name, current, source):
        GatedScale.threads.append(threading.get_ident())
        GatedScale.entered.set()
        if not GatedScale.gate.wait(WAIT_S):
            raise TimeoutError("the test never opened the gate")
        return super().compute(name, current, source)


@pytest.fixture(autouse=True)
def _gate():
    GatedScale.gate = threading.Event()
    GatedScale.entered = threading.Event()
    GatedScale.threads = []
    yield
    GatedScale.gate.set()  # never leave a runner thread waiting


def _session():
    rng = np.random.default_rng(0)
    return memory_session(
        "m.h5",
        {
            "dense/kernel": rng.normal(0, 0.1, (32, 16)).astype(np.float32),
            "dense/bias": rng.normal(0, 0.1, 16).astype(np.float32),
            "out/kernel": rng.normal(0, 0.1, (16, 4)).astype(np.float32),
        },
    )


def _bits(s):
    return {n: s.array(n).tobytes() for n in s.model.tensors}


class Owner:
    """The owner's thread of a Qt-free runner: ``post`` queues, :meth:`drain` runs what landed."""

    def __init__(self):
        self.posted: queue.Queue = queue.Queue()
        self.done: list[tuple[set[str], int]] = []
        self.errors: list[BaseException] = []

    def post(self, fn):
        self.posted.put(fn)

    def on_done(self, changed):
        self.done.append((changed, threading.get_ident()))

    def on_error(self, exc):
        self.errors.append(exc)

    def drain(self):
        """Run the next posted function (waits for it)."""
        self.posted.get(timeout=WAIT_S)()


@pytest.fixture
def owner():
    return Owner()


@pytest.fixture
def runner(owner):
    r = EditRunner(owner.post)
    yield r
    assert r.shutdown(WAIT_S)


# -- Qt-free runner ------------------------------------------------------------------


def test_prepare_runs_on_the_runner_thread_and_commit_on_the_owners(runner, owner):
    s = _session()
    before = s.array("dense/kernel")
    seen: list[int] = []
    s.subscribe(lambda names: seen.append(threading.get_ident()))
    assert runner.submit(s, ApplyEdit(GatedScale(target="dense/kernel", factor=2.0)), owner.on_done, owner.on_error)
    assert runner.busy
    assert GatedScale.entered.wait(WAIT_S)
    # The edit is running elsewhere; the owner reads the old state meanwhile.
    assert GatedScale.threads == [GatedScale.threads[0]] and GatedScale.threads[0] != threading.get_ident()
    assert s.array("dense/kernel") is before and s.position == 0 and not seen
    GatedScale.gate.set()
    owner.drain()
    assert owner.done == [({"dense/kernel"}, threading.get_ident())] and not owner.errors
    assert seen == [threading.get_ident()]
    assert not runner.busy and s.position == 1
    np.testing.assert_array_equal(s.array("dense/kernel"), before * np.float32(2.0))


def test_a_second_submit_while_busy_is_refused(runner, owner):
    s = _session()
    change = ApplyEdit(GatedScale(target="dense/kernel", factor=2.0))
    assert runner.submit(s, change, owner.on_done, owner.on_error)
    assert not runner.submit(s, change, owner.on_done, owner.on_error)  # the duplicate click
    GatedScale.gate.set()
    owner.drain()
    assert len(owner.done) == 1 and len(s.steps) == 1
    assert owner.posted.empty()
    # Once landed, the next change is accepted.
    assert runner.submit(s, Goto(0), owner.on_done, owner.on_error)
    owner.drain()
    assert s.position == 0 and len(owner.done) == 2


def test_a_failed_edit_reports_and_changes_nothing(runner, owner):
    s = _session()
    s.apply(Scale(target="dense/kernel", factor=3.0))
    before, versions = _bits(s), s.edited_versions()
    recipe = ApplyEdits((Scale(target="out/kernel", factor=2.0), Clip(target="nope/kernel", min=0, max=1)), "r.json")
    assert runner.submit(s, recipe, owner.on_done, owner.on_error)
    owner.drain()
    (err,) = owner.errors
    assert isinstance(err, RecipeError) and "r.json, step 2" in str(err) and "nope/kernel" in str(err)
    assert not owner.done and not runner.busy
    assert _bits(s) == before and s.edited_versions() == versions and len(s.steps) == 1


def test_a_change_prepared_on_a_state_that_moved_on_is_stale(runner, owner):
    s = _session()
    assert runner.submit(s, ApplyEdit(GatedScale(target="dense/kernel", factor=2.0)), owner.on_done, owner.on_error)
    assert GatedScale.entered.wait(WAIT_S)
    s.apply(Scale(target="out/kernel", factor=5.0))  # the owner changes the session meanwhile
    after_owner = _bits(s)
    GatedScale.gate.set()
    owner.drain()
    (err,) = owner.errors
    assert isinstance(err, StaleChange) and "scale dense/kernel" in str(err)
    assert _bits(s) == after_owner and [st.edit.factor for st in s.steps] == [5.0]
    assert not runner.busy


def test_shutdown_joins_the_thread_and_drops_a_running_change(owner):
    r = EditRunner(owner.post, name="test-edit-runner")
    s = _session()
    assert r.submit(s, ApplyEdit(GatedScale(target="dense/kernel", factor=2.0)), owner.on_done, owner.on_error)
    assert GatedScale.entered.wait(WAIT_S)
    (thread,) = [t for t in threading.enumerate() if t.name == "test-edit-runner"]
    GatedScale.gate.set()
    assert r.shutdown(WAIT_S)
    assert not thread.is_alive()
    assert owner.posted.empty() and s.position == 0  # finished, never committed
    assert not r.submit(s, Goto(0), owner.on_done, owner.on_error)  # closed


def test_every_change_through_the_runner_gives_the_synchronous_bits(runner, owner):
    rng = np.random.default_rng(7)
    sync, threaded = _session(), _session()
    edits = [
        Scale(target="*", factor=1.5),
        PruneMagnitude(target="*/kernel", sparsity=0.3, scope="global"),
        ZeroRange(target="dense/kernel", min=-0.05, max=0.05),
        Clip(target="*", min=-0.1, max=0.1),
    ]
    changes = [ApplyEdit(e) for e in edits] + [ApplyEdits(tuple(edits[:2]), "recipe")]
    for _ in range(40):
        n = len(sync.steps)
        r = rng.random()
        if r < 0.4 or n == 0:
            change = changes[int(rng.integers(len(changes)))]
        elif r < 0.7:
            change = Goto(int(rng.integers(n + 1)))
        else:
            change = SetStepEnabled(int(rng.integers(n)), bool(rng.random() < 0.5))
        expected = apply_synchronously(sync, change)
        assert runner.submit(threaded, change, owner.on_done, owner.on_error)
        owner.drain()
        assert not owner.errors
        assert owner.done[-1][0] == expected, change
        assert _bits(threaded) == _bits(sync), change
        assert threaded.position == sync.position
        assert [(st.edit, st.enabled, st.changed) for st in threaded.steps] == [
            (st.edit, st.enabled, st.changed) for st in sync.steps
        ]


# -- the window's runner -----------------------------------------------------------------


@pytest.fixture
def qt_runner(qtbot):
    from weightlab.gui.edit_runner import QtEditRunner

    r = QtEditRunner()
    busy: list[bool] = []
    r.busyChanged.connect(busy.append)
    r.busy_seen = busy
    yield r
    GatedScale.gate.set()
    assert r.shutdown(WAIT_S)


@pytest.mark.gui
def test_the_event_loop_keeps_running_while_an_edit_runs(qtbot, qt_runner):
    from PySide6.QtCore import QTimer

    s = _session()
    before = s.array("dense/kernel")
    listener_threads: list[int] = []
    s.subscribe(lambda names: listener_threads.append(threading.get_ident()))
    ticks: list[int] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(len(ticks)))
    timer.start()
    try:
        with qtbot.waitSignal(qt_runner.started, timeout=WAIT_S * 1000) as started:
            assert qt_runner.submit(s, ApplyEdit(GatedScale(target="dense/kernel", factor=2.0)), "Scale dense/kernel")
        assert started.args == ["Scale dense/kernel"] and qt_runner.busy
        assert GatedScale.entered.wait(WAIT_S)
        # The edit is held on its thread: the GUI thread's timer still fires, the session reads as before.
        qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=WAIT_S * 1000)
        assert s.array("dense/kernel") is before and s.position == 0
        with qtbot.waitSignal(qt_runner.finished, timeout=WAIT_S * 1000) as done:
            GatedScale.gate.set()
    finally:
        timer.stop()
    assert done.args == [{"dense/kernel"}]
    assert GatedScale.threads[0] != threading.get_ident()
    assert listener_threads == [threading.get_ident()]  # the commit ran on the GUI thread
    assert qt_runner.busy_seen == [True, False] and not qt_runner.busy
    np.testing.assert_array_equal(s.array("dense/kernel"), before * np.float32(2.0))


@pytest.mark.gui
def test_a_second_click_while_busy_queues_nothing(qtbot, qt_runner):
    s = _session()
    change = ApplyEdit(GatedScale(target="dense/kernel", factor=2.0))
    assert qt_runner.submit(s, change, "Scale")
    with qtbot.assertNotEmitted(qt_runner.started, wait=0):
        assert not qt_runner.submit(s, change, "Scale")
    with qtbot.waitSignal(qt_runner.finished, timeout=WAIT_S * 1000):
        GatedScale.gate.set()
    assert len(s.steps) == 1 and qt_runner.busy_seen == [True, False]


@pytest.mark.gui
def test_a_failed_edit_emits_its_message_and_leaves_the_session(qtbot, qt_runner):
    s = _session()
    before = _bits(s)
    with qtbot.waitSignal(qt_runner.failed, timeout=WAIT_S * 1000) as failed:
        assert qt_runner.submit(s, ApplyEdit(Clip(target="nope/kernel", min=0, max=1)), "Clip nope/kernel")
    assert "no tensor or layer named 'nope/kernel'" in failed.args[0]
    assert _bits(s) == before and s.position == 0 and not s.steps
    assert qt_runner.busy_seen == [True, False] and not qt_runner.busy


@pytest.mark.gui
def test_undo_and_a_step_switch_through_the_window_runner_match_the_synchronous_path(qtbot, qt_runner):
    sync, threaded = _session(), _session()
    edits = [Scale(target="*", factor=1.5), PruneMagnitude(target="*/kernel", sparsity=0.5), Clip(target="*", min=-0.1, max=0.1)]
    for e in edits:
        sync.apply(e)
    for change, on_sync in [
        (ApplyEdits(tuple(edits), "recipe"), lambda: set().union(*(st.changed for st in sync.steps))),
        (Goto(2), lambda: sync.goto(2)),  # undo
        (SetStepEnabled(0, False), lambda: sync.set_step_enabled(0, False)),
        (Goto(3), lambda: sync.goto(3)),  # redo
    ]:
        expected = on_sync()
        with qtbot.waitSignal(qt_runner.finished, timeout=WAIT_S * 1000) as done:
            assert qt_runner.submit(threaded, change, "change")
        assert done.args == [expected], change
        assert _bits(threaded) == _bits(sync) and threaded.position == sync.position


@pytest.mark.gui
def test_shutdown_of_the_window_runner_joins_its_thread(qtbot):
    from weightlab.gui.edit_runner import QtEditRunner

    r = QtEditRunner()
    s = _session()
    with qtbot.waitSignal(r.finished, timeout=WAIT_S * 1000):
        assert r.submit(s, Goto(0), "nothing")
    names = {t.name for t in threading.enumerate()}
    assert "weightlab-edits" in names
    assert r.shutdown(WAIT_S)
    assert "weightlab-edits" not in {t.name for t in threading.enumerate()}
    assert not r.submit(s, Goto(0), "after shutdown")


@pytest.mark.gui
def test_a_runner_deleted_with_its_parent_ends_its_thread(qtbot):
    from PySide6.QtCore import QObject

    from weightlab.gui.edit_runner import QtEditRunner

    parent = QObject()
    r = QtEditRunner(parent)
    s = _session()
    assert r.submit(s, ApplyEdit(GatedScale(target="dense/kernel", factor=2.0)), "Scale")
    assert GatedScale.entered.wait(WAIT_S)
    (thread,) = [t for t in threading.enumerate() if t.name == "weightlab-edits"]
    parent.deleteLater()
    qtbot.waitUntil(lambda: not shiboken_valid(r), timeout=WAIT_S * 1000)
    GatedScale.gate.set()
    thread.join(WAIT_S)
    assert not thread.is_alive() and s.position == 0  # finished, never committed


def shiboken_valid(obj) -> bool:
    import shiboken6

    return shiboken6.isValid(obj)
