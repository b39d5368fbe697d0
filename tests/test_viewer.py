"""weightlab.show / weightlab.run / Viewer: the window from a notebook or a script (issue 13, part D).

The done-when test trains a small Keras model in memory, opens it with
``weightlab.show(model, data=(x, y))``, ablates two neurons through the
window's UI (tree, heatmap clicks, the edit panel's *Zero neurons* button),
and checks that ``viewer.model()`` evaluated by Keras gives the accuracy the
window shows. It runs the real evaluation engine (a worker process).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[1]


def _weightlab_temp() -> set[str]:
    """The temporary folders WeightLab's show/materialise make (``weightlab-show-*``, ``weightlab-memory-*``)."""
    tmp = Path(tempfile.gettempdir())
    return {p.name for p in tmp.glob("weightlab-*") if p.name.startswith(("weightlab-show-", "weightlab-memory-"))}


def _click_view(qtbot, plot, x: float, y: float, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A real mouse click on a pyqtgraph PlotWidget at view coordinates ``(x, y)``."""
    scene_pt = plot.getViewBox().mapViewToScene(QPointF(x, y))
    widget_pt = plot.mapFromScene(scene_pt)
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, modifier, QPoint(widget_pt.x(), widget_pt.y()))


def _percent(label_text: str) -> float:
    """The first ``NN.N %`` of a label's (rich) text, as a fraction."""
    m = re.search(r"(\d+(?:\.\d+)?)\s*%", label_text)
    assert m, label_text
    return float(m.group(1)) / 100


@pytest.fixture(scope="module")
def digits_model():
    """A small Dense classifier trained in memory on scikit-learn's digits: ``(model, x_test, y_test)``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype("float32")
    y = d.target.astype("int64")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(24, activation="relu", name="hidden"),
         keras.layers.Dense(10, activation="softmax", name="out")], name="digits"
    )  # fmt: skip
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1400], y[:1400], epochs=20, batch_size=64, verbose=0)
    return model, x[1400:], y[1400:]


@pytest.fixture
def no_dialogs(monkeypatch, config_dir):
    """Every window's error dialog is recorded (``errors``), not shown; the unsaved-edits question answers discard."""
    from weightlab.gui.main_window import MainWindow

    errors: list[str] = []
    monkeypatch.setattr(MainWindow, "_error", lambda self, title, message: errors.append(f"{title}: {message}"))
    monkeypatch.setattr(MainWindow, "_ask_unsaved", lambda self: "discard")
    return errors


def test_done_when_window_ablation_equals_keras(qtbot, digits_model, no_dialogs, tmp_path):
    import weightlab
    from weightlab.edits import ZeroNeurons

    model, x, y = digits_model
    weights_before = [w.copy() for w in model.get_weights()]
    temps_before = _weightlab_temp()
    children_before = {p.pid for p in multiprocessing.active_children()}
    threads_before = set(threading.enumerate())

    v = weightlab.show(model, data=(x, y), title="digits in memory")
    w = v.window
    assert w.isVisible() and w.windowTitle() == "digits in memory — WeightLab"
    assert v.session.model.in_memory and v.session.model.exec_path is not None
    assert w.journal.journal.path is None and "not journaled" in (w.journal.journal.error or "")
    assert v.wait(240), w.eval_panel.message.text()
    base = v.metrics
    assert base is not None and w.eval_panel.baseline is base
    keras_base = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))
    assert base.accuracy == pytest.approx(keras_base, abs=1e-12)

    # -- two neurons ablated through the window's UI, as a user does it --
    w.tree.select("hidden/kernel")
    qtbot.waitUntil(lambda: w.current == "hidden/kernel" and w.view_settled, timeout=20000)
    heat = w.heatmap
    p2, p5 = heat.neuron_center(2), heat.neuron_center(5)
    _click_view(qtbot, heat.plot, p2.x(), p2.y())
    _click_view(qtbot, heat.plot, p5.x(), p5.y(), Qt.KeyboardModifier.ControlModifier)
    assert w.selection.target == "hidden" and w.selection.neurons == [2, 5]
    qtbot.mouseClick(w.edit_panel.zero_neurons_btn, Qt.MouseButton.LeftButton)
    assert v.wait(240)
    assert not no_dialogs
    s = v.session
    assert s.position == 1 and isinstance(s.steps[0].edit, ZeroNeurons)  # the window's edit is in the session
    assert np.all(s.array("hidden/kernel")[:, [2, 5]] == 0) and np.all(s.array("hidden/bias")[[2, 5]] == 0)
    shown = v.metrics
    assert shown is not None and shown is not base
    shown_label = _percent(w.eval_panel.cur_acc.text())

    m = v.model()
    pred = np.argmax(m.predict(x, verbose=0), axis=1)
    keras_acc = float(np.mean(pred == y))
    assert shown.accuracy == pytest.approx(keras_acc, abs=1e-12)  # the same predictions, sample for sample
    assert shown_label == pytest.approx(keras_acc, abs=0.0005)  # the label: one decimal of a percentage
    _, evaluated = m.evaluate(x, y, verbose=0)
    assert evaluated == pytest.approx(keras_acc, abs=1e-6)  # compiled like the original
    for before, after in zip(weights_before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)  # the original model untouched
    assert v.recipe()["edits"] == [ZeroNeurons(target="hidden", neurons=[2, 5]).to_dict()]

    # -- the notebook edits the same session: the window follows --
    rows = w.history.list.count()
    s.apply(ZeroNeurons(target="hidden", neurons=[7]))
    assert len(s.steps) == 2 and s.position == 2
    assert w.history.list.count() == rows + 1 and "zero neurons [7]" in w.history.list.item(rows).text()
    assert w.windowTitle() == "digits in memory* — WeightLab"
    assert v.wait(240)
    assert 2 in w.eval_panel.step_accuracy()  # measured at the notebook's step
    pred3 = np.argmax(v.model().predict(x, verbose=0), axis=1)
    assert v.metrics.accuracy == pytest.approx(float(np.mean(pred3 == y)), abs=1e-12)

    # -- File › Save As of an in-memory model: a .keras file by Keras' own saving --
    asked = []
    w._ask_save_path = lambda title, default, name_filter: asked.append((default, name_filter)) or str(tmp_path / "ed")
    assert w.save_as(), no_dialogs
    assert asked[0][0].name == "digits-edited.keras" and asked[0][1].startswith("Keras model (*.keras)")
    saved = weightlab.open(tmp_path / "ed.keras")
    for name in s.model.tensors:
        np.testing.assert_array_equal(saved.array(name), s.array(name))
    saved.model.close()
    assert w.windowTitle() == "digits in memory — WeightLab"  # nothing unsaved now

    # -- closing leaves nothing behind --
    v.close()
    assert not w.isVisible()
    assert not v._open and v.metrics is None
    assert v.session is s and s.position == 2  # the edits stay in the session
    assert {p.pid for p in multiprocessing.active_children()} <= children_before
    assert _weightlab_temp() <= temps_before
    left = [t for t in threading.enumerate() if t not in threads_before and not isinstance(t, threading._DummyThread)]
    for t in left:
        t.join(5)
    assert not [t.name for t in left if t.is_alive()]


