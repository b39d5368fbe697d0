"""The Qt-free workspace: state, typed events, and what the actions are enabled by (no Qt imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from weightlab.app.actions import window_actions
from weightlab.app.workspace import (
    BusyChanged,
    CurrentChanged,
    DataChanged,
    Event,
    HistoryChanged,
    ModelInfoChanged,
    OptionsChanged,
    Saved,
    SelectionChanged,
    SessionReplaced,
    TensorsChanged,
    TrustChanged,
    Workspace,
)
from weightlab.core.edits import Scale
from weightlab.core.model import ModelFile
from weightlab.core.session import EditSession, SetStepEnabled


def _session(tmp_path: Path, name: str = "m.fake") -> EditSession:
    arrays = {"d/kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "d/bias": np.ones(3, np.float32)}
    return EditSession(ModelFile.from_arrays(arrays, tmp_path / name, classes={"d": "Dense"}))


def _recorder(ws: Workspace, *types: type[Event]) -> list[Event]:
    seen: list[Event] = []
    ws.subscribe(seen.append, *types)
    return seen


def test_the_application_model_imports_neither_qt_nor_tensorflow():
    code = (
        "import sys, weightlab.app.workspace, weightlab.app.actions\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'tensorflow', 'keras'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_new_session_resets_what_was_shown_and_is_announced_once(tmp_path):
    ws = Workspace()
    first, second = _session(tmp_path, "a.fake"), _session(tmp_path, "b.fake")
    ws.set_session(first, tmp_path / "a.npz")
    ws.set_current("d/kernel")
    ws.set_option("signature", "serving_default")
    ws.set_model_info("ready")
    ws.set_selected_neurons(2)
    ws.comparison_base = first
    seen = _recorder(ws)
    ws.set_session(second, None)
    assert seen == [SessionReplaced(second, first, None)]
    assert ws.session is second and ws.current is None and ws.data_path is None
    assert ws.eval_options == {} and ws.model_info is None and ws.selected_neurons == 0
    assert ws.comparison_base is None


def test_edits_of_the_session_become_tensor_and_history_events(tmp_path):
    ws = Workspace()
    s = _session(tmp_path)
    ws.set_session(s)
    seen = _recorder(ws, TensorsChanged, HistoryChanged)
    s.apply(Scale(target="d/kernel", factor=2.0))
    assert seen == [HistoryChanged(1, 1), TensorsChanged(frozenset({"d/kernel"}))]
    assert ws.changes == 1 and ws.edited() and ws.edited(["d/kernel"]) and not ws.edited(["d/bias"])
    s.undo()
    assert seen[-2:] == [HistoryChanged(0, 1), TensorsChanged(frozenset({"d/kernel"}))]
    assert not ws.edited()


def test_a_replaced_session_no_longer_reaches_the_subscribers(tmp_path):
    ws = Workspace()
    old = _session(tmp_path, "a.fake")
    ws.set_session(old)
    ws.set_session(_session(tmp_path, "b.fake"))
    seen = _recorder(ws)
    old.apply(Scale(target="d/kernel", factor=2.0))
    assert seen == [] and ws.changes == 0


def test_a_step_switch_of_an_undone_tail_changes_no_values_but_is_announced(tmp_path):
    ws = Workspace()
    s = _session(tmp_path)
    ws.set_session(s)
    s.apply(Scale(target="d/kernel", factor=2.0))
    s.undo()
    seen = _recorder(ws)
    s.commit(s.prepare(SetStepEnabled(0, False)))  # the undone step: no value changes, the session is quiet
    assert seen == []
    ws.history_changed()  # what the window's edit controller says after every landed change
    assert seen == [HistoryChanged(0, 1)]


def test_setters_announce_changes_only(tmp_path):
    ws = Workspace()
    seen = _recorder(ws)
    ws.set_data_path(None)
    ws.set_trust(False)
    ws.set_busy(None)
    ws.set_selected_neurons(0)
    assert seen == []
    data = tmp_path / "d.npz"
    ws.set_data_path(data)
    ws.set_data_path(data)
    ws.set_data_path(data, force=True)  # the same file again: evaluate it again
    ws.set_trust(True)
    ws.set_busy("Scale d/kernel")
    ws.set_busy(None)
    ws.set_selected_neurons(3)
    ws.saved(tmp_path / "out.fake")
    assert seen == [
        DataChanged(data), DataChanged(data), TrustChanged(True), BusyChanged("Scale d/kernel"),
        BusyChanged(None), SelectionChanged(3), Saved(tmp_path / "out.fake"),
    ]


def test_options_and_the_current_tensor(tmp_path):
    ws = Workspace()
    seen = _recorder(ws, OptionsChanged, CurrentChanged, ModelInfoChanged)
    with pytest.raises(KeyError, match="no tensor 'd/kernel'"):
        ws.set_current("d/kernel")  # no model shown
    ws.set_session(_session(tmp_path))
    with pytest.raises(KeyError, match="no tensor 'x'"):
        ws.set_current("x")
    ws.set_current("d/kernel")
    ws.set_current("d/kernel")  # shown again: refreshed
    ws.set_option("output", "logits")
    options = ws.eval_options
    options["output"] = "changed by the caller"
    ws.set_option("output", None)
    ws.set_model_info("info")
    assert seen == [
        CurrentChanged("d/kernel"), CurrentChanged("d/kernel"), OptionsChanged({"output": "logits"}),
        OptionsChanged({}), ModelInfoChanged("info"),
    ]


def test_unsubscribing_during_delivery_stops_later_deliveries():
    ws = Workspace()
    calls: list[str] = []
    stop_b = None

    def a(_ev):
        calls.append("a")
        stop_b()

    ws.subscribe(a)
    stop_b = ws.subscribe(lambda _ev: calls.append("b"))
    ws.set_trust(True)
    assert calls == ["a"]
    stop_b()  # idempotent
    ws.set_trust(False)
    assert calls == ["a", "a"]


def test_actions_are_enabled_by_the_workspace_state(tmp_path):
    reg = window_actions()
    ws = Workspace()
    off = reg.enablement(ws)
    assert not off["file.save_as"] and not off["edit.undo"] and not off["edit.zero_neurons"]
    assert off["file.open"] and off["help.shortcuts"]
    s = _session(tmp_path)
    ws.set_session(s)
    s.apply(Scale(target="d/kernel", factor=2.0))
    on = reg.enablement(ws)
    assert on["file.save_as"] and on["edit.undo"] and not on["edit.redo"] and on["edit.revert_all"]
    assert reg["edit.undo"].label_in(ws) == f"&Undo {s.steps[0].edit.describe()}"
    ws.set_current("d/kernel")
    ws.set_selected_neurons(1)
    assert reg.enablement(ws)["edit.revert"] and reg.enablement(ws)["edit.zero_neurons"]
    ws.set_busy("Scale d/kernel")  # a change runs: nothing that would queue another step
    busy = reg.enablement(ws)
    for action_id in ("edit.undo", "edit.revert", "edit.revert_all", "edit.apply_op", "edit.zero_neurons",
                      "file.apply_recipe", "file.save_as"):
        assert not busy[action_id], action_id
    assert busy["file.open"] and busy["eval.restart"]
