"""Selected output neurons, shared by the heatmap, the norm plot and the edit panel."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal

from weightlab.core.edits import neuron_tensors
from weightlab.core.errors import WeightLabError
from weightlab.core.model import ModelFile


def neuron_target(model: ModelFile, tensor: str) -> str:
    """Target of a neuron edit made while ``tensor`` is shown.

    The tensor's LAYER when the tensor is that layer's kernel or bias (so the
    kernel slice and the bias entries change together, the usual ablation);
    otherwise the tensor itself (its last axis).
    """
    info = model.tensor(tensor)
    try:
        if tensor in neuron_tensors(info.layer, model):
            return info.layer
    except WeightLabError:
        pass
    return tensor


class NeuronSelection(QObject):
    """A set of output neurons (indices on the last axis) of one neuron-edit target.

    Click semantics follow list views: a plain click selects one neuron, shift
    extends from the last clicked neuron, ctrl toggles one.

    Signals
    -------
    changed():
        The target or the selected neurons changed.
    """

    changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.target: str | None = None
        self.count = 0
        self._neurons: set[int] = set()
        self._anchor: int | None = None

    @property
    def neurons(self) -> list[int]:
        """Selected neuron indices, ascending."""
        return sorted(self._neurons)

    def set_target(self, target: str | None, count: int) -> None:
        """Switch to ``target`` with ``count`` neurons; clears the selection if it changes."""
        if target == self.target and count == self.count:
            return
        self.target, self.count = target, count
        self._neurons.clear()
        self._anchor = None
        self.changed.emit()

    def set_neurons(self, neurons: list[int] | set[int]) -> None:
        """Select exactly ``neurons`` (out-of-range indices are ignored)."""
        new = {int(n) for n in neurons if 0 <= int(n) < self.count}
        if new != self._neurons:
            self._neurons = new
            self.changed.emit()

    def clear(self) -> None:
        """Select nothing."""
        self._anchor = None
        self.set_neurons(set())

    def click(self, neuron: int, modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
        """Apply a click on ``neuron`` with keyboard ``modifiers``."""
        if not 0 <= neuron < self.count:
            return
        if modifiers & Qt.KeyboardModifier.ShiftModifier and self._anchor is not None:
            lo, hi = sorted((self._anchor, neuron))
            self.set_neurons(self._neurons | set(range(lo, hi + 1)))
            return
        if modifiers & Qt.KeyboardModifier.ControlModifier:
            self.set_neurons(self._neurons ^ {neuron})
        else:
            self.set_neurons({neuron})
        self._anchor = neuron

    def describe(self, limit: int = 8) -> str:
        """``"3 neurons of dense: 0, 4, 7"`` (or ``"no neurons selected"``)."""
        n = self.neurons
        if not n or self.target is None:
            return "no neurons selected"
        shown = ", ".join(str(i) for i in n[:limit]) + (", …" if len(n) > limit else "")
        word = "neuron" if len(n) == 1 else "neurons"
        return f"{len(n)} {word} of {self.target}: {shown}"
