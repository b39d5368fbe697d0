"""Window lifecycle (issue 9): timers and pool reports owned by their widgets, opening off the
window's thread (progress, Cancel, a newer open wins), one error dialog per failure, Save As
offering only what the opened format writes, and the conftest check for leftover threads.

Slow opens are simulated by a loader that waits on an event the test sets, so
nothing here sleeps for a fixed time: the event loop is run until a signal
arrives or a condition holds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, Qt, QThreadPool, QTimer

import weightlab
from weightlab.core.edits import Scale
from weightlab.core.errors import FormatError
from weightlab.core.model import LayerInfo, ModelFile, TensorInfo
from weightlab.core.session import EditSession
from weightlab.gui import opener
from weightlab.gui.engine_adapter import EngineAdapter
from weightlab.gui.main_window import MainWindow, save_filter, with_default_extension

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[1]
#: Longest a gated loader waits for its test (a failing test must not hang the run).
GATE_TIMEOUT_S = 30


class _Reader:
    """In-memory tensors; records whether the model was closed."""

    def __init__(self, arrays: dict[str, np.ndarray], gate: threading.Event | None = None):
        self.arrays, self.gate, self.closed = arrays, gate, False

    def read(self, info):
        if self.gate is not None:
            assert self.gate.wait(GATE_TIMEOUT_S), "the test never released the read"
        return self.arrays[info.name]

    def close(self):
        self.closed = True


def _memory_session(path: Path, arrays: dict[str, np.ndarray], gate: threading.Event | None = None) -> EditSession:
    layers: dict[str, list[TensorInfo]] = {}
    for full, arr in arrays.items():
        lname, wname = full.split("/")
        layers.setdefault(lname, []).append(TensorInfo(full, lname, wname, full, arr.shape, str(arr.dtype)))
    reader = _Reader(arrays, gate)
    return EditSession(ModelFile(path, "fake", [LayerInfo(n, "Dense", t) for n, t in layers.items()], reader))


class GatedLoader:
    """Stands in for ``MainWindow._load_session``: each call blocks until :meth:`release`.

    ``started`` is set when a call began; ``sessions`` are what it returned
    (in-memory models whose reader records ``closed``), ``threads`` the
    threads it ran on.
    """

    def __init__(self, fail: BaseException | None = None):
        self.gate = threading.Event()
        self.started = threading.Event()
        self.fail = fail
        self.sessions: list[EditSession] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, path: Path) -> EditSession:
        self.threads.append(threading.current_thread())
        self.started.set()
        assert self.gate.wait(GATE_TIMEOUT_S), "the test never released the open"
        if self.fail is not None:
            raise self.fail
        s = _memory_session(path, {"late/kernel": np.full((3, 2), 7.0, np.float32)})
        self.sessions.append(s)
        return s

    def release(self) -> None:
        self.gate.set()

    def join(self) -> None:
        for t in self.threads:
            t.join(GATE_TIMEOUT_S)
            assert not t.is_alive()


def _run_pending_timers(qtbot, ms: int = 20) -> None:
    """Run the event loop until a timer started now fires (so every shorter timer started before has fired)."""
    sentinel = QTimer()
    sentinel.setSingleShot(True)
    with qtbot.waitSignal(sentinel.timeout, timeout=10000):
        sentinel.start(ms)


def _delete_now(widget) -> None:
    widget.close()
    widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not shiboken6.isValid(widget)


# -- finding 8: nothing fires into a deleted window ----------------------------------------------
def test_view_steps_pending_when_the_window_is_deleted_never_run(qapp, qtbot, demo_paths, config_dir):
    """The plots get a view one per event-loop turn (1 ms timers): deleting the window drops them.

    Before the fix, ``QTimer.singleShot(1, lambda: ...)`` had no context object
    and ran after the window was gone: "Internal C++ object already deleted"
    (pytest-qt fails the test on that exception).
    """
    w = MainWindow(engine=EngineAdapter(enabled=False))
    w._error = lambda title, message: pytest.fail(message)
    w.show()
    with qtbot.waitSignal(w.modelOpened, timeout=60000):
        w.open_path(demo_paths["keras"])
    w.tree.select("dense/kernel")  # the histogram now, the heatmap and norms on 1 ms timers
    assert not w.view_settled
    _delete_now(w)
    _run_pending_timers(qtbot)


def test_pool_results_for_a_deleted_window_go_nowhere(qapp, qtbot, tmp_path, config_dir):
    """A large tensor's view is computed in the pool; its window is deleted before the pool reports."""
    gate = threading.Event()
    # > SYNC_LIMIT and > SYNC_ZEROS_ELEMENTS: its view and its zero count are computed in the pool
    big = np.arange(2_250_000, dtype=np.float32).reshape(1500, 1500)
    w = MainWindow(engine=EngineAdapter(enabled=False))
    w._error = lambda title, message: None  # the closed model may fail to read: not shown anyway
    w.show()
    session = _memory_session(tmp_path / "big.fake", {"big/kernel": big}, gate)
    w.set_session(session)
    w.tree.select("big/kernel")  # the view and the tree's zero count wait in the pool on the gate
    _delete_now(w)
    gate.set()
    assert QThreadPool.globalInstance().waitForDone(30000)
    _run_pending_timers(qtbot)  # queued reports would be delivered now: none reaches the deleted window


