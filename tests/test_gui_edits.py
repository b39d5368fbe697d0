"""GUI tests of issue 4: every op through the window, targets, history toggles, masks, diffs, compare, export.

Each op is driven once through the edit panel (form values set, Apply
clicked) and the session's arrays must equal the core edit applied directly to
a fresh session of the same file (``np.array_equal``). Evaluation is disabled
(no worker process).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

import weightlab
from weightlab.core.diff import changed_mask, compare_models, difference, sparsity, tensor_diff
from weightlab.core.edits import (
    Add,
    AddNoise,
    ClipPercentile,
    Edit,
    PruneMagnitude,
    PruneNeurons,
    Reinit,
    Scale,
    SetValue,
    ZeroNeurons,
)
from weightlab.core.errors import WeightLabError
from weightlab.core.model import ModelFile
from weightlab.core.session import EditSession
from weightlab.gui.diff_view import format_diff
from weightlab.gui.main_window import MainWindow
from weightlab.gui.op_forms import format_indices, parse_index, parse_indices

pytestmark = pytest.mark.gui


def _open(w: MainWindow, path: Path, tensor: str) -> None:
    assert w.open_and_wait(path), w.errors
    w.tree.select(tensor)
    w.settle()
    assert w.current == tensor and w.histogram.view is not None


def _run_op(qtbot, w: MainWindow, key: str, values: dict) -> None:
    """Choose op ``key`` in the panel, fill its form, click Apply."""
    panel = w.edit_panel
    panel.select_op(key)
    panel.form.set_values(values)
    assert panel.apply_btn.isEnabled(), panel.apply_btn.toolTip()
    position = w.session.position
    qtbot.mouseClick(panel.apply_btn, Qt.MouseButton.LeftButton)
    w.wait_idle()
    assert w.session.position == position + 1, w.errors


def _assert_same_as_core(w: MainWindow, path: Path, *edits: Edit) -> None:
    """Every tensor of the window's session equals ``edits`` applied by the core to a fresh session."""
    ref = weightlab.open(path)
    try:
        for e in edits:
            ref.apply(e)
        assert [s.edit for s in w.session.steps[-len(edits):]] == list(edits)
        for name in ref.model.tensors:
            assert np.array_equal(w.session.array(name), ref.array(name)), name
    finally:
        ref.model.close()


