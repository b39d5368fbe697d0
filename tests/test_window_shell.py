"""The window shell: docks, remembered layout, Reset layout, toolbar, Help, keys, theme menu, dialogs' folder."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PySide6.QtCore import QByteArray, QObject, QRect, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMessageBox, QToolBar

import weightlab.gui
from weightlab.core.edits import Scale
from weightlab.gui import about, window_state
from weightlab.gui.settings import qsettings


def _portable(act) -> list[str]:
    return [k.toString(QKeySequence.SequenceFormat.PortableText) for k in act.shortcuts()]


def _settle_layout(qtbot, window, size):
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size, timeout=5000)
    qtbot.wait(50)  # one more turn of the event loop: the docks follow the window's new size


def _rects(window) -> dict[str, QRect]:
    out = {name: dock.geometry() for name, dock in window.docks.items()}
    out["centre"] = window.centralWidget().geometry()
    out["toolbar"] = window.actions.toolbar.geometry()
    return out


def _bare_window(qtbot):
    """A MainWindow made as run_app makes it (no fixture resize), evaluation off; closed by the caller."""
    from weightlab.gui.engine_adapter import EngineAdapter
    from weightlab.gui.main_window import MainWindow

    w = MainWindow(engine=EngineAdapter(enabled=False))
    qtbot.addWidget(w)
    return w


@pytest.mark.parametrize("size", [(1024, 640), (960, 1040), (800, 560), (2560, 1440)])
def test_every_panel_fits_without_overlap(make_window, qtbot, size):
    from weightlab.gui.engine_adapter import EngineAdapter

    window = make_window(EngineAdapter(enabled=False))
    assert window.minimumWidth() <= 800 and window.minimumHeight() <= 560
    hint = window.minimumSizeHint()
    assert hint.width() <= 960 and hint.height() <= 560, hint  # the layout never forces the window bigger
    _settle_layout(qtbot, window, size)
    rects = _rects(window)
    inside = QRect(0, 0, window.width(), window.height())
    for name, rect in rects.items():
        assert rect.isValid() and inside.contains(rect), (name, rect, size)
    names = list(rects)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not rects[a].intersects(rects[b]), (a, rects[a], b, rects[b])
    # tree over history left of the centre, edit over evaluation right of it
    assert rects["dock-tree"].right() < rects["centre"].left() < rects["centre"].right() < rects["dock-edit"].left()
    assert rects["dock-tree"].bottom() < rects["dock-history"].top()
    assert rects["dock-history"].right() < rects["centre"].left()
    assert rects["dock-edit"].bottom() < rects["dock-evaluation"].top()


def test_layout_is_remembered_and_reset_layout_restores_the_default(qtbot, config_dir):
    w = _bare_window(qtbot)
    w.show()
    assert (w.width(), w.height()) == (1400, 900)
    w.resize(800, 600)  # Qt fits a restored geometry to the screen: the offscreen one is 800x800
    qtbot.waitUntil(lambda: w.width() == 800)
    w.docks["dock-history"].close()
    w.docks["dock-tree"].setFloating(True)
    w.centre.setSizes([100, 300, 200])
    sizes = w.centre.sizes()
    w.close()
    settings = qsettings()
    assert isinstance(settings.value(window_state.GEOMETRY_KEY), QByteArray)
    assert isinstance(settings.value(window_state.STATE_KEY), QByteArray)

    again = _bare_window(qtbot)
    assert again._restored == {"geometry": True, "state": True, "centre": True}
    again.show()
    qtbot.waitExposed(again)
    assert (again.width(), again.height()) == (800, 600)
    assert again.docks["dock-history"].isHidden()
    assert not again.docks["dock-history"].toggleViewAction().isChecked()
    assert again.docks["dock-tree"].isFloating()
    assert again.centre.sizes() == sizes

    again.actions["view.reset_layout"].trigger()
    qtbot.waitUntil(lambda: all(d.isVisible() for d in again.docks.values()))
    for name, dock in again.docks.items():
        assert not dock.isFloating(), name
        area = Qt.DockWidgetArea.LeftDockWidgetArea if name in ("dock-tree", "dock-history") else Qt.DockWidgetArea.RightDockWidgetArea
        assert again.dockWidgetArea(dock) == area, name
    assert again.actions.toolbar.isVisible()
    again.close()


def test_corrupt_settings_and_a_geometry_off_every_screen_are_ignored(qtbot, config_dir):
    settings = qsettings()
    settings.setValue(window_state.GEOMETRY_KEY, "not a geometry")
    settings.setValue(window_state.STATE_KEY, 42)
    settings.setValue(window_state.SPLITTER_PREFIX + "centre", QByteArray(b"\x00garbage"))
    settings.sync()
    w = _bare_window(qtbot)
    assert w._restored == {"geometry": False, "state": False, "centre": False}
    assert (w.width(), w.height()) == (1400, 900)  # the default (offscreen: no real screen to shrink to)
    w.show()
    w.move(20000, 20000)  # a monitor that was unplugged since
    assert not window_state.on_some_screen(w.frameGeometry())
    w.close()
    assert window_state.read_bytes(qsettings(), window_state.GEOMETRY_KEY) is not None
    again = _bare_window(qtbot)  # Qt itself may move it back on screen; if not, its geometry is dropped
    assert again._restored["state"] is True
    assert window_state.on_some_screen(again.frameGeometry())
    again.close()


def test_a_restored_geometry_off_every_screen_is_undone(qtbot, config_dir, monkeypatch):
    w = _bare_window(qtbot)
    w.resize(800, 600)  # both within the offscreen platform's 800x800 screen (Qt fits restored ones to it)
    window_state.save_layout(w, w.splitters)
    w.resize(800, 700)
    with monkeypatch.context() as patch:
        patch.setattr(window_state, "on_some_screen", lambda rect, margin=0: False)
        done = window_state.restore_layout(w, w.splitters)
    assert done["geometry"] is False and done["state"] is True
    assert (w.width(), w.height()) == (800, 700)
    assert window_state.restore_layout(w, w.splitters)["geometry"] is True
    assert (w.width(), w.height()) == (800, 600)
    w.close()


def test_both_redo_keys_redo_with_real_key_events(window, demo_paths, qtbot, qtlog):
    keys = _portable(window.act_redo)
    assert "Ctrl+Shift+Z" in keys and "Ctrl+Y" in keys and len(keys) == len(set(keys))
    assert window.open_and_wait(demo_paths["keras"])
    s = window.session
    for factor in (2.0, 3.0):
        assert window.apply_edit(Scale(target="dense/kernel", factor=factor))
        window.wait_idle()
    for _ in range(2):
        assert window.undo()
        window.wait_idle()
    assert s.position == 0
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    window.wait_idle()
    assert s.position == 1
    qtbot.keyClick(window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    window.wait_idle()
    assert s.position == 2
    assert not [r for r in qtlog.records if "Ambiguous" in r.message]


def test_save_find_and_count_reach_the_documents_and_the_tree(window, demo_paths, qtbot, monkeypatch):
    assert _portable(window.actions["file.save"])[0] == "Ctrl+S"
    assert _portable(window.actions["file.save_as"])[0] == "Ctrl+Shift+S"
    assert _portable(window.actions["view.find"])[0] == "Ctrl+F"
    assert not window.actions["file.save"].isEnabled() and not window.actions["view.find"].isEnabled()
    calls: list[str] = []
    # bound when used, so the slots may come (or change) after the window was built
    monkeypatch.setattr(window.documents, "save", lambda: calls.append("save") or True, raising=False)
    monkeypatch.setattr(window.tree, "start_filter", lambda: calls.append("find"), raising=False)
    monkeypatch.setattr(window.tree, "count_all", lambda: calls.append("count"), raising=False)
    assert window.open_and_wait(demo_paths["keras"])
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    window.actions["view.count_all"].trigger()
    assert calls == ["save", "find", "count"]
    window.docks["dock-tree"].close()
    window.actions["view.find"].trigger()
    assert window.docks["dock-tree"].isVisible() and calls[-1] == "find"


def test_toolbar_and_view_menu(window):
    bar = window.findChild(QToolBar, "main-toolbar")
    assert bar is window.actions.toolbar and window.toolBarArea(bar) == Qt.ToolBarArea.TopToolBarArea
    ids = {id(a): i for i, a in window.actions.actions.items()}
    shown = [ids[id(a)] for a in bar.actions() if id(a) in ids]
    assert shown == ["file.open", "file.save", "edit.undo", "edit.redo", "view.find", "eval.restart",
                     "analysis.sweep", "training.start"]
    for a in bar.actions():
        if id(a) in ids:
            assert not a.icon().isNull() and a.toolTip().startswith(a.text().replace("&", "")), a.toolTip()
    view = window.actions.menus["View"]
    toggles = [a for a in view.actions() if a.text() == "&Toolbar"]
    assert toggles and toggles[0].isChecked()
    toggles[0].trigger()
    assert bar.isHidden()
    panels = window.panels_menu.actions()
    assert panels == [d.toggleViewAction() for d in window.docks.values()]
    panels[2].trigger()  # History
    assert window.docks["dock-history"].isHidden()
    panels[2].trigger()
    assert window.docks["dock-history"].isVisible()
    assert not window.windowIcon().isNull()


def test_help_has_guide_and_about_with_versions(window, qtbot, monkeypatch):
    help_menu = window.actions.menus["Help"]
    texts = [a.text() for a in help_menu.actions() if not a.isSeparator()]
    assert texts == ["&Keyboard Shortcuts", "&User Guide", "&About WeightLab"]
    tf_before = "tensorflow" in sys.modules
    window.actions["help.about"].trigger()
    box = window.findChild(QMessageBox, "about-dialog")
    qtbot.waitExposed(box)
    import h5py
    import pyqtgraph
    import PySide6

    rows = about.versions()
    assert rows["NumPy"] == np.__version__ and rows["h5py"] == h5py.__version__
    assert rows["PySide6"] == PySide6.__version__ and rows["pyqtgraph"] == pyqtgraph.__version__
    assert "not installed" not in rows.values()  # the test environment has every one of them
    for name, version in rows.items():
        assert f"{name}</td><td>&nbsp;&nbsp;{version}<" in box.text() or name == "WeightLab"
    assert f"WeightLab {weightlab.__version__}" in box.text()
    assert "TensorFlow" in box.text() and "Keras" in box.text()
    assert not box.iconPixmap().isNull()
    if not tf_before:
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
    box.close()

    opened = []
    monkeypatch.setattr(about.QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    window.actions["help.guide"].trigger()
    assert len(opened) == 1
    url = opened[0]
    assert (url.isLocalFile() and url.toLocalFile().endswith("docs/guide/index.md")) or url.toString() == about.GUIDE_URL


class _FakeTheme(types.ModuleType):
    """The theme module's contract (design14.md), recording what the window asks."""

    class _Signals(QObject):
        changed = Signal()

    def __init__(self):
        super().__init__("weightlab.gui.theme")
        self.calls: list[tuple] = []
        self._scheme, self._presentation = "system", False
        self.signals = self._Signals()

    def restore(self, app=None):
        self.calls.append(("restore",))

    def scheme(self):
        return self._scheme

    def set_scheme(self, name):
        self.calls.append(("scheme", name))
        self._scheme = name
        self.signals.changed.emit()

    def presentation(self):
        return self._presentation

    def set_presentation(self, on):
        self.calls.append(("presentation", on))
        self._presentation = on
        self.signals.changed.emit()


