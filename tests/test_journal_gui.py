"""Edits survive a SIGKILL of the window: the next window offers them and restores them bit for bit.

A real window process (offscreen Qt) opens a copy of the demo model, applies
edits through the window's own code path, and is killed with SIGKILL; a
window in this process then finds the journal, offers it (the question is
answered by the test instead of a modal dialog), and restores it: the
session's arrays must equal the ones the killed window had (``np.array_equal``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import weightlab
from weightlab.core.edits import Clip, Scale
from weightlab.core.journal import SessionJournal, find_stale, iter_journals
from weightlab.gui.engine_adapter import EngineAdapter

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[1]

#: The window process: open argv[1], edit through the window, dump the arrays to argv[2], wait.
CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication
    from weightlab.core.edits import Clip, ScaleNeurons, ZeroNeurons, AddNoise
    from weightlab.gui.engine_adapter import EngineAdapter
    from weightlab.gui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    w = MainWindow(engine=EngineAdapter(enabled=False))
    w.show()

    def wait_idle():  # edits run off the window's thread: until this one has landed
        while w.busy:
            app.processEvents()
            time.sleep(0.005)

    w.open_path(sys.argv[1])
    deadline = time.monotonic() + 120
    while w.session is None:  # opening may complete on a later turn of the event loop
        if time.monotonic() > deadline:
            sys.exit("the model did not open")
        app.processEvents()
        time.sleep(0.01)
    for edit in (
        Clip(target="dense/kernel", min=-0.04, max=0.04),
        AddNoise(target="conv2d/kernel", std=0.05, seed=11),
        ZeroNeurons(target="conv2d_1", neurons=[2, 7]),
    ):
        assert w.apply_edit(edit), w
        wait_idle()
    w.undo()
    wait_idle()
    assert w.apply_edit(ScaleNeurons(target="dense", neurons=[0, 5], factor=-2.0))
    wait_idle()
    w.set_step_enabled(0, False)
    wait_idle()
    w.set_step_enabled(0, True)
    wait_idle()
    assert w.journal.journal.wait_hashed(60)
    s = w.session
    np.savez(sys.argv[2], **{n.replace("/", "|"): s.array(n) for n in s.model.tensors})
    print("ready", s.position, len(s.applied_edits), flush=True)
    app.exec()
    """
)


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("WEIGHTLAB_STATE_DIR", str(folder))
    return folder / "journals"


@pytest.fixture
def model(tmp_path, demo_paths) -> Path:
    p = tmp_path / "model" / "digits_cnn.keras"
    p.parent.mkdir()
    shutil.copy(demo_paths["keras"], p)
    return p


def _kill_after_edits(model: Path, dump: Path, state: Path) -> tuple[int, int]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "WEIGHTLAB_STATE_DIR": str(state.parent),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(model), str(dump)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    try:
        line = proc.stdout.readline()
        if not line.startswith("ready"):
            proc.kill()
            _, err = proc.communicate(timeout=60)
            pytest.fail(f"the window process did not get ready: {line!r}\n{err[-3000:]}")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
    _, position, applied = line.split()
    return int(position), int(applied)


def test_edits_are_restored_after_sigkill_of_the_window(make_window, qtbot, state, model, tmp_path):
    dump = tmp_path / "edited.npz"
    position, applied = _kill_after_edits(model, dump, state)
    assert (position, applied) == (3, 3)
    left = list(iter_journals(state))
    assert len(left) == 1  # the killed window's journal: nothing removed it

    w = make_window(EngineAdapter(enabled=False))
    (cand,) = w.journal.pending()
    assert cand.edit_count == 3 and cand.damage is None and cand.sha256 is not None
    assert cand.describe() == f"WeightLab closed with 3 unsaved edits to {model}. Restore them?"
    cand.release()

    asked = []
    w.journal.ask = lambda c: asked.append(c.describe()) or "restore"
    with qtbot.waitSignal(w.journal.restored, timeout=60000):
        assert w.journal.offer()
    assert len(asked) == 1
    qtbot.waitUntil(lambda: w.session is not None)
    s = w.session
    assert s.model.path == model and s.position == position and s.is_modified
    assert [st.enabled for st in s.steps] == [True, True, True]
    expected = np.load(dump)
    try:
        for name in s.model.tensors:
            want = expected[name.replace("/", "|")]
            assert s.array(name).dtype == want.dtype and np.array_equal(s.array(name), want), name
    finally:
        expected.close()
    assert "*" in w.windowTitle() and not w.errors
    # The killed window's journal is gone; this window journals the restored edits itself.
    now = list(iter_journals(state))
    assert left[0] not in now and len(now) == 1 and find_stale(state) == []
    w.close()  # the test's answer to "unsaved edits?" is discard
    assert list(iter_journals(state)) == []


def _dead_journal(model: Path, state: Path, tmp_path: Path, *edits) -> Path:
    """A journal as a killed window leaves it (written by a live journal, then copied unlocked)."""
    s = weightlab.open(model)
    j = SessionJournal(tmp_path / "live")
    try:
        j.attach(s)
        s.apply_all(edits)
        j.wait_hashed(30)
        state.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(j.path, state / j.path.name))
    finally:
        j.close()
        s.model.close()


