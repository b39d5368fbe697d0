"""Window tests of progressive evaluation, large tensors and TensorFlow folders (pytest-qt, offscreen).

Progressive accuracy is fed as synthetic engine events through a fake client
(no worker process). Large tensors use an in-memory model a little over the
level-of-detail and off-thread limits, so every large-tensor code path runs
without a 100M-element fixture; the numbers shown are compared with numpy.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEngine, memory_session
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from weightlab.core.edits import Scale, SetValue
from weightlab.core.layout import block_extreme, heatmap_layout, lod_factors, render_region
from weightlab.core.model import LayerInfo, ModelFile, TensorInfo
from weightlab.core.session import EditSession
from weightlab.core.stats import histogram
from weightlab.engine.events import Metrics, Progress
from weightlab.gui import tensor_worker
from weightlab.gui.engine_adapter import EngineAdapter
from weightlab.gui.eval_panel import running_text, timing_text
from weightlab.gui.main_window import MODEL_FILTER

pytestmark = pytest.mark.gui

#: (rows, cols) of the large test kernel: > LOD_PIXELS pixels and > SYNC_LIMIT values.
BIG = (2500, 1700)


# -- helpers ------------------------------------------------------------------------------
def _reference_block_extreme(img: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Per block, the value of largest magnitude (positive on ties), by a plain loop over blocks."""
    rows, cols = img.shape
    out = np.full((math.ceil(rows / fy), math.ceil(cols / fx)), np.nan)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = img[i * fy : (i + 1) * fy, j * fx : (j + 1) * fx]
            block = block[np.isfinite(block)]
            if block.size:
                hi, lo = block.max(), block.min()
                out[i, j] = hi if hi >= -lo else lo
    return out


@pytest.fixture(scope="module")
def big_kernel() -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.standard_normal(BIG).astype(np.float32)


@pytest.fixture
def big_window(window, big_kernel, tmp_path, qtbot):
    """The window showing the large kernel (exact view arrived)."""
    s = memory_session(tmp_path / "big.fake", {"big/kernel": big_kernel, "big/bias": big_kernel[0].copy()})
    window.set_session(s)
    with qtbot.waitSignal(window.viewShown, timeout=60000):
        window.tree.select("big/kernel")
    return window


# -- 1. progressive accuracy -------------------------------------------------------------------
def test_running_and_timing_texts():
    ev = Progress.running(1, 4, 16, samples=1024, correct=934)
    text = running_text(ev, 4000)
    assert text.startswith("≈ 91.2\u00a0% [") and text.endswith("1\u202f024 / 4\u202f000 samples")
    lo, hi = ev.ci_low, ev.ci_high
    assert f"[{100 * lo:.1f}, {100 * hi:.1f}]" in text
    assert running_text(Progress(1, 1, 2, samples=10, accuracy=0.5), 0) == "≈ 50.0\u00a0% · 10 samples"
    inc = Metrics(0.9, 0.3, seconds=0.012, mode="incremental", cut="dense", layers_run=1, layers_total=5)
    assert timing_text(inc) == "0.01 s, incremental from dense (1/5 layers)"
    assert timing_text(Metrics(0.9, 0.3, seconds=0.33)) == "0.33 s, full pass"


def test_back_to_stored_weights_cancels_the_live_evaluation_but_not_a_queued_sweep(qtbot, make_window, demo_paths):
    """Undoing the last edit drops the live evaluation only: a sweep queued beside it keeps its place."""
    from weightlab.core.sweeps import SweepSpec

    factory = FakeEngine()
    w = make_window(EngineAdapter(client_factory=factory))
    try:
        assert w.open_and_wait(demo_paths["keras"], data=demo_paths["data"])
        client = factory.clients[0]
        client.model_ready(True, num_samples=360, num_classes=10)
        client.finish(client.baseline_job, Metrics(0.9, 0.3, per_class=[0.9] * 10, num_samples=360))
        qtbot.waitUntil(lambda: w.eval_panel.baseline is not None, timeout=5000)
        sweep = w.engine.submit(SweepSpec(op="clip", param="threshold", targets=("dense/kernel",), values=(0.1,)))
        w.apply_edit(Scale(target="dense/kernel", factor=0.5))
        w.wait_idle()
        qtbot.waitUntil(lambda: len(client.evaluated) == 1, timeout=5000)
        live = client.evaluated[0][0]
        w.undo()
        w.wait_idle()
        qtbot.waitUntil(lambda: live in client.cancelled_jobs, timeout=5000)
        assert sweep not in client.cancelled_jobs and client.cancelled == 0
        assert client.book.spec(sweep) is not None  # still queued
    finally:
        w.close()


