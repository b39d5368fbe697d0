"""The action registry, and the window's menus, toolbar, keys and busy state built from it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from shiboken6 import isValid

import weightlab
from weightlab.app.actions import Action, ActionRegistry, ShortcutConflict, normalize_key, window_actions
from weightlab.core.edits import Scale
from weightlab.core.session import Goto


def test_registry_refuses_a_key_bound_twice_and_a_repeated_id():
    reg = ActionRegistry([Action("a", "&A", "File", shortcuts=("Ctrl+K",))])
    with pytest.raises(ShortcutConflict, match="ctrl\\+k of 'b' is already bound to 'a'"):
        reg.add(Action("b", "&B", "File", shortcuts=("ctrl + K",)))
    with pytest.raises(ShortcutConflict, match="'c'.*bound to 'c'"):
        reg.add(Action("c", "&C", "File", shortcuts=("Ctrl+J", "Ctrl+J")))
    with pytest.raises(ShortcutConflict, match="std:Undo"):
        reg.add(Action("d", "&D", "File", shortcuts=("std:Undo", "std:Undo")))
    with pytest.raises(ShortcutConflict, match="registered twice"):
        reg.add(Action("a", "&A again"))
    assert [a.id for a in reg] == ["a"]  # nothing of a refused action stays
    reg.add(Action("e", "&E", "Edit/Operation", shortcuts=("Ctrl+J",)))
    assert reg.menus() == ["File", "Edit", "Edit/Operation"]
    assert reg.shortcut_list() == [("File", "A", ("Ctrl+K",)), ("Edit/Operation", "E", ("Ctrl+J",))]
    with pytest.raises(ValueError, match="empty"):
        normalize_key("  ")


def test_window_actions_have_unique_keys_and_labels():
    reg = window_actions()
    assert len(reg) == len({a.id for a in reg})
    assert "std:Redo" in reg["edit.redo"].shortcuts
    # both redo keys listed beside std:Redo (which lacks Ctrl+Y under GNOME-like X11); bound once each (Qt side)
    assert {"Ctrl+Shift+Z", "Ctrl+Y"} <= set(reg["edit.redo"].shortcuts)
    assert Action("x", "Save && &quit").text == "Save & quit"


def _shortcut_owners(window) -> dict[str, list[str]]:
    owners: dict[str, list[str]] = {}
    for action_id, act in window.actions.actions.items():
        for seq in act.shortcuts():
            owners.setdefault(seq.toString(QKeySequence.SequenceFormat.PortableText), []).append(action_id)
    return owners


def test_every_key_of_the_window_reaches_one_action(window):
    owners = _shortcut_owners(window)
    assert owners and all(len(ids) == 1 for ids in owners.values()), {k: v for k, v in owners.items() if len(v) > 1}
    for key in QKeySequence.keyBindings(QKeySequence.StandardKey.Redo):
        assert owners[key.toString(QKeySequence.SequenceFormat.PortableText)] == ["edit.redo"]


def test_menus_and_toolbar_come_from_the_registry(window):
    titles = [m.title() for m in (a.menu() for a in window.menuBar().actions()) if m is not None]
    assert titles == ["&File", "&Edit", "&View", "E&valuation", "&Analysis", "&Help"]
    in_menus = set()
    for menu in window.actions.menus.values():
        in_menus.update(a for a in menu.actions())
    for spec in window.actions.registry:
        assert window.actions[spec.id] in in_menus, spec.id
    toolbar = [a for a in window.actions.toolbar.actions()]
    toolbar = [a for a in toolbar if not a.isSeparator()]
    assert toolbar == [window.actions[i] for i in ("file.open", "file.save", "edit.undo", "edit.redo", "view.find",
                                                   "eval.restart", "analysis.sweep", "training.start")]
    assert all(not a.icon().isNull() for a in toolbar)
    file_menu = window.actions.menus["File"]
    assert window.recent_menu.menuAction() in file_menu.actions()
    assert window.export_plot_menu.menuAction() in file_menu.actions()


def test_help_lists_every_keyboard_shortcut(window, qtbot):
    window.actions["help.shortcuts"].trigger()
    dialog = window.findChild(type(window.show_shortcuts()))
    qtbot.addWidget(dialog)
    rows = dialog.visible_rows()
    undo = [r for r in rows if r[1] == "Undo"]
    assert undo and "Ctrl+Z" in undo[0][2]
    keyed = [spec for spec in window.actions.registry if window.actions[spec.id].shortcuts()]
    assert len(rows) == len(keyed)


def test_ctrl_y_redoes_once_and_qt_reports_no_ambiguous_key(window, demo_paths, qtbot, qtlog):
    assert window.open_and_wait(demo_paths["keras"])
    s = window.session
    assert window.apply_edit(Scale(target="dense/kernel", factor=2.0))
    window.wait_idle()
    window.undo()
    window.wait_idle()
    assert s.position == 0 and window.act_redo.isEnabled()
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    window.wait_idle()
    assert s.position == 1
    assert not [r for r in qtlog.records if "Ambiguous" in r.message]


def test_enablement_follows_the_workspace(window, demo_paths):
    assert not window.actions["file.save_as"].isEnabled() and not window.act_undo.isEnabled()
    assert window.open_and_wait(demo_paths["keras"])
    assert window.actions["file.save_as"].isEnabled() and not window.act_undo.isEnabled()
    edit = Scale(target="dense/kernel", factor=2.0)
    assert window.apply_edit(edit)
    window.wait_idle()
    assert window.act_undo.isEnabled() and window.act_undo.text() == f"&Undo {edit.describe()}"
    window.selection.set_target("dense", 10)
    window.selection.set_neurons([1])
    assert window.actions["edit.zero_neurons"].isEnabled()
    window.selection.clear()
    assert not window.actions["edit.zero_neurons"].isEnabled()


@pytest.fixture
def gated(window, demo_paths, monkeypatch):
    """The window on the demo model whose changes wait for ``gate`` before they are computed."""
    assert window.open_and_wait(demo_paths["keras"])
    window.show_tensor("dense/kernel")
    window.settle()
    gate = threading.Event()
    s = window.session
    real = s.prepare

    def prepare(change):
        assert gate.wait(60), "the test never opened the gate"
        return real(change)

    monkeypatch.setattr(s, "prepare", prepare)
    # pytest-qt closes the window before this fixture's teardown when a test fails: open the gate first
    shutdown = window.edits.shutdown
    monkeypatch.setattr(window.edits, "shutdown", lambda: (gate.set(), shutdown()))
    yield window, gate
    gate.set()
    if isValid(window) and window.isVisible():  # a closed window commits nothing more
        window.wait_idle()


def test_a_second_apply_during_a_running_edit_adds_no_second_step(gated):
    window, gate = gated
    s = window.session
    before = window.histogram.title.text()
    edit = Scale(target="dense/kernel", factor=2.0)
    assert window.apply_edit(edit)
    assert window.busy and s.steps == []  # still running: nothing landed
    # the busy state: the views say so, the panel and history are off, so are the duplicating actions
    assert window.histogram.title.text() == f"<i>applying {edit.describe()}…</i>"
    assert not window.edit_panel.isEnabled() and not window.history.isEnabled()
    for action_id in ("edit.apply_op", "edit.clip_range", "edit.undo", "edit.revert_all", "file.apply_recipe"):
        assert not window.actions[action_id].isEnabled(), action_id
    assert not window.apply_edit(edit)  # refused, not queued
    window.actions["edit.apply_op"].trigger()  # Ctrl+Return: disabled, nothing happens
    gate.set()
    window.wait_idle()
    window.settle()
    assert [step.edit for step in s.steps] == [edit] and window.errors == []
    np.testing.assert_array_equal(s.array("dense/kernel"), s.original("dense/kernel") * np.float32(2.0))
    assert window.edit_panel.isEnabled() and window.history.isEnabled() and window.act_undo.isEnabled()
    assert "applying" not in window.histogram.title.text() and window.histogram.title.text() != ""
    assert before != "" and "(edited)" in window.histogram.title.text()


def test_undo_pressed_twice_while_the_first_runs_undoes_one_step(gated):
    window, gate = gated
    s = window.session
    gate.set()
    for factor in (2.0, 3.0):
        assert window.apply_edit(Scale(target="dense/kernel", factor=factor))
        window.wait_idle()
    gate.clear()
    window.act_undo.trigger()
    window.act_undo.trigger()  # disabled while the first undo runs: nothing happens
    assert not window.undo()
    gate.set()
    window.wait_idle()
    assert s.position == 1 and len(s.steps) == 2


def test_a_failed_change_is_reported_once_and_the_window_is_idle_again(gated, monkeypatch):
    window, gate = gated
    s = window.session
    gate.set()

    def refuse(change):
        raise ValueError("boom")

    monkeypatch.setattr(s, "prepare", refuse)
    assert window.apply_edit(Scale(target="dense/kernel", factor=2.0))
    window.wait_idle()
    assert len(window.errors) == 1 and "boom" in window.errors[0]
    assert s.steps == [] and window.edit_panel.isEnabled() and not window.busy
    assert window.goto(0) is False  # already there: nothing to run
    assert Goto(0) == Goto(0)


def test_a_recipe_applies_off_the_window_thread_all_or_nothing_and_a_bad_one_is_reported(window, demo_paths, tmp_path):
    from weightlab.core.recipe import save_recipe

    edits = [Scale(target="dense/kernel", factor=0.5), Scale(target="dense/bias", factor=2.0)]
    recipe = tmp_path / "r.json"
    ref = weightlab.open(demo_paths["keras"])
    try:
        for e in edits:
            ref.apply(e)
        save_recipe(ref.to_recipe(), recipe)
        assert window.open_and_wait(demo_paths["keras"])
        assert window.apply_recipe(recipe)
        assert window.busy
        window.wait_idle()
        s = window.session
        assert s.position == 2 and window.errors == []
        for name in ("dense/kernel", "dense/bias"):
            np.testing.assert_array_equal(s.array(name), ref.array(name))
    finally:
        ref.model.close()
    bad = tmp_path / "bad.json"
    bad.write_text('{"weightlab_recipe": 1, "edits": [{"op": "scale", "target": "nope/kernel", "factor": 2}]}')
    window.apply_recipe(bad)
    window.wait_idle()
    assert len(window.errors) == 1 and "bad.json" in window.errors[0]
    assert window.session.position == 2  # nothing of the bad recipe applied
