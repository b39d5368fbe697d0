"""Help › Keyboard Shortcuts: :class:`ShortcutsDialog`, a searchable table of the window's actions.

The table is built from the action registry (:class:`weightlab.app.actions.Action`
objects, or anything with ``.menu``, ``.label``, ``.shortcuts`` and ``.tip``),
so it lists exactly what the menus offer. Typing in the search field keeps
the rows whose menu, action, keys or tip contain the text (case-insensitive).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, QSortFilterProxyModel, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from weightlab.app.actions import STANDARD_PREFIX

__all__ = ["COLUMNS", "ShortcutsDialog", "is_typeable", "keys_text", "menu_text", "plain_label", "resolve_keys",
           "typeable_keys"]

#: The table's columns, in order.
COLUMNS = ("Menu", "Action", "Keys", "Tip")

_MNEMONIC = re.compile(r"&(.)")


def plain_label(text: str) -> str:
    """``text`` without Qt's mnemonic ampersands: ``"&Open…"`` -> ``"Open…"``, ``"Save && quit"`` -> ``"Save & quit"``."""
    return _MNEMONIC.sub(r"\1", text)


def menu_text(path: str) -> str:
    """A ``"/"``-separated menu path as the menus show it: ``"Edit/Operation"`` -> ``"Edit › Operation"``."""
    return " › ".join(plain_label(part) for part in path.split("/") if part)


def resolve_keys(texts: Iterable[str]) -> list[QKeySequence]:
    """The key sequences of shortcut texts on this platform, each once, in order.

    Parameters
    ----------
    texts : iterable of str
        Qt's portable form (``"Ctrl+Shift+S"``, several joined by ``"; "``)
        or ``"std:<StandardKey>"`` (``"std:Undo"``: every binding this
        platform has for ``QKeySequence.StandardKey.Undo``).

    Raises
    ------
    ValueError
        A ``std:`` name that is not a standard key, or a text Qt cannot read.
    RuntimeError
        No ``QGuiApplication`` exists yet (Qt would crash reading the platform's bindings).
    """
    if QGuiApplication.instance() is None:
        raise RuntimeError("resolve_keys needs a QGuiApplication: the key bindings are the platform's")
    out: list[QKeySequence] = []
    for text in texts:
        if text.startswith(STANDARD_PREFIX):
            name = text[len(STANDARD_PREFIX):]
            standard = getattr(QKeySequence.StandardKey, name, None)
            if not isinstance(standard, QKeySequence.StandardKey):
                raise ValueError(f"no standard key {name!r} (from shortcut {text!r})")
            found = QKeySequence.keyBindings(standard)
        else:
            found = QKeySequence.listFromString(text)
            if not found or any(seq.isEmpty() for seq in found):
                raise ValueError(f"cannot read shortcut {text!r}")
        out.extend(seq for seq in found if seq not in out)
    return out


def is_typeable(sequence: QKeySequence) -> bool:
    """Whether every key of ``sequence`` is on an ordinary keyboard (letters, digits, F1–F12, arrows...).

    False for media and special keys some platforms also bind to standard
    actions (X11 binds ``Open``, ``Save``, ``Undo``, ``Copy``... and ``F14``,
    the Undo key of old Sun keyboards): ``Qt.Key_Help``, F13–F35 and every key
    from ``Qt.Key_Back`` on (browser, media, launch and phone keys). An empty
    sequence is not typeable.
    """
    if sequence.isEmpty():
        return False
    for i in range(sequence.count()):
        key = sequence[i].key()
        if key == Qt.Key.Key_Help or Qt.Key.Key_F13.value <= key.value <= Qt.Key.Key_F35.value:
            return False
        if key.value >= Qt.Key.Key_Back.value:
            return False
    return True


def typeable_keys(sequences: Iterable[QKeySequence]) -> list[QKeySequence]:
    """``sequences`` without those a user cannot type on an ordinary keyboard (see :func:`is_typeable`)."""
    return [seq for seq in sequences if is_typeable(seq)]


