"""Shared test configuration.

Qt runs offscreen; tests never sleep for a fixed time (wait on signals with
``qtbot``); a test that leaves an engine worker process running fails.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
#: Folders this run made for itself (removed when the run ends, in pytest_unconfigure).
_RUN_FOLDERS: list[str] = []


def _run_folder(variable: str, prefix: str) -> None:
    """Point ``variable`` at a fresh temporary folder unless the caller set it."""
    if variable not in os.environ:
        os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
        _RUN_FOLDERS.append(os.environ[variable])


# Keep settings (recent files...) of test runs away from the user's own.
_run_folder("WEIGHTLAB_CONFIG_DIR", "weightlab-test-config-")
# ... and edit journals (weightlab.core.journal) away from the user's state folder.
_run_folder("WEIGHTLAB_STATE_DIR", "weightlab-test-state-")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the settings and state folders this run made."""
    for folder in _RUN_FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "weightlab" / "resources" / "demo"


@pytest.fixture(scope="session")
def demo_paths() -> dict[str, Path]:
    """Paths of the bundled demo: ``keras``, ``h5`` and ``data`` (held-out .npz)."""
    paths = {
        "keras": DEMO / "digits_cnn.keras",
        "h5": DEMO / "digits_cnn.h5",
        "data": DEMO / "digits_heldout.npz",
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        pytest.fail(f"bundled demo files missing: {missing}; rebuild with python -m weightlab.demo --out weightlab/resources/demo")
    return paths


@pytest.fixture
def run(capfd, monkeypatch):
    """``run(*args) -> (status, stdout, stderr)`` of ``weightlab ARGS`` in this process (as ``python -m weightlab``).

    main() quiets the libraries' loggers and may set WEIGHTLAB_DEBUG: both are undone afterwards.
    """
    import logging

    from weightlab import cli

    monkeypatch.setenv("WEIGHTLAB_DEBUG", "")
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl", "keras", "tf_keras", "h5py")]
    levels = [lg.level for lg in loggers]

    def call(*args: str | Path) -> tuple[int, str, str]:
        capfd.readouterr()
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as e:  # argparse's usage errors end the parse this way
            code = e.code
        out, err = capfd.readouterr()
        return code, out, err

    yield call
    for lg, level in zip(loggers, levels):
        lg.setLevel(level)


#: A test still running after this many seconds ends the whole run (exit status 1) with
#: every thread's stack on stderr. pytest-timeout (``timeout`` in pyproject.toml, shorter)
#: fails a test stuck in Python code; this is for one stuck where no Python code can run
#: any more (a C library looping while it holds the interpreter lock), which would otherwise
#: hold the run until CI's own limit.
HARD_LIMIT_S = float(os.environ.get("WEIGHTLAB_TEST_HARD_LIMIT_S", "330"))


def _stderr_fd(config: pytest.Config) -> int:
    """The terminal's stderr (pytest's faulthandler plugin keeps a copy from before capturing)."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key

        return config.stash[fault_handler_stderr_fd_key]
    except (ImportError, KeyError):
        return sys.__stderr__.fileno()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True, file=_stderr_fd(item.config))
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    """Fail a test that leaves a child process (e.g. an engine worker) running."""
    before = {p.pid for p in multiprocessing.active_children()}
    yield
    left = [p for p in multiprocessing.active_children() if p.pid not in before]
    for p in left:
        p.kill()
        p.join(5)
    assert not left, f"test left child process(es) running: {left}"


# -- GUI fixtures (Qt imported only when a GUI test asks for them) -------------------

#: How long a GUI test's threads may take to end after it (they are joined, not slept on).
THREAD_GRACE_S = float(os.environ.get("WEIGHTLAB_TEST_THREAD_GRACE_S", "5"))


@pytest.fixture(autouse=True)
def _no_stale_keyboard_modifiers():
    """Start every test with no keyboard modifier held, as far as Qt knows.

    A synthetic ctrl- or shift-click (``qtbot.mouseClick(..., Qt.ControlModifier)``)
    leaves ``QGuiApplication.keyboardModifiers()`` at Ctrl until the next synthetic
    event, and widgets in extended selection read it: ``QTableView.selectRow`` then
    *adds* a row, ``setCurrentItem`` extends a selection. Two fresh-clone failures
    came from that, in whatever test ran next. A plain click on a throwaway hidden
    widget resets it (Qt is touched only when a test has already loaded it).
    """
    widgets = sys.modules.get("PySide6.QtWidgets")
    if widgets is not None and widgets.QApplication.instance() is not None:
        from PySide6.QtCore import QPoint, Qt
        from PySide6.QtTest import QTest

        if widgets.QApplication.keyboardModifiers() != Qt.KeyboardModifier.NoModifier:
            blank = widgets.QWidget()
            QTest.mouseClick(blank, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(1, 1))
            blank.deleteLater()
    yield


@pytest.fixture(autouse=True)
def _no_leftover_threads(request):
    """Fail a GUI test that leaves a Python thread (e.g. a file being opened) or a Qt pool task running.

    Threads that end within :data:`THREAD_GRACE_S` (one finishing its last
    emit) pass; Qt's own pool threads are checked with ``waitForDone``.
    """
    if request.node.get_closest_marker("gui") is None:
        yield
        return
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and not isinstance(t, threading._DummyThread)]
    for t in left:
        t.join(THREAD_GRACE_S)
    left = [t for t in left if t.is_alive()]
    from PySide6.QtCore import QThreadPool

    pool_done = QThreadPool.globalInstance().waitForDone(int(THREAD_GRACE_S * 1000))
    assert not left, f"test left thread(s) running: {[t.name for t in left]}"
    assert pool_done, "test left Qt thread-pool tasks running"


@pytest.fixture
def config_dir(tmp_path, monkeypatch) -> Path:
    """A fresh settings folder (recent files) for this test."""
    folder = tmp_path / "config"
    monkeypatch.setenv("WEIGHTLAB_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def make_window(qtbot, config_dir):
    """``make_window(engine)``: a shown 1400x900 MainWindow whose dialogs are recorders.

    Error dialogs append to ``window.errors``; the unsaved-edits question
    answers "discard"; ``window.open_and_wait(path, data=None)`` opens and
    waits until the open ends (True when the model was opened);
    ``window.settle()`` waits until no file is opening, no edit is running and
    every plot shows the latest view; ``window.wait_idle()`` until the running
    edit (undo, redo, step switch, recipe) has landed. ``engine`` None gives the real evaluation engine.
    Every window is closed, and its engine shut down, at teardown.
    """
    import pyqtgraph as pg

    from weightlab.gui.main_window import MainWindow

    made = []

    def make(engine):
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
        w = MainWindow(engine=engine)
        w.errors = []
        w._error = lambda title, message: w.errors.append(message)
        w._ask_unsaved = lambda: "discard"
        # The plots get a new view one per event-loop turn: wait for the last one.
        w.settle = lambda timeout=10000: qtbot.waitUntil(
            lambda: not w.opening and not w.busy and w.view_settled, timeout=timeout
        )
        # Edits run off the window's thread: wait until the running one has landed.
        w.wait_idle = lambda timeout=60000: qtbot.waitUntil(lambda: not w.busy, timeout=timeout)
        finished: list[bool] = []
        w.openFinished.connect(finished.append)

        def open_and_wait(path, data=None, timeout=60000) -> bool:
            seen = len(finished)
            if not w.open_path(path, data):
                return False
            if not w.opening and len(finished) == seen:
                return True  # a held-out .npz: taken at once
            qtbot.waitUntil(lambda: len(finished) > seen, timeout=timeout)
            return finished[-1]

        w.open_and_wait = open_and_wait
        qtbot.addWidget(w)
        w.resize(1400, 900)
        w.show()
        made.append(w)
        return w

    yield make
    from shiboken6 import isValid

    for w in made:
        if isValid(w):  # pytest-qt deletes the windows of a failed test first
            w.close()
        w.engine.shutdown()


@pytest.fixture
def window(make_window):
    """A window whose evaluation is disabled (no worker process)."""
    from weightlab.gui.engine_adapter import EngineAdapter

    return make_window(EngineAdapter(enabled=False))
