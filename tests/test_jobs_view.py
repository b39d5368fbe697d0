"""Jobs in the window (issue 10, item 3): the Qt-free :class:`JobList`, the status-bar
:class:`JobsStatus` with its popup list, and the Help › Keyboard Shortcuts dialog.

The first part runs without Qt. The widget tests drive the list (or a fake
adapter's signals) and read what the widgets show; nothing sleeps.
"""

from __future__ import annotations

import math
import os
from types import SimpleNamespace

import pytest

from weightlab.app.jobs import JobEvent, JobList


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def recorded(jobs: JobList) -> list[tuple[str, int, str]]:
    events: list[tuple[str, int, str]] = []
    jobs.subscribe(lambda ev: events.append((ev.kind, ev.job.job_id, ev.job.state)))
    return events


# -- JobList (no Qt) -----------------------------------------------------------------------


def test_a_job_is_queued_runs_with_progress_and_ends_done():
    clock = Clock()
    jobs = JobList(clock=clock)
    events = recorded(jobs)

    first = jobs.add(7, "evaluate", "Evaluate held-out set")
    assert (first.state, first.fraction, first.queued_at, first.started_at) == ("queued", None, 100.0, None)
    assert jobs.queued == (first,) and jobs.running == ()

    clock.now = 101.5
    running = jobs.update(7, fraction=0.25, message="batch 1 of 4", partial={"samples": 64})
    assert running.state == "running"  # progress of a queued job starts it
    assert (running.fraction, running.message, running.partial) == (0.25, "batch 1 of 4", {"samples": 64})
    assert running.started_at == 101.5
    assert jobs.running == (running,) and jobs.queued == ()

    clock.now = 104.0
    assert jobs.update(7, fraction=0.75).message == "batch 1 of 4"  # what is not given stays
    done = jobs.finish(7, "done")
    assert (done.state, done.fraction, done.finished_at) == ("done", 1.0, 104.0)
    assert done.elapsed(now=999.0) == pytest.approx(2.5)  # up to its end, not to now
    assert jobs.finished == (done,) and jobs.active == ()
    assert events == [
        ("added", 7, "queued"),
        ("changed", 7, "running"),
        ("changed", 7, "running"),
        ("changed", 7, "done"),
    ]


def test_records_are_immutable_snapshots():
    jobs = JobList()
    before = jobs.add(1, "evaluate", "Evaluate")
    after = jobs.update(1, fraction=0.5)
    assert before.fraction is None and before.state == "queued"
    assert after is jobs[1] and after is not before
    with pytest.raises(AttributeError):
        after.fraction = 0.9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("given", "stored"), [(-0.5, 0.0), (0.0, 0.0), (0.3, 0.3), (1.0, 1.0), (1.0000001, 1.0), (math.nan, None), (None, None)]
)
def test_fraction_is_clipped_to_0_1_and_unknown_is_none(given, stored):
    jobs = JobList()
    jobs.add(1, "evaluate", "Evaluate", state="running")
    jobs.update(1, fraction=0.5)
    assert jobs.update(1, fraction=given).fraction == stored


def test_an_update_that_changes_nothing_sends_no_event():
    jobs = JobList()
    jobs.add(1, "evaluate", "Evaluate")
    record = jobs.update(1, fraction=0.5, message="half")
    events = recorded(jobs)
    assert jobs.update(1, fraction=0.5, message="half") is record
    assert jobs.update(1) is record
    assert events == []


def test_the_first_end_wins_and_late_progress_is_ignored():
    clock = Clock()
    jobs = JobList(clock=clock)
    jobs.add(3, "evaluate", "Evaluate")
    cancelled = jobs.finish(3, "cancelled", "superseded by a newer evaluation")
    events = recorded(jobs)
    clock.now += 5
    assert jobs.update(3, fraction=0.9, message="batch 9 of 10") is cancelled
    assert jobs.finish(3, "done") is cancelled
    assert events == []
    assert (cancelled.state, cancelled.fraction, cancelled.message) == ("cancelled", None, "superseded by a newer evaluation")