def test_engine_events_after_the_adapter_is_deleted_go_nowhere(qapp, qtbot):
    """The engine's reader thread may still call back after the window (and its adapter) is gone."""
    from weightlab.engine.events import Ready

    calls = []

    class Client:
        def __init__(self, on_event):
            calls.append(on_event)

        def start(self):
            pass

        def open(self, *a, **k):
            return 1

        def shutdown(self, timeout=5):
            pass

    adapter = EngineAdapter(client_factory=Client)
    got = []
    adapter.ready.connect(got.append)
    assert adapter.open("m.keras", "d.npz")
    shiboken6.delete(adapter)
    t = threading.Thread(target=calls[0], args=(Ready("CPU", "2.x"),))
    t.start()
    t.join()
    _run_pending_timers(qtbot)
    assert got == []


# -- opening off the window's thread -------------------------------------------------------------
def test_open_runs_off_the_window_thread_with_progress(window, qtbot, demo_paths):
    loader = GatedLoader()
    window._load_session = loader
    assert window.open_path(demo_paths["keras"])
    assert window.opening and window.session is None
    # The event loop keeps running while the file is read: the progress appears after its delay.
    qtbot.waitUntil(lambda: window.open_progress.isVisible(), timeout=10000)
    assert loader.started.is_set() and loader.threads[0] is not threading.main_thread()
    assert window.open_progress.label.text().startswith("Opening digits_cnn.keras…")
    assert window.open_progress.bar.maximum() == 0  # busy indicator
    with qtbot.waitSignal(window.modelOpened, timeout=10000) as opened:
        loader.release()
    assert opened.args == [demo_paths["keras"]]
    assert window.session is loader.sessions[0] and not window.opening
    assert not window.open_progress.isVisible()
    loader.join()


def test_cancel_keeps_the_previous_model_and_closes_the_late_result(window, qtbot, demo_paths):
    assert window.open_and_wait(demo_paths["keras"])
    before = window.session
    loader = GatedLoader()
    window._load_session = loader
    assert window.open_path(demo_paths["h5"])
    qtbot.waitUntil(lambda: window.open_progress.isVisible(), timeout=10000)
    with qtbot.waitSignal(window.openFinished, timeout=10000) as finished:
        qtbot.mouseClick(window.open_progress.cancel, Qt.MouseButton.LeftButton)
    assert finished.args == [False]
    assert window.session is before and not window.opening and not window.open_progress.isVisible()
    loader.release()
    loader.join()  # the open's thread closes its own late result
    _run_pending_timers(qtbot)
    assert window.session is before
    assert loader.sessions[0].model._reader.closed
    assert window.errors == []


def test_a_newer_open_supersedes_a_stale_one(window, qtbot, tmp_path):
    slow = GatedLoader()
    window._load_session = slow
    assert window.open_path(tmp_path / "slow.fake")
    quick = _memory_session(tmp_path / "quick.fake", {"q/kernel": np.ones((2, 2), np.float32)})
    window._load_session = lambda path: quick
    with qtbot.waitSignal(window.modelOpened, timeout=10000):
        assert window.open_path(tmp_path / "quick.fake")
    assert window.session is quick
    slow.release()
    slow.join()
    _run_pending_timers(qtbot)
    assert window.session is quick and slow.sessions[0].model._reader.closed


