"""The model tree: layers in model order, their tensors as children, with sparsity.

The tree allows extended selection (ctrl/shift-click): the selected tensor
rows and layer rows (a layer stands for all its tensors) are the target of
value edits. Optimizer state of checkpoints (the ``"(optimizer)"`` layer) is
hidden unless *View › Show optimizer state* is on.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QItemSelectionModel, QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.session import EditSession
from weightlab.core.stats import zero_fraction

from .edit_panel import optimizer_layers
from .formatting import fmt_count, fmt_shape
from .tensor_worker import lower_thread_priority

#: Colour of edited tensors and of the dot marking them.
EDITED_COLOR = QColor("#d9480f")
_NAME, _SHAPE, _DTYPE, _PARAMS, _ZEROS, _FREEZE = range(6)
_NCOLS = 6
_ROLE_TENSOR = Qt.ItemDataRole.UserRole + 1
#: Zero fractions of up to this many elements are counted at once on the GUI
#: thread (a few milliseconds); more are counted by a background job, so
#: opening or editing a large model never blocks the window.
SYNC_ZEROS_ELEMENTS = 2_000_000
#: Above this many parameters the tree never reads a tensor just to count its
#: zeros: tensors not in memory yet show "…" until they are shown or edited
#: (opening a large file reads no tensor data).
READ_FOR_ZEROS_LIMIT = 50_000_000


class _Generation:
    """The number of the latest zero count a tree asked for (a plain object: pool threads read it)."""

    def __init__(self) -> None:
        self.value = 0


class _ZerosRelay(QObject):
    """Carries one job's counts to the tree on the GUI thread.

    Owned by the job (no Qt parent) and connected to the tree when the job is
    made; when the tree is deleted first, Qt drops the connection and late
    counts go nowhere.
    """

    counted = Signal(int, object)  # (generation, {name: fraction or None}), queued to the GUI thread


class _ZerosJob(QRunnable):
    """Counts zero fractions of ``names`` off the GUI thread, one layer's worth at a time."""

    def __init__(self, relay: _ZerosRelay, latest: _Generation, groups: list[list[str]], get):
        super().__init__()
        self._relay, self._latest, self._groups, self._get = relay, latest, groups, get
        self._generation = latest.value

    def run(self) -> None:  # pool thread: touches no widget, only emits
        lower_thread_priority()
        for names in self._groups:
            if self._latest.value != self._generation:
                return  # a newer model or edit superseded this job
            out: dict[str, float | None] = {}
            for name in names:
                try:
                    out[name] = zero_fraction(self._get(name))
                except Exception:  # noqa: BLE001 - an unreadable tensor shows as unknown
                    out[name] = None
            self._relay.counted.emit(self._generation, out)


_ROLE_LAYER = Qt.ItemDataRole.UserRole + 2
_ROLE_FREEZABLE = Qt.ItemDataRole.UserRole + 3


#: Sensitivity colours (model tree rows after a sweep): sensitive, robust, within budget over the whole range.
SENSITIVE_COLOR = QColor("#d62728")
ROBUST_COLOR = QColor("#2ca02c")
UNREACHED_COLOR = QColor("#8c8c8c")
#: How much of the sensitivity colour is mixed into the row's background (the text stays readable).
_TINT = 0.45


def sensitivity_colour(score: float | None, base: QColor) -> QColor:
    """The row colour of a sensitivity ``score`` on a background ``base`` (the palette's, light or dark).

    ``score`` 0 (sensitive) is red, 1 (robust) green, in between through
    amber; None (never passed the budget) is a neutral grey. The hue is mixed into
    ``base`` by :data:`_TINT`, so the row's text colour still reads in a light
    and in a dark palette.
    """
    if score is None:
        hue = UNREACHED_COLOR
    else:
        s = min(1.0, max(0.0, float(score)))
        lo, hi = (SENSITIVE_COLOR, QColor("#ff9f1c")) if s < 0.5 else (QColor("#ff9f1c"), ROBUST_COLOR)
        t = s * 2 if s < 0.5 else (s - 0.5) * 2
        hue = QColor.fromRgbF(*(a + (b - a) * t for a, b in zip(lo.getRgbF()[:3], hi.getRgbF()[:3], strict=True)))
    return QColor.fromRgbF(*(b + (h - b) * _TINT for b, h in zip(base.getRgbF()[:3], hue.getRgbF()[:3], strict=True)))


