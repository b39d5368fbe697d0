"""The model tree: layers in model order, their tensors as children."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from weightlab.core.session import EditSession
from weightlab.core.stats import zero_fraction

from .formatting import fmt_count, fmt_shape

#: Colour of edited tensors and of the dot marking them.
EDITED_COLOR = QColor("#d9480f")
_NAME, _SHAPE, _DTYPE, _PARAMS, _ZEROS = range(5)
_NCOLS = 5
_ROLE_TENSOR = Qt.ItemDataRole.UserRole + 1
#: Tensors larger than this are not read just to show their zero fraction.
LAZY_ZEROS_SIZE = 5_000_000


class ModelTree(QWidget):
    """Summary header plus a tree: layer (name, class, params) -> tensors.

    Tensor rows show the weight name (the canonical name ``layer/weight`` is
    its path in the tree and its tooltip), shape, dtype, parameter count and
    zero fraction; edited tensors are bold, orange and marked with a dot.

    Signals
    -------
    tensorSelected(str):
        Canonical name of the tensor the user selected.
    """

    tensorSelected = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = QLabel("No model open.\nFile › Open… or drop a .keras/.h5 file here.")
        self.summary.setWordWrap(True)
        self.summary.setContentsMargins(4, 4, 4, 4)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Layer / tensor", "Class / shape", "dtype", "Params", "Zeros"])
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setRootIsDecorated(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        for col in range(_NCOLS):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        # Names are what users read: they keep their full width and the class
        # column gives way (elided in the middle; full text in the tooltip).
        header.setSectionResizeMode(_SHAPE, QHeaderView.ResizeMode.Stretch)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tree.setIndentation(12)
        header.setMinimumSectionSize(40)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.summary)
        lay.addWidget(self.tree)
        self.setMinimumWidth(260)
        self._session: EditSession | None = None
        self._items: dict[str, QTreeWidgetItem] = {}
        self.tree.currentItemChanged.connect(self._on_current)

    def set_session(self, session: EditSession | None) -> None:
        """Show the layers and tensors of ``session`` (None clears)."""
        self._session = session
        self._items.clear()
        self.tree.clear()
        if session is None:
            self.summary.setText("No model open.")
            return
        model = session.model
        n_tensors = len(model.tensors)
        self.summary.setText(
            f"<b>{model.path.name}</b><br>format {model.format} · {len(model.layers)} layers · "
            f"{n_tensors} tensors · {fmt_count(model.param_count)} parameters"
        )
        self.summary.setToolTip(str(model.path))
        for layer in model.layers:
            litem = QTreeWidgetItem([layer.name, layer.class_name, "", fmt_count(layer.param_count), ""])
            litem.setFlags(litem.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            litem.setForeground(_SHAPE, QBrush(QColor("#666666")))
            bold = QFont(litem.font(_NAME))
            bold.setBold(True)
            litem.setFont(_NAME, bold)
            for col in (_PARAMS, _ZEROS):
                litem.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            for t in layer.tensors:
                # The row shows the weight name under its layer (the canonical
                # name is layer/weight); the full name and file key are in the tooltip.
                item = QTreeWidgetItem([t.weight, fmt_shape(t.shape), t.dtype, fmt_count(t.size), ""])
                item.setData(_NAME, _ROLE_TENSOR, t.name)
                item.setToolTip(_NAME, f"{t.name}\nkey in file: {t.key}\ntrainable: {t.trainable}")
                for col in (_PARAMS, _ZEROS):
                    item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                litem.addChild(item)
                self._items[t.name] = item
            self.tree.addTopLevelItem(litem)
        self.tree.expandAll()
        self.refresh(set(self._items))

    def refresh(self, names: set[str]) -> None:
        """Update zero fraction and edited marks of tensors ``names``."""
        if self._session is None:
            return
        for name in names:
            item = self._items.get(name)
            if item is None:
                continue
            edited = self._session.is_edited(name)
            info = self._session.model.tensors[name]
            zeros = self._zero_text(name, info.size)
            item.setText(_ZEROS, zeros)
            item.setText(_NAME, ("● " if edited else "") + info.weight)
            font = QFont(item.font(_NAME))
            font.setBold(edited)
            brush = QBrush(EDITED_COLOR) if edited else QBrush()
            for col in range(_NCOLS):
                item.setFont(col, font)
                item.setForeground(col, brush)
            item.setToolTip(_ZEROS, "fraction of values exactly zero")

    def _zero_text(self, name: str, size: int) -> str:
        # Huge tensors are not read just for the tree; their zero fraction
        # arrives with their statistics (set_zero_fraction) once shown.
        if size > LAZY_ZEROS_SIZE:
            return "…"
        try:
            return f"{100 * zero_fraction(self._session.array(name)):.1f} %"
        except Exception:  # noqa: BLE001 - a broken tensor shows as unknown, not a crash
            return "?"

    def set_zero_fraction(self, name: str, fraction: float) -> None:
        """Show a zero fraction computed elsewhere (by the statistics of a shown tensor)."""
        item = self._items.get(name)
        if item is not None:
            item.setText(_ZEROS, f"{100 * fraction:.1f} %")

    def select(self, name: str) -> None:
        """Make tensor ``name`` the current item (emits tensorSelected)."""
        item = self._items.get(name)
        if item is not None:
            self.tree.setCurrentItem(item)

    def first_tensor(self) -> str | None:
        """Name of the first tensor with a kernel-like shape (2-D or more), else the first one."""
        if self._session is None:
            return None
        tensors = list(self._session.model.tensors.values())
        for t in tensors:
            if len(t.shape) >= 2:
                return t.name
        return tensors[0].name if tensors else None

    def is_marked_edited(self, name: str) -> bool:
        """True when the row of ``name`` shows the edited mark (for tests)."""
        item = self._items.get(name)
        return item is not None and item.font(_NAME).bold() and item.text(_NAME).startswith("●")

    def _on_current(self, current: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        if current is None:
            return
        name = current.data(_NAME, _ROLE_TENSOR)
        if name:
            self.tensorSelected.emit(name)