def test_show_path_npz_and_run_returns_when_closed(qtbot, demo_paths, no_dialogs, monkeypatch):
    """A model file with its held-out .npz; ``run()`` blocks until the window closes (closed here by a timer)."""
    from PySide6.QtCore import QTimer

    import weightlab
    from weightlab import viewer
    from weightlab.gui.engine_adapter import EngineAdapter
    from weightlab.gui.main_window import MainWindow

    # no worker process: this test is about the window's life, not evaluation
    real_init = MainWindow.__init__

    def init(self, engine=None, recent=None):
        real_init(self, EngineAdapter(enabled=False), recent)

    monkeypatch.setattr(MainWindow, "__init__", init)
    v = weightlab.show(demo_paths["keras"], data=demo_paths["data"])
    assert v.window.data_path == Path(demo_paths["data"])
    assert v.window.windowTitle() == "digits_cnn.keras — WeightLab"
    assert v.wait(30)  # evaluation off: settled at once, with its reason
    assert v.window.eval_panel.off_reason
    QTimer.singleShot(50, v.window.close)
    viewer.run(timeout=60)
    assert not v.window.isVisible() and not v._open
    weightlab.run()  # nothing open: returns at once
    with pytest.raises(weightlab.FormatError, match="closed"):
        v.session.array("dense/bias")  # the window opened the file: it closed it