def test_only_the_latest_finished_jobs_are_kept_and_active_ones_never_go():
    clock = Clock()
    jobs = JobList(keep_finished=2, clock=clock)
    jobs.add(1, "evaluate", "long job")
    jobs.update(1, fraction=0.1)
    for job_id in (2, 3, 4):
        jobs.add(job_id, "evaluate", f"job {job_id}")
    events = recorded(jobs)
    # They end in another order than they were added: the first to end goes first.
    for job_id in (3, 2, 4):
        clock.now += 1
        jobs.finish(job_id, "done")
    assert [j.job_id for j in jobs.finished] == [2, 4]
    assert ("removed", 3, "done") in events and events[-1] == ("removed", 3, "done")
    assert [j.job_id for j in jobs] == [1, 2, 4]
    assert jobs.running[0].job_id == 1


def test_keep_finished_zero_removes_a_job_as_it_ends():
    jobs = JobList(keep_finished=0)
    jobs.add(1, "evaluate", "Evaluate")
    events = recorded(jobs)
    jobs.finish(1, "failed", "the worker crashed")
    assert events == [("changed", 1, "failed"), ("removed", 1, "failed")]
    assert len(jobs) == 0 and 1 not in jobs


def test_a_job_first_heard_of_when_it_ended_is_added_as_finished():
    jobs = JobList(keep_finished=1)
    jobs.add(1, "evaluate", "first", state="failed", message="no model")
    assert jobs[1].finished and jobs[1].message == "no model"
    jobs.add(2, "evaluate", "second", state="done")
    assert [j.job_id for j in jobs] == [2] and jobs[2].fraction == 1.0


def test_clear_finished_and_remove():
    jobs = JobList()
    for job_id in range(4):
        jobs.add(job_id, "evaluate", f"job {job_id}")
    jobs.finish(0, "done")
    jobs.finish(2, "cancelled")
    assert jobs.clear_finished() == 2
    assert [j.job_id for j in jobs] == [1, 3]
    assert jobs.remove(3).job_id == 3
    assert [j.job_id for j in jobs] == [1]


def test_unsubscribe_stops_the_events():
    jobs = JobList()
    seen: list[JobEvent] = []
    jobs.subscribe(seen.append)
    jobs.add(1, "evaluate", "Evaluate")
    jobs.unsubscribe(seen.append)
    jobs.finish(1)
    assert [ev.kind for ev in seen] == ["added"]


def test_wrong_use_is_refused_with_the_reason():
    jobs = JobList()
    jobs.add(1, "evaluate", "Evaluate")
    with pytest.raises(ValueError, match="already in the list"):
        jobs.add(1, "evaluate", "again")
    with pytest.raises(ValueError, match="job state must be one of"):
        jobs.add(2, "evaluate", "Evaluate", state="paused")
    with pytest.raises(ValueError, match="job state must be one of"):
        jobs.update(1, state="done")  # ending goes through finish()
    with pytest.raises(ValueError, match="job state must be one of"):
        jobs.finish(1, "running")
    with pytest.raises(KeyError):
        jobs.update(99, fraction=0.5)
    with pytest.raises(ValueError, match="keep_finished"):
        JobList(keep_finished=-1)
    assert len(jobs) == 1 and jobs[1].state == "queued"


# -- widgets (Qt) -------------------------------------------------------------------------

gui = pytest.mark.gui


@pytest.fixture
def status(qtbot):
    """A shown JobsStatus in a status bar, over a JobList with a clock the test moves."""
    from PySide6.QtWidgets import QLabel, QMainWindow

    from weightlab.gui.jobs_view import JobsStatus

    clock = Clock()
    window = QMainWindow()
    window.setCentralWidget(QLabel("centre"))
    widget = JobsStatus(JobList(clock=clock), show_delay_ms=0)
    window.statusBar().addPermanentWidget(widget)
    qtbot.addWidget(window)
    window.resize(760, 480)  # within the offscreen platform's 800x800 screen: the popup's place is not clamped
    window.show()
    qtbot.waitExposed(window)
    widget.clock = clock
    yield widget  # the window stays referenced (alive) until the test ends


