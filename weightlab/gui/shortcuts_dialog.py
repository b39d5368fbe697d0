"""Help › Keyboard Shortcuts: :class:`ShortcutsDialog`, a searchable table of the window's actions.

The table is built from any iterable of objects with ``.menu``, ``.label``,
``.shortcut`` and ``.tip`` (the window passes its action registry,
:mod:`weightlab.app.actions`), so it lists exactly what the menus offer.
Typing in the search field keeps the rows whose menu, action, shortcut or tip
contains the text (case-insensitive).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QKeySequence, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

__all__ = ["COLUMNS", "ShortcutsDialog", "plain_label", "shortcut_text"]

#: The table's columns, in order.
COLUMNS = ("Menu", "Action", "Shortcut", "Tip")

_MNEMONIC = re.compile(r"&(.)")


def plain_label(text: str) -> str:
    """``text`` without Qt's mnemonic ampersands: ``"&Open…"`` -> ``"Open…"``, ``"Save && quit"`` -> ``"Save & quit"``."""
    return _MNEMONIC.sub(r"\1", text)


def shortcut_text(shortcut: str | Iterable[str] | None) -> str:
    """The shortcut(s) as this platform writes them, joined by ``", "``; ``""`` for None.

    ``shortcut`` is one key sequence in Qt's portable form (``"Ctrl+Shift+S"``),
    several separated by ``"; "``, or an iterable of them.
    """
    if shortcut is None:
        return ""
    parts = [shortcut] if isinstance(shortcut, str) else list(shortcut)
    sequences = [seq for part in parts for seq in QKeySequence.listFromString(part)]
    native = (seq.toString(QKeySequence.SequenceFormat.NativeText) for seq in sequences)
    return ", ".join(text for text in native if text)


class ShortcutsDialog(QDialog):
    """A searchable table of actions: menu, action, shortcut, tip.

    Parameters
    ----------
    actions : iterable
        Objects with ``menu`` (str), ``label`` (str, ampersands allowed),
        ``shortcut`` (str, iterable of str, or None) and ``tip`` (str or
        None), listed in the order given.
    parent : QWidget, optional
    shortcuts_only : bool, default False
        List only the actions that have a shortcut.

    Attributes
    ----------
    search : QLineEdit
        The filter text field (focused when the dialog opens).
    table : QTableView
        Shows :attr:`proxy`, the filtered view of :attr:`model`.
    """

    def __init__(self, actions: Iterable[Any], parent: QWidget | None = None, *, shortcuts_only: bool = False):
        super().__init__(parent)
        self.setWindowTitle("Keyboard Shortcuts")
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        for action in actions:
            keys = shortcut_text(action.shortcut)
            if shortcuts_only and not keys:
                continue
            tip = action.tip or ""
            cells = (str(action.menu), plain_label(str(action.label)), keys, tip)
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
        self.search.setPlaceholderText("Search actions, shortcuts and tips")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.set_filter)

        self.table = QTableView()
        self.table.setModel(self.proxy)
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

        self.count = QLabel()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        lay.addWidget(self.search)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.count)
        lay.addWidget(buttons)
        self.resize(760, 520)
        self.search.setFocus()
        self._update_count()

    def set_filter(self, text: str) -> None:
        """Keep the rows containing ``text`` in any column (case-insensitive; ``""`` shows all)."""
        self.proxy.setFilterFixedString(text.strip())
        self._update_count()

    def visible_rows(self) -> list[tuple[str, ...]]:
        """The rows the table shows now, as tuples of cell texts in :data:`COLUMNS` order."""
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