def test_show_a_session_leaves_it_open(qtbot, demo_paths, no_dialogs, monkeypatch):
    """``show(session)``: the window edits the caller's very session and does not close its file."""
    import weightlab
    from weightlab.edits import ZeroNeurons
    from weightlab.gui.engine_adapter import EngineAdapter
    from weightlab.gui.main_window import MainWindow

    real_init = MainWindow.__init__
    monkeypatch.setattr(MainWindow, "__init__", lambda self, engine=None, recent=None: real_init(
        self, EngineAdapter(enabled=False), recent))
    s = weightlab.open(demo_paths["keras"])
    try:
        v = weightlab.show(s)
        assert v.session is s and v.window.data_path == Path(demo_paths["data"])  # the held-out set beside it
        v.window.apply_edit(ZeroNeurons(target="dense", neurons=[1]))
        qtbot.waitUntil(lambda: not v.window.busy, timeout=30000)
        assert s.position == 1
        v.close()
        assert s.array("dense/bias")[1] == 0 and s.array("conv2d/kernel").shape  # still readable
    finally:
        s.model.close()


def test_ipython_gets_qt_event_loop(monkeypatch):
    """Under IPython, show() turns on %gui qt6 (QT_API=pyside6 first), once."""
    from weightlab.gui import notebook

    calls = []

    class Shell:
        active_eventloop = None

        def enable_gui(self, gui):
            calls.append((gui, os.environ.get("QT_API")))
            self.active_eventloop = gui

    shell = Shell()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.delenv("QT_API", raising=False)
    assert not notebook.ipython_loop_active()
    assert notebook.enable_ipython_loop() is True
    assert notebook.enable_ipython_loop() is True
    assert calls == [("qt6", "pyside6")]
    assert notebook.ipython_loop_active()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert notebook.enable_ipython_loop() is False  # IPython imported, but no shell: a plain script


def test_display_problem_by_platform_and_environment():
    from weightlab.viewer import display_problem

    linux = "linux"
    assert display_problem({}, linux) is not None
    assert "xvfb-run" in display_problem({}, linux) and "QT_QPA_PLATFORM=offscreen" in display_problem({}, linux)
    assert display_problem({"DISPLAY": ":0"}, linux) is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, linux) is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, linux) is None
    assert display_problem({}, "darwin") is None and display_problem({}, "win32") is None


def test_no_display_is_a_clear_error_and_opens_nothing(demo_paths, tmp_path):
    """In a process without a display: WeightLabError naming what is missing; no Qt, no window, no temp file."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["TMPDIR"] = str(tmp_path)
    code = f"""
import sys, numpy as np, weightlab
try:
    weightlab.show({str(demo_paths['keras'])!r}, data=(np.zeros((3, 8, 8, 1), 'float32'), np.zeros(3, int)))
except weightlab.WeightLabError as e:
    print(type(e).__name__ + ": " + str(e))