def entry(widget) -> tuple[bool, str, bool, str]:
    """(entry shown, label text, bar shown, "+N" text or "")."""
    return (
        widget.isVisible(),
        widget.label.text(),
        widget.bar.isVisible(),
        widget.more.text() if widget.more.isVisible() else "",
    )


@gui
def test_the_entry_shows_the_running_job_and_follows_its_progress(status):
    jobs = status.jobs
    assert not status.isVisible()  # nothing to show yet

    jobs.add(1, "evaluate", "Evaluate held-out set")
    assert entry(status) == (True, "Queued: Evaluate held-out set", True, "")
    assert status.bar.value() == 0

    jobs.update(1, fraction=0.42, message="batch 42 of 100")
    assert entry(status) == (True, "Evaluate held-out set", True, "")
    assert (status.bar.minimum(), status.bar.maximum()) == (0, 1000)
    assert status.bar.value() == 420
    assert "batch 42 of 100" in status.label.toolTip()

    jobs.update(1, fraction=None)  # not known: a busy bar
    assert (status.bar.minimum(), status.bar.maximum()) == (0, 0)
    jobs.update(1, fraction=0.5)
    assert (status.bar.maximum(), status.bar.value()) == (1000, 500)


@gui
def test_queued_jobs_are_counted_and_the_next_one_takes_over(status):
    jobs = status.jobs
    jobs.add(1, "evaluate", "first")
    jobs.add(2, "sweep", "second")
    jobs.add(3, "rank", "third")
    jobs.update(1, fraction=0.1)
    assert entry(status) == (True, "first", True, "+2 queued")

    jobs.update(2, state="running")
    assert entry(status)[3] == "+2 more"  # not all of the others wait

    jobs.finish(1, "done")
    assert entry(status) == (True, "second", True, "+1 queued")
    jobs.finish(2, "cancelled")
    assert entry(status) == (True, "Queued: third", True, "")
    jobs.finish(3, "failed", "the worker crashed")
    # Finished jobs leave the running area; the list stays reachable.
    assert entry(status) == (True, "Jobs", False, "")
    assert not status.cancel.isVisible()
    jobs.clear_finished()
    assert not status.isVisible()


@gui
def test_short_jobs_never_flash_in_the_entry_and_long_ones_appear_after_the_delay(qtbot):
    from PySide6.QtWidgets import QLabel, QMainWindow

    from weightlab.gui.jobs_view import JobsStatus

    window = QMainWindow()
    window.setCentralWidget(QLabel("centre"))
    status = JobsStatus(show_delay_ms=30)
    window.statusBar().addPermanentWidget(status)
    qtbot.addWidget(window)
    window.show()
    jobs = status.jobs

    jobs.add(1, "evaluate", "quick")
    jobs.update(1, fraction=0.5)
    assert status.pending and status.current is None and not status.isVisible()
    jobs.finish(1, "done")  # done within the delay: never shown, and nothing left to show it
    assert not status.pending and status.current is None
    assert entry(status) == (True, "Jobs", False, "")  # the finished one stays reachable

    jobs.add(2, "evaluate", "slow")
    jobs.update(2, fraction=0.1)
    assert status.pending and entry(status)[1] == "Jobs"
    qtbot.waitUntil(lambda: status.current is not None)
    assert entry(status) == (True, "slow", True, "")
    jobs.add(3, "evaluate", "next")  # while jobs are shown, new ones appear at once
    assert not status.pending and entry(status)[3] == "+1 queued"
    jobs.finish(2, "done")
    assert entry(status)[1] == "Queued: next"
    jobs.finish(3, "done")
    jobs.add(4, "evaluate", "after a pause")  # none was active in between: the delay again
    assert status.pending and status.current is None


@gui
def test_long_labels_are_elided_in_the_status_bar(status):
    from weightlab.gui.jobs_view import LABEL_MAX_PX

    label = "Evaluate held-out set after pruning 50 % of fc1/kernel " * 3
    status.jobs.add(1, "evaluate", label, state="running")
    shown = status.label.text()
    assert shown != label and shown.endswith("…")
    assert status.label.fontMetrics().horizontalAdvance(shown) <= LABEL_MAX_PX
    assert label in status.label.toolTip()