def _tree_click(qtbot, w: MainWindow, name: str, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    item = w.tree._items.get(name) or w.tree._layer_items[name]
    w.tree.tree.scrollToItem(item)
    rect = w.tree.tree.visualItemRect(item)
    # on the row's name, near its left end: a row is wider than a narrow tree dock
    at = QPoint(min(rect.left() + 12, w.tree.tree.viewport().width() - 1), rect.center().y())
    qtbot.mouseClick(w.tree.tree.viewport(), Qt.MouseButton.LeftButton, modifier, at)


# -- every op once through the window ---------------------------------------------------


def test_clip_percentile(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "dense/kernel")
    _run_op(qtbot, window, "clip_percentile", {"lower": 2.0, "upper": 97.5})
    _assert_same_as_core(window, demo_paths["keras"], ClipPercentile(target="dense/kernel", lower=2.0, upper=97.5))


def test_prune_magnitude_global_over_glob(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "dense/kernel")
    panel = window.edit_panel
    panel.set_target_mode("glob", "nothing*")
    panel.select_op("prune_magnitude")
    assert not panel.apply_btn.isEnabled()
    assert "matches no tensor" in panel.apply_btn.toolTip()
    assert not panel.clip_btn.isEnabled()

    panel.glob.setText("*/kernel")
    kernels = [n for n in window.session.model.tensors if n.endswith("/kernel")]
    assert panel.target_label.text().startswith(f"→ {len(kernels)} tensors: conv2d/kernel, conv2d_1/kernel")
    _run_op(qtbot, window, "prune_magnitude", {"by": "sparsity", "sparsity": 0.3, "scope": "global"})
    _assert_same_as_core(
        window, demo_paths["keras"], PruneMagnitude(target="*/kernel", sparsity=0.3, scope="global")
    )
    # per-tensor threshold pruning through the same form
    _run_op(qtbot, window, "prune_magnitude", {"by": "threshold", "threshold": 0.05, "scope": "tensor"})
    assert window.session.steps[-1].edit == PruneMagnitude(target="*/kernel", threshold=0.05)


def test_prune_neurons(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "dense/kernel")
    _run_op(qtbot, window, "prune_neurons", {"by": "count", "count": 5, "norm": "l2"})
    _assert_same_as_core(window, demo_paths["keras"], PruneNeurons(target="dense", count=5, norm="l2"))


def test_zero_neurons_axis_in(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "dense/kernel")
    assert not window.edit_panel.forms["zero_neurons"].fields["batchnorm"].isEnabled()  # no BN after dense
    _run_op(qtbot, window, "zero_neurons", {"neurons": "0-3, 10", "axis": "in"})
    _assert_same_as_core(
        window, demo_paths["keras"], ZeroNeurons(target="dense", neurons=(0, 1, 2, 3, 10), axis="in")
    )


def test_batchnorm_aware_ablation(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "conv2d/kernel")
    panel = window.edit_panel
    panel.select_op("zero_neurons")
    window.selection.set_neurons([1, 4])  # as clicks on the heatmap
    form = panel.forms["zero_neurons"]
    assert form.raw_values()["neurons"] == "1, 4"
    bn = form.fields["batchnorm"]
    assert bn.isEnabled()
    form.set_values({"axis": "in"})
    assert not bn.isEnabled()  # BN silencing is for output channels only
    _run_op(qtbot, window, "zero_neurons", {"axis": "out", "batchnorm": True})
    _assert_same_as_core(
        window, demo_paths["keras"], ZeroNeurons(target="conv2d", neurons=(1, 4), batchnorm=True)
    )
    assert np.all(window.session.array("batch_normalization/gamma")[[1, 4]] == 0)


def test_add_on_tree_multi_selection(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "dense/kernel")
    _tree_click(qtbot, window, "conv2d/kernel")
    _tree_click(qtbot, window, "dense_1/bias", Qt.KeyboardModifier.ControlModifier)
    _tree_click(qtbot, window, "batch_normalization", Qt.KeyboardModifier.ControlModifier)  # a layer row
    panel = window.edit_panel
    assert panel.target() == ("conv2d/kernel", "batch_normalization", "dense_1/bias")
    assert panel.target_label.text().startswith("→ 6 tensors: conv2d/kernel, batch_normalization/gamma")
    _run_op(qtbot, window, "add", {"value": 0.25})
    _assert_same_as_core(
        window,
        demo_paths["keras"],
        Add(target=("conv2d/kernel", "batch_normalization", "dense_1/bias"), value=0.25),
    )


def test_noise_is_seed_reproducible(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "conv2d_1/kernel")
    _run_op(qtbot, window, "add_noise", {"std": 0.05, "seed": 7})
    first = window.session.array("conv2d_1/kernel")
    _assert_same_as_core(window, demo_paths["keras"], AddNoise(target="conv2d_1/kernel", std=0.05, seed=7))
    window.act_undo.trigger()
    window.wait_idle()
    _run_op(qtbot, window, "add_noise", {"std": 0.05, "seed": 7})
    assert np.array_equal(window.session.array("conv2d_1/kernel"), first)
    window.act_undo.trigger()
    window.wait_idle()
    _run_op(qtbot, window, "add_noise", {"std": 0.05, "seed": 8})
    assert not np.array_equal(window.session.array("conv2d_1/kernel"), first)


def test_set_value_by_double_click(window, demo_paths, qtbot):
    name = "dense_1/kernel"
    _open(window, demo_paths["keras"], name)
    asked = []
    window._ask_value = lambda title, label, value: asked.append((label, value)) or 1.5
    heat = window.heatmap
    centre = heat.cell_center((3, 5))
    widget_pt = heat.plot.mapFromScene(heat.vb.mapViewToScene(centre))
    qtbot.mouseDClick(heat.plot.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(widget_pt.x(), widget_pt.y()))
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=5000)
    original = float(window.session.original(name)[3, 5])
    assert asked[0][1] == original and f"{name}[3, 5]" in asked[0][0]
    window.wait_idle()
    _assert_same_as_core(window, demo_paths["keras"], SetValue(target=name, index=(3, 5), value=1.5))