print("qt imported:", "PySide6.QtWidgets" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("NoDisplayError: weightlab.show: no display"), out.stdout
    assert "DISPLAY" in out.stdout and "weightlab.open(model)" in out.stdout
    assert "qt imported: False" in out.stdout
    assert list(tmp_path.iterdir()) == []


def test_jobs_from_the_notebook_run_in_the_window(qtbot, digits_model, no_dialogs, tmp_path):
    """sweep/rank/finetune started from Python: the window's tabs show them, the results come back as data."""
    import weightlab
    from weightlab.core.sweeps import RankResult, SweepResult
    from weightlab.core.training import FinetuneResult

    model, x, y = digits_model
    v = weightlab.show(model, data=(x, y))
    try:
        w = v.window
        assert v.wait(240)
        base = v.metrics.accuracy

        job = v.rank(layer="hidden", cumulative=False)
        assert w.views.currentWidget() is w.ranking.view and w.ranking.job == job.job_id
        assert not job.done()
        ranked = job.result(timeout=240)
        assert isinstance(ranked, RankResult) and ranked.complete and job.done() and job.state == "done"
        assert len(ranked.units) == 24 and w.ranking.result is ranked  # the tab shows this very result
        assert ranked.baseline.accuracy == pytest.approx(base, abs=1e-12)

        job = v.sweep(op="prune_magnitude", param="sparsity", values=[0.5, 0.95], targets="hidden/kernel")
        assert w.views.currentWidget() is w.sweeps.panel
        swept = job.result(timeout=240)
        assert isinstance(swept, SweepResult) and w.sweeps.result is swept
        assert [p.value for p in swept.points] == [0.5, 0.95]
        assert swept.points[1].accuracy < swept.points[0].accuracy <= base + 0.05

        train = tmp_path / "train.npz"
        xt, yt = digits_model[1], digits_model[2]
        np.savez(train, x=xt, y=yt)
        before = v.session.position
        job = v.finetune(train, epochs=1, batch_size=64, val_split=0.2)
        assert w.views.currentWidget() is w.training.panel
        tuned = job.result(timeout=300)
        assert isinstance(tuned, FinetuneResult) and len(tuned.history) == 1
        assert v.session.position == before + 1  # the trained weights landed as one step
        name = "hidden/kernel"
        np.testing.assert_array_equal(v.session.array(name), tuned.arrays[name])
        assert not no_dialogs
    finally:
        v.close()


def test_jupyter_kernel_runs_the_window_between_cells(demo_paths, tmp_path):
    """In a real Jupyter kernel: show() returns at once with %gui qt on, and the window works between cells.

    No cell processes Qt events itself (no ``wait``): the baseline can only
    arrive through the kernel's Qt event-loop integration while it is idle.
    """
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip

    def run(code: str) -> str:
        nb.cells.append(nbformat.v4.new_code_cell(code))
        cell = client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
        return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")

    import time

    with client.setup_kernel(env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3"}):
        out = run(f"import weightlab\nv = weightlab.show({str(demo_paths['keras'])!r}, "
                  f"data={str(demo_paths['data'])!r})\nprint(type(v).__name__, v.metrics)")  # fmt: skip
        assert out.strip() == "Viewer None"  # returned before the baseline: the notebook is not blocked
        out = run("import IPython, os\nfrom PySide6.QtCore import QTimer\nfrom PySide6.QtWidgets import QApplication\n"
                  "turns = QApplication.instance().findChild(QTimer, 'weightlab-kernel-turns')\n"
                  "print(IPython.get_ipython().active_eventloop, os.environ['QT_API'], turns.isActive())")  # fmt: skip
        # qt6 on, and the timer that hands the kernel a turn (a reply stuck behind Qt's loop hung the cell)
        assert out.split() == ["qt6", "pyside6", "True"]
        deadline = time.monotonic() + 240
        while "True" not in run("print(v.metrics is not None)"):
            assert time.monotonic() < deadline, "the baseline never arrived between cells"
            # The kernel runs Qt's loop only while idle (no request waiting), as between a person's
            # cells: leave it idle a moment between polls (back-to-back requests would starve it).
            time.sleep(0.5)
        out = run("print(f'{v.metrics.accuracy:.4f}', v.window.isVisible())")
        assert float(out.split()[0]) > 0.9 and out.split()[1] == "True"
        out = run("import multiprocessing\nv.close()\nprint(len(multiprocessing.active_children()))")
        assert out.strip() == "0"


def test_script_without_run_or_main_guard_exits_cleanly(demo_paths, tmp_path):
    """A plain script (no ``__main__`` guard) shows a model and ends without ``run()``: it exits cleanly.

    The window is closed at exit while Qt and the engine still stand (no
    traceback from the engine's reader thread), and no worker outlives it.
    """
    script = tmp_path / "script.py"
    script.write_text(
        "import weightlab\n"
        f"v = weightlab.show({str(demo_paths['keras'])!r})\n"
        "assert v.wait(240), 'no baseline'\n"
        "print('accuracy', v.metrics.accuracy, 'worker', v.window.engine.running)\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=280,
                         cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "accuracy 0.98" in out.stdout and "worker True" in out.stdout
    assert "Traceback" not in out.stderr, out.stderr


def test_window_size_fits_a_small_screen():
    """On a 1366x768 laptop the window opens inside the free area; off screen it keeps its size."""
    from PySide6.QtCore import QRect

    from weightlab.gui.notebook import _fit_screen

    def app(platform: str, free: QRect):
        screen = types.SimpleNamespace(availableGeometry=lambda: free)
        return types.SimpleNamespace(primaryScreen=lambda: screen, platformName=lambda: platform)

    assert _fit_screen(app("xcb", QRect(0, 0, 1366, 728)), (1400, 900)) == (1326, 668)
    assert _fit_screen(app("xcb", QRect(0, 0, 2560, 1400)), (1400, 900)) == (1400, 900)
    assert _fit_screen(app("xcb", QRect(0, 0, 800, 600)), (1400, 900)) == (1000, 640)  # never below the minimum
    assert _fit_screen(app("offscreen", QRect(0, 0, 800, 600)), (1400, 900)) == (1400, 900)