def test_closing_the_window_while_opening_closes_the_late_result(make_window, qtbot, tmp_path):
    w = make_window(EngineAdapter(enabled=False))
    loader = GatedLoader()
    w._load_session = loader
    assert w.open_path(tmp_path / "slow.fake")
    w.close()
    loader.release()
    loader.join()
    assert loader.sessions[0].model._reader.closed


@pytest.mark.parametrize(
    "fail, expected",
    [
        (FormatError("not a Keras model file: it looks like a text file", "/x/bad.h5"), "/x/bad.h5: not a Keras"),
        (RuntimeError("boom"), "unexpected error while opening: RuntimeError: boom"),
        (RecursionError("maximum recursion depth exceeded"), "RecursionError"),
    ],
)
def test_a_failed_open_gives_one_error_and_the_window_keeps_working(window, qtbot, demo_paths, fail, expected):
    assert window.open_and_wait(demo_paths["keras"])
    before = window.session
    loader = GatedLoader(fail=fail)
    loader.release()
    window._load_session = loader
    with qtbot.waitSignal(window.openFailed, timeout=10000) as failed:
        assert window.open_path("/x/bad.h5")
    assert len(window.errors) == 1 and expected in window.errors[0] == failed.args[0]
    assert "Traceback" not in window.errors[0] and "\n" not in window.errors[0]
    assert window.session is before
    loader.join()
    window.apply_edit(Scale(target="dense/kernel", factor=2.0))  # still working
    window.wait_idle()
    assert window.session.is_edited("dense/kernel")


def test_a_real_bad_file_fails_in_the_open_thread(window, tmp_path, demo_paths):
    bad = tmp_path / "notes.keras"
    bad.write_text("not a model")
    assert not window.open_and_wait(bad)
    assert len(window.errors) == 1 and str(bad) in window.errors[0]
    assert window.open_and_wait(demo_paths["h5"]) and window.session.model.format == "h5"


def test_edits_made_while_opening_are_asked_about_again(window, qtbot, demo_paths, tmp_path):
    assert window.open_and_wait(demo_paths["keras"])
    window.apply_edit(Scale(target="dense/kernel", factor=2.0))
    window.wait_idle()
    asked = []
    window._ask_unsaved = lambda: asked.append(1) or "discard"
    loader = GatedLoader()
    window._load_session = loader
    assert window.open_path(tmp_path / "next.fake")  # asked once: discard
    before = window.session
    window.apply_edit(Scale(target="dense/bias", factor=3.0))  # a new edit while the file opens
    window.wait_idle()
    window._ask_unsaved = lambda: asked.append(2) or "cancel"
    with qtbot.waitSignal(window.openFinished, timeout=10000) as finished:
        loader.release()
    assert asked == [1, 2] and finished.args == [False]
    assert window.session is before and window.session.is_edited("dense/bias")
    assert loader.sessions[0].model._reader.closed
    loader.join()
    window._ask_unsaved = lambda: "discard"  # let the fixture close the window


# -- Save As --------------------------------------------------------------------------------------
def test_save_as_offers_only_the_opened_format(window, demo_paths, tmp_path):
    offered = []

    def ask(title, default, name_filter):
        offered.append(name_filter)
        return None

    window._ask_save_path = ask
    for key, patterns in (("keras", "(*.keras)"), ("h5", "(*.h5 *.hdf5)")):
        assert window.open_and_wait(demo_paths[key])
        assert not window.save_as()
        assert offered[-1].endswith(patterns) and ";;" not in offered[-1]
    assert save_filter("savedmodel") == "TensorFlow SavedModel folder (*)"
    assert save_filter("checkpoint").endswith("(*.index)") and save_filter("graphdef").endswith("(*.pb)")


def test_save_as_adds_the_extension_and_refuses_another_format(window, demo_paths, tmp_path):
    model = tmp_path / "digits_cnn.keras"
    shutil.copy(demo_paths["keras"], model)
    assert window.open_and_wait(model)
    window.apply_edit(Scale(target="dense/kernel", factor=0.5))
    window.wait_idle()
    window._ask_save_path = lambda title, default, name_filter: str(tmp_path / "edited")
    assert window.save_as()
    np.testing.assert_array_equal(
        weightlab.open(tmp_path / "edited.keras").array("dense/kernel"), window.session.array("dense/kernel")
    )
    assert not (tmp_path / "edited").exists()

    window._ask_save_path = lambda title, default, name_filter: str(tmp_path / "out.h5")
    assert not window.save_as()
    assert len(window.errors) == 1 and "out.h5" in window.errors[0] and ".keras" in window.errors[0]
    assert not (tmp_path / "out.h5").exists()

    # "edited" again: edited.keras exists now and the dialog asked only about "edited".
    asked = []
    window._confirm_replace = lambda path: asked.append(path) or False
    window._ask_save_path = lambda title, default, name_filter: str(tmp_path / "edited")
    assert not window.save_as() and asked == [tmp_path / "edited.keras"]


