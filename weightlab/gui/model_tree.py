"""The model tree: layers in model order, their tensors as children, with sparsity.

The tree allows extended selection (ctrl/shift-click): the selected tensor
rows and layer rows (a layer stands for all its tensors) are the target of
value edits. Layers that are not part of the network (optimizer state and
metrics variables: :func:`weightlab.core.model.auxiliary_layers`) are hidden
unless *View › Show optimizer state* is on.

Ctrl+F (:meth:`ModelTree.start_filter`) shows a filter field above the tree: a
glob (``*/kernel``, ``conv?d*``) or a substring, case-insensitive, keeps the
matching rows and their layers; Enter jumps to the first match, Esc clears.

Sparsity is counted as tensors are read. A large model's tensors are not read
just to count them (opening reads no tensor data): their cells show "…" and
the summary says how many are counted, with a link (and *View › Count every
tensor's sparsity*, :meth:`ModelTree.count_all`) that counts the rest in the
background, cancellable. "counting…" shows only while a count runs.
"""

from __future__ import annotations

import fnmatch
import html
import itertools
from collections.abc import Mapping
from pathlib import Path

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.model import auxiliary_layers
from weightlab.core.session import EditSession
from weightlab.core.stats import zero_fraction

from . import theme
from .formatting import NBSP, fmt_count, fmt_shape, for_rich_text
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
#: zeros: tensors not in memory yet show "…" until they are shown, edited or
#: counted by :meth:`ModelTree.count_all` (opening a large file reads no tensor data).
READ_FOR_ZEROS_LIMIT = 50_000_000
#: Tooltip of a Sparsity cell not counted yet.
NOT_COUNTED_TIP = "not counted yet: counted when the tensor is shown, or by View › Count every tensor's sparsity"
#: Characters that make a filter a glob pattern rather than a substring.
_GLOB_CHARS = frozenset("*?[")


def filter_matches(pattern: str, name: str) -> bool:
    """True when ``name`` matches the tree filter ``pattern`` (case-insensitive).

    A pattern with ``*``, ``?`` or ``[`` is a glob matched against the whole
    name (``*/kernel``, ``conv2d*``); any other is a substring. An empty (or
    blank) pattern matches everything.
    """
    p = pattern.strip().lower()
    if not p:
        return True
    if _GLOB_CHARS & set(p):
        return fnmatch.fnmatchcase(name.lower(), p)
    return p in name.lower()


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

    counted = Signal(int, object)  # (generation, {name: (ticket, fraction or None)}), queued to the GUI thread
    finished = Signal(int, int)  # (generation, job number): the job ended (done or superseded)