def test_back_to_stored_weights_resets_the_workers_tensors_for_later_jobs(qtbot, make_window, demo_paths):
    """After an undo to the stored weights the worker is told to drop the edit (no evaluation needed).

    Sweeps, rankings and training start from the worker's tensors: without the
    reset they ran on the undone edit's values (a ranking's baseline was the
    pruned model's accuracy while the window showed the stored one).
    """
    factory = FakeEngine()
    w = make_window(EngineAdapter(client_factory=factory))
    try:
        assert w.open_and_wait(demo_paths["keras"], data=demo_paths["data"])
        client = factory.clients[0]
        client.model_ready(True, num_samples=360, num_classes=10)
        client.finish(client.baseline_job, Metrics(0.9, 0.3, per_class=[0.9] * 10, num_samples=360))
        qtbot.waitUntil(lambda: w.eval_panel.baseline is not None, timeout=5000)
        w.apply_edit(Scale(target="dense/kernel", factor=0.5))
        w.wait_idle()
        qtbot.waitUntil(lambda: len(client.evaluated) == 1, timeout=5000)
        assert client.sent[-1] == {"dense/kernel": w.session.version("dense/kernel")}
        w.undo()
        w.wait_idle()
        qtbot.waitUntil(lambda: client.sent[-1] == {"dense/kernel": 0}, timeout=5000)
        assert len(client.evaluated) == 1  # the baseline is the answer: nothing evaluated
    finally:
        w.close()


def test_progress_events_show_running_estimate_then_result_replaces_it(qtbot, make_window, demo_paths):
    factory = FakeEngine()
    w = make_window(EngineAdapter(client_factory=factory))
    try:
        assert w.open_and_wait(demo_paths["keras"], data=demo_paths["data"])
        client = factory.clients[0]
        base_id = client.baseline_job
        panel = w.eval_panel
        client.model_ready(True, num_samples=4000, num_classes=10)
        with qtbot.waitSignal(w.engine.estimate, timeout=5000):
            client.progress(base_id, 4, 16, samples=1024, correct=934)
        ev = Progress.running(base_id, 4, 16, samples=1024, correct=934)
        assert panel.running_label.text() == running_text(ev, 4000)
        assert "1\u202f024 / 4\u202f000 samples" in panel.running_label.text()
        x, acc, lo, hi = panel.provisional()
        assert (x, acc) == (0.0, pytest.approx(100 * 934 / 1024))
        assert (lo, hi) == (pytest.approx(100 * ev.ci_low), pytest.approx(100 * ev.ci_high))
        xs, ys = panel.provisional_point.getData()
        assert list(xs) == [0.0] and ys[0] == pytest.approx(acc)
        bar = panel.provisional_bar.opts
        assert bar["top"][0] == pytest.approx(hi - acc) and bar["bottom"][0] == pytest.approx(acc - lo)
        assert panel.progress.format() == "evaluating: batch 4/16"
        # the final result replaces the provisional point
        m = Metrics(0.913, 0.31, per_class=[0.9] * 10, num_samples=4000, seconds=0.33, device="CPU")
        with qtbot.waitSignal(w.engine.result, timeout=5000):
            client.finish(base_id, m)
        assert panel.provisional() is None and panel.running_label.text() == ""
        assert len(panel.provisional_point.getData()[0]) == 0
        assert panel.timing_label.text() == "Last evaluation: 0.33 s, full pass · CPU"
        assert panel.step_accuracy() == {0: pytest.approx(0.913)}
        # an edit: its pass is drawn at position 1, then an incremental result
        w.session.apply(Scale(target="dense", factor=0.5))
        qtbot.waitUntil(lambda: len(client.evaluated) == 1, timeout=5000)
        eval_id = client.evaluated[0][0]
        with qtbot.waitSignal(w.engine.estimate, timeout=5000):
            client.progress(eval_id, 1, 16, samples=256, correct=200)
        assert panel.provisional()[0] == 1.0
        m2 = Metrics(0.8, 0.5, per_class=[0.8] * 10, seconds=0.012, mode="incremental", cut="dense_1",
                     layers_run=1, layers_total=6, device="CPU")
        with qtbot.waitSignal(w.engine.result, timeout=5000):
            client.finish(eval_id, m2)
        assert panel.provisional() is None
        assert panel.timing_label.text() == "Last evaluation: 0.01 s, incremental from dense_1 (1/6 layers) · CPU"
        assert panel.step_accuracy() == {0: pytest.approx(0.913), 1: pytest.approx(0.8)}
    finally:
        w.close()


def test_adapter_keeps_progress_signal_and_drops_stale_estimates(qtbot):
    factory = FakeEngine()
    adapter = EngineAdapter(client_factory=factory)
    assert adapter.open("m.keras", "d.npz")
    first = adapter.evaluate({}, tag=1)
    second = adapter.evaluate({}, tag=2)  # supersedes the first (the client decides)
    done, estimates = [], []
    adapter.progress.connect(lambda d, t: done.append((d, t)))
    adapter.estimate.connect(estimates.append)
    with qtbot.waitSignal(adapter.estimate, timeout=5000):
        factory.clients[0].progress(first, 1, 4, 10, 9)  # stale
        factory.clients[0].progress(second, 2, 4, 20, 15)
    assert done == [(2, 4)] and [e.samples for e in estimates] == [20]
    adapter.shutdown()


# -- 2. large tensors --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(37, 53), (3, 3, 5, 7), (200,), (1, 1000)])
def test_block_extreme_equals_numpy_reference(shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape)
    a.flat[::7] = 0.0
    lay = heatmap_layout(shape)
    img = lay.image(a)
    for fy, fx in [(1, 2), (2, 2), (3, 5), (4, 1)]:
        np.testing.assert_array_equal(block_extreme(img, fy, fx, chunk_pixels=50), _reference_block_extreme(img, fy, fx))


def test_lod_factors_fit_the_budget():
    for rows, cols in [(10000, 10000), (25088, 4096), (1, 10**8), (10**7, 3), (100, 100)]:
        fy, fx = lod_factors(rows, cols, 1 << 20)
        assert math.ceil(rows / fy) * math.ceil(cols / fx) <= 1.1 * max(1 << 20, 1)
        assert fy <= rows


def test_large_tensor_shows_preview_then_exact_histogram(window, big_kernel, tmp_path, qtbot):
    s = memory_session(tmp_path / "big.fake", {"big/kernel": big_kernel, "big/bias": big_kernel[0].copy()})
    window.set_session(s)
    order = []
    window.computer.preview.connect(lambda p: order.append(("preview", p)))
    window.computer.ready.connect(lambda v: order.append(("exact", v)))
    with qtbot.waitSignals([window.computer.preview, window.computer.ready], order="strict", timeout=60000):
        window.tree.select("big/kernel")
    kinds = [k for k, _ in order if _.request.name == "big/kernel"]
    assert kinds == ["preview", "exact"]
    preview = order[0][1]
    ref_counts, ref_edges = np.histogram(big_kernel.ravel()[:: preview.step], bins=preview.request.bins)
    np.testing.assert_array_equal(preview.counts, ref_counts)
    counts, edges = np.histogram(big_kernel, bins=window.histogram.bins.value())
    np.testing.assert_array_equal(window.histogram.view.counts, counts)
    np.testing.assert_allclose(window.histogram.view.edges, edges)
    assert window.histogram.preview is None and "preview" not in window.histogram.title.text()


def test_preview_is_drawn_lighter_and_labelled(window, big_kernel, tmp_path, qtbot):
    s = memory_session(tmp_path / "big.fake", {"big/kernel": big_kernel})
    # the window shows no model: only the histogram draws
    req = tensor_worker.TensorRequest(1, "big/kernel", s, 50, False, None, big_kernel.size)
    p = tensor_worker.histogram_preview(req, big_kernel)
    window.histogram.set_preview(p)
    assert "preview" in window.histogram.title.text()
    assert window.histogram.curve.opts["pen"].color().alpha() < 255
    np.testing.assert_array_equal(window.histogram.curve.getData()[1], p.counts)


def test_large_heatmap_is_a_block_reduction_and_zoom_gives_full_resolution(big_window, big_kernel, qtbot):
    w = big_window
    hm = w.heatmap
    view = hm.view
    assert view.lod != (1, 1) and "level of detail" in hm.title.text() and "max-|w|" in hm.title.text()
    full = heatmap_layout(big_kernel.shape).image(big_kernel)
    np.testing.assert_array_equal(view.image, _reference_block_extreme(full, *view.lod))
    assert view.vmax == pytest.approx(float(np.abs(big_kernel).max()))
    # zoom into a region: the tile equals the slice of the full image
    with qtbot.waitSignal(w.computer.tile, timeout=30000) as blocker:
        hm.vb.setRange(xRange=(100, 400), yRange=(1200, 1500), padding=0)
    tile = blocker.args[0]
    assert tile.lod == (1, 1) and hm.tile is tile and hm.tile_image.isVisible()
    (r0, r1), (c0, c1) = tile.rows, tile.cols
    assert r0 <= 1200 and r1 >= 1500 and c0 <= 100 and c1 >= 400
    np.testing.assert_array_equal(tile.image, full[r0:r1, c0:c1])
    assert "full resolution" in hm.title.text()
    # hover and neuron clicks map to the true tensor index at any level
    got = []
    hm.hovered.connect(got.append)
    scene = hm.vb.mapViewToScene(QPointF(250.5, 1333.5))
    hm._on_move(scene)
    assert got[-1].startswith("big/kernel[1333, 250] = ")
    assert float(got[-1].split("= ")[1]) == pytest.approx(float(big_kernel[1333, 250]), rel=1e-4)
    # zooming back out drops the tile
    hm.vb.autoRange(padding=0.02)
    qtbot.waitUntil(lambda: hm.tile is None, timeout=5000)


def test_render_region_matches_reduction_of_the_slice(big_kernel):
    lay = heatmap_layout(big_kernel.shape)
    full = lay.image(big_kernel)
    img, (fy, fx) = render_region(lay, big_kernel, (10, 1910), (5, 1605), 100_000)
    assert (fy, fx) != (1, 1)
    np.testing.assert_array_equal(img, _reference_block_extreme(full[10:1910, 5:1605], fy, fx))


def test_brush_counts_equal_numpy_small_and_large(big_window, big_kernel, qtbot):
    w = big_window
    h = w.histogram
    lo, hi = -0.5, 1.25
    exact = int(np.count_nonzero((big_kernel >= lo) & (big_kernel <= hi)))
    # dragging: an estimate from the exact histogram, marked ≈
    h.set_range(lo, hi, finished=False)
    assert "≈" in h.range_label.text()
    assert abs(h.view.estimate_between(lo, hi) - exact) < 0.01 * big_kernel.size
    # release: counted exactly off the GUI thread
    with qtbot.waitSignal(w.computer.counted, timeout=30000) as blocker:
        h.set_range(lo, hi, finished=True)
    assert blocker.args[0] == (lo, hi, exact)
    assert f"{exact:,}".replace(",", "\u202f") + " values" in h.range_label.text() and "≈" not in h.range_label.text()
    # a small tensor counts exactly at once
    with qtbot.waitSignal(w.viewShown, timeout=10000):
        w.tree.select("big/bias")
    bias = big_kernel[0]
    h.set_range(-1.0, 0.3, finished=False)
    n = int(np.count_nonzero((bias >= -1.0) & (bias <= 0.3)))
    assert f"{n} values" in h.range_label.text().replace("\u202f", "")


def test_count_between_equals_numpy_with_nan():
    a = np.random.default_rng(1).standard_normal(10_001).astype(np.float32)
    a[::13] = np.nan
    for lo, hi in [(-1, 1), (0, 0), (-np.inf, np.inf), (2, 1)]:
        assert tensor_worker.count_between(a, lo, hi) == int(np.count_nonzero((a >= lo) & (a <= hi)))


def test_large_edited_tensor_mask_is_reduced(big_window, big_kernel, qtbot):
    w = big_window
    with qtbot.waitSignal(w.viewShown, timeout=60000):
        w.apply_edit(SetValue(target="big/kernel", index=(1333, 250), value=0.0))
    view = w.heatmap.view
    edited = big_kernel.copy()
    edited[1333, 250] = 0.0
    rng = (float(big_kernel.min()), float(big_kernel.max()))
    counts, _ = histogram(edited, bins=view.request.bins, range=rng)
    np.testing.assert_array_equal(view.counts, counts)
    assert view.ghost is not None and view.pruned_count == 1 and w.heatmap.mask_label.text() == "1 pruned"
    fy, fx = view.lod
    expected = np.zeros(view.image.shape)
    expected[1333 // fy, 250 // fx] = 1.0
    np.testing.assert_array_equal(view.mask, expected)


# -- 3. TensorFlow folders in the window ---------------------------------------------------------
def test_model_filter_lists_tensorflow_files():
    for ext in ("*.pb", "*.index", "*.meta", "*.keras", "*.h5"):
        assert ext in MODEL_FILTER


@pytest.fixture(scope="module")
def checkpoint_folder(tmp_path_factory) -> Path:
    """A TF2 object-based checkpoint of a small Keras model, written by a separate Python process."""
    folder = tmp_path_factory.mktemp("ckpt")
    script = textwrap.dedent(f"""
        import keras, tensorflow as tf
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense"),
                              keras.layers.Dense(2, name="head")])
        tf.train.Checkpoint(model=m).save({str(folder / "ckpt")!r})
        m.save({str(folder.parent / "arch.keras")!r})
    """)
    pytest.importorskip("tensorflow")
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return folder


def test_open_folder_and_choose_architecture(qtbot, make_window, checkpoint_folder, demo_paths):
    factory = FakeEngine()
    w = make_window(EngineAdapter(client_factory=factory))
    try:
        w._ask_folder = lambda title: str(checkpoint_folder)
        with qtbot.waitSignal(w.modelOpened, timeout=60000):
            w.open_folder_dialog()
        assert not w.errors and w.session is not None and w.session.model.format == "checkpoint"
        assert w.tree.first_tensor() is not None
        # no held-out set yet: still, the architecture choice is offered for a checkpoint
        assert w.eval_panel.arch_button.isVisibleTo(w) and "no architecture" in w.eval_panel.arch_label.text()
        w.open_data(demo_paths["data"])
        arch = str(checkpoint_folder.parent / "arch.keras")
        w._ask_open_path = lambda title, filt: arch
        w.eval_panel.arch_button.click()
        client = factory.clients[0]
        assert client.opened[-1][1]["architecture"] == arch
        assert "arch.keras" in w.eval_panel.arch_label.text()
        # signatures/outputs: offered when the engine reports several
        client.model_ready(True, signatures=["serving_default", "other"], outputs=["a", "b"])
        qtbot.waitUntil(lambda: w.eval_panel.choice_boxes["output"].isVisibleTo(w), timeout=5000)
        w.eval_panel.optionChosen.emit("signature", "other")
        assert client.opened[-1][1]["signature"] == "other" and client.opened[-1][1]["architecture"] == arch
    finally:
        w.close()  # closes the checkpoint's reader process; the conftest fixture checks none is left


def test_drop_folder_opens_it(window, checkpoint_folder, qtbot):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(checkpoint_folder))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.modelOpened, timeout=60000):
        window.dropEvent(ev)
    assert not window.errors and window.session.model.format == "checkpoint"
    assert not window.eval_panel.arch_button.isVisibleTo(window)  # the disabled engine takes no architecture


def test_opening_another_model_closes_the_previous_one(window, tmp_path, demo_paths):
    s = memory_session(tmp_path / "a.fake", {"a/kernel": np.ones((2, 2), np.float32)})
    window.set_session(s)
    reader = s.model._reader
    assert window.open_and_wait(demo_paths["keras"])
    assert reader.closed


class _CountingReader:
    """In-memory tensors; counts reads so tests can see what the tree reads."""

    def __init__(self, values):
        self.values, self.reads = values, []

    def read(self, info):
        self.reads.append(info.name)
        return self.values[info.name].copy()

    def close(self):
        pass


def _model(shapes, zero_every=3):

    values, layers = {}, []
    for layer, shape in shapes.items():
        name = f"{layer}/kernel"
        a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) % zero_every
        values[name] = a
        layers.append(LayerInfo(layer, "Dense", [TensorInfo(name, layer, "kernel", name, shape, "float32")]))
    reader = _CountingReader(values)
    return ModelFile("big.h5", "h5", layers, reader), reader


def test_tree_counts_zeros_of_a_large_model_off_the_gui_thread(qtbot):
    from weightlab.gui.model_tree import ModelTree

    model, _ = _model({"a": (1500, 1000), "b": (1000, 1500)})  # 3M elements: background job
    tree = ModelTree()
    qtbot.addWidget(tree)
    tree.set_session(EditSession(model))
    assert tree.model_sparsity is None  # not counted on the GUI thread
    qtbot.waitUntil(lambda: tree.model_sparsity is not None, timeout=30_000)
    expected = np.mean(np.concatenate([model.read(n).ravel() for n in model.tensors]) == 0)
    assert tree.model_sparsity == pytest.approx(expected)


