"""Edit buttons (range and neuron edits) and the history list."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.edits import Clip, Edit, Scale, ScaleNeurons, ZeroNeurons, ZeroOutside, ZeroRange
from weightlab.core.session import EditSession

from .formatting import fmt_num
from .selection import NeuronSelection

_NO_RANGE = "Drag on the histogram to select a value range first"
_NO_NEURONS = "Click columns of the heatmap or bars of the norm plot to select neurons first"


class EditPanel(QGroupBox):
    """Buttons that turn the brushed range / selected neurons into edits.

    The panel builds :class:`weightlab.core.edits.Edit` objects and emits them;
    the window applies them to the session.

    Signals
    -------
    editRequested(Edit):
        An edit the user asked for.
    """

    editRequested = Signal(object)

    def __init__(self, selection: NeuronSelection, parent: QWidget | None = None):
        super().__init__("Edit", parent)
        self.selection = selection
        self.tensor: str | None = None
        self.range: tuple[float, float] | None = None

        self.range_label = QLabel("No range selected")
        self.clip_btn = QPushButton("Clip to range")
        self.zero_in_btn = QPushButton("Zero inside range")
        self.zero_out_btn = QPushButton("Zero outside range")
        self.k = QDoubleSpinBox()
        self.k.setRange(-1000, 1000)
        self.k.setDecimals(3)
        self.k.setSingleStep(0.1)
        self.k.setValue(0.5)
        self.k.setPrefix("k = ")
        self.k.setToolTip("Factor used by 'Scale tensor' and 'Scale neurons'")
        self.scale_btn = QPushButton("Scale tensor by k")
        self.neurons_label = QLabel(selection.describe())
        self.neurons_label.setWordWrap(True)
        self.zero_neurons_btn = QPushButton("Zero neurons")
        self.zero_neurons_btn.setToolTip("Ablate the selected neurons: kernel slices and bias entries (Delete)")
        self.scale_neurons_btn = QPushButton("Scale neurons by k")

        grid = QGridLayout()
        grid.addWidget(self.range_label, 0, 0, 1, 2)
        grid.addWidget(self.clip_btn, 1, 0)
        grid.addWidget(self.zero_in_btn, 1, 1)
        grid.addWidget(self.zero_out_btn, 2, 0)
        grid.addWidget(self.scale_btn, 2, 1)
        grid.addWidget(self.neurons_label, 3, 0, 1, 2)
        grid.addWidget(self.zero_neurons_btn, 4, 0)
        grid.addWidget(self.scale_neurons_btn, 4, 1)
        krow = QHBoxLayout()
        krow.addWidget(QLabel("Factor for the scale buttons:"))
        krow.addWidget(self.k, 1)
        grid.addLayout(krow, 5, 0, 1, 2)
        self.setLayout(grid)

        self.clip_btn.clicked.connect(lambda: self._range_edit(Clip))
        self.zero_in_btn.clicked.connect(lambda: self._range_edit(ZeroRange))
        self.zero_out_btn.clicked.connect(lambda: self._range_edit(ZeroOutside))
        self.scale_btn.clicked.connect(self._scale)
        self.zero_neurons_btn.clicked.connect(self.zero_neurons)
        self.scale_neurons_btn.clicked.connect(self._scale_neurons)
        selection.changed.connect(self._update)
        self._update()

    def set_tensor(self, name: str | None) -> None:
        """The tensor the range edits and 'Scale tensor' act on."""
        self.tensor = name
        self._update()

    def set_range(self, rng: tuple[float, float] | None) -> None:
        """The committed histogram range (None when cleared)."""
        self.range = rng
        self._update()

    def _update(self) -> None:
        has_t = self.tensor is not None
        has_r = has_t and self.range is not None
        for b in (self.clip_btn, self.zero_in_btn, self.zero_out_btn):
            b.setEnabled(has_r)
            b.setToolTip("" if has_r else _NO_RANGE)
        self.range_label.setText(
            f"Range [{fmt_num(self.range[0])}, {fmt_num(self.range[1])}] of {self.tensor}"
            if has_r
            else "No range selected (drag on the histogram)"
        )
        self.scale_btn.setEnabled(has_t)
        has_n = bool(self.selection.neurons) and self.selection.target is not None
        self.neurons_label.setText(self.selection.describe())
        for b in (self.zero_neurons_btn, self.scale_neurons_btn):
            b.setEnabled(has_n)
            if not has_n:
                b.setToolTip(_NO_NEURONS)
        if has_n:
            self.zero_neurons_btn.setToolTip(
                f"Ablate: zero the kernel slices and bias entries of {self.selection.describe()} (Delete)"
            )
            self.scale_neurons_btn.setToolTip("Multiply the selected neurons' kernel slices and biases by k")

    def _range_edit(self, cls: type[Edit]) -> None:
        if self.tensor is None or self.range is None:
            return
        lo, hi = self.range
        self.editRequested.emit(cls(target=self.tensor, min=lo, max=hi))

    def _scale(self) -> None:
        if self.tensor is not None:
            self.editRequested.emit(Scale(target=self.tensor, factor=self.k.value()))

    def zero_neurons(self) -> None:
        """Emit a :class:`ZeroNeurons` edit of the selected neurons (no-op without selection)."""
        if self.selection.neurons and self.selection.target is not None:
            self.editRequested.emit(ZeroNeurons(target=self.selection.target, neurons=self.selection.neurons))

    def _scale_neurons(self) -> None:
        if self.selection.neurons and self.selection.target is not None:
            self.editRequested.emit(
                ScaleNeurons(target=self.selection.target, neurons=self.selection.neurons, factor=self.k.value())
            )


class HistoryView(QGroupBox):
    """One row per history step, row 0 the file as opened; clicking a row jumps there.

    Applied steps are black, undone ones grey; the current position is bold
    and marked with an arrow.

    Signals
    -------
    gotoRequested(int):
        The position (number of applied steps) the user clicked.
    """

    gotoRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("History", parent)
        self.list = QListWidget()
        self.list.setMinimumHeight(90)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.list)
        self._session: EditSession | None = None
        self.list.itemClicked.connect(self._clicked)

    def set_session(self, session: EditSession | None) -> None:
        """Follow ``session`` (None clears)."""
        self._session = session
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the rows from the session's steps and position."""
        self.list.clear()
        s = self._session
        if s is None:
            return
        rows = ["opened file"] + [step.edit.describe() for step in s.steps]
        for i, text in enumerate(rows):
            current = i == s.position
            item = QListWidgetItem(f"{'▶' if current else '  '} {i}. {text}")
            item.setData(Qt.ItemDataRole.UserRole, i)
            if current:
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
            elif i > s.position:
                item.setForeground(QBrush(QColor("#999999")))
            self.list.addItem(item)
        self.list.scrollToItem(self.list.item(s.position))

    def _clicked(self, item: QListWidgetItem) -> None:
        pos = item.data(Qt.ItemDataRole.UserRole)
        if self._session is not None and pos != self._session.position:
            self.gotoRequested.emit(int(pos))