class _ZerosJob(QRunnable):
    """Counts zero fractions of ``tickets``' names off the GUI thread, one layer's worth at a time.

    ``tickets`` maps each name to the number of the request that asked for
    it: the tree keeps a result only when it is still the latest request for
    that name (an edit made meanwhile asks again). The job stops between
    layers when the tree's generation changes (another model, a cancel).
    """

    def __init__(self, relay: _ZerosRelay, latest: _Generation, number: int,
                 groups: list[list[str]], tickets: dict[str, int], get):
        super().__init__()
        self._relay, self._latest, self._number = relay, latest, number
        self._groups, self._tickets, self._get = groups, tickets, get
        self._generation = latest.value

    def run(self) -> None:  # pool thread: touches no widget, only emits
        lower_thread_priority()
        try:
            for names in self._groups:
                if self._latest.value != self._generation:
                    return  # another model, or the count was cancelled
                out: dict[str, tuple[int, float | None]] = {}
                for name in names:
                    try:
                        out[name] = (self._tickets[name], zero_fraction(self._get(name)))
                    except Exception:  # noqa: BLE001 - an unreadable tensor shows as unknown
                        out[name] = (self._tickets[name], None)
                self._relay.counted.emit(self._generation, out)
        finally:
            self._relay.finished.emit(self._generation, self._number)


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
        # Every column fits its contents, header text included (refitted when
        # the font changes: presentation mode); the name column takes the room
        # left over, and in a narrow tree the class/shape column gives way
        # (elided in the middle; full text in the tooltip): _lay_out_columns.
        self._content_widths: list[int] = [0] * _NCOLS
        self.tree.viewport().installEventFilter(self)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tree.setIndentation(12)
        header.setMinimumSectionSize(40)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.linkActivated.connect(self._on_summary_link)
        # The filter (Ctrl+F): hidden until asked for; Esc clears and hides it.
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter: name or glob (*/kernel) · Enter jumps · Esc clears")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setToolTip("Show only the layers and tensors whose names match: a glob with * ? [ ] "
                                    "against the whole name, otherwise a substring (case-insensitive)")
        self.filter_edit.textChanged.connect(self.set_filter)
        self.filter_edit.returnPressed.connect(self.jump_to_match)
        self.filter_edit.installEventFilter(self)
        self.filter_count = QLabel("")
        self.filter_bar = QWidget()
        bar = QHBoxLayout(self.filter_bar)
        bar.setContentsMargins(4, 0, 4, 0)
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.filter_count)
        self.filter_bar.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.summary)
        lay.addWidget(self.filter_bar)
        lay.addWidget(self.tree)
        self.setMinimumWidth(200)
        self._session: EditSession | None = None
        self._items: dict[str, QTreeWidgetItem] = {}
        self._marked: dict[str, bool] = {}  # tensor name -> row currently shows the edited mark
        self._layer_items: dict[str, QTreeWidgetItem] = {}
        self._hidden_layers: set[str] = set()
        self.show_optimizer = False
        self.model_sparsity: float | None = None
        self._fractions: dict[str, float | None] = {}
        self._zeros = _Generation()
        self._tickets: dict[str, int] = {}  # name -> number of the latest count asked for it
        self._ticket_numbers = itertools.count(1)
        self._job_numbers = itertools.count(1)
        self._jobs: set[int] = set()  # numbers of this generation's count jobs still running
        self._summary_head = ""
        self._document: Path | None = None  # the file the summary names (the saved copy after a Save As)
        self.filter_text = ""
        self.sensitivity: dict[str, float | None] = {}  # name -> score shown (set_sensitivity)
        self.tree.currentItemChanged.connect(self._on_current)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.itemSelectionChanged.connect(self._on_selection)
        theme.signals.changed.connect(self._apply_theme)
        theme.signals.changed.connect(self._fit_timer.start)
        self._fit_columns()  # the header texts, before any model

    def set_session(self, session: EditSession | None) -> None:
        """Show the layers and tensors of ``session`` (None clears)."""
        self._session = session
        self._items.clear()
        self._marked.clear()
        self._layer_items.clear()
        self._fractions = {}
        self.sensitivity = {}
        self._drop_counts()  # counts still coming are the previous model's
        self.model_sparsity = None
        self.tree.clear()
        if session is None:
            self._hidden_layers = set()
            self._summary_head = ""
            self.summary.setText("No model open.")
            self.summary.setToolTip("")
            self._update_filter_count()
            self.frozenChanged.emit([])
            return
        model = session.model
        self._hidden_layers = auxiliary_layers(model)
        self._document = model.path
        self._summary_head = self._head()
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
            litem.setForeground(_SHAPE, QBrush(theme.color("muted")))
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

    def _head(self) -> str:
        """The summary's first lines: the document's name, format and sizes (no-break spaces inside figures)."""
        model = self._session.model
        return (
            f"<b>{html.escape(self._document.name)}</b><br>format{NBSP}{model.format} · "
            f"{len(model.layers)}{NBSP}layers · {len(model.tensors)}{NBSP}tensors · "
            f"{for_rich_text(fmt_count(model.param_count))}{NBSP}parameters"
        )

    def set_document_path(self, path) -> None:
        """Name ``path`` (the saved copy after a Save As) in the summary, as the window's title does.

        Parameters
        ----------
        path : pathlib.Path
            The document the window's edits go to
            (:attr:`~weightlab.gui.controllers.documents.DocumentsController.document_path`).
            No-op without a session.
        """
        if self._session is None or path is None:
            return
        self._document = Path(path)
        self._summary_head = self._head()
        tip = str(self._session.model.path)
        self.summary.setToolTip(tip if self._document == self._session.model.path
                                else f"{self._document}\n(values not changed are read from {tip})")
        self._show_aggregates()

    def _apply_theme(self) -> None:
        """The layer rows' class names in the theme's muted colour (light or dark)."""
        brush = QBrush(theme.color("muted"))
        for litem in self._layer_items.values():
            litem.setForeground(_SHAPE, brush)

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
        """Measure every column's contents (rows and header text), then share the width (:meth:`_lay_out_columns`)."""
        view = self.tree
        header = view.header()
        self._content_widths = [
            max(view.sizeHintForColumn(col), header.sectionSizeHint(col)) for col in range(_NCOLS)
        ]
        self._lay_out_columns()

    def _lay_out_columns(self) -> None:
        """Columns at their measured widths; the name column takes the spare room, or the class column gives way."""
        widths = list(self._content_widths)
        if not any(widths):
            return
        header = self.tree.header()
        spare = self.tree.viewport().width() - sum(widths)
        if spare > 0:
            widths[_NAME] += spare
        elif spare < 0:
            floor = max(header.minimumSectionSize(), min(widths[_SHAPE], 80))
            widths[_SHAPE] = max(floor, widths[_SHAPE] + spare)
        for col, width in enumerate(widths):
            if header.sectionSize(col) != width:
                header.resizeSection(col, width)

    def changeEvent(self, event: QEvent) -> None:
        """Refit the columns when the font changes (presentation mode, a theme's font size)."""
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.ApplicationFontChange):
            self._fit_timer.start()
        super().changeEvent(event)

    def set_show_optimizer(self, show: bool) -> None:
        """Show or hide the layers of optimizer state and metrics variables (hidden by default)."""
        self.show_optimizer = show
        self._apply_visibility()

    @property
    def hidden_layers(self) -> set[str]:
        """The shown model's optimizer-state and metrics layers (hidden unless :attr:`show_optimizer`)."""
        return set(self._hidden_layers)

    def _apply_visibility(self) -> None:
        """Hide the auxiliary layers (unless shown) and the rows the filter excludes; hidden rows are deselected."""
        pattern = self.filter_text
        for lname, litem in self._layer_items.items():
            layer_ok = filter_matches(pattern, lname)
            any_child = False
            for i in range(litem.childCount()):
                child = litem.child(i)
                ok = layer_ok or filter_matches(pattern, child.data(_NAME, _ROLE_TENSOR))
                any_child = any_child or ok
                child.setHidden(not ok)
                if not ok:
                    child.setSelected(False)
            hidden = (lname in self._hidden_layers and not self.show_optimizer) or not (layer_ok or any_child)
            litem.setHidden(hidden)
            if hidden:
                litem.setSelected(False)
                for i in range(litem.childCount()):
                    litem.child(i).setSelected(False)
        self._update_filter_count()

    # -- the filter (Ctrl+F) ------------------------------------------------------------------
    def start_filter(self) -> None:
        """Show the filter field and put the keyboard in it (its text selected, to type a new one)."""
        self.filter_bar.show()
        self.filter_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_edit.selectAll()

    def set_filter(self, pattern: str) -> None:
        """Show only rows matching ``pattern`` (:func:`filter_matches`) and their layers; "" shows all."""
        if self.filter_edit.text() != pattern:
            self.filter_edit.setText(pattern)  # comes back here through textChanged
            return
        self.filter_text = pattern
        self._apply_visibility()

    def clear_filter(self) -> None:
        """Esc: forget the filter, hide its field, give the keyboard back to the tree."""
        self.set_filter("")
        self.filter_bar.hide()
        self.tree.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def matches(self) -> list[str]:
        """Visible tensors matching the filter (a matching layer's tensors included), in model order."""
        if not self.filter_text.strip():
            return []
        out = []
        for litem in self._layer_items.values():
            if litem.isHidden():
                continue
            for i in range(litem.childCount()):
                child = litem.child(i)
                if not child.isHidden():
                    out.append(child.data(_NAME, _ROLE_TENSOR))
        return out

    def jump_to_match(self) -> str | None:
        """Enter: make the first match the shown tensor and scroll to it; its name (None: no match)."""
        found = self.matches()
        if not found:
            return None
        self.select(found[0])
        self.tree.scrollToItem(self._items[found[0]])
        return found[0]

    def _update_filter_count(self) -> None:
        if not self.filter_text.strip():
            self.filter_count.setText("")
            return
        n = len(self.matches())
        self.filter_count.setText("no match" if n == 0 else f"{n} tensor{'s' if n != 1 else ''}")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.tree.viewport() and event.type() == QEvent.Type.Resize:
            self._lay_out_columns()  # share the width again (no re-measuring)
            return False
        if watched is self.filter_edit and event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress) \
                and event.key() == Qt.Key.Key_Escape:
            if event.type() == QEvent.Type.ShortcutOverride:
                event.accept()  # Esc is ours here, not the window's "clear neuron selection"
                return False
            self.clear_filter()
            return True
        return super().eventFilter(watched, event)

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
                    self._tickets.pop(n, None)  # a count still running for it is of older values
                    self._fractions.pop(n, None)
                    self._items[n].setText(_ZEROS, "…")
                    self._items[n].setToolTip(_ZEROS, NOT_COUNTED_TIP)
            ordered = [n for n in ordered if self._session.is_loaded(n)]
        if sum(model.tensors[n].size for n in ordered) <= SYNC_ZEROS_ELEMENTS:
            get = self._session.peek
            for n in ordered:
                self._tickets.pop(n, None)  # counted now: a running job's older count is dropped
            self._store({n: zero_fraction(get(n)) for n in ordered})
            return
        self._count_in_background(ordered)

    def count_all(self) -> int:
        """Count the sparsity of every tensor not counted yet, in the background; how many are being counted.

        Reads each tensor (from the file for a large model), one layer at a
        time on a pool thread; the cells fill in as layers are counted, the
        summary shows the progress with a *cancel* link (:meth:`cancel_count`).
        """
        if self._session is None:
            return 0
        todo = [n for n in self._session.model.tensors
                if n in self._items and self._fractions.get(n) is None and n not in self._tickets]
        self._count_in_background(todo)
        return len(todo)

    def cancel_count(self) -> None:
        """Stop every running count after the layer it is reading; uncounted cells show "…"."""
        if self._session is None or not self._jobs:
            return
        self._drop_counts()
        self._show_aggregates()

    @property
    def counting(self) -> bool:
        """True while a background count runs."""
        return bool(self._jobs)

    def _drop_counts(self) -> None:
        """Stop the running jobs (between layers) and ignore what they still send."""
        self._zeros.value += 1
        self._jobs.clear()
        for n in self._tickets:
            item = self._items.get(n)
            if item is not None and self._fractions.get(n) is None:
                item.setText(_ZEROS, "…")
                item.setToolTip(_ZEROS, NOT_COUNTED_TIP)
        self._tickets.clear()

    def _count_in_background(self, names: list[str]) -> None:
        if not names:
            self._show_aggregates()
            return
        model = self._session.model
        tickets = {}
        for n in names:
            self._tickets[n] = tickets[n] = next(self._ticket_numbers)
            self._fractions.pop(n, None)
            self._items[n].setText(_ZEROS, "…")
            self._items[n].setToolTip(_ZEROS, "being counted…")
        number = next(self._job_numbers)
        self._jobs.add(number)
        groups = [[t.name for t in layer.tensors if t.name in tickets] for layer in model.layers]
        relay = _ZerosRelay()
        relay.counted.connect(self._on_counted)
        relay.finished.connect(self._on_count_finished)
        job = _ZerosJob(relay, self._zeros, number, [g for g in groups if g], tickets, self._session.peek)
        QThreadPool.globalInstance().start(job)
        self._show_aggregates()

    def _on_counted(self, generation: int, results: dict[str, tuple[int, float | None]]) -> None:
        if generation != self._zeros.value:
            return
        fresh = {}
        for name, (ticket, fraction) in results.items():
            if self._tickets.get(name) == ticket:  # still the latest request for this tensor
                del self._tickets[name]
                fresh[name] = fraction
        if fresh:
            self._store(fresh)

    def _on_count_finished(self, generation: int, number: int) -> None:
        if generation == self._zeros.value and number in self._jobs:
            self._jobs.discard(number)
            if not self._jobs:
                self._show_aggregates()

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
        """Layer rows and the summary line, size-weighted from the per-tensor fractions.

        The summary gives the model's sparsity once every tensor of the
        network is counted; before, "counting… k of n tensors" with a
        *cancel* link while a count runs, else "k of n tensors counted" with
        a *count all* link.
        """
        if self._session is None:
            return
        model = self._session.model
        zeros = total = 0.0
        complete = True
        counted = expected = 0
        for layer in model.layers:
            item = self._layer_items.get(layer.name)
            known = [(self._fractions.get(t.name), t.size) for t in layer.tensors]
            if not known or item is None:
                continue
            network = layer.name not in self._hidden_layers
            if network:
                expected += len(known)
                counted += sum(f is not None for f, _ in known)
            if any(f is None for f, _ in known):
                complete = complete and not network  # the model figure needs the network's tensors only
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
            self.summary.setText(f"{self._summary_head} · sparsity{NBSP}{100 * self.model_sparsity:.1f}{NBSP}%")
        elif self._jobs:
            self.model_sparsity = None
            self.summary.setText(f"{self._summary_head} · sparsity: counting… {counted} of {expected} tensors "
                                 f"(<a href='cancel'>cancel</a>)")
        else:
            self.model_sparsity = None
            self.summary.setText(f"{self._summary_head} · sparsity: {counted} of {expected} tensors counted "
                                 f"(<a href='count'>count all</a>)")

    def _on_summary_link(self, link: str) -> None:
        if link == "count":
            self.count_all()
        elif link == "cancel":
            self.cancel_count()

    def set_zero_fraction(self, name: str, fraction: float) -> None:
        """Record a zero fraction computed elsewhere (by the statistics of a shown tensor)."""
        if name in self._items:
            self._tickets.pop(name, None)  # a running count of it is no newer than this
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
