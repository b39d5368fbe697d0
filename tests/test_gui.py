"""Tests of the WeightLab window (pytest-qt, offscreen).

Most tests run with evaluation disabled (no TensorFlow worker); one test uses
the real engine worker for live accuracy. Dialogs are replaced by recorders.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEngine
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage

from weightlab.core.edits import Scale
from weightlab.core.stats import tensor_stats
from weightlab.gui.engine_adapter import EngineAdapter
from weightlab.gui.histogram_view import format_stats
from weightlab.gui.main_window import MainWindow, default_save_path
from weightlab.gui.settings import RecentFiles

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def live_window(make_window):
    """A window with the real evaluation engine; its worker is shut down at teardown."""
    return make_window(None)


def _open(w: MainWindow, path: Path, tensor: str | None = None) -> None:
    assert w.open_and_wait(path), w.errors
    if tensor is not None:
        w.tree.select(tensor)
        w.settle()
        assert w.current == tensor
        assert w.histogram.view is not None and w.histogram.view.request.name == tensor


def _click_view(qtbot, plot, x: float, y: float, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A real mouse click on a pyqtgraph PlotWidget at view coordinates ``(x, y)``."""
    from PySide6.QtCore import QPointF

    scene_pt = plot.getViewBox().mapViewToScene(QPointF(x, y))
    widget_pt = plot.mapFromScene(scene_pt)
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, modifier, QPoint(widget_pt.x(), widget_pt.y()))


def test_histogram_counts_and_stats_match_core(window, demo_paths):
    _open(window, demo_paths["keras"], "dense/kernel")
    a = window.session.array("dense/kernel")
    counts, edges = np.histogram(a, bins=100)
    x, y = window.histogram.curve.getData()
    np.testing.assert_array_equal(y, counts)
    np.testing.assert_allclose(x, edges)
    assert window.histogram.stats == tensor_stats(a)
    assert window.histogram.stats_label.text() == format_stats(tensor_stats(a))
    # The bin count spin box recomputes the histogram exactly.
    window.histogram.bins.setValue(37)
    _, y = window.histogram.curve.getData()
    np.testing.assert_array_equal(y, np.histogram(a, bins=37)[0])
    assert "digits_cnn.keras" in window.tree.summary.text()
    assert window.windowTitle().startswith("digits_cnn.keras")


def test_brush_clip_marks_edited_and_undo_restores(window, demo_paths, qtbot):
    name = "conv2d_1/kernel"
    _open(window, demo_paths["keras"], name)
    orig = window.session.array(name)
    assert not window.edit_panel.clip_btn.isEnabled()

    region = window.histogram.region
    region.show()
    region.setRegion((-0.05, 0.08))
    region.sigRegionChangeFinished.emit(region)
    lo, hi = region.getRegion()
    assert window.edit_panel.range == (lo, hi)
    assert window.session.array(name) is orig, "releasing the brush must not edit"
    assert window.edit_panel.clip_btn.isEnabled()

    qtbot.mouseClick(window.edit_panel.clip_btn, Qt.MouseButton.LeftButton)
    window.wait_idle()
    expected = np.clip(orig, np.float32(lo), np.float32(hi))
    np.testing.assert_array_equal(window.session.array(name), expected)
    assert window.tree.is_marked_edited(name)
    assert window.windowTitle().startswith("digits_cnn.keras*")
    assert window.histogram.view.ghost is not None  # original drawn as a ghost
    assert window.history.list.count() == 2

    window.act_undo.trigger()
    window.wait_idle()
    np.testing.assert_array_equal(window.session.array(name), orig)
    assert not window.tree.is_marked_edited(name)
    assert not window.windowTitle().startswith("digits_cnn.keras*")
    window.act_redo.trigger()
    window.wait_idle()
    np.testing.assert_array_equal(window.session.array(name), expected)
    window.goto(0)  # as a click on the history's first row
    window.wait_idle()
    np.testing.assert_array_equal(window.session.array(name), orig)