def test_default_extension_rules():
    assert with_default_extension(Path("/t/e"), "keras") == Path("/t/e.keras")
    assert with_default_extension(Path("/t/e"), "weights.h5") == Path("/t/e.weights.h5")
    assert with_default_extension(Path("/t/e.v2"), "keras") == Path("/t/e.v2")  # kept as typed
    assert with_default_extension(Path("/t/export"), "savedmodel") == Path("/t/export")
    assert with_default_extension(Path("/t/ckpt-1"), "checkpoint") == Path("/t/ckpt-1")


# -- the suite's own guard -----------------------------------------------------------------------
def test_a_gui_test_that_leaves_a_thread_running_fails(tmp_path):
    """The conftest check: a GUI test whose thread outlives it fails (here with a short grace)."""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_leak.py").write_text(textwrap.dedent("""
        import threading
        import pytest

        stop = threading.Event()

        @pytest.mark.gui
        def test_leaks_a_thread(qapp):
            threading.Thread(target=stop.wait, args=(30,), name="leaky", daemon=True).start()

        @pytest.mark.gui
        def test_after(qapp):
            stop.set()
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "WEIGHTLAB_TEST_THREAD_GRACE_S": "0.2"},
    )
    assert "test left thread(s) running: ['leaky']" in proc.stdout, proc.stdout[-3000:]
    assert "2 passed, 2 warnings, 1 error" in proc.stdout or "2 passed, 1 error" in proc.stdout, proc.stdout[-3000:]


def test_opener_outcome_reaches_nobody_after_the_opener_is_deleted(qapp, qtbot, tmp_path):
    """ModelOpener alone: its thread reports through a relay, so deleting the opener is safe."""
    o = opener.ModelOpener()
    loader = GatedLoader()
    request = o.open(tmp_path / "x.fake", None, loader)
    assert o.pending is request and o.threads() == [request.thread]
    shiboken6.delete(o)
    loader.release()
    loader.join()
    _run_pending_timers(qtbot)  # its queued outcome, if any, would arrive now


# -- unexpected errors -----------------------------------------------------------------------------
def test_an_unexpected_error_is_one_dialog_and_the_window_keeps_running(window, qtbot, demo_paths, capsys):
    from weightlab.gui.error_dialog import install_error_dialog

    def boom():
        raise RuntimeError("boom in a slot")

    restore = install_error_dialog(window)
    try:
        QTimer.singleShot(0, window, boom)  # an exception escaping a Qt slot
        qtbot.waitUntil(lambda: len(window.errors) == 1, timeout=5000)
        t = threading.Thread(target=lambda: 1 / 0)  # ... and one escaping a thread: shown on the GUI thread
        t.start()
        t.join()
        qtbot.waitUntil(lambda: len(window.errors) == 2, timeout=5000)
    finally:
        restore()
    assert window.errors[0].startswith("RuntimeError: boom in a slot\n\nWeightLab keeps running")
    assert window.errors[1].startswith("ZeroDivisionError: division by zero")
    assert "Traceback" not in capsys.readouterr().err
    assert window.open_and_wait(demo_paths["keras"])  # still working


def test_compare_opens_its_file_off_the_window_thread_and_can_be_cancelled(window, qtbot, demo_paths, tmp_path):
    assert window.open_and_wait(demo_paths["keras"])
    loader = GatedLoader()
    window._load_session = loader
    assert window.compare_with(tmp_path / "other.fake")
    qtbot.waitUntil(lambda: window.compare_progress.isVisible(), timeout=10000)
    assert window.compare_progress.label.text().startswith("Opening other.fake to compare…")
    qtbot.mouseClick(window.compare_progress.cancel, Qt.MouseButton.LeftButton)
    assert not window.compare_progress.isVisible()
    loader.release()
    loader.join()
    _run_pending_timers(qtbot)
    assert window.compare_dialog is None and window.errors == []
    assert loader.sessions[0].model._reader.closed