def test_reinit(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "conv2d_1/kernel")
    panel = window.edit_panel
    panel.select_op("reinit")
    form = panel.form
    form.set_values({"initializer": "random_uniform"})
    assert not form.form.isRowVisible(form.fields["mean"]) and form.form.isRowVisible(form.fields["minval"])
    _run_op(qtbot, window, "reinit", {"minval": -0.2, "maxval": 0.3, "seed": 3})
    _assert_same_as_core(
        window,
        demo_paths["keras"],
        Reinit(target="conv2d_1/kernel", initializer="random_uniform", seed=3, minval=-0.2, maxval=0.3),
    )


def test_invalid_values_disable_apply(window, demo_paths):
    _open(window, demo_paths["keras"], "dense/kernel")
    panel = window.edit_panel
    panel.select_op("clip")
    panel.form.set_values({"min": 1.0, "max": -1.0})
    assert not panel.apply_btn.isEnabled() and "min must be <= max" in panel.apply_btn.toolTip()
    panel.select_op("zero_neurons")
    panel.form.set_values({"neurons": "99"})
    assert not panel.apply_btn.isEnabled() and "64 output neurons" in panel.apply_btn.toolTip()
    assert parse_indices("0, 3, 5-7") == (0, 3, 5, 6, 7) and format_indices([0, 1, 2, 5]) == "0-2, 5"
    assert parse_index("[1, 2, 0]") == (1, 2, 0)
    with pytest.raises(ValueError):
        parse_indices("a-b")


# -- history, masks, sparsity, diffs ----------------------------------------------------


