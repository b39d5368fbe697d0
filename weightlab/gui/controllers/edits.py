"""Edits: apply, undo, redo, go to a step, switch a step, revert, set a cell, apply a recipe.

:class:`EditsController` turns the user's edit requests into changes of the
workspace's session and keeps the edit panel, the history list and the journal
in step with it. The views and the evaluation follow from the workspace's
events, never from here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from weightlab.app.workspace import (
    BusyChanged,
    CurrentChanged,
    HistoryChanged,
    SessionReplaced,
    TensorsChanged,
    Workspace,
)
from weightlab.core.edits import Edit, Revert, SetValue
from weightlab.core.errors import WeightLabError

if TYPE_CHECKING:
    from ..main_window import MainWindow


class EditsController(QObject):
    """Changes the workspace's session as the user asks.

    Parameters
    ----------
    window:
        The main window (its edit panel, history list, journal, dialogs and status bar).
    workspace:
        Whose session is edited.
    """

    def __init__(self, window: MainWindow, workspace: Workspace):
        super().__init__(window)
        self.w = window
        self.ws = workspace
        window.edit_panel.editRequested.connect(self.apply_edit)
        window.heatmap.cellDoubleClicked.connect(self.set_cell)
        window.history.stepToggled.connect(self.set_step_enabled)
        window.history.gotoRequested.connect(self.goto)
        window.tree.targetsSelected.connect(window.edit_panel.set_tree_selection)
        window.histogram.rangeChanged.connect(window.edit_panel.set_range)
        workspace.subscribe(self._on_replaced, SessionReplaced)
        workspace.subscribe(lambda ev: window.edit_panel.set_tensor(ev.name), CurrentChanged)
        workspace.subscribe(lambda _ev: window.history.refresh(), TensorsChanged, HistoryChanged)
        workspace.subscribe(self._on_busy, BusyChanged)

    def _on_replaced(self, ev: SessionReplaced) -> None:
        self.w.edit_panel.set_tensor(None)
        self.w.edit_panel.set_session(ev.session)
        self.w.history.set_session(ev.session)

    def _on_busy(self, ev: BusyChanged) -> None:
        busy = ev.label is not None
        self.w.edit_panel.setEnabled(not busy)
        self.w.history.setEnabled(not busy)

    # -- changes ------------------------------------------------------------------------
    def apply_edit(self, edit: Edit) -> bool:
        """Apply ``edit`` to the session; a misfit edit is reported, not raised."""
        s = self.ws.session
        if s is None:
            return False
        try:
            s.apply(edit)
        except WeightLabError as e:
            self.w._error("Cannot apply edit", str(e))
            return False
        self.w.statusBar().showMessage(edit.describe(), 4000)
        return True

    def set_cell(self, index: tuple, value: float) -> bool:
        """Ask for a new value of the shown tensor at ``index`` (a heatmap double-click) and set it."""
        name = self.ws.current
        if self.ws.session is None or name is None:
            return False
        where = f"{name}[{', '.join(map(str, index))}]"
        new = self.w._ask_value("Set value", f"{where}\ncurrent value {value:.8g}\nnew value:", value)
        if new is None:
            return False
        return self.apply_edit(SetValue(target=name, index=tuple(index), value=new))

    def set_step_enabled(self, index: int, enabled: bool) -> None:
        """Switch history step ``index`` on or off; the weights are recomputed by replay."""
        s = self.ws.session
        if s is None:
            return
        try:
            s.set_step_enabled(index, enabled)
        except (WeightLabError, IndexError) as e:
            self.w._error("Cannot switch the step", str(e))
        self.w.journal.sync()  # a step of the undone tail changes no values: not announced
        self.ws.history_changed()

    def undo(self) -> None:
        """Edit › Undo."""
        s = self.ws.session
        if s is not None:
            s.undo()
            self.w.journal.sync()  # also a step that changes no values (switched off)

    def redo(self) -> None:
        """Edit › Redo."""
        s = self.ws.session
        if s is not None:
            s.redo()
            self.w.journal.sync()  # also a step that changes no values (switched off)

    def goto(self, position: int) -> None:
        """Jump to history ``position`` (number of applied steps)."""
        s = self.ws.session
        if s is not None:
            s.goto(position)
            self.w.journal.sync()  # also a step that changes no values (switched off)

    def revert_tensor(self) -> None:
        """Edit › Revert tensor (the shown one), as an undoable step."""
        s, name = self.ws.session, self.ws.current
        if s is not None and name and s.is_edited(name):
            self.apply_edit(Revert(target=name))

    def revert_all(self) -> None:
        """Edit › Revert all, as an undoable step."""
        s = self.ws.session
        if s is not None and s.edited_names:
            self.apply_edit(Revert(target="*"))

    def apply_recipe(self, path: str | os.PathLike[str]) -> bool:
        """Apply a recipe file as one transaction; errors go to a dialog."""
        s = self.ws.session
        if s is None:
            return False
        try:
            s.apply_recipe(path)
        except WeightLabError as e:
            self.w._error("Cannot apply recipe", str(e))
            return False
        return True