def test_heatmap_click_selects_neurons_and_zero_neurons(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "dense/kernel")
    heat = window.heatmap
    p3, p7, p9 = (heat.neuron_center(n) for n in (3, 7, 9))
    _click_view(qtbot, heat.plot, p3.x(), p3.y())
    assert window.selection.target == "dense"
    assert window.selection.neurons == [3]
    _click_view(qtbot, heat.plot, p7.x(), p7.y(), Qt.KeyboardModifier.ControlModifier)
    assert window.selection.neurons == [3, 7]
    _click_view(qtbot, heat.plot, p9.x(), p9.y(), Qt.KeyboardModifier.ShiftModifier)
    assert window.selection.neurons == [3, 7, 8, 9]
    window.selection.set_neurons([3, 7])
    assert window.edit_panel.neurons_label.text() == "2 neurons of dense: 3, 7"
    assert len(heat._overlays) == 2

    kernel0 = window.session.array("dense/kernel")
    bias0 = window.session.array("dense/bias")
    qtbot.mouseClick(window.edit_panel.zero_neurons_btn, Qt.MouseButton.LeftButton)
    window.wait_idle()
    kernel = window.session.array("dense/kernel")
    bias = window.session.array("dense/bias")
    assert np.all(kernel[:, [3, 7]] == 0) and np.all(bias[[3, 7]] == 0)
    keep = [i for i in range(kernel.shape[1]) if i not in (3, 7)]
    np.testing.assert_array_equal(kernel[:, keep], kernel0[:, keep])
    np.testing.assert_array_equal(bias[keep], bias0[keep])
    assert window.tree.is_marked_edited("dense/kernel") and window.tree.is_marked_edited("dense/bias")
    window.settle()
    assert window.norms.norms[3] == 0 and window.norms.norms[7] == 0


def test_norm_bar_click_selects_conv_filters(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "conv2d/kernel")
    norms = window.norms
    np.testing.assert_allclose(
        norms.norms, np.linalg.norm(window.session.array("conv2d/kernel").reshape(-1, 16), axis=0), rtol=1e-6
    )
    _click_view(qtbot, norms.plot, 5, float(norms.norms[5]) / 2)
    assert window.selection.neurons == [5]
    assert window.selection.target == "conv2d"
    window.selection.set_neurons([2, 9])
    x, y = norms.selected_bars.getData()  # orange bars: exactly neurons 2 and 9, at their heights
    assert sorted({round(float(v)) for v in x}) == [2, 9]
    assert float(np.max(y)) == pytest.approx(float(max(norms.norms[2], norms.norms[9])))


def test_live_accuracy_follows_edits(live_window, demo_paths, qtbot):
    w = live_window
    _open(w, demo_paths["keras"], "dense_1/kernel")
    # (waitUntil treats a callback returning None as "satisfied": always return a bool)
    qtbot.waitUntil(lambda: w.eval_panel.settled, timeout=120_000)
    assert w.eval_panel.off_reason is None, w.eval_panel.off_reason
    baseline_text = w.eval_panel.base_acc.text()
    assert baseline_text.endswith("%")
    assert w.eval_panel.cur_acc.text().startswith(baseline_text)

    w.selection.set_neurons(range(10))  # ablate every output unit: the model can no longer tell classes apart
    w.edit_panel.zero_neurons()
    w.wait_idle()
    qtbot.waitUntil(lambda: w.eval_panel.current is not w.eval_panel.baseline, timeout=120_000)
    assert not w.eval_panel.cur_acc.text().startswith(baseline_text)
    assert w.eval_panel.current.accuracy < w.eval_panel.baseline.accuracy
    assert w.eval_panel.step_accuracy()[1] == w.eval_panel.current.accuracy

    w.act_undo.trigger()
    w.wait_idle()
    qtbot.waitUntil(lambda: w.eval_panel.cur_acc.text().startswith(baseline_text), timeout=120_000)


def test_bad_file_reports_error_and_window_keeps_working(window, demo_paths, tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_text("this is not a model")
    assert not window.open_and_wait(bad)
    assert len(window.errors) == 1 and "x.h5" in window.errors[0]
    assert window.session is None
    _open(window, demo_paths["h5"], "dense/kernel")
    assert window.session.model.format


def test_save_as_writes_and_refuses_silent_overwrite(window, demo_paths, tmp_path):
    import weightlab

    model = tmp_path / "digits_cnn.keras"
    shutil.copy(demo_paths["keras"], model)
    _open(window, model, "dense_1/kernel")
    window.apply_edit(Scale(target="dense_1/kernel", factor=0.5))
    window.wait_idle()
    edited = window.session.array("dense_1/kernel")

    assert default_save_path(model) == tmp_path / "digits_cnn-edited.keras"
    out = tmp_path / "out.keras"
    window._ask_save_path = lambda title, default, name_filter: str(out)
    assert window.save_as()
    np.testing.assert_array_equal(weightlab.open(out).array("dense_1/kernel"), edited)
    assert not window.windowTitle().startswith("digits_cnn.keras*")

    before = model.read_bytes()
    asked = []
    window._ask_save_path = lambda title, default, name_filter: str(model)
    window._confirm_overwrite = lambda path: asked.append(path) or False
    assert not window.save_as()
    assert asked == [model]
    assert model.read_bytes() == before
    assert window.errors == []


def test_unsaved_edits_cancel_keeps_session(window, demo_paths):
    _open(window, demo_paths["keras"], "dense/kernel")
    window.apply_edit(Scale(target="dense/kernel", factor=2.0))
    window.wait_idle()
    session = window.session
    window._ask_unsaved = lambda: "cancel"
    assert not window.open_path(demo_paths["h5"])
    assert window.session is session
    window._ask_unsaved = lambda: "discard"


def test_recent_files_and_heldout_guess(window, demo_paths, config_dir):
    _open(window, demo_paths["keras"])
    assert RecentFiles(config_dir).paths()[0] == demo_paths["keras"].resolve()
    assert window.data_path == demo_paths["data"]
    assert window.eval_panel.off_reason  # disabled engine: the panel says why
    missing = config_dir / "gone.keras"
    RecentFiles(config_dir).add(missing)
    assert missing.resolve() not in RecentFiles(config_dir).paths()


def test_engine_adapter_drops_stale_results(qtbot):
    from weightlab.engine.events import Metrics

    engine = FakeEngine()
    adapter = EngineAdapter(client_factory=engine)
    assert adapter.open("m.keras", "d.npz")
    first = adapter.evaluate({}, tag=1)
    second = adapter.evaluate({}, tag=2)  # supersedes the first (the client decides)
    got = []
    adapter.result.connect(got.append)
    m = Metrics(accuracy=0.5, loss=1.0)
    with qtbot.waitSignal(adapter.result, timeout=5000):
        engine.clients[0].finish(first, m)  # stale: dropped
        engine.clients[0].finish(second, m)
    assert [(r.request_id, r.tag) for r in got] == [(second, 2)]
    adapter.shutdown()


def test_screenshot_is_not_blank(window, demo_paths, tmp_path):
    _open(window, demo_paths["keras"], "conv2d_1/kernel")
    window.histogram.set_range(-0.1, 0.1)
    window.selection.set_neurons([2, 3])
    out = tmp_path / "window.png"
    assert window.grab().save(str(out))
    img = QImage(str(out)).convertToFormat(QImage.Format.Format_RGB32)
    assert img.width() >= 1000 and img.height() >= 600
    ptr = img.constBits()
    arr = np.frombuffer(ptr, dtype=np.uint32, count=img.width() * img.height())
    assert len(np.unique(arr)) > 50


def test_gui_never_imports_tensorflow(demo_paths):
    script = textwrap.dedent(
        f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        def main():
            from weightlab.gui.app import run_app  # noqa: F401
            from weightlab.gui.main_window import MainWindow
            from PySide6.QtWidgets import QApplication
            app = QApplication([])
            w = MainWindow()
            w.show()
            from PySide6.QtCore import QEventLoop
            loop = QEventLoop()
            w.openFinished.connect(lambda ok: loop.exit(0 if ok else 1))
            assert w.open_path({str(demo_paths["keras"])!r})
            assert loop.exec() == 0, "the model did not open"
            w.tree.select("conv2d/kernel")
            assert w.histogram.view is not None
            w.close()
            w.engine.shutdown()
            bad = [m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules]
            assert not bad, bad
            print("OK")
        if __name__ == "__main__":
            main()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stdout


def test_qt_calls_keep_none_alive(qapp):
    """Guard against PySide6 builds that leak references to None (6.12.0 on Python 3.11)."""
    import sys

    from PySide6.QtWidgets import QLabel

    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(500):
        label.setText("x")
        qapp.processEvents()
    # a leaking build loses two references per iteration (-1000 here)
    assert sys.getrefcount(None) - before > -50


def test_showing_a_tensor_selects_it_so_brush_edits_reach_it(window, demo_paths):
    """A tensor shown by any path (not a tree click) becomes the edit target."""
    assert window.open_and_wait(demo_paths["keras"])
    window.show_tensor("conv2d/kernel")
    window.show_tensor("conv2d_1/kernel")
    assert window.tree.selected_targets() == ["conv2d_1/kernel"]
    assert window.edit_panel.target() == "conv2d_1/kernel"