def test_history_step_toggle_equals_never_applying(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"], "dense/kernel")
    first = Scale(target="dense/kernel", factor=2.0)
    second = Add(target="dense", value=0.1)
    window.apply_edit(first)
    window.wait_idle()
    window.apply_edit(second)
    window.wait_idle()
    window.history.set_step_checked(0, False)
    qtbot.waitUntil(lambda: not window.session.steps[0].enabled, timeout=5000)
    ref = weightlab.open(demo_paths["keras"])
    ref.apply(second)
    for name in ("dense/kernel", "dense/bias"):
        assert np.array_equal(window.session.array(name), ref.array(name))
    row = window.history.list.item(1)
    assert row.checkState() == Qt.CheckState.Unchecked and row.font().strikeOut()
    window.history.set_step_checked(0, True)
    qtbot.waitUntil(lambda: window.session.steps[0].enabled, timeout=5000)
    _assert_same_as_core(window, demo_paths["keras"], first, second)
    ref.model.close()


def test_mask_overlay_and_tree_sparsity_after_pruning(window, demo_paths, qtbot):
    name = "conv2d_1/kernel"
    _open(window, demo_paths["keras"], name)
    assert not window.heatmap.mask_shown
    _run_op(qtbot, window, "prune_magnitude", {"by": "sparsity", "sparsity": 0.5, "scope": "tensor"})
    window.settle()
    a, orig = window.session.array(name), window.session.original(name)
    pruned = (a == 0) & (orig != 0)
    assert window.heatmap.mask_shown
    np.testing.assert_array_equal(window.heatmap.view.pruned, pruned)
    assert window.heatmap.mask_label.text() == f"{int(pruned.sum())} pruned"
    window.act_mask.trigger()  # Ctrl+M
    assert not window.heatmap.mask_shown and not window.heatmap.mask_check.isChecked()
    window.act_mask.trigger()
    assert window.heatmap.mask_shown

    fractions = sparsity(window.session.model, window.session.array)
    tree = window.tree
    assert tree._items[name].text(4) == f"{100 * fractions[name]:.1f} %"
    assert tree._layer_items["conv2d_1"].text(4) == f"{100 * fractions['conv2d_1']:.1f} %"
    assert tree.model_sparsity == pytest.approx(fractions[""])
    assert f"sparsity\u00a0{100 * fractions['']:.1f}\u00a0%" in tree.summary.text()


def test_diff_view_numbers_equal_core(window, demo_paths, qtbot):
    name = "dense/kernel"
    _open(window, demo_paths["keras"], name)
    window.act_diff.trigger()  # Ctrl+D
    assert window.views.currentWidget() is window.diff_view and window.diff_view.diff is None
    window.apply_edit(AddNoise(target="dense", std=0.01, seed=1))
    window.wait_idle()
    window.apply_edit(PruneMagnitude(target=name, sparsity=0.2))
    window.wait_idle()
    window.settle()
    orig, cur = window.session.original(name), window.session.array(name)
    expected = tensor_diff(name, orig, cur)
    assert window.diff_view.diff == expected
    assert window.diff_view.numbers.text() == format_diff(expected)
    delta = difference(orig, cur)[changed_mask(orig, cur)]
    counts, edges = np.histogram(delta, bins=100)
    x, y = window.diff_view.curve.getData()
    np.testing.assert_array_equal(y, counts)
    np.testing.assert_allclose(x, edges)
    window.tree.select("conv2d/kernel")  # not edited
    window.settle()
    assert window.diff_view.diff is None and "not edited" in window.diff_view.title.text()


# -- compare two files ------------------------------------------------------------------


def _fake_session(path: Path, layers: dict[str, dict[str, np.ndarray]], optimizer: bool = False) -> EditSession:
    """A session over an in-memory model (no file read): ``{layer: {weight: array}}``."""
    arrays = {f"{lname}/{wname}": arr for lname, weights in layers.items() for wname, arr in weights.items()}
    classes = {lname: "(optimizer)" if optimizer and lname == "(optimizer)" else "Dense" for lname in layers}
    attrs = {"optimizer_layer": "(optimizer)"} if optimizer else {}
    return EditSession(ModelFile.from_arrays(arrays, path, format="fake", classes=classes, attrs=attrs))


def test_compare_dialog_rows_sorted_and_equal_core(window, demo_paths, tmp_path, qtbot):
    other = weightlab.open(demo_paths["keras"])
    other.apply(Scale(target="dense", factor=1.5))
    other.apply(AddNoise(target="conv2d/kernel", std=0.02, seed=2))
    path = other.save(tmp_path / "finetuned.keras")
    other.model.close()

    _open(window, demo_paths["keras"], "dense/kernel")
    b = weightlab.open(path)
    window.apply_edit(Scale(target="dense_1", factor=9.0))  # unsaved edits are not compared: file vs file
    window.wait_idle()
    expected = compare_models(window.session.model, b.model, window.session.original, b.array)
    with qtbot.waitSignal(window.compareShown, timeout=30000) as shown:
        assert window.compare_with(path)  # the file is opened off the window's thread
    dlg = shown.args[0]
    assert dlg is window.compare_dialog and not window.errors
    qtbot.addWidget(dlg)
    assert dlg.diffs == expected
    assert dlg.row_names() == [d.name for d in expected]
    assert {d.name for d in expected if d.changed} == {"dense/kernel", "dense/bias", "conv2d/kernel"}
    rel = [d.relative_l2 for d in expected]
    assert rel == sorted(rel, reverse=True) and rel[0] > 0
    dlg.table.selectRow(1)
    name = expected[1].name
    assert dlg.diff_view.diff == tensor_diff(name, window.session.original(name), b.array(name))
    assert dlg.diff_view.numbers.text() == format_diff(expected[1])
    b.model.close()
    dlg.close()


def test_compare_of_a_large_model_runs_in_the_pool(window, demo_paths, tmp_path, qtbot, monkeypatch):
    """Beyond the limits the comparison and each row's diff run in the pool; Cancel stops it."""
    import weightlab.gui.controllers.comparison as comparison_mod
    import weightlab.gui.diff_view as diff_view_mod

    monkeypatch.setattr(comparison_mod, "COMPARE_SYNC_PARAMS", 0)
    monkeypatch.setattr(diff_view_mod, "SYNC_LIMIT", 0)
    other = weightlab.open(demo_paths["keras"])
    other.apply(Scale(target="dense", factor=1.5))
    path = other.save(tmp_path / "scaled.keras")
    other.model.close()
    _open(window, demo_paths["keras"], "dense/kernel")

    with qtbot.waitSignal(window.computer.compared, timeout=30000):
        assert window.compare_with(path)  # the dialog comes when the pool is done
    dlg = window.compare_dialog
    assert dlg is not None, window.errors
    qtbot.addWidget(dlg)
    b = weightlab.open(path)
    expected = compare_models(window.session.model, b.model)
    assert dlg.diffs == expected
    with qtbot.waitSignal(dlg.computer.diffed, timeout=30000):
        dlg.table.selectRow(1)
    name = expected[1].name
    assert dlg.diff_view.diff == tensor_diff(name, window.session.original(name), b.array(name))
    b.model.close()
    dlg.close()

    window.comparison.dialog = None
    start_compare = window.computer.compare

    def compare_then_cancel(*args):
        token = start_compare(*args)
        window._comparing[2].canceled.emit()  # what its Cancel button sends
        return token

    monkeypatch.setattr(window.computer, "compare", compare_then_cancel)
    with qtbot.waitSignal(window.computer.compared, timeout=30000):
        window.compare_with(path)
    assert window.compare_dialog is None and window._comparing is None


def test_compare_other_architecture_shows_core_error(window, demo_paths, tmp_path, qtbot):
    _open(window, demo_paths["keras"], "dense/kernel")
    fake = _fake_session(tmp_path / "other.keras", {"fc": {"kernel": np.ones((2, 3), np.float32)}})
    window._load_session = lambda p: fake
    with pytest.raises(WeightLabError) as info:
        compare_models(window.session.model, fake.model, window.session.array, fake.array)
    assert window.compare_with(tmp_path / "other.keras")
    qtbot.waitUntil(lambda: len(window.errors) == 1, timeout=10000)
    assert window.errors == [str(info.value)]
    assert window.compare_dialog is None


# -- export ---------------------------------------------------------------------------------


def test_export_tensor_and_plots(window, demo_paths, tmp_path):
    name = "conv2d/kernel"
    _open(window, demo_paths["keras"], name)
    window.apply_edit(Scale(target=name, factor=3.0))
    window.wait_idle()
    target = {}
    window._ask_save_path = lambda title, default, name_filter: str(target["path"])
    for suffix in (".npy", ".csv"):
        target["path"] = tmp_path / f"t{suffix}"
        assert window.export_tensor_dialog(), window.errors
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), window.session.array(name))
    csv = np.loadtxt(tmp_path / "t.csv", delimiter=",", dtype=np.float32)
    np.testing.assert_array_equal(csv, window.session.array(name).reshape(-1, 16))

    window.act_diff.trigger()  # the diff plots have content
    for label in window.plots():
        for suffix in (".png", ".svg"):
            out = tmp_path / f"{label.replace(' ', '_')}{suffix}"
            target["path"] = out
            assert window.export_plot_dialog(label), window.errors
            assert out.stat().st_size > 500, out
    assert (tmp_path / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (tmp_path / "histogram.svg").read_text()
    assert window.errors == []


# -- optimizer state -------------------------------------------------------------------------


def test_optimizer_state_hidden_by_default(window, tmp_path):
    session = _fake_session(
        tmp_path / "ckpt",
        {
            "fc": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.zeros(3, np.float32)},
            "(optimizer)": {"fc_kernel_m": np.ones((2, 3), np.float32)},
        },
        optimizer=True,
    )
    window.set_session(session)
    tree = window.tree
    assert tree.is_hidden("(optimizer)") and tree.is_hidden("(optimizer)/fc_kernel_m")
    assert not tree.is_hidden("fc/kernel")
    # the model's sparsity counts the weights only: 1 + 3 zeros of 9
    assert tree.model_sparsity == pytest.approx(4 / 9)
    window.edit_panel.set_target_mode("model")
    assert window.edit_panel.target_tensors() == ["fc/kernel", "fc/bias"]
    window.act_show_optimizer.trigger()
    assert not tree.is_hidden("(optimizer)/fc_kernel_m")
    window.act_show_optimizer.trigger()
    assert tree.is_hidden("(optimizer)")


def test_forms_take_labels_meanings_and_ranges_from_the_catalogue():
    from weightlab.core.catalogue import CATALOGUE
    from weightlab.gui.op_forms import OPS_BY_KEY

    panel_ops = set(CATALOGUE) - {"revert"}  # revert has its own actions (per tensor, per step)
    assert panel_ops <= set(OPS_BY_KEY)
    for op in panel_ops:
        info, spec = CATALOGUE[op], OPS_BY_KEY[op]
        assert (spec.label, spec.group, spec.neurons) == (info.label, info.group, info.target == "layer")
        assert spec.tip.startswith(info.meaning)
        for field in spec.params:
            if field.name not in {p.name for p in info.params}:
                assert field.name == "by"  # the form's switch between alternative parameters
                continue
            p = info.param(field.name)
            assert field.kind == p.kind and field.choices == p.choices, (op, field.name)
            assert field.percent == (p.unit == "fraction"), (op, field.name)
            if p.lo is not None:
                assert field.lo == p.lo, (op, field.name)
            if p.hi is not None and p.hi < 2**31:
                assert field.hi == p.hi, (op, field.name)