def test_later_keeps_the_journal_and_discard_removes_it(make_window, state, model, tmp_path):
    journal = _dead_journal(model, state, tmp_path, Clip(target="dense/kernel", min=-0.1, max=0.1))
    w = make_window(EngineAdapter(enabled=False))
    w.journal.ask = lambda c: "later"
    assert not w.journal.offer()
    assert journal.exists() and w.session is None
    w.journal.ask = lambda c: "discard"
    assert not w.journal.offer()
    assert not journal.exists() and list(state.iterdir()) == []
    assert w.journal.pending() == []


def test_a_changed_file_is_not_replayed_and_says_so(make_window, qtbot, state, model, tmp_path):
    journal = _dead_journal(model, state, tmp_path, Scale(target="dense/bias", factor=3.0))
    data = bytearray(model.read_bytes())
    data[-100] ^= 0x01
    model.write_bytes(bytes(data))
    w = make_window(EngineAdapter(enabled=False))
    w.journal.ask = lambda c: "restore"
    with qtbot.waitSignal(w.journal.restoreFailed, timeout=60000):
        assert w.journal.offer()
    assert w.session is None
    assert len(w.errors) == 1 and "changed since the unsaved edits were made" in w.errors[0]
    assert str(model) in w.errors[0]
    assert journal.exists()  # kept: the user may put the file back, or discard it next time
    (cand,) = w.journal.pending()
    cand.discard()


def test_the_window_journal_follows_save_and_close(state, model, window, qtbot, tmp_path):
    window.open_path(model)
    qtbot.waitUntil(lambda: window.session is not None, timeout=60000)
    assert window.apply_edit(Clip(target="dense/kernel", min=-0.1, max=0.1))
    window.wait_idle()
    assert len(list(iter_journals(state))) == 1
    out = tmp_path / "saved.keras"
    window._ask_save_path = lambda *a: str(out)
    assert window.save_as()
    assert list(iter_journals(state)) == []
    assert window.apply_edit(Scale(target="dense/bias", factor=2.0))
    window.wait_idle()
    assert len(list(iter_journals(state))) == 1
    window.close()
    assert list(iter_journals(state)) == []


@pytest.mark.parametrize("answer", ["restore", "later"])
def test_start_up_offers_the_restore_before_opening_a_file(monkeypatch, qtbot, state, model, tmp_path, answer):
    from PySide6.QtWidgets import QApplication

    from weightlab.gui.app import run_app
    from weightlab.gui.journal_restore import JournalController
    from weightlab.gui.main_window import MainWindow

    _dead_journal(model, state, tmp_path, Clip(target="dense/kernel", min=-0.1, max=0.1))
    windows, opened, asked = [], [], []
    real_init = MainWindow.__init__

    def init(self, engine=None, recent=None):
        real_init(self, engine=EngineAdapter(enabled=False), recent=recent)
        self._ask_unsaved = lambda: "discard"
        windows.append(self)

    def run_event_loop(*_args):
        w = windows[0]
        if answer == "restore":
            qtbot.waitUntil(lambda: w.session is not None, timeout=60000)
        return 0

    monkeypatch.setattr(MainWindow, "__init__", init)
    monkeypatch.setattr(MainWindow, "open_path", lambda self, p, d=None: opened.append(p))
    monkeypatch.setattr(JournalController, "ask", lambda self, c: asked.append(c.edit_count) or answer)
    monkeypatch.setattr(QApplication, "exec", run_event_loop)
    other = tmp_path / "other.keras"
    try:
        assert run_app(other) == 0
        (w,) = windows
        assert asked == [1]
        if answer == "restore":
            assert opened == [] and w.session.model.path == model and w.session.position == 1
        else:
            assert opened == [other] and w.session is None
    finally:
        for w in windows:
            w.close()
            w.deleteLater()
    assert len(list(iter_journals(state))) == (1 if answer == "later" else 0)


def test_closing_the_window_during_a_restore_keeps_the_journal(make_window, qtbot, state, model, tmp_path, monkeypatch):
    import threading

    from weightlab.core import journal as core_journal
    from weightlab.gui import journal_restore

    journal = _dead_journal(model, state, tmp_path, Clip(target="dense/kernel", min=-0.1, max=0.1))
    started = threading.Event()

    def slow_restore(candidate, open_session, stop):
        started.set()
        stop.wait()  # still hashing when the window closes
        return core_journal.restore(candidate, weightlab.open, stop=stop)

    monkeypatch.setattr(journal_restore, "restore", slow_restore)
    w = make_window(EngineAdapter(enabled=False))
    w.journal.ask = lambda c: "restore"
    assert w.journal.offer() and w.journal.restoring
    assert started.wait(30)
    w.close()
    from PySide6.QtCore import QCoreApplication

    QCoreApplication.processEvents()  # the thread's queued result arrives now (and must be dropped)
    assert w.session is None and w.errors == [] and not w.journal.restoring
    assert journal.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("weightlab-journal-")]
    (cand,) = find_stale(state)
    cand.discard()