@gui
def test_the_cancel_button_asks_to_cancel_the_running_job(status, qtbot):
    from PySide6.QtCore import Qt

    jobs = status.jobs
    jobs.add(4, "evaluate", "waiting")
    jobs.add(5, "evaluate", "running")
    jobs.update(5, fraction=0.3)
    with qtbot.waitSignal(status.cancelRequested, check_params_cb=lambda job_id: job_id == 5):
        qtbot.mouseClick(status.cancel, Qt.MouseButton.LeftButton)
    # Asking is not cancelling: the list changes when the engine says so.
    assert jobs[5].state == "running"


@gui
def test_the_popup_lists_every_job_with_cancel_for_active_ones(status, qtbot):
    from PySide6.QtCore import QPoint, Qt

    jobs, clock = status.jobs, status.clock
    jobs.add(1, "evaluate", "done first")
    jobs.finish(1, "done")
    clock.now += 1
    jobs.add(2, "evaluate", "failed later")
    jobs.finish(2, "failed", "Worker crashed (exit -9)")
    jobs.add(3, "evaluate", "running")
    jobs.update(3, fraction=0.6, message="batch 6 of 10")
    jobs.add(4, "rank", "queued")

    qtbot.mouseClick(status.more, Qt.MouseButton.LeftButton)
    popup = status.popup
    qtbot.waitUntil(popup.isVisible)
    rows = popup.rows

    def against_the_entry() -> bool:
        """The popup sits right above the entry, right edges aligned, on the screen."""
        top_right = status.mapToGlobal(QPoint(status.width(), 0))
        box = popup.geometry()
        on_screen = status.screen().availableGeometry().contains(box)
        return on_screen and box.bottom() + 1 == top_right.y() and box.right() + 1 == top_right.x()

    assert against_the_entry()
    # Active first, in the order added; then the finished, latest first.
    order = [popup._list.itemAt(i).widget() for i in range(len(rows))]
    assert [row.job_id for row in order] == [3, 4, 2, 1]
    assert [rows[i].isEnabled() for i in (3, 4, 2, 1)] == [True, True, False, False]
    assert [rows[i].cancel.isVisible() for i in (3, 4, 2, 1)] == [True, True, False, False]
    assert rows[3].bar.isVisible() and rows[3].bar.value() == 600
    assert rows[3].message.full_text == "batch 6 of 10"
    assert rows[2].message.full_text == "Worker crashed (exit -9)"
    assert rows[3].state.text() == "running · 60 %"
    assert rows[4].state.text() == "queued"

    with qtbot.waitSignal(status.cancelRequested, check_params_cb=lambda job_id: job_id == 4):
        qtbot.mouseClick(rows[4].cancel, Qt.MouseButton.LeftButton)

    # The rows follow the list while the popup is open.
    jobs.finish(3, "done")
    assert not rows[3].isEnabled() and rows[3].state.text().startswith("done")
    assert [popup._list.itemAt(i).widget().job_id for i in range(len(rows))] == [4, 3, 2, 1]
    height = popup.height()
    qtbot.mouseClick(popup.clear_button, Qt.MouseButton.LeftButton)
    assert list(popup.rows) == [4] and [j.job_id for j in jobs] == [4]
    assert not popup.clear_button.isEnabled()
    assert popup.height() < height and against_the_entry()  # shrank towards the entry

    status.toggle_popup()
    assert not popup.isVisible()