class ModelTree(QWidget):
    """Summary header plus a tree: layer (name, class, params) -> tensors.

    Tensor rows show the weight name (the canonical name ``layer/weight`` is
    its path in the tree and its tooltip), shape, dtype, parameter count and
    zero fraction; edited tensors are bold, orange and marked with a dot.

    The *Sparsity* column is the fraction of exact zeros per tensor, per
    layer (size-weighted) and, in the summary, for the model's weights
    (optimizer state excluded).

    Signals
    -------
    tensorSelected(str):
        Canonical name of the tensor the user made current.
    targetsSelected(list):
        Names of the selected rows: tensor names, and layer names for layer rows.
    frozenChanged(list):
        The layers ticked in the *Freeze* column (not trained by a fine-tune), in model order.
    """

    tensorSelected = Signal(str)
    targetsSelected = Signal(list)
    frozenChanged = Signal(list)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = QLabel("No model open.\nFile › Open… or drop a .keras/.h5 file here.")
        self.summary.setWordWrap(True)
        self.summary.setContentsMargins(4, 4, 4, 4)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Layer / tensor", "Class / shape", "dtype", "Params", "Sparsity", "Freeze"])
        self.tree.headerItem().setToolTip(_ZEROS, "fraction of values exactly zero (layers: size-weighted)")
        self.tree.headerItem().setToolTip(_FREEZE, "ticked layers are not trained by a fine-tune (Training tab); "
                                                   "frozen BatchNormalization runs in inference mode")
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setRootIsDecorated(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        # Columns are fitted to their contents once per batch of changes
        # (_fit_columns, coalesced on a zero timer), not by ResizeToContents:
        # that mode re-measures every row on each item change, which made
        # building a 200-tensor tree take seconds once the window is shown.
        for col in range(_NCOLS):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self._fit_columns)
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
        self._marked: dict[str, bool] = {}  # tensor name -> row currently shows the edited mark
        self._layer_items: dict[str, QTreeWidgetItem] = {}
        self._hidden_layers: set[str] = set()
        self.show_optimizer = False
        self.model_sparsity: float | None = None
        self._fractions: dict[str, float | None] = {}
        self._zeros = _Generation()
        self.sensitivity: dict[str, float | None] = {}  # name -> score shown (set_sensitivity)
        self.tree.currentItemChanged.connect(self._on_current)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.itemSelectionChanged.connect(self._on_selection)
        self._fit_columns()  # the header texts, before any model

    def set_session(self, session: EditSession | None) -> None:
        """Show the layers and tensors of ``session`` (None clears)."""
        self._session = session
        self._items.clear()
        self._marked.clear()
        self._layer_items.clear()
        self._fractions = {}
        self.sensitivity = {}
        self._zeros.value += 1  # drop counts still coming for the previous model
        self.model_sparsity = None
        self.tree.clear()
        if session is None:
            self.summary.setText("No model open.")
            self.frozenChanged.emit([])
            return
        model = session.model
        n_tensors = len(model.tensors)
        self._hidden_layers = optimizer_layers(session)
        self._summary_head = (
            f"<b>{model.path.name}</b><br>format {model.format} · {len(model.layers)} layers · "
            f"{n_tensors} tensors · {fmt_count(model.param_count)} parameters"
        )
        self.summary.setText(self._summary_head)
        self.summary.setToolTip(str(model.path))
        tops = []
        for layer in model.layers:
            litem = QTreeWidgetItem([layer.name, layer.class_name, "", fmt_count(layer.param_count), ""])
            litem.setData(_NAME, _ROLE_LAYER, layer.name)
            litem.setToolTip(_NAME, f"layer {layer.name}: select the row to target all its tensors")
            if not layer.tensors:
                litem.setFlags(litem.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            elif layer.name not in self._hidden_layers:
                litem.setData(_FREEZE, _ROLE_FREEZABLE, True)
                litem.setCheckState(_FREEZE, Qt.CheckState.Unchecked)
                litem.setToolTip(_FREEZE, f"freeze {layer.name}: a fine-tune does not train it")
            self._layer_items[layer.name] = litem
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
                item.setToolTip(_ZEROS, "fraction of values exactly zero")
                for col in (_PARAMS, _ZEROS):
                    item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self._items[t.name] = item
                self._mark(t.name, session.is_edited(t.name))
                litem.addChild(item)
            tops.append(litem)
        # Items are complete before they enter the tree: one insertion, no
        # per-item change notifications to the view.
        self.tree.addTopLevelItems(tops)
        self.tree.expandAll()
        self.set_show_optimizer(self.show_optimizer)
        self.refresh(set(self._items))
        self._fit_timer.start()
        self.frozenChanged.emit([])

    def _mark(self, name: str, edited: bool) -> None:
        """Show tensor ``name``'s row as edited (bold, orange, dot) or not; no-op when unchanged."""
        if self._marked.get(name) == edited:
            return
        self._marked[name] = edited
        item = self._items[name]
        item.setText(_NAME, ("● " if edited else "") + self._session.model.tensors[name].weight)
        font = QFont(item.font(_NAME))
        font.setBold(edited)
        brush = QBrush(EDITED_COLOR) if edited else QBrush()
        for col in range(_NCOLS):
            item.setFont(col, font)
            item.setForeground(col, brush)

    def _fit_columns(self) -> None:
        """Fit every column but the stretching class/shape column to its contents."""
        for col in range(_NCOLS):
            if col != _SHAPE:
                self.tree.resizeColumnToContents(col)

    def set_show_optimizer(self, show: bool) -> None:
        """Show or hide the optimizer-state layer (hidden by default)."""
        self.show_optimizer = show
        for name in self._hidden_layers:
            item = self._layer_items.get(name)
            if item is not None:
                item.setHidden(not show)
                if not show:
                    item.setSelected(False)
                    for i in range(item.childCount()):
                        item.child(i).setSelected(False)

    def is_hidden(self, name: str) -> bool:
        """True when the row of layer or tensor ``name`` is hidden."""
        item = self._layer_items.get(name) or self._items.get(name)
        while item is not None:
            if item.isHidden():
                return True
            item = item.parent()
        return False

    def refresh(self, names: set[str]) -> None:
        """Update the edited marks of tensors ``names`` and recount their sparsity.

        Counting runs on the GUI thread only for a few million elements; more
        goes to a background job whose results fill the Sparsity column (layer
        and model figures are aggregated from the per-tensor fractions).
        """
        if self._session is None:
            return
        model = self._session.model
        for name in names:
            if name in self._items:
                self._mark(name, self._session.is_edited(name))
        self._fit_timer.start()
        ordered = [t.name for t in model.tensors.values() if t.name in names and t.name in self._items]
        if model.param_count > READ_FOR_ZEROS_LIMIT:
            for n in ordered:
                if not self._session.is_loaded(n):
                    self._fractions.pop(n, None)
                    self._items[n].setText(_ZEROS, "…")
                    self._items[n].setToolTip(_ZEROS, "counted when the tensor is first shown")
            ordered = [n for n in ordered if self._session.is_loaded(n)]
        if sum(model.tensors[n].size for n in ordered) <= SYNC_ZEROS_ELEMENTS:
            get = self._session.peek
            self._store({n: zero_fraction(get(n)) for n in ordered})
            return
        for n in ordered:
            self._fractions.pop(n, None)
            self._items[n].setText(_ZEROS, "…")
        self._zeros.value += 1
        groups = [[t.name for t in layer.tensors if t.name in ordered] for layer in model.layers]
        relay = _ZerosRelay()
        relay.counted.connect(self._on_counted)
        job = _ZerosJob(relay, self._zeros, [g for g in groups if g], self._session.peek)
        QThreadPool.globalInstance().start(job)

    def _on_counted(self, generation: int, fractions: dict[str, float | None]) -> None:
        if generation == self._zeros.value:
            self._store(fractions)

    def _store(self, fractions: dict[str, float | None]) -> None:
        for name, f in fractions.items():
            self._fractions[name] = f
            item = self._items.get(name)
            if item is not None:
                item.setText(_ZEROS, "?" if f is None else f"{100 * f:.1f} %")
                item.setToolTip(
                    _ZEROS, "could not be read" if f is None else "fraction of values exactly zero"
                )
        self._show_aggregates()
        self._fit_timer.start()

    def _show_aggregates(self) -> None:
        """Layer rows and the summary line, size-weighted from the per-tensor fractions."""
        model = self._session.model
        zeros = total = 0.0
        complete = True
        for layer in model.layers:
            item = self._layer_items.get(layer.name)
            known = [(self._fractions.get(t.name), t.size) for t in layer.tensors]
            if not known or item is None:
                continue
            if any(f is None for f, _ in known):
                complete = False
                item.setText(_ZEROS, "…")
                continue
            size = sum(n for _, n in known)
            frac = sum(f * n for f, n in known) / size if size else 0.0
            item.setText(_ZEROS, f"{100 * frac:.1f} %")
            item.setToolTip(_ZEROS, "fraction of the layer's values exactly zero")
            if layer.name not in self._hidden_layers:
                zeros += frac * size
                total += size
        # The model figure counts the model's weights, not optimizer state.
        if complete:
            self.model_sparsity = zeros / total if total else 0.0
            self.summary.setText(f"{self._summary_head} · sparsity {100 * self.model_sparsity:.1f} %")
        else:
            self.model_sparsity = None
            self.summary.setText(f"{self._summary_head} · sparsity: counting…")

    def set_zero_fraction(self, name: str, fraction: float) -> None:
        """Record a zero fraction computed elsewhere (by the statistics of a shown tensor)."""
        if name in self._items:
            self._store({name: fraction})

    def set_sensitivity(self, scores: Mapping[str, float | None], tips: Mapping[str, str] | None = None) -> None:
        """Colour the rows of ``scores``' layers/tensors by sensitivity; other rows lose their colour.

        Parameters
        ----------
        scores:
            ``{layer or tensor name: score}``: 0 = most sensitive (red; its
            drop passes the budget at the weakest edit), 1 = most robust
            (green), None = within the budget over the whole measured range
            (:func:`sensitivity_colour`). Unknown names are ignored.
        tips:
            Tooltip text per name (the threshold value).
        """
        self.clear_sensitivity()
        tips = tips or {}
        base = self.tree.palette().color(QPalette.ColorRole.Base)
        for name, score in scores.items():
            item = self._layer_items.get(name) or self._items.get(name)
            if item is None:
                continue
            brush = QBrush(sensitivity_colour(score, base))
            for col in range(_NCOLS):
                item.setBackground(col, brush)
            if name in tips:
                item.setToolTip(_PARAMS, tips[name])
                item.setToolTip(_ZEROS, tips[name])
            self.sensitivity[name] = score

    def clear_sensitivity(self) -> None:
        """Remove the sensitivity colours (a new model, a new sweep)."""
        for name in self.sensitivity:
            item = self._layer_items.get(name) or self._items.get(name)
            if item is not None:
                for col in range(_NCOLS):
                    item.setBackground(col, QBrush())
                item.setToolTip(_PARAMS, "")
        self.sensitivity = {}

    def sensitivity_brush(self, name: str) -> QBrush:
        """The background of ``name``'s row (for tests)."""
        item = self._layer_items.get(name) or self._items.get(name)
        return item.background(_NAME) if item is not None else QBrush()

    # -- the Freeze column ---------------------------------------------------------------------
    def _freezable(self) -> list[str]:
        """Layers with a Freeze box (those with weights, optimizer state excluded), in model order."""
        if self._session is None:
            return []
        return [layer.name for layer in self._session.model.layers
                if layer.name in self._layer_items
                and self._layer_items[layer.name].data(_FREEZE, _ROLE_FREEZABLE)]

    def frozen_layers(self) -> list[str]:
        """The layers ticked in the *Freeze* column, in model order."""
        return [n for n in self._freezable()
                if self._layer_items[n].checkState(_FREEZE) == Qt.CheckState.Checked]

    def set_frozen(self, names: list[str] | set[str]) -> None:
        """Tick exactly the layers ``names`` in the *Freeze* column (others unticked); emits ``frozenChanged`` once."""
        wanted = set(names)
        self.tree.blockSignals(True)
        try:
            for n in self._freezable():
                state = Qt.CheckState.Checked if n in wanted else Qt.CheckState.Unchecked
                self._layer_items[n].setCheckState(_FREEZE, state)
        finally:
            self.tree.blockSignals(False)
        self.frozenChanged.emit(self.frozen_layers())

    def freeze_all_but_last(self, n: int) -> list[str]:
        """Freeze every layer with weights except the last ``n`` (``n`` <= 0: unfreeze all); the frozen layers."""
        layers = self._freezable()
        frozen = layers[: max(0, len(layers) - n)] if n > 0 else []
        self.set_frozen(frozen)
        return frozen

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == _FREEZE and item.data(_NAME, _ROLE_LAYER):
            self.frozenChanged.emit(self.frozen_layers())

    def select(self, name: str) -> None:
        """Make tensor ``name`` the current item and the whole selection (emits tensorSelected).

        The selection is replaced explicitly: a plain ``setCurrentItem`` in
        extended-selection mode reads the keyboard's modifiers, and a Ctrl
        still held (or left set by an earlier synthetic click) added the
        tensor to the old selection instead.
        """
        item = self._items.get(name)
        if item is not None:
            self.tree.setCurrentItem(item, 0, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    select_only = select

    def select_targets(self, names: list[str]) -> None:
        """Select exactly the rows of ``names`` (tensor or layer names), as ctrl-clicks would."""
        self.tree.clearSelection()
        for name in names:
            item = self._items.get(name) or self._layer_items.get(name)
            if item is not None:
                item.setSelected(True)

    def selected_targets(self) -> list[str]:
        """Selected layer names and tensor names (tensors of a selected layer are not repeated)."""
        layers, tensors = [], []
        for item in self.tree.selectedItems():
            if item.isHidden():
                continue
            layer = item.data(_NAME, _ROLE_LAYER)
            if layer:
                layers.append(layer)
            elif item.data(_NAME, _ROLE_TENSOR):
                tensors.append(item.data(_NAME, _ROLE_TENSOR))
        model = self._session.model if self._session else None
        out = list(layers)
        for t in tensors:
            if model is None or model.tensors[t].layer not in layers:
                out.append(t)
        order: dict[str, int] = {}
        for layer in model.layers if model else []:
            order[layer.name] = len(order)
            for t in layer.tensors:
                order[t.name] = len(order)
        return sorted(out, key=lambda n: order.get(n, 0))

    def _on_selection(self) -> None:
        self.targetsSelected.emit(self.selected_targets())

    def first_tensor(self) -> str | None:
        """Name of the first tensor with a kernel-like shape (2-D or more), else the first one."""
        if self._session is None:
            return None
        tensors = [t for t in self._session.model.tensors.values() if t.layer not in self._hidden_layers]
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