def test_tree_reads_no_tensor_of_a_huge_model_until_shown(qtbot, monkeypatch):
    from weightlab.gui import model_tree

    monkeypatch.setattr(model_tree, "READ_FOR_ZEROS_LIMIT", 1000)  # "huge" for this test
    model, reader = _model({"a": (40, 30), "b": (30, 20)})
    tree = model_tree.ModelTree()
    qtbot.addWidget(tree)
    session = EditSession(model)
    tree.set_session(session)
    assert reader.reads == [] and tree.model_sparsity is None
    session.array("a/kernel")  # shown: now in memory
    tree.refresh({"a/kernel"})
    assert reader.reads == ["a/kernel"]
    assert tree._items["a/kernel"].text(4) == f"{100 * np.mean(session.array('a/kernel') == 0):.1f} %"
    assert tree._items["b/kernel"].text(4) == "…"


def test_heatmap_colours_equal_pyqtgraph_mapping():
    """colorize (off the GUI thread) gives the pixels pyqtgraph's own LUT mapping gives, NaN transparent."""
    import pyqtgraph as pg

    rng = np.random.default_rng(0)
    img = rng.normal(size=(40, 60)).astype(np.float32)
    img[3, :] = np.nan  # a gap between kernel blocks
    img[5, 5], img[6, 6] = 10.0, -10.0  # beyond the colour limits
    vmax = 2.0
    ours = tensor_worker.colorize(img, vmax)
    bgra, has_alpha = pg.functions.makeARGB(img, lut=tensor_worker.HEATMAP_LUT, levels=(-vmax, vmax))
    assert has_alpha
    np.testing.assert_array_equal(ours, bgra[..., [2, 1, 0, 3]])
    assert np.all(ours[3, :, 3] == 0) and np.all(np.delete(ours, 3, axis=0)[..., 3] == 255)


def test_plots_take_a_view_one_per_turn_and_a_newer_view_wins(window, demo_paths):
    assert window.open_and_wait(demo_paths["keras"])
    window.settle()
    window.tree.select("dense/kernel")
    # Only the histogram has it before the event loop runs again (each plot repaints in its own turn).
    assert window.histogram.view.request.name == "dense/kernel"
    assert window.heatmap.view is None or window.heatmap.view.request.name != "dense/kernel"
    assert not window.view_settled
    window.tree.select("conv2d_1/kernel")  # before dense/kernel reached the other plots
    window.settle()
    for view in (window.histogram.view, window.heatmap.view):
        assert view.request.name == "conv2d_1/kernel"
    kernel = window.session.array("conv2d_1/kernel")
    np.testing.assert_allclose(window.norms.norms, np.linalg.norm(kernel.reshape(-1, 32), axis=0), rtol=1e-6)


def test_diff_of_a_large_tensor_is_computed_off_the_gui_thread(big_window, big_kernel, qtbot):
    from weightlab.core.diff import changed_mask, difference, tensor_diff
    from weightlab.gui.diff_view import MAP_PIXELS

    w = big_window
    w.apply_edit(Scale(target="big/kernel", factor=0.5))
    w.wait_idle()
    w.apply_edit(SetValue(target="big/kernel", index=(7, 9), value=big_kernel[7, 9]))  # one entry back as stored
    w.settle(60000)
    with qtbot.waitSignal(w.computer.diffed, timeout=60000):
        w.act_diff.trigger()  # the tab shows "computing…" until the pool's result arrives
    cur = w.session.array("big/kernel")
    assert w.diff_view.diff == tensor_diff("big/kernel", big_kernel, cur)
    delta = difference(big_kernel, cur)[changed_mask(big_kernel, cur)]
    counts, edges = np.histogram(delta, bins=100)
    x, y = w.diff_view.curve.getData()
    np.testing.assert_array_equal(y, counts)
    np.testing.assert_allclose(x, edges)
    # The map is block-reduced (a block is orange when any entry in it changed).
    image = w.diff_view.map_image.image
    assert image.shape[0] * image.shape[1] <= MAP_PIXELS < big_kernel.size
    assert np.all(image[..., :3].reshape(-1, 3) == image[0, 0, :3])  # every block holds a changed entry