@gui
def test_bind_feeds_the_list_from_the_adapter_and_sends_cancel_back(qtbot):
    from PySide6.QtCore import QObject, Signal

    from weightlab.engine.protocol import JobInfo, JobProgress
    from weightlab.gui.jobs_view import JobsStatus

    class FakeAdapter(QObject):
        # The adapter's Qt signal names.
        jobQueued = Signal(object)  # noqa: N815
        jobStarted = Signal(object)  # noqa: N815
        jobProgress = Signal(object)  # noqa: N815
        jobFinished = Signal(object)  # noqa: N815

        def __init__(self) -> None:
            super().__init__()
            self.cancelled: list[int] = []

        def cancel_job(self, job_id: int) -> None:
            self.cancelled.append(job_id)

    adapter = FakeAdapter()
    widget = JobsStatus(show_delay_ms=0)
    qtbot.addWidget(widget)
    widget.bind(adapter)
    jobs = widget.jobs

    adapter.jobQueued.emit(JobInfo(job_id=11, kind="evaluate", label="Evaluate held-out set", state="queued"))
    assert (jobs[11].state, jobs[11].label, jobs[11].kind) == ("queued", "Evaluate held-out set", "evaluate")
    adapter.jobStarted.emit(JobInfo(job_id=11, kind="evaluate", label="Evaluate held-out set", state="running"))
    assert (jobs[11].state, jobs[11].fraction) == ("running", None)
    assert widget.label.text() == "Evaluate held-out set"
    assert (widget.bar.minimum(), widget.bar.maximum()) == (0, 0)  # started, no fraction yet: busy
    partial = SimpleNamespace(samples=256, accuracy=0.9)
    adapter.jobProgress.emit(JobProgress(job_id=11, fraction=0.25, message="batch 1 of 4", partial=partial))
    assert (jobs[11].state, jobs[11].fraction, jobs[11].message) == ("running", 0.25, "batch 1 of 4")
    assert jobs[11].partial is partial
    assert widget.bar.value() == 250

    widget.cancelRequested.emit(11)
    assert adapter.cancelled == [11]

    adapter.jobFinished.emit(JobInfo(job_id=11, kind="evaluate", label="Evaluate held-out set",
                                     state="cancelled", message="cancelled by the user"))
    assert (jobs[11].state, jobs[11].message) == ("cancelled", "cancelled by the user")
    # A job first heard of when it ends; progress of one the list no longer holds.
    adapter.jobFinished.emit(JobInfo(job_id=12, kind="sweep", label="Sweep", state="failed", message="boom"))
    assert jobs[12].state == "failed"
    jobs.remove(12)
    adapter.jobProgress.emit(JobProgress(job_id=12, fraction=0.5, message=""))
    assert 12 not in jobs


@gui
def test_jobs_of_the_real_adapter_show_and_cancel_through_it(qtbot):
    """EngineAdapter over the shared fake engine (the real client's JobBook): queue, progress, supersede, cancel."""
    from PySide6.QtCore import Qt

    from tests.fakes import FakeEngine
    from weightlab.gui.engine_adapter import EngineAdapter
    from weightlab.gui.jobs_view import JobsStatus

    engine = FakeEngine()
    adapter = EngineAdapter(client_factory=engine)
    widget = JobsStatus(show_delay_ms=0)
    qtbot.addWidget(widget)
    widget.bind(adapter)
    jobs = widget.jobs
    try:
        assert adapter.open("model.keras", "heldout.npz")
        client = engine.clients[-1]
        baseline = client.baseline_job
        qtbot.waitUntil(lambda: baseline in jobs)
        assert (jobs[baseline].kind, jobs[baseline].state) == ("evaluate", "queued")

        client.model_ready()
        client.progress(baseline, 1, 4)
        qtbot.waitUntil(lambda: jobs[baseline].fraction == 0.25)
        assert jobs[baseline].state == "running" and jobs[baseline].message == "batch 1 of 4"
        assert widget.current is not None and widget.current.job_id == baseline and widget.bar.value() == 250

        # Two live evaluations: the second supersedes the first (the client decides, the list follows).
        first = adapter.evaluate({}, tag="a")
        second = adapter.evaluate({}, tag="b")
        qtbot.waitUntil(lambda: second in jobs and jobs[first].state == "cancelled")
        assert [j.job_id for j in jobs.active] == [baseline, second]
        assert widget.more.text() == "+1 queued"

        qtbot.mouseClick(widget.cancel, Qt.MouseButton.LeftButton)  # cancels the running baseline
        qtbot.waitUntil(lambda: jobs[baseline].state == "cancelled")
        assert client.cancelled_jobs[-1] == baseline
        assert widget.current is not None and widget.current.job_id == second
    finally:
        adapter.shutdown()