def test_theme_menu_drives_the_theme_module(make_window, monkeypatch):
    from weightlab.gui.engine_adapter import EngineAdapter

    fake = _FakeTheme()
    monkeypatch.setitem(sys.modules, "weightlab.gui.theme", fake)
    monkeypatch.setattr(weightlab.gui, "theme", fake, raising=False)
    window = make_window(EngineAdapter(enabled=False))
    assert fake.calls == [("restore",)]
    acts = {s: window.actions[f"view.theme.{s}"] for s in ("system", "light", "dark")}
    assert [s for s, a in acts.items() if a.isChecked()] == ["system"]
    acts["dark"].trigger()
    assert fake.calls[-1] == ("scheme", "dark")
    assert [s for s, a in acts.items() if a.isChecked()] == ["dark"]
    fake.set_scheme("light")  # changed elsewhere (another window): the menu follows
    assert [s for s, a in acts.items() if a.isChecked()] == ["light"]
    window.actions["view.presentation"].trigger()
    assert fake.calls[-1] == ("presentation", True) and window.actions["view.presentation"].isChecked()
    assert _portable(window.actions["view.presentation"]) == ["Ctrl+Shift+F5"]


def test_file_dialogs_start_in_the_last_folder(window, demo_paths, tmp_path, monkeypatch):
    import weightlab.gui.main_window as mw

    starts = []
    monkeypatch.setattr(mw.QFileDialog, "getOpenFileName", lambda parent, title, start, f: starts.append(start) or ("", ""))
    monkeypatch.setattr(mw.QFileDialog, "getExistingDirectory", lambda parent, title, start: starts.append(start) or "")
    monkeypatch.setattr(mw.QFileDialog, "getSaveFileName", lambda parent, title, start, f: starts.append(start) or ("", ""))
    window._ask_open_path("Open", "*")
    settings = qsettings()
    settings.setValue("files/last_folder", str(tmp_path))
    settings.sync()
    window._ask_open_path("Open", "*")
    window._ask_folder("Open folder")
    window._ask_save_path("Save", type(tmp_path)("model-edited.keras"), "*")
    settings.setValue("files/last_folder", str(tmp_path / "gone"))
    window._ask_open_path("Open", "*")
    assert starts == ["", str(tmp_path), str(tmp_path), str(tmp_path / "model-edited.keras"), ""]
    assert window.open_and_wait(demo_paths["keras"])
    window._ask_open_path("Open", "*")
    assert starts[-1] == str(demo_paths["keras"].parent)  # an open model's folder comes first


