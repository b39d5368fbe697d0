"""The window opened from Python on an in-memory model: the G13 walk-through's window-side findings.

- show(model, data=...) refuses arrays that do not fit the live model (DataError, as weightlab.evaluate);
- the window names what it was given: "opened model", "(x, y) arrays from the notebook", never its private files;
- Viewer.metrics carries the baseline after edits; a sweep started from Python fills the Sweeps form;
- the Training tab's "What it bought" and weights before/now plot work for an in-memory model;
- rank bar plots with many units thin their tick labels (window and rich display).
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

SHOTS = os.environ.get("WEIGHTLAB_TEST_SHOTS")  # a folder: the tests save what they looked at there


def _weightlab_temp() -> set[str]:
    tmp = Path(tempfile.gettempdir())
    return {p.name for p in tmp.glob("weightlab-*") if p.name.startswith(("weightlab-show-", "weightlab-memory-"))}


def _shot(window, name: str) -> None:
    if SHOTS:
        window.grab().save(str(Path(SHOTS) / f"{name}.png"))


@pytest.fixture(scope="module")
def small_model():
    """A built, compiled (untrained) 8 -> 12 -> 4 Keras classifier and matching held-out arrays."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(12, activation="relu", name="hidden"),
                              keras.layers.Dense(4, activation="softmax", name="out")], name="small")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 8)).astype("float32")
    y = rng.integers(0, 4, 120)
    return model, x, y


@pytest.fixture
def no_dialogs(monkeypatch, config_dir):
    from weightlab.gui.main_window import MainWindow

    errors: list[str] = []
    monkeypatch.setattr(MainWindow, "_error", lambda self, title, message: errors.append(f"{title}: {message}"))
    monkeypatch.setattr(MainWindow, "_ask_unsaved", lambda self: "discard")
    return errors


def test_show_refuses_arrays_that_do_not_fit_the_model(qtbot, small_model, no_dialogs):
    import weightlab
    from weightlab.core.errors import DataError

    model, x, y = small_model
    before = _weightlab_temp()
    with pytest.raises(DataError, match=r"expects inputs of shape \(N, 8\); received x of shape \(120, 5\)"):
        weightlab.show(model, data=(x[:, :5], y))
    with pytest.raises(DataError, match=r"class indices in \[0, 4\).*from 10 to 13") as e:
        weightlab.show(model, data=(x, y + 10))
    assert "show()" in str(e.value) and ".npz" not in str(e.value)
    with pytest.raises(DataError, match="one-hot labels have 3 columns; the model has 4 outputs"):
        weightlab.show(model, data=(x, np.eye(3)[y % 3]))
    assert _weightlab_temp() == before  # nothing written, nothing materialised


def test_in_memory_window_names_metrics_baseline_and_sweep_form(qtbot, small_model, no_dialogs):
    import weightlab
    from weightlab.edits import ZeroNeurons

    model, x, y = small_model
    v = weightlab.show(model, data=(x, y))
    try:
        w = v.window
        assert v.wait(240)
        texts = _history_texts(w)
        assert texts[0].strip().endswith("0. opened model")
        label = w.eval_panel.data_label.text()
        assert "(x, y) arrays from the notebook" in label and ".npz" not in label
        assert v.metrics is not None and v.metrics.baseline is None  # unedited: it is the baseline

        v.session.apply(ZeroNeurons(target="hidden", neurons=[0, 1, 2]))
        assert v.wait(240)
        m = v.metrics
        assert m is not None and m.baseline is not None
        assert m.baseline.accuracy == w.eval_panel.baseline.accuracy
        assert m.accuracy == w.eval_panel.current.accuracy
        assert "pp" in m._repr_html_()  # the rich display shows the change from the baseline

        # the form shows another sweep first, then the one started from Python
        panel = w.sweeps.panel
        panel.op_combo.setCurrentIndex(panel.op_combo.findData("clip"))
        job = v.sweep(op="add_noise", param="std", values=[0.01, 0.5], targets="hidden/kernel")
        assert panel.op_combo.currentData() == "add_noise" and panel.param_combo.currentData() == "std"
        assert panel.values_kind.currentData() == "list" and panel.values_edit.text() == "0.01,0.5"
        assert panel.target_kind.currentData() == "glob" and panel.target_edit.text() == "hidden/kernel"
        assert panel.spec_fields([])["targets"] == ("hidden/kernel",)  # run again from the form: the same sweep
        job.result(timeout=240)
        _shot(w, "sweep_from_notebook")
        assert not no_dialogs
    finally:
        v.close()