@gui
def test_a_deleted_widget_stops_listening_to_a_list_that_outlives_it(qtbot):
    import shiboken6

    from weightlab.gui.jobs_view import JobsStatus

    jobs = JobList()
    widget = JobsStatus(jobs)
    jobs.add(1, "evaluate", "before")
    assert widget.popup.rows.keys() == {1}
    shiboken6.delete(widget)
    jobs.add(2, "evaluate", "after")  # would raise RuntimeError on a deleted widget
    jobs.finish(1)
    assert [j.job_id for j in jobs] == [1, 2]


@gui
@pytest.mark.parametrize(
    ("fraction", "state", "finished_after", "text"),
    [(None, "running", None, "running"), (0.416, "running", None, "running · 42 %"),
     (1.0, "done", 1.25, "done in 1.2 s"), (None, "queued", None, "queued"), (None, "cancelled", 2.0, "cancelled")],
)
def test_state_text(fraction, state, finished_after, text):
    from weightlab.app.jobs import JobRecord
    from weightlab.gui.jobs_view import state_text

    started = None if state == "queued" else 10.0
    finished = None if finished_after is None else 10.0 + finished_after
    job = JobRecord(1, "evaluate", "x", state=state, fraction=fraction, started_at=started, finished_at=finished)
    assert state_text(job) == text


@gui
def test_state_text_adds_the_running_time_when_given_now():
    from weightlab.app.jobs import JobRecord
    from weightlab.gui.jobs_view import state_text

    job = JobRecord(1, "evaluate", "x", state="running", fraction=0.5, started_at=10.0)
    assert state_text(job, now=13.2) == "running · 50 % · 3 s"
    assert state_text(job, now=10.5) == "running · 50 %"


# -- Help › Keyboard Shortcuts ----------------------------------------------------------------

ACTIONS = [
    SimpleNamespace(menu="File", label="&Open…", shortcuts=("Ctrl+O",), tip="Open a Keras model file"),
    SimpleNamespace(menu="File", label="Save &As…", shortcuts=("Ctrl+Shift+S",),
                    tip="Write the edited model to a new file"),
    SimpleNamespace(menu="Edit", label="&Redo", shortcuts=("Ctrl+Shift+Z", "Ctrl+Y"), tip=""),
    SimpleNamespace(menu="Edit", label="Revert &tensor", shortcuts=(), tip="Restore the shown tensor's stored values"),
    SimpleNamespace(menu="Edit/&Operation", label="&Clip && round", shortcuts=(), tip="np.clip then np.round"),
    SimpleNamespace(menu="View", label="Show pruned &mask", shortcuts=("Ctrl+M",), tip="Darken the zeroed entries"),
]


def native(*texts: str) -> str:
    from PySide6.QtGui import QKeySequence

    return "\n".join(QKeySequence(t).toString(QKeySequence.SequenceFormat.NativeText) for t in texts)


@pytest.fixture
def dialog(qtbot):
    from weightlab.gui.shortcuts_dialog import ShortcutsDialog

    d = ShortcutsDialog(ACTIONS)
    qtbot.addWidget(d)
    d.show()
    return d


@gui
def test_the_dialog_lists_every_action_in_order_as_the_menus_show_it(dialog):
    assert dialog.visible_rows() == [
        ("File", "Open…", native("Ctrl+O"), "Open a Keras model file"),
        ("File", "Save As…", native("Ctrl+Shift+S"), "Write the edited model to a new file"),
        ("Edit", "Redo", native("Ctrl+Shift+Z", "Ctrl+Y"), ""),
        ("Edit", "Revert tensor", "", "Restore the shown tensor's stored values"),
        ("Edit › Operation", "Clip & round", "", "np.clip then np.round"),
        ("View", "Show pruned mask", native("Ctrl+M"), "Darken the zeroed entries"),
    ]
    assert dialog.count.text() == "6 actions"


