"""Fixes from the issue-14 walk-through: save folder, tree summary, no-break numbers, column fitting."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from weightlab.core.edits import Scale
from weightlab.gui.controllers import paths
from weightlab.gui.controllers.paths import default_save_path
from weightlab.gui.formatting import fmt_count, fmt_pct


def _open(window, path) -> None:
    assert window.open_and_wait(path), window.errors
    window.settle()


def _lone_copy(src: Path, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    shutil.copy2(src, out)
    return out


# -- (b) Save As proposes a writable folder outside the package ------------------------------------


def test_default_save_path_beside_a_writable_model(tmp_path):
    model = tmp_path / "m.keras"
    assert default_save_path(model, tmp_path / "elsewhere") == tmp_path / "m-edited.keras"


def test_default_save_path_avoids_the_package_folder(tmp_path, monkeypatch):
    import weightlab

    demo = Path(weightlab.__file__).resolve().parent / "resources" / "demo" / "digits_cnn.keras"
    last = tmp_path / "work"
    last.mkdir()
    assert default_save_path(demo, last) == last / "digits_cnn-edited.keras"
    # no usable last folder: the home folder's Documents, else home
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    assert default_save_path(demo, None) == home / "digits_cnn-edited.keras"
    (home / "Documents").mkdir()
    assert default_save_path(demo, None) == home / "Documents" / "digits_cnn-edited.keras"
    # a last folder inside the package is no better than the model's own
    assert default_save_path(demo, demo.parent) == home / "Documents" / "digits_cnn-edited.keras"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs permissions that bind (not root)")
def test_default_save_path_avoids_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    last = tmp_path / "last"
    last.mkdir()
    ro.chmod(0o555)
    try:
        assert default_save_path(ro / "m.h5", last) == last / "m-edited.h5"
    finally:
        ro.chmod(0o755)


def test_ctrl_s_on_a_model_in_the_package_proposes_the_last_folder(window, demo_paths, tmp_path, monkeypatch):
    # A model "inside the package": pretend the copy's folder is the installed package.
    model = _lone_copy(demo_paths["keras"], tmp_path / "pkg" / "resources" / "demo", "digits_cnn.keras")
    monkeypatch.setattr(paths, "_package_folder", lambda: (tmp_path / "pkg").resolve())
    _open(window, model)  # records files/last_folder = the model's folder (inside the "package")
    from weightlab.gui.settings import set_last_folder

    work = tmp_path / "work"
    work.mkdir()
    set_last_folder(work / "something.npz")
    asked: list[Path] = []
    window._ask_save_path = lambda _t, default, _f: asked.append(Path(default))
    window.apply_edit(Scale(target="dense/kernel", factor=2.0))
    window.wait_idle()
    assert not window.documents.save()  # the dialog was cancelled
    assert asked == [work / "digits_cnn-edited.keras"]


# -- (c) the tree's summary names the document after Save As ---------------------------------------


def test_tree_summary_names_the_saved_copy(window, demo_paths, tmp_path):
    model = _lone_copy(demo_paths["keras"], tmp_path / "models", "digits_cnn.keras")
    _open(window, model)
    summary = window.tree.summary
    assert "digits_cnn.keras" in summary.text()
    target = tmp_path / "out" / "mine.keras"
    target.parent.mkdir()
    window._ask_save_path = lambda *_a: str(target)
    window.apply_edit(Scale(target="dense/kernel", factor=2.0))
    window.wait_idle()
    assert window.documents.save_as()
    assert window.windowTitle() == "mine.keras — WeightLab"
    assert "<b>mine.keras</b>" in summary.text() and "digits_cnn.keras</b>" not in summary.text()
    assert str(model) in summary.toolTip()  # where unchanged values are still read from
    # reopening the original names it again
    _open(window, model)
    assert "<b>digits_cnn.keras</b>" in summary.text()


# -- (d) numbers never wrap inside --------------------------------------------------------------------


def test_numbers_use_no_break_spaces():
    assert fmt_count(38346) == "38\u202f346"
    assert fmt_pct(0.917) == "91.7\u00a0%"
    for text in (fmt_count(1_234_567), fmt_pct(0.5)):
        assert " " not in text and "\u2009" not in text  # no breakable space at all


def test_tree_summary_has_no_breakable_space_inside_figures(window, demo_paths, tmp_path, qtbot):
    model = _lone_copy(demo_paths["keras"], tmp_path / "models", "digits_cnn.keras")
    _open(window, model)
    tree = window.tree
    tree.count_all()
    qtbot.waitUntil(lambda: tree.model_sparsity is not None, timeout=30000)
    text = tree.summary.text()
    n = tree._session.model.param_count
    assert n >= 1000 and f"{n:,}".replace(",", "\u00a0") + "\u00a0parameters" in text
    # what the label lays out: Qt's HTML parser makes U+202F an ordinary space, U+00A0 survives
    from PySide6.QtGui import QTextDocument

    doc = QTextDocument()
    doc.setHtml(text)
    laid_out = doc.toRawText()
    assert f"{n:,}".replace(",", "\u00a0") + "\u00a0parameters" in laid_out
    assert f"sparsity\u00a0{100 * tree.model_sparsity:.1f}\u00a0%" in text
    assert " parameters" not in text and " layers" not in text and " tensors" not in text and " %" not in text


# -- (g) the tree's columns fit their headers at presentation size ---------------------------------


def _elided_headers(tree) -> list[str]:
    """The header texts of ``tree`` (a ModelTree) that do not fit their column."""
    view = tree.tree
    header = view.header()
    item = view.headerItem()
    return [item.text(col) for col in range(view.columnCount())
            if header.sectionSize(col) < header.sectionSizeFromContents(col).width()]


def test_tree_columns_fit_their_headers_in_presentation_mode(window, demo_paths, tmp_path, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDockWidget

    from weightlab.gui import theme

    model = _lone_copy(demo_paths["keras"], tmp_path / "models", "digits_cnn.keras")
    window.resize(2560, 1440)
    _open(window, model)
    tree = window.tree
    dock = tree.parentWidget()
    while not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    window.resizeDocks([dock], [900], Qt.Orientation.Horizontal)  # room for every column
    qtbot.waitUntil(lambda: tree.width() >= 800, timeout=5000)
    qtbot.waitUntil(lambda: not _elided_headers(tree), timeout=5000)
    size = tree.tree.font().pointSizeF()
    theme.set_presentation(True)
    try:
        qtbot.waitUntil(lambda: tree.tree.font().pointSizeF() > size, timeout=5000)
        qtbot.waitUntil(lambda: not _elided_headers(tree), timeout=5000)
        header = tree.tree.header()
        assert header.sectionSize(0) >= header.minimumSectionSize()  # the name column keeps its stretch
    finally:
        theme.set_presentation(False)


# -- (f) every subcommand's --help says what it does ---------------------------------------------


def test_every_subcommand_has_a_description(capsys):
    import argparse

    from weightlab.cli import _subcommand_parser

    parser = _subcommand_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"inspect", "compare", "export", "eval", "apply"} <= set(sub.choices)
    for name, sp in sub.choices.items():
        assert sp.description and len(sp.description) > 30, name
    with pytest.raises(SystemExit):
        parser.parse_args(["inspect", "--help"])
    out = capsys.readouterr().out
    first = " ".join(sub.choices["inspect"].description.split()[:4])
    assert first in " ".join(out.split())


# -- (e) the shortcuts dialog lists only keys a user can type ------------------------------------


def _seq(key, modifiers=None):
    from PySide6.QtCore import QKeyCombination, Qt
    from PySide6.QtGui import QKeySequence

    return QKeySequence(QKeyCombination(modifiers or Qt.KeyboardModifier.NoModifier, key))


def test_shortcuts_dialog_drops_media_keys_xcb_binds(qtbot):
    from types import SimpleNamespace

    from PySide6.QtCore import Qt
    from PySide6.QtGui import QKeySequence

    from weightlab.gui.shortcuts_dialog import ShortcutsDialog, is_typeable

    K, shift, ctrl = Qt.Key, Qt.KeyboardModifier.ShiftModifier, Qt.KeyboardModifier.ControlModifier  # noqa: N806 - Qt's name
    # What QKeySequence.keyBindings gives on X11 (xcb) for Open, Save As, Undo, Redo, Copy.
    bound = {
        "Open…": [QKeySequence("Ctrl+O"), _seq(K.Key_Open)],
        "Save As…": [QKeySequence("Ctrl+Shift+S"), _seq(K.Key_Save, shift)],
        "Undo": [QKeySequence("Ctrl+Z"), _seq(K.Key_Undo), _seq(K.Key_F14)],
        "Redo": [QKeySequence("Ctrl+Shift+Z"), _seq(K.Key_Redo), QKeySequence("Ctrl+Y")],
        "Copy": [QKeySequence("Ctrl+C"), _seq(K.Key_Copy), QKeySequence("Ctrl+Insert")],
        "Help": [_seq(K.Key_Help), _seq(K.Key_F1)],
        "Only media": [_seq(K.Key_Refresh)],
    }
    actions = [SimpleNamespace(menu="Edit", label=label, shortcuts=[], tip="") for label in bound]
    d = ShortcutsDialog(actions, keys=lambda a: bound[a.label], shortcuts_only=True)
    qtbot.addWidget(d)

    def native(*seqs):
        return "\n".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in seqs)

    rows = {r[1]: r[2] for r in d.visible_rows()}
    assert rows == {
        "Open…": native(QKeySequence("Ctrl+O")),
        "Save As…": native(QKeySequence("Ctrl+Shift+S")),
        "Undo": native(QKeySequence("Ctrl+Z")),
        "Redo": native(QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")),
        "Copy": native(QKeySequence("Ctrl+C"), QKeySequence("Ctrl+Insert")),
        "Help": native(_seq(K.Key_F1)),
    }  # "Only media" has no key a user can type: not listed
    for key in (K.Key_F12, K.Key_Escape, K.Key_Delete, K.Key_A, K.Key_Menu):
        assert is_typeable(_seq(key, ctrl)), key
    for key in (K.Key_F13, K.Key_F35, K.Key_Cut, K.Key_Paste, K.Key_Find, K.Key_ZoomIn):
        assert not is_typeable(_seq(key)), key
    assert not is_typeable(QKeySequence())


# -- (a) a layout saved on another screen size keeps its arrangement, not its sizes ----------------


def _bare_window(qtbot):
    from weightlab.gui.engine_adapter import EngineAdapter
    from weightlab.gui.main_window import MainWindow

    w = MainWindow(engine=EngineAdapter(enabled=False))
    w.remember_layout = False
    qtbot.addWidget(w)
    return w


def test_saved_sizes_are_stale_on_another_screen_or_window_size(qtbot, config_dir, monkeypatch):
    from PySide6.QtCore import QSize

    from weightlab.gui import window_state
    from weightlab.gui.settings import qsettings

    w = _bare_window(qtbot)
    w.resize(800, 600)
    monkeypatch.setattr(window_state, "available_size", lambda _w: QSize(1400, 900))
    window_state.save_layout(w, w.splitters)
    settings = qsettings()
    assert window_state.read_size(settings, window_state.SCREEN_KEY) == QSize(1400, 900)
    assert window_state.read_size(settings, window_state.SIZE_KEY) == QSize(800, 600)
    assert window_state.sizes_are_stale(w, settings) is None  # same screen, same size
    monkeypatch.setattr(window_state, "available_size", lambda _w: QSize(1300, 850))
    assert window_state.sizes_are_stale(w, settings) is None  # within the tolerance
    monkeypatch.setattr(window_state, "available_size", lambda _w: QSize(1024, 640))
    assert window_state.sizes_are_stale(w, settings) == "screen"
    monkeypatch.setattr(window_state, "available_size", lambda _w: QSize(2560, 1440))
    assert window_state.sizes_are_stale(w, settings) == "screen"
    monkeypatch.setattr(window_state, "available_size", lambda _w: QSize(1400, 900))
    w.resize(1200, 600)
    assert window_state.sizes_are_stale(w, settings) == "window"
    # docks as wide as saved would squeeze the centre below its minimum
    settings.setValue(window_state.SIZE_KEY, "1200x600")
    settings.setValue(window_state.CENTRE_KEY, f"{w.centre.minimumSizeHint().width() - 50}x300")
    assert window_state.sizes_are_stale(w, settings) == "centre"
    # values saved before these keys existed (or corrupt ones) keep the saved sizes
    for key in (window_state.SCREEN_KEY, window_state.SIZE_KEY, window_state.CENTRE_KEY):
        settings.setValue(key, "garbage")
    assert window_state.sizes_are_stale(w, settings) is None
    assert window_state.read_size(settings, window_state.SIZE_KEY) is None


def test_layout_from_a_larger_screen_gets_default_sizes_and_keeps_its_arrangement(qtbot, config_dir, monkeypatch):
    from PySide6.QtCore import QSize, Qt

    from weightlab.gui import window_state

    w = _bare_window(qtbot)
    w.show()
    w.resize(1300, 850)
    qtbot.waitUntil(lambda: w.width() == 1300)
    w.docks["dock-history"].close()  # the user's arrangement

    def widen() -> bool:  # again until the first show's default sizes have landed
        w.resizeDocks([w.docks["dock-tree"], w.docks["dock-edit"]], [520, 420], Qt.Orientation.Horizontal)
        return w.docks["dock-tree"].width() >= 480

    qtbot.waitUntil(widen)
    monkeypatch.setattr(window_state, "available_size", lambda _w: QSize(1400, 900))
    window_state.save_layout(w, w.splitters)
    w.close()

    monkeypatch.setattr(window_state, "available_size", lambda _w: QSize(1024, 640))
    again = _bare_window(qtbot)
    again.resize(1024, 640)
    called = []

    def default_sizes():
        called.append(again.size())
        again._default_sizes()

    done = window_state.restore_layout(again, again.splitters, default_sizes=default_sizes)
    assert done["state"] and not done["centre"]  # the arrangement, not the splitter's sizes
    assert not called  # not before the window has its size
    again.show()
    qtbot.waitUntil(lambda: bool(called))
    qtbot.waitUntil(lambda: again.centre.width() > again.centre.minimumSizeHint().width() + 50)
    assert again.docks["dock-history"].isHidden()  # the arrangement is kept
    assert again.docks["dock-tree"].width() < 480  # the stale width is not
    again.close()
