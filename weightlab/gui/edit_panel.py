"""The edit panel (target, quick buttons, every op with its parameter form) and the history list.

The panel only builds :class:`weightlab.core.edits.Edit` objects and emits
them (``editRequested``); the window applies them to the session. Before an
edit is applied the panel shows what it will act on and disables *Apply* (with
the reason as tooltip) when the target matches nothing or a value is invalid.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.edits import (
    Clip,
    Edit,
    Scale,
    ScaleNeurons,
    Target,
    ZeroNeurons,
    ZeroOutside,
    ZeroRange,
    resolve_tensors,
)
from weightlab.core.errors import WeightLabError
from weightlab.core.graph import following_batchnorm
from weightlab.core.model import auxiliary_layers
from weightlab.core.session import EditSession

from . import theme
from .formatting import fmt_num
from .op_forms import OPS, OPS_BY_KEY, FormContext, OpSpec, ParamForm, format_indices
from .selection import NeuronSelection

_NO_RANGE = "Drag on the histogram to select a value range first"
_NO_NEURONS = "Click columns of the heatmap or bars of the norm plot to select neurons first"

#: Target modes of value edits: combo text -> mode key.
TARGET_MODES = {"Tree selection": "tree", "Glob pattern": "glob", "Whole model": "model"}


def optimizer_layers(session: EditSession | None) -> set[str]:
    """Names of the layers that are not part of the network: optimizer state and metrics variables.

    Delegates to :func:`weightlab.core.model.auxiliary_layers` (layers of class
    ``"(optimizer)"`` or ``"(metrics)"``, and the model's ``optimizer_layer``);
    empty when no model is open.
    """
    if session is None:
        return set()
    return auxiliary_layers(session.model)


def _error_html(message: str) -> str:
    """``message`` as rich text in the theme's error colour."""
    return f"<span style='color:{theme.css('negative')}'>{html.escape(message, quote=False)}</span>"


def summarize_names(names: list[str], limit: int = 3) -> str:
    """``"3 tensors: a, b, c"`` / ``"12 tensors: a, b, c, …"``."""
    word = "tensor" if len(names) == 1 else "tensors"
    shown = ", ".join(names[:limit]) + (", …" if len(names) > limit else "")
    return f"{len(names)} {word}: {shown}"


class EditPanel(QGroupBox):
    """Target chooser, quick buttons (brushed range, selected neurons) and one form per op.

    Value edits act on the *target*: the tensors selected in the model tree
    (the shown tensor after a plain click; ctrl/shift-click or a layer row for
    several), a glob typed by the user, or the whole model. Neuron edits act on
    the shown tensor's layer (its kernel along one axis, plus the bias for
    output neurons).

    Signals
    -------
    editRequested(Edit):
        An edit the user asked for.
    """

    editRequested = Signal(object)

    def __init__(self, selection: NeuronSelection, parent: QWidget | None = None):
        super().__init__("Edit", parent)
        self.selection = selection
        self.session: EditSession | None = None
        self.tensor: str | None = None
        self.tree_names: list[str] = []
        self.range: tuple[float, float] | None = None

        # -- target --------------------------------------------------------------
        self.target_mode = QComboBox()
        self.target_mode.addItems(list(TARGET_MODES))
        self.target_mode.setToolTip(
            "What value edits act on: the tensors selected in the tree (ctrl/shift-click, or a layer row "
            "for all its tensors), a glob over layer/weight names, or every weight of the model"
        )
        self.glob = QLineEdit()
        self.glob.setPlaceholderText("glob, e.g. */kernel or conv*/bias")
        self.glob.setToolTip("fnmatch pattern over canonical names layer/weight; * matches anything")
        self.glob.setClearButtonEnabled(True)
        self.target_label = QLabel("")
        self.target_label.setWordWrap(True)
        self.target_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.target_label.setMinimumWidth(1)
        trow = QHBoxLayout()
        trow.addWidget(QLabel("Target"))
        trow.addWidget(self.target_mode)
        trow.addWidget(self.glob, 1)

        # -- quick tab ---------------------------------------------------------------
        self.range_label = QLabel("No range selected")
        self.range_label.setWordWrap(True)
        self.clip_btn = QPushButton("Clip to range")
        self.zero_in_btn = QPushButton("Zero inside")
        self.zero_out_btn = QPushButton("Zero outside")
        self.clip_btn.setStatusTip("np.clip(w, lo, hi) with the brushed range [lo, hi] (Ctrl+K)")
        self.zero_in_btn.setStatusTip("w[(w >= lo) & (w <= hi)] = 0 with the brushed range")
        self.zero_out_btn.setStatusTip("w[(w < lo) | (w > hi)] = 0 with the brushed range")
        self.k = QDoubleSpinBox()
        self.k.setRange(-1000, 1000)
        self.k.setDecimals(3)
        self.k.setSingleStep(0.1)
        self.k.setValue(0.5)
        self.k.setPrefix("k = ")
        self.k.setToolTip("Factor used by 'Scale by k' and 'Scale neurons by k'")
        self.scale_btn = QPushButton("Scale by k")
        self.neurons_label = QLabel(selection.describe())
        self.neurons_label.setWordWrap(True)
        self.zero_neurons_btn = QPushButton("Zero neurons")
        self.zero_neurons_btn.setToolTip("Ablate the selected neurons: kernel slices and bias entries (Delete)")
        self.scale_neurons_btn = QPushButton("Scale neurons by k")

        quick = QWidget()
        grid = QGridLayout(quick)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setVerticalSpacing(3)
        # two columns: the three range buttons side by side did not fit a ~330 px dock
        grid.addWidget(self.range_label, 0, 0, 1, 2)
        grid.addWidget(self.clip_btn, 1, 0)
        grid.addWidget(self.zero_in_btn, 1, 1)
        grid.addWidget(self.zero_out_btn, 2, 1)
        grid.addWidget(self.neurons_label, 3, 0, 1, 2)
        grid.addWidget(self.zero_neurons_btn, 4, 0)
        grid.addWidget(self.scale_neurons_btn, 4, 1)
        grid.addWidget(self.k, 5, 0)
        grid.addWidget(self.scale_btn, 5, 1)
        grid.setRowStretch(6, 1)

        # -- operation tab -------------------------------------------------------------
        self.op_combo = QComboBox()
        self.op_combo.setMaxVisibleItems(20)
        # the list shows whole names; the closed box fits a narrow dock
        self.op_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.op_combo.setMinimumContentsLength(16)
        self.forms: dict[str, ParamForm] = {}
        ops_page = QWidget()
        ops_lay = QVBoxLayout(ops_page)
        ops_lay.setContentsMargins(4, 4, 4, 4)
        ops_lay.setSpacing(3)
        ops_lay.addWidget(self.op_combo)
        self.op_tip = QLabel("")
        self.op_tip.setWordWrap(True)
        ops_lay.addWidget(self.op_tip)
        group = None
        for spec in OPS:
            if group is not None and spec.group != group:
                self.op_combo.insertSeparator(self.op_combo.count())
            group = spec.group
            self.op_combo.addItem(spec.label if spec.label == spec.group else f"{spec.group} › {spec.label}", spec.key)
            self.op_combo.setItemData(self.op_combo.count() - 1, spec.tip, Qt.ItemDataRole.ToolTipRole)
            form = ParamForm(spec)
            form.changed.connect(self._validate)
            form.hide()
            self.forms[spec.key] = form
            ops_lay.addWidget(form)
        self.use_selection_btn = QPushButton("Use selected neurons")
        self.use_selection_btn.setToolTip("Fill the neuron list from the heatmap / norm plot selection")
        self.apply_btn = QPushButton("Apply")
        self.apply_btn.setDefault(True)
        self.op_status = QLabel("")
        self.op_status.setWordWrap(True)
        self.op_status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.op_status.setMinimumWidth(1)
        brow = QHBoxLayout()
        brow.addWidget(self.use_selection_btn)
        brow.addStretch(1)
        brow.addWidget(self.apply_btn)
        ops_lay.addWidget(self.op_status)
        ops_lay.addLayout(brow)
        ops_lay.addStretch(1)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(ops_page, "Operation")
        self.tabs.addTab(quick, "Brush && neurons")
        self.tabs.setTabToolTip(0, "Every edit with its parameters")
        self.tabs.setTabToolTip(1, "One-click edits of the brushed histogram range and the selected neurons")
        self.tabs.currentChanged.connect(lambda _i: self._update())

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(3)
        lay.addLayout(trow)
        lay.addWidget(self.target_label)
        lay.addWidget(self.tabs, 1)

        self.clip_btn.clicked.connect(lambda: self._range_edit(Clip))
        self.zero_in_btn.clicked.connect(lambda: self._range_edit(ZeroRange))
        self.zero_out_btn.clicked.connect(lambda: self._range_edit(ZeroOutside))
        self.scale_btn.clicked.connect(self._scale)
        self.zero_neurons_btn.clicked.connect(self.zero_neurons)
        self.scale_neurons_btn.clicked.connect(self._scale_neurons)
        self.target_mode.currentTextChanged.connect(self._on_target_mode)
        self.glob.textChanged.connect(self._update)
        self.op_combo.currentIndexChanged.connect(self._on_op)
        self.apply_btn.clicked.connect(self.apply_op)
        self.use_selection_btn.clicked.connect(self._fill_neurons)
        selection.changed.connect(self._on_selection)
        self._on_target_mode()
        self._on_op()
        self.apply_theme()
        theme.signals.changed.connect(self.apply_theme)

    def apply_theme(self) -> None:
        """Take the hint and error colours from :mod:`weightlab.gui.theme` (called again whenever it changes)."""
        small = max(7.0, 0.85 * self.font().pointSizeF())
        self.op_tip.setStyleSheet(f"color: {theme.css('muted')}; font-family: monospace; font-size: {small:.1f}pt;")
        self._on_op()  # redraws the status line (its error colour)
        self._update()

    # -- inputs from the window ---------------------------------------------------------
    def set_session(self, session: EditSession | None) -> None:
        """The session whose model targets are resolved against."""
        self.session = session
        self.tree_names = []
        self._update()

    def set_tensor(self, name: str | None) -> None:
        """The shown tensor (the tree target when nothing else is selected; set-value's tensor)."""
        self.tensor = name
        self._update()

    def set_tree_selection(self, names: list[str]) -> None:
        """Tensor and layer names selected in the model tree (the tree target)."""
        self.tree_names = list(names)
        self._update()

    def set_range(self, rng: tuple[float, float] | None) -> None:
        """The committed histogram range (None when cleared); also fills the range forms."""
        self.range = rng
        if rng is not None:
            for key in ("clip", "zero_range", "zero_outside"):
                self.forms[key].set_values({"min": rng[0], "max": rng[1]})
            self.forms["clip_symmetric"].set_values({"t": max(abs(rng[0]), abs(rng[1]))})
        self._update()

    def set_target_mode(self, mode: str, glob: str | None = None) -> None:
        """Switch the target to ``"tree"``, ``"glob"`` (with pattern ``glob``) or ``"model"``."""
        text = next(t for t, m in TARGET_MODES.items() if m == mode)
        if glob is not None:
            self.glob.setText(glob)
        self.target_mode.setCurrentText(text)
        self._update()

    # -- targets -----------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """The target mode: ``"tree"``, ``"glob"`` or ``"model"``."""
        return TARGET_MODES[self.target_mode.currentText()]

    def target(self) -> Target | None:
        """The value-edit target as the core takes it, or None when there is none."""
        if self.session is None:
            return None
        if self.mode == "glob":
            return self.glob.text().strip() or None
        if self.mode == "model":
            hidden = optimizer_layers(self.session)
            if not hidden:
                return "*"
            layers = [layer.name for layer in self.session.model.layers if layer.tensors and layer.name not in hidden]
            return tuple(layers) if len(layers) != 1 else layers[0]
        names = self.tree_names or ([self.tensor] if self.tensor else [])
        if not names:
            return None
        return names[0] if len(names) == 1 else tuple(names)

    def target_tensors(self) -> list[str]:
        """Canonical names the value target selects; raises RecipeError when it matches nothing."""
        target = self.target()
        if target is None:
            raise WeightLabError("no target: select tensors in the tree or type a glob")
        return resolve_tensors(target, self.session.model, "target")

    def _on_target_mode(self) -> None:
        self.glob.setEnabled(self.mode == "glob")
        if self.mode == "glob":
            self.glob.setFocus()
        self._update()

    # -- operations -----------------------------------------------------------------------
    @property
    def op(self) -> OpSpec:
        """The op chosen in the Operation tab."""
        return OPS_BY_KEY[self.op_combo.currentData()]

    @property
    def form(self) -> ParamForm:
        """The parameter form of the chosen op."""
        return self.forms[self.op.key]

    def select_op(self, key: str) -> None:
        """Show op ``key`` in the Operation tab (and that tab)."""
        self.op_combo.setCurrentIndex(self.op_combo.findData(key))
        self.tabs.setCurrentIndex(0)

    def _on_op(self) -> None:
        for key, form in self.forms.items():
            form.setVisible(key == self.op.key)
        self.op_tip.setText(self.op.tip)
        self.op_combo.setToolTip(self.op.tip)
        self._update()
        # No fixed minimum height here: one measured now would be wrong once the dock is
        # narrower (the tip wraps to more lines) and squash the form's rows; the layout's
        # own minimum and the dock's scroll area keep every row at its height.
        self.updateGeometry()

    def _on_selection(self) -> None:
        if self.selection.neurons:
            self._fill_neurons()
        self._update()

    def _fill_neurons(self) -> None:
        text = format_indices(self.selection.neurons)
        for spec in OPS:
            if "neurons" in self.forms[spec.key].fields:
                self.forms[spec.key].set_values({"neurons": text})

    def _neuron_context(self) -> FormContext:
        layer = self.selection.target
        model = self.session.model if self.session else None
        bn = None
        if model is not None and layer is not None and model.has_layer(layer):
            bn = following_batchnorm(model, layer)
        return FormContext(model=model, layer=layer, batchnorm=bn)

    def build_edit(self) -> Edit:
        """The edit the Operation tab describes now.

        Raises
        ------
        ValueError, WeightLabError
            For invalid values, or a target that matches nothing / does not fit the op.
        """
        if self.session is None:
            raise WeightLabError("no model open")
        spec = self.op
        if spec.neurons:
            target = self.selection.target
            if target is None:
                raise WeightLabError("show a kernel or bias in the tree: neuron edits act on its layer")
        else:
            target = self.target()
            if target is None:
                raise WeightLabError("no target: select tensors in the tree or type a glob")
        edit = self.form.build(target)
        edit.targets(self.session.model)  # raises when the target does not fit
        return edit

    def apply_op(self) -> None:
        """Emit the edit of the Operation tab (no-op while it is invalid)."""
        try:
            edit = self.build_edit()
        except (ValueError, WeightLabError):
            return
        self.editRequested.emit(edit)

    def _validate(self) -> None:
        spec = self.op
        self.target_mode.setEnabled(not spec.neurons)
        self.glob.setEnabled(not spec.neurons and self.mode == "glob")
        self.use_selection_btn.setVisible(spec.neurons and "neurons" in self.form.fields)
        if spec.neurons:
            self.form.set_context(self._neuron_context())
        try:
            edit = self.build_edit()
            names = edit.targets(self.session.model)
        except (ValueError, WeightLabError) as e:
            msg = e.message if isinstance(e, WeightLabError) else str(e)
            self.apply_btn.setEnabled(False)
            self.apply_btn.setToolTip(f"Cannot apply: {msg}")
            self.op_status.setText(_error_html(msg))
            return
        self.apply_btn.setEnabled(True)
        self.apply_btn.setToolTip(f"{edit.describe()} (Ctrl+Return)")
        self.op_status.setText(f"Will {edit.describe()}")
        self.op_status.setToolTip(edit.describe() + "\n" + "\n".join(names))
        if spec.neurons and self.tabs.currentIndex() == 0:
            self.target_label.setText(f"→ layer {edit.target_text} (neuron edit): {summarize_names(names)}")
            self.target_label.setToolTip("\n".join(names))

    # -- quick buttons ------------------------------------------------------------------
    def _update(self) -> None:
        target_ok = False
        if self.session is None:
            self.target_label.setText("No model open")
        else:
            try:
                names = self.target_tensors()
            except WeightLabError as e:
                self.target_label.setText(_error_html(e.message))
                self.target_label.setToolTip(e.message)
            else:
                target_ok = True
                self.target_label.setText(f"→ {summarize_names(names)}")
                self.target_label.setToolTip("\n".join(names))
        has_r = target_ok and self.range is not None
        for b in (self.clip_btn, self.zero_in_btn, self.zero_out_btn):
            b.setEnabled(has_r)
            b.setToolTip(b.statusTip() if has_r else (_NO_RANGE if target_ok else "The target matches no tensor"))
        self.range_label.setText(
            f"Brushed range [{fmt_num(self.range[0])}, {fmt_num(self.range[1])}] of {self.tensor}"
            if self.range is not None and self.tensor
            else "No range selected (drag on the histogram)"
        )
        self.scale_btn.setEnabled(target_ok)
        self.scale_btn.setToolTip("w * k on the target" if target_ok else "The target matches no tensor")
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
        self._validate()

    def _range_edit(self, cls: type[Edit]) -> None:
        target = self.target()
        if target is None or self.range is None:
            return
        lo, hi = self.range
        self.editRequested.emit(cls(target=target, min=lo, max=hi))

    def clip_to_range(self) -> None:
        """Emit a clip of the target to the brushed range (no-op without one)."""
        if self.clip_btn.isEnabled():
            self._range_edit(Clip)

    def _scale(self) -> None:
        target = self.target()
        if target is not None:
            self.editRequested.emit(Scale(target=target, factor=self.k.value()))

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

    Each step shows ``edit.describe()`` with a checkbox: unchecking switches
    the step off (the weights are recomputed by replay without it), checking
    switches it on again. Applied steps are black, undone ones grey, switched-off
    ones struck through; the current position is bold and marked with an arrow.

    Signals
    -------
    gotoRequested(int):
        The position (number of applied steps) the user clicked.
    stepToggled(int, bool):
        Step ``index`` (0-based into ``session.steps``) switched on (True) or off.
    """

    gotoRequested = Signal(int)
    stepToggled = Signal(int, bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("History", parent)
        self.list = QListWidget()
        self.list.setMinimumHeight(70)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setToolTip("Click a row to go back to it; untick a step to switch it off (replayed without it)")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.list)
        self._session: EditSession | None = None
        self._filling = False
        self._toggled = False
        self.list.itemClicked.connect(self._clicked)
        self.list.itemChanged.connect(self._changed)
        theme.signals.changed.connect(self.refresh)  # the undone and switched-off steps' colour

    def set_session(self, session: EditSession | None) -> None:
        """Follow ``session`` (None clears)."""
        self._session = session
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the rows from the session's steps and position."""
        self._filling = True
        try:
            self.list.clear()
            s = self._session
            if s is None:
                return
            steps = s.steps
            # an in-memory model (weightlab.show(model)) was opened from no file
            opened = "opened model" if getattr(s.model, "in_memory", False) else "opened file"
            for i in range(len(steps) + 1):
                current = i == s.position
                text = opened if i == 0 else steps[i - 1].edit.describe()
                item = QListWidgetItem(f"{'▶' if current else '  '} {i}. {text}")
                item.setData(Qt.ItemDataRole.UserRole, i)
                item.setToolTip(text)
                font = QFont(item.font())
                font.setBold(current)
                if i > 0:
                    on = steps[i - 1].enabled
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                    font.setStrikeOut(not on)
                    if not on:
                        item.setToolTip(f"{text}\n(switched off: tick to switch it on again)")
                item.setFont(font)
                if i > s.position or (i > 0 and not steps[i - 1].enabled):
                    item.setForeground(QBrush(theme.color("muted")))
                self.list.addItem(item)
            self.list.scrollToItem(self.list.item(s.position))
        finally:
            self._filling = False

    def set_step_checked(self, index: int, on: bool) -> None:
        """Tick or untick step ``index`` as the user would (emits stepToggled)."""
        item = self.list.item(index + 1)
        item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self._toggled = False  # no click follows a programmatic tick

    def _changed(self, item: QListWidgetItem) -> None:
        if self._filling or self._session is None:
            return
        pos = int(item.data(Qt.ItemDataRole.UserRole))
        on = item.checkState() == Qt.CheckState.Checked
        if pos > 0 and self._session.steps[pos - 1].enabled != on:
            self._toggled = True  # the click that ticked the box must not also jump
            # Queued: the replay rebuilds the rows, which must not happen inside the click handler.
            QTimer.singleShot(0, self, lambda: self.stepToggled.emit(pos - 1, on))

    def _clicked(self, item: QListWidgetItem) -> None:
        if self._toggled:
            self._toggled = False
            return
        pos = item.data(Qt.ItemDataRole.UserRole)
        if self._session is not None and pos != self._session.position:
            self.gotoRequested.emit(int(pos))