def keys_text(sequences: Iterable[QKeySequence], sep: str = ", ") -> str:
    """Key sequences as this platform writes them, joined by ``sep`` (``""`` for none)."""
    native = (seq.toString(QKeySequence.SequenceFormat.NativeText) for seq in sequences)
    return sep.join(text for text in native if text)


class _RoomyDelegate(QStyledItemDelegate):
    """Cells sized to their lines plus a little air (rows fit several keys without crowding one-line rows)."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802 - Qt virtual
        return super().sizeHint(option, index) + QSize(8, 8)


class ShortcutsDialog(QDialog):
    """A searchable table of actions: menu, action, shortcut, tip.

    Parameters
    ----------
    actions : iterable
        Objects with ``menu`` (a ``"/"``-separated path), ``label`` (with
        ``&`` mnemonics), ``shortcuts`` (key texts, see :func:`resolve_keys`)
        and ``tip``, listed in the order given: the action registry.
    parent : QWidget, optional
    keys : callable, optional
        ``keys(action) -> iterable of QKeySequence``: the keys to show, e.g.
        those of the window's ``QAction`` (when the window binds more than
        the registry names). By default ``resolve_keys(action.shortcuts)``.
    shortcuts_only : bool, default False
        List only the actions that have keys.

    Raises
    ------
    ValueError
        From :func:`resolve_keys`, for a shortcut text Qt cannot read.

    Attributes
    ----------
    search : QLineEdit
        The filter text field (focused when the dialog opens).
    table : QTableView
        Shows :attr:`proxy`, the filtered view of :attr:`model`.
    """

    def __init__(
        self,
        actions: Iterable[Any],
        parent: QWidget | None = None,
        *,
        keys: Callable[[Any], Iterable[QKeySequence]] | None = None,
        shortcuts_only: bool = False,
    ):
        super().__init__(parent)
        self.setWindowTitle("Keyboard Shortcuts")
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        for action in actions:
            # One key per line: a standard key may have several bindings (Redo: Ctrl+Y, Ctrl+Shift+Z...).
            # Media keys bound too (X11: Open, Undo, F14...) still work but are not listed.
            bound = keys(action) if keys is not None else resolve_keys(action.shortcuts)
            shown = keys_text(typeable_keys(bound), "\n")
            if shortcuts_only and not shown:
                continue
            cells = (menu_text(action.menu), plain_label(action.label), shown, action.tip or "")
            items = []
            for text in cells:
                item = QStandardItem(text)
                item.setEditable(False)
                item.setToolTip(text)
                items.append(item)
            self.model.appendRow(items)

        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)  # every column
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search menus, actions, keys and tips")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.set_filter)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setItemDelegate(_RoomyDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().hide()
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.table.horizontalHeader()
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for column in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

        self.count = QLabel()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        lay.addWidget(self.search)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.count)
        lay.addWidget(buttons)
        screen = (parent.screen() if parent is not None else self.screen()).availableGeometry()
        self.resize(min(920, int(0.9 * screen.width())), min(560, int(0.85 * screen.height())))
        self.search.setFocus()
        self._update_count()

    def set_filter(self, text: str) -> None:
        """Keep the rows containing ``text`` in any column (case-insensitive; ``""`` shows all)."""
        self.proxy.setFilterFixedString(text.strip())
        self._update_count()

    def visible_rows(self) -> list[tuple[str, ...]]:
        """The rows the table shows now, as tuples of cell texts in :data:`COLUMNS` order (keys one per line)."""
        proxy = self.proxy
        return [
            tuple(str(proxy.index(row, col).data()) for col in range(len(COLUMNS)))
            for row in range(proxy.rowCount())
        ]

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        text = self.search.text().strip()
        if not text:
            self.count.setText(f"{total} actions")
        elif shown:
            self.count.setText(f"{shown} of {total} actions match “{text}”")
        else:
            self.count.setText(f"No action matches “{text}”")
