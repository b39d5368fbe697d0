"""Documents and stale state (issue 14, part A2).

Save (Ctrl+S) and Save As, the title, Open Recent with folders, the last
folder, the held-out set remembered per model file, nothing of the previous
model left on screen after opening another, the tree's filter (Ctrl+F), its
background count of every tensor's sparsity, and metrics/optimizer layers
hidden by default.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QPointF, Qt, QThreadPool

import weightlab
from weightlab.core.edits import Scale
from weightlab.core.model import ModelFile
from weightlab.core.session import EditSession
from weightlab.gui import model_tree
from weightlab.gui.heatmap_view import HOVER_HINT
from weightlab.gui.model_tree import filter_matches
from weightlab.gui.settings import (
    RecentFiles,
    last_folder,
    path_key,
    qsettings,
    remember_heldout,
    remembered_heldout,
)

pytestmark = pytest.mark.gui


def _open(window, path, data=None) -> None:
    assert window.open_and_wait(path, data), window.errors
    window.settle()


def _lone_copy(src: Path, folder: Path, name: str) -> Path:
    """``src`` copied alone into ``folder`` (no held-out set beside it to guess)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    shutil.copy2(src, out)
    return out


# -- Save, Save As, the title ------------------------------------------------------------------


def test_save_first_time_asks_like_save_as_then_writes_the_same_file(window, demo_paths, tmp_path):
    model = _lone_copy(demo_paths["keras"], tmp_path / "models", "digits_cnn.keras")
    _open(window, model)
    asked: list[Path] = []
    target = tmp_path / "out" / "mine.keras"
    target.parent.mkdir()

    def ask(_title, default, _filter):
        asked.append(Path(default))
        return str(target)

    window._ask_save_path = ask
    window.apply_edit(Scale(target="dense/kernel", factor=2.0))
    window.wait_idle()
    assert window.windowTitle() == "digits_cnn.keras* — WeightLab"
    assert window.documents.save()
    assert asked == [model.with_name("digits_cnn-edited.keras")]  # proposes NAME-edited.EXT
    assert window.windowTitle() == "mine.keras — WeightLab"  # the file the edits now go to
    assert window.documents.document_path == target

    window.apply_edit(Scale(target="dense/bias", factor=3.0))
    window.wait_idle()
    assert window.windowTitle() == "mine.keras* — WeightLab"
    assert window.documents.save()  # no dialog the second time
    assert len(asked) == 1 and window.windowTitle() == "mine.keras — WeightLab"
    saved = weightlab.open(target)
    try:
        for name in ("dense/kernel", "dense/bias"):
            np.testing.assert_array_equal(saved.array(name), window.session.array(name))
        assert not np.array_equal(saved.array("dense/bias"), window.session.original("dense/bias"))
    finally:
        saved.model.close()
    # the opened file is untouched
    stored = weightlab.open(model)
    try:
        np.testing.assert_array_equal(stored.array("dense/bias"), window.session.original("dense/bias"))
    finally:
        stored.model.close()
    assert RecentFiles().paths()[0] == target.resolve()
    assert last_folder() == target.parent.resolve()


def test_save_cancelled_writes_nothing_and_keeps_the_title(window, demo_paths, tmp_path):
    model = _lone_copy(demo_paths["keras"], tmp_path, "m.keras")
    _open(window, model)
    window._ask_save_path = lambda *_a: None
    window.apply_edit(Scale(target="dense/kernel", factor=2.0))
    window.wait_idle()
    assert not window.documents.save()
    assert window.documents.document is None and window.windowTitle() == "m.keras* — WeightLab"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "m.keras"]


def test_a_new_model_forgets_the_saved_copy(window, demo_paths, tmp_path):
    _open(window, _lone_copy(demo_paths["keras"], tmp_path, "a.keras"))
    window._ask_save_path = lambda *_a: str(tmp_path / "a-copy.keras")
    assert window.documents.save()
    assert window.windowTitle() == "a-copy.keras — WeightLab"
    _open(window, demo_paths["h5"])
    assert window.documents.document is None
    assert window.windowTitle() == "digits_cnn.h5 — WeightLab"


# -- held-out sets, recent files, the last folder ------------------------------------------------


def test_saved_copy_of_the_demo_reopens_with_its_heldout_set(window, demo_paths, tmp_path):
    _open(window, demo_paths["keras"])
    assert window.data_path == demo_paths["data"]  # guessed beside the demo
    copy = tmp_path / "elsewhere" / "copy.keras"
    copy.parent.mkdir()
    window._ask_save_path = lambda *_a: str(copy)
    assert window.save_as()
    _open(window, demo_paths["h5"])
    _open(window, copy)  # nothing beside it to guess from
    assert window.data_path == demo_paths["data"].resolve()


def test_heldout_chosen_by_hand_is_remembered_for_the_model_file(window, demo_paths, tmp_path):
    model = _lone_copy(demo_paths["keras"], tmp_path / "m", "lonely.keras")
    data = _lone_copy(demo_paths["data"], tmp_path / "d", "set.npz")
    _open(window, model)
    assert window.data_path is None
    assert window.open_data(data)
    assert remembered_heldout(model) == data.resolve()
    _open(window, demo_paths["h5"])
    _open(window, model)
    assert window.data_path == data.resolve()
    # a remembered set that was deleted is ignored: nothing, not an error
    data.unlink()
    _open(window, demo_paths["h5"])
    _open(window, model)
    assert window.data_path is None and not window.errors


def test_heldout_settings_of_the_wrong_type_are_ignored(config_dir, tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"")
    settings = qsettings()
    settings.setValue(f"heldout/{path_key(model)}", 42)
    settings.setValue("files/last_folder", ["not", "a", "folder"])
    settings.sync()
    assert remembered_heldout(model) is None
    assert last_folder() is None
    remember_heldout(model, model)  # any existing file
    assert remembered_heldout(model) == model.resolve()
    remember_heldout(model, None)
    assert remembered_heldout(model) is None
    assert path_key(model) == path_key(tmp_path / "." / "m.keras")  # resolved: one key per file


def test_open_recent_lists_folders_with_full_paths(window, demo_paths, tmp_path):
    folder = tmp_path / "saved_model_dir"
    folder.mkdir()
    window.recent.add(demo_paths["keras"])
    window.recent.add(folder)
    window.documents.fill_recent_menu()
    menu = window.recent_menu
    entries = [a for a in menu.actions() if a.toolTip() and not a.isSeparator() and a.text() != "Clear list"]
    assert [(a.text(), a.toolTip()) for a in entries] == [
        ("saved_model_dir/", str(folder.resolve())),
        ("digits_cnn.keras", str(demo_paths["keras"].resolve())),
    ]
    assert menu.toolTipsVisible()


def test_last_folder_follows_opens(window, demo_paths, tmp_path):
    assert last_folder() is None
    _open(window, demo_paths["keras"])
    assert last_folder() == demo_paths["keras"].parent.resolve()
    data = _lone_copy(demo_paths["data"], tmp_path / "sets", "x.npz")
    window.open_data(data)
    assert last_folder() == data.parent.resolve()


# -- no stale state ---------------------------------------------------------------------------------


def test_opening_another_model_leaves_nothing_of_the_previous_one(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"])
    qtbot.waitUntil(lambda: window.current is not None and window.heatmap.view is not None)
    window.settle()
    heat = window.heatmap
    heat._on_move(heat.vb.mapViewToScene(QPointF(0.5, 0.5)))  # the mouse over the first cell
    assert window.hover_label.text().startswith(window.current + "[")
    window.selection.click(1)
    assert window.selection_label.text().startswith("1 neuron of ")
    window.statusBar().showMessage("held-out accuracy 98.3 %")  # no timeout: stays until replaced
    old = window.current

    assert window.open_and_wait(demo_paths["h5"])
    assert window.hover_label.text() == "" and heat.hover_label.text() == HOVER_HINT
    assert window.selection_label.text() == "" and window.selection.neurons == []
    assert "98.3" not in window.statusBar().currentMessage()  # "Opened …", or the statistics' note
    window.settle()
    assert window.current is not None and window.heatmap.view.request.source is window.session
    assert old in window.session.model.tensors  # same names, the other file: the views show the new one


def test_closing_the_model_clears_the_views(window, demo_paths):
    _open(window, demo_paths["keras"])
    assert window.histogram.view is not None
    window.set_session(None)
    assert window.histogram.view is None and window.heatmap.view is None
    assert window.tree.summary.text() == "No model open." and window.windowTitle() == "WeightLab"


# -- the tree: filter, counting, hidden layers --------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("", "conv2d/kernel", True),
        ("KERNEL", "conv2d/kernel", True),
        ("*/kernel", "conv2d/kernel", True),
        ("*/kernel", "conv2d/bias", False),
        ("conv?d*", "conv2d/bias", True),
        ("conv?d", "conv2d/bias", False),  # a glob matches the whole name
        ("dense_1", "dense/kernel", False),
    ],
)
def test_filter_matches_glob_or_substring(pattern, name, expected):
    assert filter_matches(pattern, name) is expected


