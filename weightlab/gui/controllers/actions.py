"""The window's QActions, menus, toolbar and shortcut list, built from the action registry.

:class:`ActionsController` turns each :class:`~weightlab.app.actions.Action`
into a ``QAction`` bound to a slot of the window, fills the menu bar and the
main toolbar (a ``QToolBar`` named ``main-toolbar``, so the window's saved
state keeps where it sits and whether it is shown), and recomputes every
action's enabled state and label when the workspace announces a change
(never because a flow asked for it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QStyle, QToolBar

from weightlab.app.actions import ActionRegistry, ShortcutConflict
from weightlab.app.workspace import Workspace

from ..shortcuts_dialog import ShortcutsDialog, resolve_keys


class ActionsController:
    """Builds the window's actions from ``registry`` and keeps them enabled as the workspace allows.

    Parameters
    ----------
    window:
        The main window: the actions are added to it (their keys work
        everywhere in it) and its menu bar and toolbar are filled.
    workspace:
        Enablement and labels are recomputed on each of its events.
    registry:
        The actions.
    slots:
        ``{action id: callable}``; a checkable action's slot gets the new
        state, the others nothing. An action without a slot is created (the
        window may connect it itself).

    Raises
    ------
    ShortcutConflict
        Two actions resolve to one key on this platform.
    ValueError
        A shortcut text Qt cannot read (:func:`~weightlab.gui.shortcuts_dialog.resolve_keys`).
    """

    def __init__(
        self,
        window: QMainWindow,
        workspace: Workspace,
        registry: ActionRegistry,
        slots: Mapping[str, Callable[..., object]],
    ):
        self.window = window
        self.workspace = workspace
        self.registry = registry
        self.actions: dict[str, QAction] = {}
        self.menus: dict[str, QMenu] = {}
        owners: dict[str, str] = {}
        for spec in registry:
            act = QAction(spec.label, window)
            keys = resolve_keys(spec.shortcuts)
            for seq in keys:
                text = seq.toString(QKeySequence.SequenceFormat.PortableText)
                if text in owners:
                    raise ShortcutConflict(f"{spec.id}: key {text} is also bound to {owners[text]!r}")
                owners[text] = spec.id
            if keys:
                act.setShortcuts(keys)
            if spec.tip:
                # the toolbar shows icons only: the tooltip names the action and its key first
                key = f" ({keys[0].toString(QKeySequence.SequenceFormat.NativeText)})" if keys else ""
                act.setToolTip(f"{spec.text}{key}: {spec.tip}")
                act.setStatusTip(spec.tip)
            if spec.checkable:
                act.setCheckable(True)
                act.setChecked(spec.checked)
            if spec.icon:
                act.setIcon(window.style().standardIcon(getattr(QStyle.StandardPixmap, spec.icon)))
            slot = slots.get(spec.id)
            if slot is not None:
                if spec.checkable:
                    act.toggled.connect(slot)
                else:
                    act.triggered.connect(lambda _checked=False, slot=slot: slot())
            window.addAction(act)
            self.actions[spec.id] = act
        self.toolbar = QToolBar("Toolbar", window)
        self.toolbar.setObjectName("main-toolbar")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.toolbar.setIconSize(QSize(20, 20))
        section = None
        for spec in registry.toolbar():
            if section is not None and spec.menu.split("/")[0] != section:
                self.toolbar.addSeparator()
            section = spec.menu.split("/")[0]
            self.toolbar.addAction(self.actions[spec.id])
        window.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)
        workspace.subscribe(lambda _ev: self.update())
        self.update()

    def menu(self, path: str) -> QMenu:
        """The menu at ``path`` (``"Edit/Operation"``), created (empty) in the menu bar when new."""
        if path not in self.menus:
            parent, _, name = path.rpartition("/")
            title = {"File": "&File", "Edit": "&Edit", "View": "&View", "Evaluation": "E&valuation",
                     "Analysis": "&Analysis", "Help": "&Help", "Edit/Operation": "&Operation",
                     "View/Theme": "&Theme"}.get(path, name)
            holder = self.menu(parent) if parent else self.window.menuBar()
            self.menus[path] = holder.addMenu(title)
            self.menus[path].setToolTipsVisible(True)
        return self.menus[path]

    def fill_menu(self, path: str, after: Mapping[str, Callable[[QMenu], object]] | None = None) -> QMenu:
        """Add the registry's actions of ``path`` to its menu, a separator between sections.

        ``after``: ``{section: add(menu)}`` adds more (a submenu) at the end of a section.
        """
        menu = self.menu(path)
        after = after or {}
        section = None
        for spec in self.registry.in_menu(path):
            if section is not None and spec.section != section:
                if section in after:
                    after[section](menu)
                menu.addSeparator()
            section = spec.section
            menu.addAction(self.actions[spec.id])
        if section is not None and section in after:
            after[section](menu)
        return menu

    def __getitem__(self, action_id: str) -> QAction:
        return self.actions[action_id]

    def update(self) -> None:
        """Enable and label every action as the workspace's state allows."""
        ws = self.workspace
        for spec in self.registry:
            act = self.actions[spec.id]
            act.setEnabled(spec.is_enabled(ws))
            if spec.dynamic_label is not None:
                act.setText(spec.label_in(ws))

    def shortcuts_dialog(self) -> ShortcutsDialog:
        """Help › Keyboard Shortcuts: every action with a key, the keys as bound here (shown, not modal)."""
        dialog = ShortcutsDialog(
            self.registry, self.window, keys=lambda spec: self.actions[spec.id].shortcuts(), shortcuts_only=True
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog
