"""Edits: apply, undo, redo, go to a step, switch a step, revert, set a cell, apply a recipe.

:class:`EditsController` turns the user's edit requests into changes of the
workspace's session and keeps the edit panel, the history list and the journal
in step with it. Every change runs off the window's thread
(:class:`~weightlab.gui.edit_runner.QtEditRunner`): while it runs the
workspace is busy (the edit panel and history are disabled, the actions that
would queue a duplicate step too, the plots say "applying …"); a second
request is refused, not queued. The step lands on the window's thread, where
the session notifies the workspace; the views and the evaluation follow from
the workspace's events, never from here.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QObject

from weightlab.app.workspace import (
    BusyChanged,
    CurrentChanged,
    HistoryChanged,
    SessionReplaced,
    Workspace,
)
from weightlab.core.edits import Edit, Revert, SetValue
from weightlab.core.errors import WeightLabError
from weightlab.core.recipe import load_recipe
from weightlab.core.session import ApplyEdit, ApplyEdits, Change, EditSession, Goto, SetStepEnabled

from ..edit_runner import QtEditRunner
from .host import WindowHost


class EditsController(QObject):
    """Changes the workspace's session as the user asks.

    Parameters
    ----------
    window:
        The main window (its edit panel, history list, journal, dialogs and status bar).
    workspace:
        Whose session is edited.
    """

    def __init__(self, window: WindowHost, workspace: Workspace):
        super().__init__(window)
        self.w = window
        self.ws = workspace
        self.runner = QtEditRunner(self)
        self._running: tuple[EditSession, str, str] | None = None  # (session, error title, done message)
        self.runner.started.connect(workspace.set_busy)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        window.edit_panel.editRequested.connect(self.apply_edit)
        window.heatmap.cellDoubleClicked.connect(self.set_cell)
        window.history.stepToggled.connect(self.set_step_enabled)
        window.history.gotoRequested.connect(self.goto)
        window.tree.targetsSelected.connect(window.edit_panel.set_tree_selection)
        window.histogram.rangeChanged.connect(window.edit_panel.set_range)
        workspace.subscribe(self._on_replaced, SessionReplaced)
        workspace.subscribe(lambda ev: window.edit_panel.set_tensor(ev.name), CurrentChanged)
        workspace.subscribe(lambda _ev: window.history.refresh(), HistoryChanged)
        workspace.subscribe(self._on_busy, BusyChanged)

    def _on_replaced(self, ev: SessionReplaced) -> None:
        self.w.edit_panel.set_tensor(None)
        self.w.edit_panel.set_session(ev.session)
        self.w.history.set_session(ev.session)

    def _on_busy(self, ev: BusyChanged) -> None:
        busy = ev.label is not None
        self.w.edit_panel.setEnabled(not busy)
        self.w.history.setEnabled(not busy)

    # -- running a change ---------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a change of the session runs (until its step has landed)."""
        return self.runner.busy

    def _submit(self, change: Change, label: str, error_title: str, done: str = "") -> bool:
        """Run ``change`` off the window's thread; False when no model is shown or another change runs."""
        s = self.ws.session
        if s is None:
            return False
        if self.runner.busy:
            self.w.statusBar().showMessage(f"Busy applying {self.ws.busy or 'a change'}: {label} not started", 4000)
            return False
        self._running = (s, error_title, done)
        if not self.runner.submit(s, change, label):
            self._running = None
            return False
        return True

    def _end(self) -> tuple[EditSession, str, str] | None:
        running, self._running = self._running, None
        self.ws.set_busy(None)
        if running is None or running[0] is not self.ws.session:
            return None  # another model is shown now: the change landed in a session no one sees
        return running

    def _on_finished(self, changed: object) -> None:
        running = self._end()
        if running is None:
            return
        self.w.journal.sync()  # also a step that changes no values (switched off, an undone tail)
        if not changed:  # the session announced nothing: its history changed all the same
            self.ws.history_changed()
        if running[2]:
            self.w.statusBar().showMessage(running[2], 4000)

    def _on_failed(self, message: str) -> None:
        running = self._end()
        if running is None:
            return
        self.w.history.refresh()  # a refused step switch: its box shows the step's state again
        self.w._error(running[1], message)

    def shutdown(self) -> None:
        """The window closes: refuse further changes and wait for a running one (it is not committed)."""
        self.runner.shutdown()

    # -- changes ------------------------------------------------------------------------
    def apply_edit(self, edit: Edit) -> bool:
        """Start applying ``edit``; a misfit edit is reported in a dialog when it lands, not raised.

        Returns
        -------
        bool
            True when the edit started (False: no model, or another change runs).
        """
        description = edit.describe()
        return self._submit(ApplyEdit(edit), description, "Cannot apply edit", description)

    def apply_edits(self, edits: list[Edit] | tuple[Edit, ...], source: str) -> bool:
        """Start applying ``edits`` in order as one transaction (a sweep point, a plan); ``source`` names it.

        One edit is an ordinary :meth:`apply_edit`. Returns True when the change started.
        """
        if len(edits) == 1:
            return self.apply_edit(edits[0])
        return self._submit(ApplyEdits(tuple(edits), source), source, f"Cannot apply {source}", f"{source} applied")

    def set_cell(self, index: tuple, value: float) -> bool:
        """Ask for a new value of the shown tensor at ``index`` (a heatmap double-click) and set it."""
        name = self.ws.current
        if self.ws.session is None or name is None or self.runner.busy:
            return False
        where = f"{name}[{', '.join(map(str, index))}]"
        new = self.w._ask_value("Set value", f"{where}\ncurrent value {value:.8g}\nnew value:", value)
        if new is None:
            return False
        return self.apply_edit(SetValue(target=name, index=tuple(index), value=new))

    def set_step_enabled(self, index: int, enabled: bool) -> bool:
        """Start switching history step ``index`` on or off (the steps after it are replayed)."""
        s = self.ws.session
        if s is None:
            return False
        if not 0 <= index < len(s.steps):
            self.w._error("Cannot switch the step", f"no step {index + 1}: the history has {len(s.steps)}")
            return False
        verb = "Switching on" if enabled else "Switching off"
        if not self._submit(SetStepEnabled(index, enabled), f"{verb} step {index + 1}", "Cannot switch the step"):
            self.w.history.refresh()  # the box the user clicked shows the step's state again
            return False
        return True

    def goto(self, position: int) -> bool:
        """Start jumping to history ``position`` (number of applied steps)."""
        s = self.ws.session
        if s is None or position == s.position:
            return False
        return self._submit(Goto(position), f"step {position}", "Cannot go to the step")

    def undo(self) -> bool:
        """Edit › Undo."""
        s = self.ws.session
        if s is None or not s.can_undo:
            return False
        label = f"undo {s.steps[s.position - 1].edit.describe()}"
        return self._submit(Goto(s.position - 1), label, "Cannot undo")

    def redo(self) -> bool:
        """Edit › Redo."""
        s = self.ws.session
        if s is None or not s.can_redo:
            return False
        label = f"redo {s.steps[s.position].edit.describe()}"
        return self._submit(Goto(s.position + 1), label, "Cannot redo")

    def revert_tensor(self) -> bool:
        """Edit › Revert tensor (the shown one), as an undoable step."""
        s, name = self.ws.session, self.ws.current
        if s is not None and name and s.is_edited(name):
            return self.apply_edit(Revert(target=name))
        return False

    def revert_all(self) -> bool:
        """Edit › Revert all, as an undoable step."""
        s = self.ws.session
        if s is not None and s.edited_names:
            return self.apply_edit(Revert(target="*"))
        return False

    def apply_recipe(self, path: str | os.PathLike[str]) -> bool:
        """Start applying a recipe file as one transaction; a recipe that cannot be read or fit goes to a dialog."""
        if self.ws.session is None or self.runner.busy:
            return False
        try:
            edits = load_recipe(path)
        except WeightLabError as e:
            self.w._error("Cannot apply recipe", str(e))
            return False
        if not edits:
            return True  # nothing to apply
        name = os.fspath(path)
        return self._submit(ApplyEdits(tuple(edits), name), f"recipe {os.path.basename(name)}", "Cannot apply recipe")