def test_ctrl_f_filters_the_tree_enter_jumps_escape_clears(window, demo_paths, qtbot):
    _open(window, demo_paths["keras"])
    tree = window.tree
    tensors = list(window.session.model.tensors)
    tree.start_filter()
    assert tree.filter_bar.isVisible()
    qtbot.waitUntil(tree.filter_edit.hasFocus)
    qtbot.keyClicks(tree.filter_edit, "*/BIAS")
    biases = [n for n in tensors if n.endswith("/bias")]
    assert tree.matches() == biases and len(biases) >= 2
    assert all(tree.is_hidden(n) != n.endswith("/bias") for n in tensors)
    assert not tree.is_hidden(window.session.model.tensors[biases[0]].layer)  # its layer stays, as the path
    qtbot.keyClick(tree.filter_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.current == biases[0])
    assert tree.selected_targets() == [biases[0]]

    tree.set_filter("no such tensor")
    assert tree.matches() == [] and tree.filter_count.text() == "no match"
    assert tree.jump_to_match() is None and window.current == biases[0]
    tree.filter_edit.setFocus()
    qtbot.keyClick(tree.filter_edit, Qt.Key.Key_Escape)
    assert tree.filter_text == "" and not tree.filter_bar.isVisible()
    assert not any(tree.is_hidden(n) for n in tensors)


def test_filter_hides_selected_rows_from_edits(window, demo_paths):
    _open(window, demo_paths["keras"])
    tree = window.tree
    tree.select_targets(["conv2d/kernel", "dense/kernel"])
    tree.set_filter("dense")
    assert tree.selected_targets() == ["dense/kernel"]  # a row hidden by the filter is not edited


def test_large_model_counts_only_on_request_and_cancel_stops(window, demo_paths, monkeypatch, qtbot):
    monkeypatch.setattr(model_tree, "READ_FOR_ZEROS_LIMIT", 0)  # the demo is "large": tensors not read to count
    _open(window, demo_paths["keras"])
    tree = window.tree
    assert not tree.counting and tree.model_sparsity is None
    assert "counting" not in tree.summary.text() and "count all" in tree.summary.text()

    assert tree.count_all() > 0
    assert tree.counting and "counting…" in tree.summary.text()
    tree.cancel_count()  # before any count reached the window
    assert not tree.counting and "count all" in tree.summary.text()
    assert QThreadPool.globalInstance().waitForDone(10000)
    QCoreApplication.processEvents()  # deliver the cancelled job's queued results (posted before waitForDone returned): they are dropped
    assert tree.model_sparsity is None

    assert tree.count_all() > 0
    qtbot.waitUntil(lambda: not tree.counting, timeout=30000)
    s = window.session
    hidden = tree.hidden_layers
    weights = [s.peek(t.name) for t in s.model.tensors.values() if t.layer not in hidden]
    expected = sum(int(np.count_nonzero(w == 0)) for w in weights) / sum(w.size for w in weights)
    assert tree.model_sparsity == pytest.approx(expected)
    assert "counting" not in tree.summary.text() and f"sparsity\u00a0{100 * expected:.1f}\u00a0%" in tree.summary.text()
    assert tree.count_all() == 0  # nothing left to count


def test_metrics_and_optimizer_layers_hidden_by_default(window, tmp_path):
    arrays = {
        "fc/kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
        "(optimizer)/fc_kernel_m": np.ones((2, 3), np.float32),
        "(metrics)/accuracy_total": np.zeros(1, np.float32),
    }
    classes = {"fc": "Dense", "(optimizer)": "(optimizer)", "(metrics)": "(metrics)"}
    model = ModelFile.from_arrays(arrays, tmp_path / "sm", format="fake", classes=classes)
    window.set_session(EditSession(model))
    tree = window.tree
    assert tree.hidden_layers == {"(optimizer)", "(metrics)"}
    assert tree.is_hidden("(metrics)/accuracy_total") and tree.is_hidden("(optimizer)")
    assert tree.model_sparsity == pytest.approx(1 / 6)  # the network's weights only
    tree.set_filter("accuracy")
    assert tree.matches() == []  # the filter does not bring hidden layers back
    tree.set_filter("")
    window.act_show_optimizer.trigger()
    assert not tree.is_hidden("(metrics)/accuracy_total")
    window.act_show_optimizer.trigger()
    assert tree.is_hidden("(metrics)")


def test_window_keys_reach_the_tree_and_documents(window, demo_paths, tmp_path, qtbot):
    _open(window, _lone_copy(demo_paths["keras"], tmp_path, "k.keras"))
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(window.tree.filter_edit.hasFocus)
    asked = []
    window._ask_save_path = lambda _t, default, _f: asked.append(default) or str(tmp_path / "k2.keras")
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert asked == [tmp_path / "k-edited.keras"] and (tmp_path / "k2.keras").is_file()
    window.actions["view.count_all"].trigger()
    qtbot.waitUntil(lambda: not window.tree.counting)
    assert window.tree.model_sparsity is not None