@gui
def test_typing_filters_the_rows_in_every_column(dialog, qtbot):
    def actions() -> list[str]:
        return [r[1] for r in dialog.visible_rows()]

    qtbot.keyClicks(dialog.search, "VIEW")  # the menu column, any case
    assert actions() == ["Show pruned mask"]
    dialog.search.setText(native("Ctrl+Shift+S"))  # the keys column
    assert actions() == ["Save As…"]
    dialog.search.setText("model")  # the tip column
    assert actions() == ["Open…", "Save As…"]
    assert dialog.count.text() == "2 of 6 actions match “model”"
    dialog.search.setText("no such action")
    assert actions() == [] and dialog.count.text().startswith("No action matches")
    dialog.search.clear()
    assert len(actions()) == 6


@gui
def test_shortcuts_only_and_keys_from_the_window(qtbot):
    from PySide6.QtGui import QKeySequence

    from weightlab.gui.shortcuts_dialog import ShortcutsDialog

    only = ShortcutsDialog(ACTIONS, shortcuts_only=True)
    qtbot.addWidget(only)
    assert [r[1] for r in only.visible_rows()] == ["Open…", "Save As…", "Redo", "Show pruned mask"]
    # The window may bind more keys than the registry names: the dialog shows what it is given.
    bound = {"Revert &tensor": [QKeySequence("Ctrl+R")]}
    given = ShortcutsDialog(ACTIONS, keys=lambda a: bound.get(a.label, []), shortcuts_only=True)
    qtbot.addWidget(given)
    assert given.visible_rows() == [("Edit", "Revert tensor", native("Ctrl+R"), "Restore the shown tensor's stored values")]


@gui
def test_key_texts_resolve_standard_keys_and_refuse_what_qt_cannot_read(qapp):  # key bindings need the application
    from PySide6.QtGui import QKeySequence

    from weightlab.gui.shortcuts_dialog import keys_text, menu_text, plain_label, resolve_keys

    undo = QKeySequence.keyBindings(QKeySequence.StandardKey.Undo)
    assert undo  # every platform binds Undo
    assert resolve_keys(["std:Undo"]) == undo
    assert resolve_keys(["Ctrl+Y; Ctrl+Shift+Z", "Ctrl+Y"]) == [QKeySequence("Ctrl+Y"), QKeySequence("Ctrl+Shift+Z")]
    assert keys_text(resolve_keys(["Ctrl+Y", "Ctrl+Shift+Z"]), "\n") == native("Ctrl+Y", "Ctrl+Shift+Z")
    assert keys_text([QKeySequence("Ctrl+Y"), QKeySequence("Ctrl+Shift+Z")]).count(", ") == 1
    assert keys_text([]) == ""
    with pytest.raises(ValueError, match="no standard key 'Undoo'"):
        resolve_keys(["std:Undoo"])
    with pytest.raises(ValueError, match="cannot read shortcut"):
        resolve_keys([""])
    assert plain_label("Save && quit") == "Save & quit" and plain_label("&Open…") == "Open…"
    assert menu_text("Edit/&Operation") == "Edit › Operation" and menu_text("") == ""


@gui
def test_the_window_registry_fills_the_dialog(qtbot):
    from weightlab.app.actions import window_actions
    from weightlab.gui.shortcuts_dialog import ShortcutsDialog, plain_label

    registry = list(window_actions())
    d = ShortcutsDialog(registry)
    qtbot.addWidget(d)
    rows = d.visible_rows()
    assert [r[1] for r in rows] == [plain_label(a.label) for a in registry]
    for action, row in zip(registry, rows, strict=True):
        if not action.shortcuts:
            assert row[2] == "", action.id
        elif any(not key.startswith("std:") for key in action.shortcuts):
            assert row[2], action.id  # (a standard key may have no binding on some platform)


def test_the_module_is_qt_free():
    import subprocess
    import sys

    code = "import sys, weightlab.app.jobs; bad = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"



def test_the_module_examples_run():
    import doctest

    import weightlab.app.jobs

    result = doctest.testmod(weightlab.app.jobs)
    assert result.attempted >= 4 and result.failed == 0


def test_key_bindings_without_an_application_are_refused_not_a_crash():
    import subprocess
    import sys

    code = (
        "from weightlab.gui.shortcuts_dialog import resolve_keys\n"
        "try:\n    resolve_keys(['std:Undo'])\nexcept RuntimeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert "needs a QGuiApplication" in out.stdout