def _history_texts(w) -> list[str]:
    lst = w.history.list
    return [lst.item(i).text() for i in range(lst.count())]


def test_training_tab_after_finetune_of_in_memory_model(qtbot, small_model, no_dialogs, tmp_path):
    import weightlab
    from weightlab.edits import ZeroNeurons

    model, x, y = small_model
    train = tmp_path / "train.npz"
    np.savez(train, x=x, y=y)
    v = weightlab.show(model, data=(x, y))
    try:
        w = v.window
        assert v.wait(240)
        v.session.apply(ZeroNeurons(target="hidden", neurons=[0, 1]))
        assert v.wait(240)
        w.tree.select("hidden/kernel")
        assert w.current == "hidden/kernel"
        job = v.finetune(train, epochs=1, batch_size=32)
        job.result(timeout=300)
        ctl = w.training
        qtbot.waitUntil(lambda: ctl.savings is not None or "cannot compute" in ctl.panel.summary.text(), timeout=60_000)
        summary = ctl.panel.summary.text()
        assert "cannot compute" not in summary and "gzip" in summary, summary
        assert "(model → now)" in summary
        assert ctl.savings.gzip_before > 0 and ctl.savings.gzip_after > 0
        plot = ctl.panel.plot
        qtbot.waitUntil(lambda: plot.histogram_epoch == 1, timeout=60_000)  # the last epoch's weights drawn
        assert plot.tensor_name == "hidden/kernel"
        xs, counts = plot.curves["current"].getData()
        assert counts is not None and counts.sum() > 0
        _shot(w, "training_in_memory")
        assert not no_dialogs
    finally:
        v.close()


def test_rank_ticks_are_thinned(qtbot):
    from weightlab.core.richdisplay import rank_svg
    from weightlab.core.sweeps import RankResult, RankSpec, SweepPoint
    from weightlab.gui.ranking_view import RankingView, tick_step

    assert tick_step(10, 1000, 20) == 1 and tick_step(64, 320, 20) == 4 and tick_step(5, 0, 20) == 1
    n = 40
    spec = RankSpec(layer="dense", cumulative=False)
    base = SweepPoint("", None, 0.9, 0.3, num_samples=100)
    rng = np.random.default_rng(0)
    pts = [SweepPoint("dense", float(i), float(a), 0.3) for i, a in enumerate(rng.uniform(0.5, 0.95, n))]
    r = RankResult.from_points(spec, base, pts)

    view = RankingView()
    qtbot.addWidget(view)
    view.resize(360, 300)
    view.show()
    view.set_result(r)
    qtbot.waitUntil(lambda: view.plot.getViewBox().width() > 50)
    view._apply_ticks()
    major, minor = view.plot.getAxis("bottom")._tickLevels  # [labelled, unlabelled] as set_ticks gave them
    assert 1 < len(major) < n and len(major) + len(minor) == n
    if SHOTS:
        view.grab().save(str(Path(SHOTS) / "rank_ticks_narrow.png"))
    view.resize(2400, 300)
    qtbot.waitUntil(lambda: len(view.plot.getAxis("bottom")._tickLevels[0]) == n, timeout=2000)  # wide: every unit labelled

    ns = "{http://www.w3.org/2000/svg}"
    for count in (40, 200):
        pts = [SweepPoint("dense", float(i), float(a), 0.3) for i, a in enumerate(rng.uniform(0.5, 0.95, count))]
        svg = ET.fromstring(rank_svg(RankResult.from_points(spec, base, pts), max_units=count))
        labels = [t for t in svg.iter(f"{ns}text") if t.get("text-anchor") == "middle" and t.text and t.text.isdigit()]
        xs = sorted(float(t.get("x")) for t in labels)
        widest = max(len(t.text) for t in labels)
        assert 1 < len(labels) < count
        assert min(np.diff(xs)) >= 6.5 * widest + 6 - 1e-6  # no two labels overlap


def test_file_model_with_unfitting_arrays_names_the_data_not_its_private_file(qtbot, demo_paths, no_dialogs):
    """A model file is checked by the evaluation engine: the window says why, naming the data given, not a temp file."""
    import weightlab

    v = weightlab.show(demo_paths["keras"], data=(np.zeros((5, 9, 9, 1), "float32"), np.zeros(5, int)))
    try:
        assert v.wait(240)
        panel = v.window.eval_panel
        said = panel.message.text()
        assert panel.off_reason is not None and "the data given to show()" in said and "(N, 8, 8, 1)" in said
        assert "held-out.npz" not in said and "weightlab-show-" not in said
        assert "(x, y) arrays from the notebook" in panel.data_label.text()
    finally:
        v.close()