def test_run_app_names_the_desktop_entry_and_a_screenshot_run_leaves_the_layout_alone(monkeypatch, qtbot, config_dir,
                                                                                       tmp_path):
    from PySide6.QtWidgets import QApplication

    from weightlab.gui.app import run_app
    from weightlab.gui.engine_adapter import EngineAdapter
    from weightlab.gui.main_window import MainWindow
    from weightlab.resources import ICON_NAME

    windows = []
    real_init = MainWindow.__init__

    def init(self, engine=None, recent=None):
        real_init(self, engine=EngineAdapter(enabled=False), recent=recent)
        windows.append(self)

    # the real exec/quit would end the test session's event loop for good: the screenshot run's own poll ends it
    quits = []
    monkeypatch.setattr(MainWindow, "__init__", init)
    monkeypatch.setattr(QApplication, "quit", lambda *a: quits.append(1))
    monkeypatch.setattr(QApplication, "exec", lambda *a: qtbot.waitUntil(lambda: quits == [1], timeout=30000) or 0)
    shot = tmp_path / "shot.png"
    try:
        assert run_app(screenshot=shot) == 0
        (w,) = windows
        assert shot.is_file() and (w.width(), w.height()) == (1400, 900)
        app = QApplication.instance()
        assert app.desktopFileName() == ICON_NAME and not app.windowIcon().isNull()
        assert window_state.read_bytes(qsettings(), window_state.GEOMETRY_KEY) is None  # not remembered
    finally:
        for w in windows:
            w.close()
